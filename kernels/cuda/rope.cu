// RoPE: one thread per (token, rotation pair). The thread computes that pair's angle and its cos and
// sin once, in double as RopeTable::apply does (pos * inv_freq reaches 1e5 rad at long contexts, where
// fp32 would lose ~1e-2 rad), then rotates the pair in every head of the token: the double-precision
// sincos, the expensive part, is shared by all heads. Neighbouring threads take neighbouring pairs of
// one token, so the Half pairing (lanes f, f + d/2) reads two coalesced runs and the interleaved one
// (2f, 2f + 1) one run.
//
// The rotation is written with explicit _rn intrinsics so nvcc does not fuse it into FMAs: it is
// then the same four roundings as the CPU's x0 * cos - x1 * sin.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/ops_cuda.hpp"

namespace kvb::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 8192;  // grid-stride beyond: a 128k-token prefill has 8M items

__global__ void rope_kernel(float* x, const int32_t* pos, int64_t items, int pairs, int n_heads, int head_dim,
                            const double* inv_freq, float scale, bool interleaved) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < items; k += stride) {
    const int64_t t = k / pairs;
    const int f = static_cast<int>(k - t * pairs);
    const double angle = static_cast<double>(pos[t]) * inv_freq[f];
    double s, c;
    sincos(angle, &s, &c);
    const float cf = static_cast<float>(c * static_cast<double>(scale));
    const float sf = static_cast<float>(s * static_cast<double>(scale));
    const int a = interleaved ? 2 * f : f;
    const int b = interleaved ? 2 * f + 1 : f + pairs;
    float* head = x + t * n_heads * static_cast<int64_t>(head_dim);
    for (int h = 0; h < n_heads; ++h, head += head_dim) {
      const float x0 = head[a], x1 = head[b];
      head[a] = __fsub_rn(__fmul_rn(x0, cf), __fmul_rn(x1, sf));
      head[b] = __fadd_rn(__fmul_rn(x0, sf), __fmul_rn(x1, cf));
    }
  }
}

}  // namespace

void rope(float* x, const int32_t* pos, int n, int n_heads, int head_dim, const double* inv_freq, float scale,
          bool interleaved) {
  const int pairs = head_dim / 2;
  if (n <= 0 || n_heads <= 0 || pairs <= 0) return;
  const int64_t items = static_cast<int64_t>(n) * pairs;
  const int64_t want = (items + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(want < kMaxBlocks ? want : kMaxBlocks);
  rope_kernel<<<blocks, kThreads>>>(x, pos, items, pairs, n_heads, head_dim, inv_freq, scale, interleaved);
  KVB_CUDA_LAUNCH_CHECK();
}

}  // namespace kvb::cuda
