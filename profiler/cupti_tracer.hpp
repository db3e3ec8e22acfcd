#pragma once
// CUPTI activity tracing of a CUDA run (`run --trace` on the GPU): every kernel, memcpy and memset
// with its GPU start and end, and the runtime API calls that launched them, so each can be put in
// the host phase that issued it (profiler/gpu_activity.hpp). CUPTI is loaded at run time
// (dlopen), so the binary starts where the toolkit's libraries are absent; any failure (no
// library, no driver, no permission to profile) leaves the tracer unavailable with a one-line
// reason, and the run goes on without GPU records. CUPTI delivers records through process-wide
// callbacks, so one tracer exists at a time.
#include <cstdint>
#include <string>

#include "profiler/gpu_activity.hpp"

namespace kvb::profiler {

class CuptiTracer {
 public:
  // Loads CUPTI, enables kernel, memcpy, memset and runtime API records and measures the offset
  // between CUPTI's clock and the profiler's (call profiler::enable first). Never throws.
  CuptiTracer();
  ~CuptiTracer();  // disables collection
  CuptiTracer(const CuptiTracer&) = delete;
  CuptiTracer& operator=(const CuptiTracer&) = delete;

  bool available() const { return reason_.empty(); }
  // "CUPTI not available: ..." when unavailable, else empty.
  const std::string& unavailable_reason() const { return reason_; }
  // What traced, e.g. "CUPTI 130001"; empty when unavailable.
  const std::string& description() const { return description_; }

  // Waits for the GPU, flushes CUPTI and returns the records since the last call, placed on the
  // profiler's clock and attributed to the given host ranges. Empty when unavailable.
  GpuRunTrace take(const std::vector<Event>& host_ranges);

 private:
  std::string reason_;
  std::string description_;
  int64_t cupti_minus_host_ns_ = 0;
  bool owns_session_ = false;  // this instance enabled CUPTI (and must disable it)
};

}  // namespace kvb::profiler
