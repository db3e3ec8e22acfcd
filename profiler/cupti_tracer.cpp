#include "profiler/cupti_tracer.hpp"

#ifdef KVBENCH_HAVE_CUPTI  // set by CMake on this file when CUDA and CUPTI's header were found

#include <cuda_runtime_api.h>
#include <cupti.h>  // types and constants only: every entry point is resolved with dlsym

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <mutex>
#include <utility>

#include <fmt/format.h>

#include "profiler/shared_library.hpp"

namespace kvb::profiler {

namespace {

// The CUPTI entry points kvbench calls, resolved from the library loaded at run time.
struct CuptiApi {
  decltype(&cuptiGetVersion) get_version = nullptr;
  decltype(&cuptiGetResultString) result_string = nullptr;
  decltype(&cuptiGetTimestamp) timestamp = nullptr;
  decltype(&cuptiActivityRegisterCallbacks) register_callbacks = nullptr;
  decltype(&cuptiActivityEnable) enable = nullptr;
  decltype(&cuptiActivityDisable) disable = nullptr;
  decltype(&cuptiActivityFlushAll) flush_all = nullptr;
  decltype(&cuptiActivityGetNextRecord) next_record = nullptr;
  decltype(&cuptiActivityGetNumDroppedRecords) dropped_records = nullptr;
};

struct LoadedCupti {
  CuptiApi api;
  uint32_t version = 0;
  std::string error;  // why it could not be used; empty when it can
};

LoadedCupti load_cupti() {
  LoadedCupti l;
  // KVBENCH_CUPTI_PATH: the toolkit's CUPTI found at configure time.
  SharedLibrary lib({"libcupti.so.13", "libcupti.so", KVBENCH_CUPTI_PATH});
  if (!lib.loaded()) {
    l.error = "libcupti.so.13 not found (install the CUDA toolkit's CUPTI or add its folder to LD_LIBRARY_PATH)";
    return l;
  }
  CuptiApi& a = l.api;
  lib.bind("cuptiGetVersion", a.get_version);
  lib.bind("cuptiGetResultString", a.result_string);
  lib.bind("cuptiGetTimestamp", a.timestamp);
  lib.bind("cuptiActivityRegisterCallbacks", a.register_callbacks);
  lib.bind("cuptiActivityEnable", a.enable);
  lib.bind("cuptiActivityDisable", a.disable);
  lib.bind("cuptiActivityFlushAll", a.flush_all);
  lib.bind("cuptiActivityGetNextRecord", a.next_record);
  lib.bind("cuptiActivityGetNumDroppedRecords", a.dropped_records);
  if (!lib.missing().empty()) {
    l.error = fmt::format("the loaded libcupti has no {}", lib.missing());
    return l;
  }
  // Record layouts (CUpti_ActivityKernel10 ...) belong to CUPTI 13; another major version would
  // be read as garbage. Versions since 13.0 are xxyyzz.
  if (a.get_version(&l.version) != CUPTI_SUCCESS || l.version / 10000 != CUPTI_API_VERSION / 10000)
    l.error = fmt::format("the loaded libcupti is API version {}; kvbench reads CUPTI {} records", l.version,
                          CUPTI_API_VERSION / 10000);
  return l;
}

// Loaded once and never unloaded: CUPTI keeps hooks in the CUDA driver for the process's life.
const LoadedCupti& cupti() {
  static const LoadedCupti loaded = load_cupti();
  return loaded;
}

// The likely cause of the failures a user can do something about.
const char* hint(CUptiResult r) {
  switch (r) {
    case CUPTI_ERROR_UNKNOWN: return ": no usable NVIDIA driver?";  // what CUPTI 13 says without one
    case CUPTI_ERROR_INSUFFICIENT_PRIVILEGES:
    case CUPTI_ERROR_VIRTUALIZED_DEVICE_INSUFFICIENT_PRIVILEGES:
      return ": GPU profiling is restricted to admin users (NVreg_RestrictProfilingToAdminUsers)";
    default: return "";
  }
}

std::string describe(CUptiResult r) {
  const char* text = nullptr;
  if (cupti().api.result_string(r, &text) != CUPTI_SUCCESS || !text) text = "unknown error";
  return fmt::format("{} ({}){}", text, static_cast<int>(r), hint(r));
}

constexpr std::pair<CUpti_ActivityKind, const char*> kKinds[] = {
    {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, "CONCURRENT_KERNEL"},
    {CUPTI_ACTIVITY_KIND_MEMCPY, "MEMCPY"},
    {CUPTI_ACTIVITY_KIND_MEMSET, "MEMSET"},
    {CUPTI_ACTIVITY_KIND_RUNTIME, "RUNTIME"},
};

// CUPTI hands records to process-wide callbacks, possibly on its own thread.
std::mutex g_mutex;
GpuCapture g_capture;  // records delivered since the last take
std::atomic<bool> g_session{false};

GpuActivity kernel_activity(const CUpti_ActivityKernel10& k) {
  GpuActivity a;
  a.kind = GpuActivityKind::Kernel;
  a.name = demangle(k.name);
  a.start_ns = static_cast<int64_t>(k.start);
  a.end_ns = static_cast<int64_t>(k.end);
  a.stream_id = k.streamId;
  a.correlation_id = k.correlationId;
  a.grid = {k.gridX, k.gridY, k.gridZ};
  a.block = {k.blockX, k.blockY, k.blockZ};
  a.registers_per_thread = k.registersPerThread;
  a.shared_memory_bytes = int64_t(k.staticSharedMemory) + k.dynamicSharedMemory;
  return a;
}

// Memcpy and memset records share their timing, stream and size fields.
template <class Record>
GpuActivity transfer_activity(const Record& m, GpuActivityKind kind, std::string name) {
  GpuActivity a;
  a.kind = kind;
  a.name = std::move(name);
  a.start_ns = static_cast<int64_t>(m.start);
  a.end_ns = static_cast<int64_t>(m.end);
  a.stream_id = m.streamId;
  a.correlation_id = m.correlationId;
  a.bytes = m.bytes;
  return a;
}

GpuActivity memcpy_activity(const CUpti_ActivityMemcpy6& m) {
  static const char* const kinds[] = {"", " HtoD", " DtoH", " HtoA", " AtoH", " AtoA",
                                      " AtoD", " DtoA", " DtoD", " HtoH", " PtoP"};
  return transfer_activity(m, GpuActivityKind::Memcpy,
                           std::string("memcpy") + (m.copyKind < std::size(kinds) ? kinds[m.copyKind] : ""));
}

GpuActivity memset_activity(const CUpti_ActivityMemset4& m) {
  return transfer_activity(m, GpuActivityKind::Memset, "memset");
}

void collect(const CUpti_Activity* r, GpuCapture& out) {
  switch (r->kind) {
    case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL:
      out.activities.push_back(kernel_activity(*reinterpret_cast<const CUpti_ActivityKernel10*>(r)));
      break;
    case CUPTI_ACTIVITY_KIND_MEMCPY:
      out.activities.push_back(memcpy_activity(*reinterpret_cast<const CUpti_ActivityMemcpy6*>(r)));
      break;
    case CUPTI_ACTIVITY_KIND_MEMSET:
      out.activities.push_back(memset_activity(*reinterpret_cast<const CUpti_ActivityMemset4*>(r)));
      break;
    case CUPTI_ACTIVITY_KIND_RUNTIME: {
      const auto* call = reinterpret_cast<const CUpti_ActivityAPI*>(r);
      out.launch_ns[call->correlationId] = static_cast<int64_t>(call->start);
      break;
    }
    default:
      break;
  }
}

constexpr size_t kBufferBytes = size_t(8) << 20;

void CUPTIAPI on_buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  // CUPTI wants 8-byte aligned buffers; a failed allocation makes it drop records (counted).
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;  // as many as fit
}

void CUPTIAPI on_buffer_completed(CUcontext context, uint32_t stream, uint8_t* buffer, size_t, size_t valid) {
  const CuptiApi& api = cupti().api;
  {
    std::lock_guard lock(g_mutex);
    CUpti_Activity* record = nullptr;
    while (api.next_record(buffer, valid, &record) == CUPTI_SUCCESS) collect(record, g_capture);
    size_t dropped = 0;
    if (api.dropped_records(context, stream, &dropped) == CUPTI_SUCCESS) g_capture.dropped_records += dropped;
  }
  std::free(buffer);
}

// Enables every kind kvbench reads; the first failure is the reason tracing is unavailable.
std::string enable_collection(const CuptiApi& api) {
  if (CUptiResult r = api.register_callbacks(on_buffer_requested, on_buffer_completed); r != CUPTI_SUCCESS)
    return fmt::format("cuptiActivityRegisterCallbacks returned {}", describe(r));
  for (const auto& [kind, name] : kKinds)
    if (CUptiResult r = api.enable(kind); r != CUPTI_SUCCESS)
      return fmt::format("cuptiActivityEnable({}) returned {}", name, describe(r));
  return {};
}

void disable_collection(const CuptiApi& api) {
  for (const auto& [kind, name] : kKinds) api.disable(kind);
  api.flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  std::lock_guard lock(g_mutex);
  g_capture = {};
}

// CUPTI's clock minus the profiler's. The host reads bracket the CUPTI read; the tightest of a
// few brackets puts the two clocks within a microsecond or so of each other.
int64_t clock_offset(const CuptiApi& api) {
  int64_t best_width = INT64_MAX, offset = 0;
  for (int i = 0; i < 5; ++i) {
    const int64_t before = now_ns();
    uint64_t gpu_clock = 0;
    api.timestamp(&gpu_clock);
    const int64_t after = now_ns();
    if (after - before < best_width) {
      best_width = after - before;
      offset = static_cast<int64_t>(gpu_clock) - (before + after) / 2;
    }
  }
  return offset;
}

}  // namespace

