#include "profiler/nvml_sampler.hpp"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "profiler/shared_library.hpp"

namespace kvb::profiler {

using nlohmann::json;

namespace {

// NVML's C interface as documented in the NVML API reference (nvml.h is not installed here):
// every call returns nvmlReturn_t, an int enum with NVML_SUCCESS = 0; a device is an opaque handle.
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;
constexpr nvmlReturn_t kNvmlSuccess = 0;
constexpr int kNvmlClockSm = 1;         // nvmlClockType_t NVML_CLOCK_SM
constexpr int kNvmlClockMem = 2;        // NVML_CLOCK_MEM
constexpr int kNvmlTemperatureGpu = 0;  // nvmlTemperatureSensors_t NVML_TEMPERATURE_GPU

struct NvmlApi {
  nvmlReturn_t (*init)() = nullptr;  // nvmlInit_v2
  nvmlReturn_t (*shutdown)() = nullptr;
  const char* (*error_string)(nvmlReturn_t) = nullptr;
  nvmlReturn_t (*handle_by_index)(unsigned, nvmlDevice_t*) = nullptr;         // _v2
  nvmlReturn_t (*handle_by_pci_bus_id)(const char*, nvmlDevice_t*) = nullptr;  // _v2
  nvmlReturn_t (*clock_info)(nvmlDevice_t, int, unsigned*) = nullptr;         // MHz
  nvmlReturn_t (*power_usage)(nvmlDevice_t, unsigned*) = nullptr;             // milliwatts
  nvmlReturn_t (*temperature)(nvmlDevice_t, int, unsigned*) = nullptr;        // degrees C
  nvmlReturn_t (*clock_event_reasons)(nvmlDevice_t, unsigned long long*) = nullptr;
};

struct LoadedNvml {
  NvmlApi api;
  std::string error;
};

LoadedNvml load_nvml() {
  LoadedNvml l;
  SharedLibrary lib({"libnvidia-ml.so.1"});
  if (!lib.loaded()) {
    l.error = "libnvidia-ml.so.1 not found (it comes with the NVIDIA driver)";
    return l;
  }
  NvmlApi& a = l.api;
  lib.bind("nvmlInit_v2", a.init);
  lib.bind("nvmlShutdown", a.shutdown);
  lib.bind("nvmlErrorString", a.error_string);
  lib.bind("nvmlDeviceGetHandleByIndex_v2", a.handle_by_index);
  lib.bind("nvmlDeviceGetHandleByPciBusId_v2", a.handle_by_pci_bus_id);
  lib.bind("nvmlDeviceGetClockInfo", a.clock_info);
  lib.bind("nvmlDeviceGetPowerUsage", a.power_usage);
  lib.bind("nvmlDeviceGetTemperature", a.temperature);
  // Renamed in driver R535; older drivers only have the throttle name (same signature and bits).
  if (!lib.try_bind("nvmlDeviceGetCurrentClocksEventReasons", a.clock_event_reasons))
    lib.bind("nvmlDeviceGetCurrentClocksThrottleReasons", a.clock_event_reasons);
  if (!lib.missing().empty()) l.error = fmt::format("the loaded libnvidia-ml has no {}", lib.missing());
  return l;
}

// Loaded once per process; nvmlInit/nvmlShutdown are reference counted per sampler.
const LoadedNvml& nvml() {
  static const LoadedNvml loaded = load_nvml();
  return loaded;
}

std::string describe(nvmlReturn_t r) {
  const char* text = nvml().api.error_string(r);
  return fmt::format("{} ({})", text ? text : "unknown error", r);
}

// nvmlClocksEventReasons bits; `slows` marks the thermal and power limits a benchmark must report.
struct ClockEventReason {
  uint64_t bit;
  const char* name;
  bool slows;
};
constexpr ClockEventReason kReasons[] = {
    {0x1, "gpu_idle", false},
    {0x2, "applications_clocks_setting", false},
    {0x4, "sw_power_cap", true},
    {0x8, "hw_slowdown", true},  // thermal or power brake, by NVML's description
    {0x10, "sync_boost", false},
    {0x20, "sw_thermal_slowdown", true},
    {0x40, "hw_thermal_slowdown", true},
    {0x80, "hw_power_brake_slowdown", true},
    {0x100, "display_clock_setting", false},
};

uint64_t slowing_bits() {
  uint64_t bits = 0;
  for (const ClockEventReason& r : kReasons) bits |= r.slows ? r.bit : 0;
  return bits;
}

TelemetrySample read_sample(const NvmlApi& api, nvmlDevice_t device) {
  TelemetrySample s;
  unsigned value = 0;
  if (api.clock_info(device, kNvmlClockSm, &value) == kNvmlSuccess) s.sm_clock_mhz = value;
  if (api.clock_info(device, kNvmlClockMem, &value) == kNvmlSuccess) s.memory_clock_mhz = value;
  if (api.power_usage(device, &value) == kNvmlSuccess) s.power_w = value / 1000.0;
  if (api.temperature(device, kNvmlTemperatureGpu, &value) == kNvmlSuccess) s.temperature_c = value;
  unsigned long long reasons = 0;
  if (api.clock_event_reasons(device, &reasons) == kNvmlSuccess) s.clock_event_reasons = reasons;
  return s;
}

// The values of one field over the samples that have it.
std::vector<double> readings(const std::vector<TelemetrySample>& samples,
                             std::optional<double> TelemetrySample::*field) {
  std::vector<double> out;
  for (const TelemetrySample& s : samples)
    if (s.*field) out.push_back(*(s.*field));
  return out;
}

json min_median_max(std::vector<double> v) {
  if (v.empty()) return nullptr;
  std::sort(v.begin(), v.end());
  const size_t mid = v.size() / 2;
  const double median = v.size() % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return {{"min", v.front()}, {"median", median}, {"max", v.back()}};
}

json mean_max(const std::vector<double>& v) {
  if (v.empty()) return nullptr;
  return {{"mean", std::accumulate(v.begin(), v.end(), 0.0) / v.size()}, {"max", *std::max_element(v.begin(), v.end())}};
}

uint64_t reasons_seen(const std::vector<TelemetrySample>& samples) {
  uint64_t seen = 0;
  for (const TelemetrySample& s : samples) seen |= s.clock_event_reasons.value_or(0);
  return seen;
}

}  // namespace

std::vector<std::string> clock_event_reason_names(uint64_t mask) {
  std::vector<std::string> names;
  for (const ClockEventReason& r : kReasons)
    if (mask & r.bit) {
      names.push_back(r.name);
      mask &= ~r.bit;
    }
  if (mask) names.push_back(fmt::format("0x{:x}", mask));  // reasons newer than this list
  return names;
}

std::string throttle_warning(const std::vector<TelemetrySample>& samples, int gpu_index) {
  const uint64_t slowing = slowing_bits();
  int64_t throttled = 0;
  for (const TelemetrySample& s : samples) throttled += (s.clock_event_reasons.value_or(0) & slowing) != 0;
  if (throttled == 0) return {};
  return fmt::format("GPU {} was throttled ({}) in {} of {} telemetry samples: its timings are below what it "
                     "does at full clocks and may not repeat",
                     gpu_index, fmt::join(clock_event_reason_names(reasons_seen(samples) & slowing), ", "), throttled,
                     samples.size());
}

json telemetry_summary(const std::vector<TelemetrySample>& samples, int gpu_index, int interval_ms) {
  const std::vector<double> temperatures = readings(samples, &TelemetrySample::temperature_c);
  const std::string warning = throttle_warning(samples, gpu_index);
  return {{"sampled", true},
          {"gpu_index", gpu_index},
          {"samples", samples.size()},
          {"interval_ms", interval_ms},
          {"sm_clock_mhz", min_median_max(readings(samples, &TelemetrySample::sm_clock_mhz))},
          {"memory_clock_mhz", min_median_max(readings(samples, &TelemetrySample::memory_clock_mhz))},
          {"power_w", mean_max(readings(samples, &TelemetrySample::power_w))},
          {"temperature_c", temperatures.empty() ? json(nullptr)
                                                 : json{{"max", *std::max_element(temperatures.begin(), temperatures.end())}}},
          {"throttle_reasons", clock_event_reason_names(reasons_seen(samples))},
          {"warning", warning.empty() ? json(nullptr) : json(warning)}};
}

json telemetry_not_sampled(const std::string& why) { return {{"sampled", false}, {"note", why}}; }

NvmlSampler::NvmlSampler(const GpuInfo& gpu, std::chrono::milliseconds interval)
    : gpu_index_(gpu.index), interval_(interval) {
  const LoadedNvml& l = nvml();
  if (!l.error.empty()) {
    reason_ = "NVML not available: " + l.error;
    return;
  }
  if (nvmlReturn_t r = l.api.init(); r != kNvmlSuccess) {
    reason_ = "NVML not available: nvmlInit_v2 returned " + describe(r);
    return;
  }
  nvmlDevice_t device = nullptr;
  const nvmlReturn_t r = gpu.pci_bus_id.empty() ? l.api.handle_by_index(static_cast<unsigned>(gpu.index), &device)
                                                : l.api.handle_by_pci_bus_id(gpu.pci_bus_id.c_str(), &device);
  if (r != kNvmlSuccess) {
    reason_ = fmt::format("NVML not available: no handle for GPU {} ({}): {}", gpu.index,
                          gpu.pci_bus_id.empty() ? "by index" : gpu.pci_bus_id, describe(r));
    l.api.shutdown();
    return;
  }
  device_ = device;
  thread_ = std::thread([this] { sample_until_stopped(); });
}

NvmlSampler::~NvmlSampler() { stop(); }

void NvmlSampler::sample_until_stopped() {
  const NvmlApi& api = nvml().api;
  for (;;) {
    samples_.push_back(read_sample(api, static_cast<nvmlDevice_t>(device_)));
    std::unique_lock lock(mutex_);
    if (wake_.wait_for(lock, interval_, [this] { return stopping_; })) return;
  }
}

void NvmlSampler::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  nvml().api.shutdown();
}

json NvmlSampler::finish() {
  stop();
  if (!available()) return telemetry_not_sampled(reason_);
  return telemetry_summary(samples_, gpu_index_, static_cast<int>(interval_.count()));
}

}  // namespace kvb::profiler
