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

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - g_origin).count();
}

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

void DurationRow::add(double ms) {
  min_ms = calls == 0 ? ms : std::min(min_ms, ms);
  max_ms = std::max(max_ms, ms);
  total_ms += ms;
  ++calls;
}

nlohmann::json DurationRow::to_json(const std::string& name, double of_ms) const {
  return {{"name", name},
          {"calls", calls},
          {"total_ms", total_ms},
          {"mean_ms", calls > 0 ? total_ms / calls : 0.0},
          {"min_ms", min_ms},
          {"max_ms", max_ms},
          {"share", of_ms > 0 ? total_ms / of_ms : 0.0}};
}

void sort_heaviest_first(nlohmann::json& rows) {
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a["total_ms"] > b["total_ms"]; });
}

nlohmann::json op_table(const std::vector<Event>& events, double total_ms) {
  std::map<std::string, DurationRow> rows;
  for (const Event& e : events) rows[e.name].add(e.duration_ns * 1e-6);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [name, r] : rows) out.push_back(r.to_json(name, total_ms));
  sort_heaviest_first(out);
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