CuptiTracer::CuptiTracer() {
  const LoadedCupti& l = cupti();
  if (!l.error.empty()) {
    reason_ = "CUPTI not available: " + l.error;
    return;
  }
  if (g_session.exchange(true)) {
    reason_ = "CUPTI not available: another CUPTI tracer is active in this process";
    return;
  }
  owns_session_ = true;
  {
    std::lock_guard lock(g_mutex);
    g_capture = {};  // records a previous tracer's last flush may have left
  }
  if (std::string error = enable_collection(l.api); !error.empty()) {
    reason_ = "CUPTI not available: " + error;
    return;
  }
  cupti_minus_host_ns_ = clock_offset(l.api);
  description_ = fmt::format("CUPTI {}", l.version);
}

CuptiTracer::~CuptiTracer() {
  if (!owns_session_) return;
  disable_collection(cupti().api);
  g_session.store(false);
}

GpuRunTrace CuptiTracer::take(const std::vector<Event>& host_ranges) {
  if (!available()) return {};
  // A forced flush delivers only finished work; anything still running would be handed to the
  // next take and measured against the wrong repetition's host ranges.
  cudaDeviceSynchronize();
  cupti().api.flush_all(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  GpuCapture capture;
  {
    std::lock_guard lock(g_mutex);
    capture = std::exchange(g_capture, {});
  }
  GpuRunTrace trace;
  trace.dropped_records = capture.dropped_records;
  trace.activities = place_on_host_clock(std::move(capture), cupti_minus_host_ns_);
  attribute_phases(trace.activities, host_ranges);
  return trace;
}

}  // namespace kvb::profiler

#else  // no cupti.h to build against: nothing to trace

namespace kvb::profiler {

#ifdef KVBENCH_HAVE_CUDA
CuptiTracer::CuptiTracer() : reason_("CUPTI not available: kvbench was built without CUPTI's header") {}
#else
CuptiTracer::CuptiTracer() : reason_("CUPTI not available: kvbench was built without CUDA") {}
#endif
CuptiTracer::~CuptiTracer() = default;
GpuRunTrace CuptiTracer::take(const std::vector<Event>&) { return {}; }

}  // namespace kvb::profiler

#endif
