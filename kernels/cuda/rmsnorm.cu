// RMSNorm: one block per row; each thread accumulates a strided slice of the sum of squares,
// a warp-shuffle tree then a shared-memory pass reduce it, and the same threads write the
// scaled row. Memory-bound: reads x twice (second pass usually hits L1/L2) and writes y once.
#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/ops_cuda.hpp"

namespace kvb::cuda {

namespace {

constexpr int kThreads = 256;

__device__ float block_sum(float v) {
  __shared__ float warp_sums[kThreads / 32];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  v = threadIdx.x < kThreads / 32 ? warp_sums[threadIdx.x] : 0.0f;
  if (warp == 0)
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  __shared__ float total;
  if (threadIdx.x == 0) total = v;
  __syncthreads();
  return total;
}

__global__ void rmsnorm_kernel(float* y, const float* x, const float* weight, int n, float eps) {
  const float* xr = x + static_cast<size_t>(blockIdx.x) * n;
  float* yr = y + static_cast<size_t>(blockIdx.x) * n;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < n; i += kThreads) ss += xr[i] * xr[i];
  const float inv = rsqrtf(block_sum(ss) / n + eps);
  for (int i = threadIdx.x; i < n; i += kThreads) yr[i] = xr[i] * inv * weight[i];
}

}  // namespace

void rmsnorm(float* y, const float* x, const float* weight, int rows, int n, float eps) {
  if (rows <= 0 || n <= 0) return;
  rmsnorm_kernel<<<rows, kThreads>>>(y, x, weight, n, eps);
  KVB_CUDA_LAUNCH_CHECK();
}

}  // namespace kvb::cuda
