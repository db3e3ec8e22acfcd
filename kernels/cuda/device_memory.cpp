// Host-side CUDA runtime calls (compiled by the C++ compiler: fmt cannot go through nvcc in C++20).
#include <cuda_runtime_api.h>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/ops_cuda.hpp"
#include "util/errors.hpp"

namespace kvb::cuda {

void fail_call(int err, const char* call, const char* file, int line) {
  const auto e = static_cast<cudaError_t>(err);
  fail_runtime("CUDA error {} ({}) in {} at {}:{}", cudaGetErrorName(e), cudaGetErrorString(e), call, file, line);
}

void fail_argument(const char* op, const char* what) { fail_runtime("CUDA {}: {}", op, what); }

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
  KVB_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

void copy_to_host_bytes(void* dst, const void* src, size_t bytes) {
  KVB_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

void fill_bytes(void* dst, int value, size_t bytes) { KVB_CUDA_CHECK(cudaMemset(dst, value, bytes)); }

void* pinned_alloc_bytes(size_t bytes, const char* what) {
  void* p = nullptr;
  if (cudaMallocHost(&p, bytes) != cudaSuccess) fail_runtime("CUDA: cannot pin {} bytes of host memory for {}", bytes, what);
  return p;
}

void pinned_free(void* p) {
  if (p) cudaFreeHost(p);
}

void copy_to_device_async(void* dst, const void* pinned_src, size_t bytes) {
  KVB_CUDA_CHECK(cudaMemcpyAsync(dst, pinned_src, bytes, cudaMemcpyHostToDevice, 0));
}

void copy_to_host_async(void* pinned_dst, const void* src, size_t bytes) {
  KVB_CUDA_CHECK(cudaMemcpyAsync(pinned_dst, src, bytes, cudaMemcpyDeviceToHost, 0));
}

void select_device(int index) {
  int count = 0;
  KVB_CUDA_CHECK(cudaGetDeviceCount(&count));
  if (index < 0 || index >= count) fail_runtime("--device cuda:{}: this machine has {} GPU(s)", index, count);
  KVB_CUDA_CHECK(cudaSetDevice(index));
}

void memory_info(size_t* free_bytes, size_t* total_bytes) { KVB_CUDA_CHECK(cudaMemGetInfo(free_bytes, total_bytes)); }

void synchronize(const char* what) {
  const cudaError_t launch = cudaGetLastError();
  if (launch != cudaSuccess) fail_runtime("CUDA error {} ({}) before {}", cudaGetErrorName(launch), cudaGetErrorString(launch), what);
  const cudaError_t done = cudaDeviceSynchronize();
  if (done != cudaSuccess) fail_runtime("CUDA error {} ({}) in {}", cudaGetErrorName(done), cudaGetErrorString(done), what);
}

}  // namespace kvb::cuda
