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

// Per name: calls, total / mean / min / max milliseconds, and the share of `total_ms`.
nlohmann::json op_table(const std::vector<Event>& events, double total_ms);

// Chrome trace events ("ph": "X") of one run, on track `tid`, labelled with the run's name.
nlohmann::json chrome_events(const std::vector<Event>& events, const std::string& run, int tid);

}  // namespace kvb::profiler
