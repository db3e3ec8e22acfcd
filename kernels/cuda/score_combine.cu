// The elementwise steps that combine per-head scores into one score per slot during a compression
// event: TriAttention's group maximum with tie-break noise folded into the layer aggregate, and
// R-KV's weighted difference of attention and redundancy. Products and sums are rounded one at a
// time (no fused multiply-add) to give the CPU policies' bits.
#include <cuda_runtime.h>

#include "kernels/counter_hash.hpp"
#include "kernels/cuda/compression_cuda.hpp"
#include "kernels/cuda/ops_cuda.hpp"

namespace kvb::cuda {

namespace {

constexpr int kThreads = 256;

int blocks_for(int n) { return (n + kThreads - 1) / kThreads; }

__global__ void tri_group_combine_kernel(float* __restrict__ agg, const float* __restrict__ raw, int group, int n,
                                         const int32_t* __restrict__ positions, uint64_t seed, uint64_t event,
                                         uint64_t head_key, int mode, float divisor) {
  const int c = blockIdx.x * kThreads + threadIdx.x;
  if (c >= n) return;
  float m = -__int_as_float(0x7f800000);  // -inf
  for (int h = 0; h < group; ++h) {
    const float noise = __fmul_rn(1e-6f, hashed_uniform(seed, event, ((head_key + h) << 32) | uint32_t(positions[c])));
    m = fmaxf(m, __fadd_rn(raw[size_t(h) * n + c], noise));
  }
  if (mode == kTriAssign) agg[c] = m;
  else if (mode == kTriMax) agg[c] = fmaxf(agg[c], m);
  else agg[c] = __fadd_rn(agg[c], __fdiv_rn(m, divisor));
}

__global__ void weighted_difference_kernel(float* __restrict__ out, const float* __restrict__ a,
                                           const float* __restrict__ b, float lambda, int n) {
  const int i = blockIdx.x * kThreads + threadIdx.x;
  if (i < n) out[i] = __fsub_rn(__fmul_rn(lambda, a[i]), __fmul_rn(__fsub_rn(1.0f, lambda), b[i]));
}

}  // namespace

void tri_group_combine(float* agg, const float* raw, int group, int n, const int32_t* positions, uint64_t seed,
                       uint64_t event, uint64_t head_key, int mode, float divisor) {
  if (n <= 0) return;
  tri_group_combine_kernel<<<blocks_for(n), kThreads>>>(agg, raw, group, n, positions, seed, event, head_key, mode,
                                                        divisor);
  check(cudaGetLastError(), "tri_group_combine launch");
}

void weighted_difference(float* out, const float* a, const float* b, float lambda, int n) {
  if (n <= 0) return;
  weighted_difference_kernel<<<blocks_for(n), kThreads>>>(out, a, b, lambda, n);
  check(cudaGetLastError(), "weighted_difference launch");
}

}  // namespace kvb::cuda
