#pragma once
// The GPUs that answer on this machine (CUDA runtime), for `kvbench info`, `--device auto` and
// the result's hardware facts. Never fails: with no driver, no device, or a build without CUDA
// it returns no GPUs and says why.
#include <cstdint>
#include <string>
#include <vector>

namespace kvb {

struct GpuInfo {
  int index = 0;
  std::string name;
  int sm_count = 0;
  int compute_major = 0, compute_minor = 0;
  uint64_t memory_bytes = 0;
  int memory_bus_bits = 0;
  int driver_version = 0;   // CUDA driver API version, e.g. 13000
  int runtime_version = 0;  // CUDA runtime linked into kvbench
  std::string pci_bus_id;   // "00000000:3B:00.0", as NVML and nvidia-smi name the board
};

struct GpuQuery {
  std::vector<GpuInfo> gpus;
  std::string why_none;  // set when gpus is empty
};

GpuQuery query_gpus();

}  // namespace kvb
