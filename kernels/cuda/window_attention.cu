// SnapKV's attention evidence (cpu::window_attention) on bf16 keys, in three kernels over a
// stream-ordered scratch of window * n logits:
//
//  1. logits: one block of 128 threads (4 warps) per tile of 32 keys; the tile is read once
//     (coalesced bf16) into shared memory as fp32 with an odd row stride (conflict-free row per
//     lane), the queries follow in chunks of whole window queries (all G heads of each). Warp w
//     takes window queries w, w+4, ..., lane l key l: max over the G heads of the fixed-order fp32
//     dot products, times 1/sqrt(head_dim) -> logits[w][j] (coalesced store).
//  2. stats: one block of 1024 threads per window query: max over the n keys, then the sum of
//     exp(logit - max) in double, both with fixed-order block reductions.
//  3. combine: one thread per key: out[j] = sum over w, in order, of exp(l - max_w) / sum_w / W.
// Every step has a fixed order: the result is reproducible bit for bit.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "kernels/cuda/compression_common.cuh"
#include "kernels/cuda/compression_cuda.hpp"

namespace kvb::cuda {

namespace {

using namespace compression_detail;

constexpr int kTile = 32;
constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kStatsThreads = 1024;
constexpr int kCombineThreads = 256;
constexpr size_t kSmemTarget = 40 * 1024;

// logits [window][n]; queries [window][group][d] fp32; w_chunk window queries per shared chunk.
__global__ void __launch_bounds__(kThreads)
    window_logits_kernel(float* __restrict__ logits, const float* __restrict__ queries, int window, int group,
                         const bf16* __restrict__ keys, int n, int d, float scale, int w_chunk) {
  extern __shared__ float win_smem[];
  const int stride = d + 1;
  float* ks = win_smem;             // [kTile][d + 1]
  float* qs = ks + kTile * stride;  // [w_chunk * group][d]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int j0 = blockIdx.x * kTile;
  const int tk = min(kTile, n - j0);

  const bf16* src = keys + size_t(j0) * d;
  for (int idx = tid; idx < tk * d; idx += kThreads) ks[(idx / d) * stride + idx % d] = bf16_to_f32(src[idx]);

  const float* k = ks + lane * stride;
  const size_t row_floats = size_t(group) * d;  // one window query: its G heads
  for (int c0 = 0; c0 < window; c0 += w_chunk) {
    const int cn = min(w_chunk, window - c0);
    __syncthreads();  // the tile is loaded / the previous chunk has been consumed
    const float* qsrc = queries + size_t(c0) * row_floats;
    for (size_t idx = tid; idx < size_t(cn) * row_floats; idx += kThreads) qs[idx] = qsrc[idx];
    __syncthreads();
    if (lane < tk)
      for (int w = warp; w < cn; w += kWarps) {
        float m = -INFINITY;
        for (int g = 0; g < group; ++g) m = fmaxf(m, dot_f32(qs + (size_t(w) * group + g) * d, k, d));
        logits[size_t(c0 + w) * n + j0 + lane] = m * scale;
      }
  }
}

__global__ void __launch_bounds__(kStatsThreads)
    window_stats_kernel(float* __restrict__ maxes, double* __restrict__ sums, const float* __restrict__ logits,
                        int n) {
  __shared__ float fbuf[32];
  __shared__ double dbuf[32];
  const float* l = logits + size_t(blockIdx.x) * n;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < n; j += kStatsThreads) m = fmaxf(m, l[j]);
  m = block_reduce(m, -INFINITY, MaxOp{}, fbuf);
  double s = 0.0;
  for (int j = threadIdx.x; j < n; j += kStatsThreads) s += double(expf(l[j] - m));
  s = block_reduce(s, 0.0, SumOp{}, dbuf);
  if (threadIdx.x == 0) {
    maxes[blockIdx.x] = m;
    sums[blockIdx.x] = s;
  }
}

__global__ void window_combine_kernel(float* __restrict__ out, const float* __restrict__ logits,
                                      const float* __restrict__ maxes, const double* __restrict__ sums, int window,
                                      int n) {
  const int j = blockIdx.x * kCombineThreads + threadIdx.x;
  if (j >= n) return;
  float acc = 0.0f;
  for (int w = 0; w < window; ++w)
    acc += static_cast<float>(double(expf(logits[size_t(w) * n + j] - maxes[w])) / sums[w] / window);
  out[j] = acc;
}

}  // namespace

void window_attention(float* out, const float* queries, int window, int group, const bf16* keys, int n, int head_dim) {
  if (n <= 0) return;
  if (window <= 0) {
    check(cudaMemsetAsync(out, 0, size_t(n) * sizeof(float), 0), "window_attention zero fill");
    return;
  }
  const int d = head_dim;
  const size_t tile = size_t(kTile) * (d + 1) * sizeof(float);
  const size_t per_window = size_t(std::max(group, 0)) * d * sizeof(float);
  const size_t room = tile < kSmemTarget && per_window > 0 ? (kSmemTarget - tile) / per_window : size_t(window);
  const int w_chunk = static_cast<int>(std::clamp<size_t>(room, 1, size_t(window)));
  const size_t smem = tile + size_t(w_chunk) * per_window;

  const size_t logits_bytes = align_up(size_t(window) * n * sizeof(float), 16);
  const size_t maxes_bytes = align_up(size_t(window) * sizeof(float), 16);
  StreamScratch scratch(logits_bytes + maxes_bytes + size_t(window) * sizeof(double), "window_attention scratch");
  float* logits = scratch.at<float>(0);
  float* maxes = scratch.at<float>(logits_bytes);
  double* sums = scratch.at<double>(logits_bytes + maxes_bytes);

  allow_dynamic_smem(window_logits_kernel, smem, "window_attention shared memory");
  const float scale = static_cast<float>(1.0 / std::sqrt(double(d)));
  window_logits_kernel<<<(n + kTile - 1) / kTile, kThreads, smem>>>(logits, queries, window, group, keys, n, d, scale,
                                                                      w_chunk);
  check(cudaGetLastError(), "window_attention logits launch");
  window_stats_kernel<<<window, kStatsThreads>>>(maxes, sums, logits, n);
  check(cudaGetLastError(), "window_attention softmax launch");
  window_combine_kernel<<<(n + kCombineThreads - 1) / kCombineThreads, kCombineThreads>>>(out, logits, maxes, sums,
                                                                                          window, n);
  check(cudaGetLastError(), "window_attention combine launch");
}

}  // namespace kvb::cuda
