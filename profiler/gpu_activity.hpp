#pragma once
// GPU activity records (kernels, memcpys, memsets) as plain structs, and what kvbench makes of
// them: placed on the host profiler's clock, attributed to the innermost host phase that launched
// them, summarised per kernel, and drawn as their own tracks in the Chrome trace. Nothing here
// needs CUDA: profiler/cupti_tracer fills these structs on a GPU, tests fill them by hand.
#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "profiler/trace.hpp"

namespace kvb::profiler {

enum class GpuActivityKind { Kernel, Memcpy, Memset };

struct GpuActivity {
  GpuActivityKind kind = GpuActivityKind::Kernel;
  std::string name;  // demangled kernel name, "memcpy HtoD" (etc.) or "memset"
  // GPU execution; CUPTI's clock as captured, the profiler's clock after place_on_host_clock.
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  int64_t launch_ns = 0;  // host time of the API call that issued it (set by place_on_host_clock)
  uint32_t stream_id = 0;
  uint32_t correlation_id = 0;
  // Kernels only.
  std::array<int32_t, 3> grid{};
  std::array<int32_t, 3> block{};
  int registers_per_thread = 0;
  int64_t shared_memory_bytes = 0;  // static + dynamic, per block
  // Memcpy and memset only.
  uint64_t bytes = 0;
  std::string phase;  // the innermost host range that launched it (attribute_phases)
};

// What a tracer delivers between two flushes, on CUPTI's clock.
struct GpuCapture {
  std::vector<GpuActivity> activities;
  std::unordered_map<uint32_t, int64_t> launch_ns;  // correlation id -> start of the runtime API call
  uint64_t dropped_records = 0;                      // CUPTI ran out of buffer space
};

// The GPU side of one (method, budget) run: its measured repetitions' activities on the host clock.
struct GpuRunTrace {
  std::vector<GpuActivity> activities;
  uint64_t dropped_records = 0;
};

// The phase of GPU work launched outside every host range.
inline constexpr const char* kOutsidePhases = "(outside phases)";

// Moves a capture onto the profiler's clock (host = CUPTI - cupti_minus_host_ns). An activity's
// launch time is its runtime API call's start; work issued otherwise (e.g. through the driver
// API, which is not traced) falls back to its GPU start time.
std::vector<GpuActivity> place_on_host_clock(GpuCapture capture, int64_t cupti_minus_host_ns);

// Sets each activity's phase to the name of the innermost host range [start, end) holding its
// launch time, or kOutsidePhases. Host ranges nest (they come from one thread).
void attribute_phases(std::vector<GpuActivity>& activities, const std::vector<Event>& host);

// measurements.gpu_profile: per kernel name {calls, total/mean/min/max ms, share of kernel time,
// phase_ms {phase: ms}} heaviest first, kernel_ms, memcpy and memset {calls, bytes, total_ms},
// dropped_records.
nlohmann::json gpu_profile(const GpuRunTrace& trace);

// One run's host ranges and, when traced, its GPU activities.
struct TraceRun {
  std::string name;                      // "method@budget"
  const std::vector<Event>* host = nullptr;
  const GpuRunTrace* gpu = nullptr;      // null when the run had no GPU trace
};

// The whole Chrome trace document: host ranges on pid 1 (one tid per run), GPU activities on
// pid 2 "GPU" (one tid per stream), with process and track names for Perfetto.
nlohmann::json chrome_trace(const std::vector<TraceRun>& runs);

// "void foo<int>(float*)" for "_Z3fooIiEvPf"; the input itself when it is not a mangled name.
std::string demangle(const char* name);

}  // namespace kvb::profiler
