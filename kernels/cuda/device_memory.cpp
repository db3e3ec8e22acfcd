// Host-side CUDA runtime calls (compiled by the C++ compiler: fmt cannot go through nvcc in C++20).
#include <cuda_runtime_api.h>

#include "kernels/cuda/ops_cuda.hpp"
#include "util/errors.hpp"

namespace kvb::cuda {

void check(int err, const char* what) {
  if (err != cudaSuccess) fail_runtime("CUDA {}: {}", what, cudaGetErrorString(static_cast<cudaError_t>(err)));
}

float* device_alloc(size_t count, const char* what) {
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, count * sizeof(float));
  if (err != cudaSuccess) {
    size_t free_bytes = 0, total = 0;
    cudaMemGetInfo(&free_bytes, &total);
    fail_runtime("CUDA out of memory allocating {} ({} bytes; {} of {} bytes free): {}", what, count * sizeof(float),
                 free_bytes, total, cudaGetErrorString(err));
  }
  return static_cast<float*>(p);
}

void device_free(float* p) { cudaFree(p); }

void copy_to_device(float* dst, const float* src, size_t count) {
  check(cudaMemcpy(dst, src, count * sizeof(float), cudaMemcpyHostToDevice), "copy to device");
}

void copy_to_host(float* dst, const float* src, size_t count) {
  check(cudaMemcpy(dst, src, count * sizeof(float), cudaMemcpyDeviceToHost), "copy to host");
}

void synchronize(const char* what) {
  check(cudaGetLastError(), what);
  check(cudaDeviceSynchronize(), what);
}

}  // namespace kvb::cuda
