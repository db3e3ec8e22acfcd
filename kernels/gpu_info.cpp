#include "kernels/gpu_info.hpp"

#ifdef KVBENCH_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#include <fmt/format.h>

namespace kvb {

GpuQuery query_gpus() {
  GpuQuery q;
#ifdef KVBENCH_HAVE_CUDA
  // Static cudart loads libcuda.so.1 only now; with no driver this returns an error (35, 100 or
  // 34, see docs/build-notes) and leaves count untouched.
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    q.why_none = err != cudaSuccess ? fmt::format("no usable CUDA device ({})", cudaGetErrorString(err))
                                    : "no CUDA device";
    return q;
  }
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    GpuInfo g;
    g.index = i;
    g.name = p.name;
    g.sm_count = p.multiProcessorCount;
    g.compute_major = p.major;
    g.compute_minor = p.minor;
    g.memory_bytes = p.totalGlobalMem;
    g.memory_bus_bits = p.memoryBusWidth;
    g.driver_version = driver;
    g.runtime_version = runtime;
    g.pci_bus_id = fmt::format("{:08X}:{:02X}:{:02X}.0", p.pciDomainID, p.pciBusID, p.pciDeviceID);
    q.gpus.push_back(g);
  }
  if (q.gpus.empty()) q.why_none = "CUDA devices reported but none could be queried";
#else
  q.why_none = "this kvbench was built without CUDA";
#endif
  return q;
}

}  // namespace kvb
