#pragma once
// Host-clock phase ranges (`run --trace`): what kvbench is doing, when, nested -- prefill, decode
// steps, per-layer attention and MLP, the lockstep reference, compression. Off by default, and then
// a range costs one predictable branch (plus, in CUDA builds, an NVTX push/pop, which is a no-op
// unless a tool such as Nsight Systems is attached, so a capture shows the same phases). Ranges are opened on the thread that drives the decode
// loop only (the CPU kernels' worker threads never open one). The events feed the per-op table in
// result.json and a Chrome trace (trace.json, opened by Perfetto or chrome://tracing).
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvb::profiler {

struct Event {
  const char* name;  // a string literal
  int64_t start_ns;  // since the profiler was enabled
  int64_t duration_ns;
  int depth;         // nesting level when it opened
};

void enable(bool on);
bool enabled();

// Nanoseconds since the profiler was last enabled: the clock of Event::start_ns, which GPU
// records are converted to (profiler/gpu_activity.hpp).
int64_t now_ns();

// Events recorded since the last take (in the order the ranges closed).
std::vector<Event> take_events();

// Opens a range named by a string literal; closes it at scope exit.
class Range {
 public:
  explicit Range(const char* name) : name_(name) {
    nvtx_push(name);
    if (enabled()) begin();
  }
  ~Range() {
    if (open_) end();
    nvtx_pop();
  }
  Range(const Range&) = delete;
  Range& operator=(const Range&) = delete;

 private:
  void begin();
  void end();
  static void nvtx_push(const char* name);
  static void nvtx_pop();
  const char* name_;
  bool open_ = false;
  std::chrono::steady_clock::time_point start_;
};

// An NVTX range around a whole (method, budget) run, e.g. "triattention@64", so a capture groups
// each run's phases under its name (no-op without CUDA or without an attached tool).
class RunRange {
 public:
  explicit RunRange(const std::string& name);
  ~RunRange();
  RunRange(const RunRange&) = delete;
  RunRange& operator=(const RunRange&) = delete;
};

// Calls and total / min / max milliseconds of one row of a per-op or per-kernel table.
struct DurationRow {
  int64_t calls = 0;
  double total_ms = 0, min_ms = 0, max_ms = 0;
  void add(double ms);
  // {name, calls, total_ms, mean_ms, min_ms, max_ms, share} with share = total_ms / of_ms (0 when of_ms is 0).
  nlohmann::json to_json(const std::string& name, double of_ms) const;
};

// Orders table rows by total_ms, heaviest first.
void sort_heaviest_first(nlohmann::json& rows);

// Per name: calls, total / mean / min / max milliseconds, and the share of `total_ms`.
nlohmann::json op_table(const std::vector<Event>& events, double total_ms);

// Chrome trace events ("ph": "X") of one run, on track `tid`, labelled with the run's name.
nlohmann::json chrome_events(const std::vector<Event>& events, const std::string& run, int tid);

}  // namespace kvb::profiler
