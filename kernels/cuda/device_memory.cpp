// Host-side CUDA runtime calls (compiled by the C++ compiler: fmt cannot go through nvcc in C++20).
#include <cuda_runtime_api.h>

#include "kernels/cuda/ops_cuda.hpp"
#include "util/errors.hpp"

namespace kvb::cuda {

void check(int err, const char* what) {
  if (err != cudaSuccess) fail_runtime("CUDA {}: {}", what, cudaGetErrorString(static_cast<cudaError_t>(err)));
}

void* device_alloc_bytes(size_t bytes, const char* what) {
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) {
    size_t free_bytes = 0, total = 0;
    cudaMemGetInfo(&free_bytes, &total);
    fail_runtime("CUDA out of memory allocating {} ({} bytes; {} of {} bytes free): {}", what, bytes, free_bytes, total,
                 cudaGetErrorString(err));
  }
  return p;
}

void device_free(void* p) {
  if (p) cudaFree(p);
}

void copy_to_device_bytes(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "copy to device");
}

void copy_to_host_bytes(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "copy to host");
}

void fill_bytes(void* dst, int value, size_t bytes) { check(cudaMemset(dst, value, bytes), "memset"); }

void select_device(int index) {
  int count = 0;
  check(cudaGetDeviceCount(&count), "device count");
  if (index < 0 || index >= count) fail_runtime("--device cuda:{}: this machine has {} GPU(s)", index, count);
  check(cudaSetDevice(index), "select device");
}

void memory_info(size_t* free_bytes, size_t* total_bytes) { check(cudaMemGetInfo(free_bytes, total_bytes), "memory info"); }

void synchronize(const char* what) {
  check(cudaGetLastError(), what);
  check(cudaDeviceSynchronize(), what);
}

}  // namespace kvb::cuda
