#pragma once
// GPU telemetry while a CUDA run decodes: SM and memory clocks, board power, temperature and the
// clock-event ("throttle") reasons, read through NVML every ~100 ms on a background thread, so a
// result says whether its GPU ran at full clocks. NVML ships with the driver, not the toolkit, and
// has no header here: it is loaded with dlopen and its few entry points are declared by hand.
// Without NVML or a GPU the sampler is unavailable and says why in one line.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/gpu_info.hpp"

namespace kvb::profiler {

// One reading; a value NVML could not give (e.g. power on some boards) is absent.
struct TelemetrySample {
  std::optional<double> sm_clock_mhz;
  std::optional<double> memory_clock_mhz;
  std::optional<double> power_w;
  std::optional<double> temperature_c;
  std::optional<uint64_t> clock_event_reasons;  // NVML's bit mask
};

// Names of the reasons set in an NVML clock-event mask ("sw_power_cap", ...); unknown bits as hex.
std::vector<std::string> clock_event_reason_names(uint64_t mask);

// One line when a thermal or power reason held the clocks down in any sample (idle, application
// clocks, sync boost and display clocks do not count), else empty.
std::string throttle_warning(const std::vector<TelemetrySample>& samples, int gpu_index);

// device.gpu_telemetry of a sampled run: sampled (true), gpu_index, samples, interval_ms,
// sm_clock_mhz and memory_clock_mhz {min, median, max}, power_w {mean, max}, temperature_c {max}
// (null when NVML gave no reading), throttle_reasons (every reason seen), warning (or null).
nlohmann::json telemetry_summary(const std::vector<TelemetrySample>& samples, int gpu_index, int interval_ms);

// device.gpu_telemetry when nothing was sampled: {sampled: false, note: why}.
nlohmann::json telemetry_not_sampled(const std::string& why);

class NvmlSampler {
 public:
  // Loads NVML, finds `gpu` (by PCI bus id, so CUDA_VISIBLE_DEVICES cannot point it at another
  // board) and starts sampling. Never throws.
  explicit NvmlSampler(const GpuInfo& gpu, std::chrono::milliseconds interval = std::chrono::milliseconds(100));
  ~NvmlSampler();
  NvmlSampler(const NvmlSampler&) = delete;
  NvmlSampler& operator=(const NvmlSampler&) = delete;

  bool available() const { return reason_.empty(); }
  const std::string& unavailable_reason() const { return reason_; }  // "NVML not available: ..."

  // Stops sampling; device.gpu_telemetry (telemetry_summary, or telemetry_not_sampled with the reason).
  nlohmann::json finish();

 private:
  void sample_until_stopped();
  void stop();

  std::string reason_;
  int gpu_index_ = 0;
  std::chrono::milliseconds interval_;
  void* device_ = nullptr;  // nvmlDevice_t
  std::vector<TelemetrySample> samples_;  // written by the sampling thread until it is joined
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace kvb::profiler
