// Exact top-k (cpu::top_k) on the device: indices of the k largest scores, descending, ties to
// the lower index.
//
// Every (score, index) pair becomes one 64-bit key whose unsigned order is the wanted order:
// high word = the score's bits mapped to an order-preserving unsigned (with -0 taken as +0, since
// the CPU comparison ties them), low word = ~index (a lower index ranks higher). Keys are distinct,
// so the sorted sequence is unique: the result does not depend on the schedule.
//
// n up to 16384 (the contract): one block bitonic-sorts the keys, padded with 0 (below every real
// key) to the next power of two P, descending, in dynamic shared memory (8 P bytes: 128 KiB at
// P = 16384, within the H100's 227 KiB opt-in); up to 1024 threads each do P / 2 / threads
// compare-exchanges per stage. Larger n (or a device with less shared memory) falls back to the
// same network run stage by stage over global memory (one launch per stage). Then out[r] =
// index of key r for r < min(k, n).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/compression_common.cuh"
#include "kernels/cuda/compression_cuda.hpp"

namespace kvb::cuda {

namespace {

using namespace compression_detail;
using Key = unsigned long long;

constexpr int kMaxThreads = 1024;
constexpr int kGlobalThreads = 256;

__device__ __forceinline__ Key sort_key(float score, int index) {
  uint32_t u = __float_as_uint(score);
  if ((u << 1) == 0) u = 0;                        // -0 ties with +0
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);  // order-preserving for non-NaN floats
  return (Key(u) << 32) | Key(0xffffffffu - uint32_t(index));
}

__device__ __forceinline__ int32_t key_index(Key key) { return int32_t(0xffffffffu - uint32_t(key & 0xffffffffu)); }

// One compare-exchange of pair t of the stage (size, stride): elements lo and lo + stride, in
// descending order where lo & size == 0 and ascending elsewhere (so the final merge, size == P,
// leaves the whole array descending).
__device__ __forceinline__ void compare_exchange(Key* a, int t, int size, int stride) {
  const int lo = ((t & ~(stride - 1)) << 1) | (t & (stride - 1));
  const int hi = lo + stride;
  const Key x = a[lo], y = a[hi];
  const bool descending = (lo & size) == 0;
  if (descending ? x < y : x > y) {
    a[lo] = y;
    a[hi] = x;
  }
}

__global__ void __launch_bounds__(kMaxThreads)
    top_k_shared_kernel(int32_t* __restrict__ out, const float* __restrict__ score, int n, int k, int p) {
  extern __shared__ Key topk_keys[];
  for (int i = threadIdx.x; i < p; i += blockDim.x) topk_keys[i] = i < n ? sort_key(score[i], i) : Key(0);
  __syncthreads();
  const int half = p >> 1;
  for (int size = 2; size <= p; size <<= 1)
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int t = threadIdx.x; t < half; t += blockDim.x) compare_exchange(topk_keys, t, size, stride);
      __syncthreads();
    }
  for (int r = threadIdx.x; r < k; r += blockDim.x) out[r] = key_index(topk_keys[r]);
}

__global__ void top_k_init_kernel(Key* __restrict__ a, const float* __restrict__ score, int n, int p) {
  const int i = blockIdx.x * kGlobalThreads + threadIdx.x;
  if (i < p) a[i] = i < n ? sort_key(score[i], i) : Key(0);
}

__global__ void top_k_stage_kernel(Key* a, int half, int size, int stride) {
  const int t = blockIdx.x * kGlobalThreads + threadIdx.x;
  if (t < half) compare_exchange(a, t, size, stride);
}

__global__ void top_k_write_kernel(int32_t* __restrict__ out, const Key* __restrict__ a, int k) {
  const int r = blockIdx.x * kGlobalThreads + threadIdx.x;
  if (r < k) out[r] = key_index(a[r]);
}

}  // namespace

void top_k(int32_t* out, const float* score, int n, int k) {
  k = std::clamp(k, 0, std::max(n, 0));
  if (k == 0) return;
  int p = 1;
  while (p < n) p <<= 1;
  const size_t smem = size_t(p) * sizeof(Key);

  int device = 0, optin = 0;
  check(cudaGetDevice(&device), "top_k device");
  check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "top_k device attribute");
  if (smem <= size_t(optin)) {
    allow_dynamic_smem(top_k_shared_kernel, smem, "top_k shared memory");
    const int threads = std::clamp(p / 2, 32, kMaxThreads);
    top_k_shared_kernel<<<1, threads, smem>>>(out, score, n, k, p);
    check(cudaGetLastError(), "top_k launch");
    return;
  }

  StreamScratch scratch(smem, "top_k scratch");
  Key* a = scratch.at<Key>(0);
  top_k_init_kernel<<<(p + kGlobalThreads - 1) / kGlobalThreads, kGlobalThreads>>>(a, score, n, p);
  check(cudaGetLastError(), "top_k init launch");
  const int half = p >> 1;
  const int blocks = (half + kGlobalThreads - 1) / kGlobalThreads;
  for (int size = 2; size <= p; size <<= 1)
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      top_k_stage_kernel<<<blocks, kGlobalThreads>>>(a, half, size, stride);
      check(cudaGetLastError(), "top_k stage launch");
    }
  top_k_write_kernel<<<(k + kGlobalThreads - 1) / kGlobalThreads, kGlobalThreads>>>(out, a, k);
  check(cudaGetLastError(), "top_k write launch");
}

}  // namespace kvb::cuda
