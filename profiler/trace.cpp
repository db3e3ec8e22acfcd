#include "profiler/trace.hpp"

#include <algorithm>
#include <map>
#include <utility>

#ifdef KVBENCH_HAVE_CUDA
#include <nvtx3/nvToolsExt.h>
#endif

namespace kvb::profiler {

namespace {

bool g_enabled = false;
int g_depth = 0;
std::chrono::steady_clock::time_point g_origin;
std::vector<Event> g_events;

}  // namespace

void enable(bool on) {
  g_enabled = on;
  g_origin = std::chrono::steady_clock::now();
  g_events.clear();
}

bool enabled() { return g_enabled; }

std::vector<Event> take_events() { return std::exchange(g_events, {}); }

void Range::begin() {
  open_ = true;
  ++g_depth;
  start_ = std::chrono::steady_clock::now();
}

void Range::end() {
  const auto stop = std::chrono::steady_clock::now();
  --g_depth;
  g_events.push_back(Event{name_, std::chrono::duration_cast<std::chrono::nanoseconds>(start_ - g_origin).count(),
                           std::chrono::duration_cast<std::chrono::nanoseconds>(stop - start_).count(), g_depth});
}

#ifdef KVBENCH_HAVE_CUDA
void Range::nvtx_push(const char* name) { nvtxRangePushA(name); }
void Range::nvtx_pop() { nvtxRangePop(); }
RunRange::RunRange(const std::string& name) { nvtxRangePushA(name.c_str()); }
RunRange::~RunRange() { nvtxRangePop(); }
#else
void Range::nvtx_push(const char*) {}
void Range::nvtx_pop() {}
RunRange::RunRange(const std::string&) {}
RunRange::~RunRange() {}
#endif

nlohmann::json op_table(const std::vector<Event>& events, double total_ms) {
  struct Row {
    int64_t calls = 0;
    double total = 0, min = 0, max = 0;
  };
  std::map<std::string, Row> rows;
  for (const Event& e : events) {
    Row& r = rows[e.name];
    const double ms = e.duration_ns * 1e-6;
    r.min = r.calls == 0 ? ms : std::min(r.min, ms);
    r.max = std::max(r.max, ms);
    r.total += ms;
    ++r.calls;
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [name, r] : rows)
    out.push_back({{"name", name},
                   {"calls", r.calls},
                   {"total_ms", r.total},
                   {"mean_ms", r.total / r.calls},
                   {"min_ms", r.min},
                   {"max_ms", r.max},
                   {"share", total_ms > 0 ? r.total / total_ms : 0.0}});
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a["total_ms"] > b["total_ms"]; });
  return out;
}

nlohmann::json chrome_events(const std::vector<Event>& events, const std::string& run, int tid) {
  nlohmann::json out = nlohmann::json::array();
  for (const Event& e : events)
    out.push_back({{"name", e.name},
                   {"cat", "host"},
                   {"ph", "X"},
                   {"ts", e.start_ns / 1000.0},
                   {"dur", e.duration_ns / 1000.0},
                   {"pid", 1},
                   {"tid", tid},
                   {"args", {{"run", run}, {"depth", e.depth}}}});
  return out;
}

}  // namespace kvb::profiler
