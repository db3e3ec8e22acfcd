// TriAttention's key scores (cpu::tri_scores) on bf16 keys.
//
// One block of 128 threads (4 warps) per tile of 32 keys. The tile is read once from global
// memory (contiguous bf16, coalesced), widened to fp32 into shared memory with an odd row stride
// (head_dim + 1) so that lane l reading row l hits a distinct bank. The effective queries u go to
// shared memory in chunks of whole rows (all of them when they fit in ~40 KiB with the tile);
// within a chunk warp w takes queries w, w+4, ..., lane l takes key l, and every (query, key) dot
// product is a fixed-order fp32 FMA chain (lanes read the same u element: a broadcast). The max
// over the queries is taken per warp, then over the 4 warps (max is exact and order-free); warp 0
// adds the norm term sum_f e[f] * |pair_f(k)| from the same shared tile. Deterministic.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "kernels/cuda/compression_common.cuh"
#include "kernels/cuda/compression_cuda.hpp"

namespace kvb::cuda {

namespace {

using namespace compression_detail;

constexpr int kTile = 32;  // keys per block (one per lane)
constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr size_t kSmemTarget = 40 * 1024;  // tile + one chunk of u, below the 48 KiB default

__global__ void __launch_bounds__(kThreads)
    tri_scores_kernel(float* __restrict__ out, const bf16* __restrict__ keys, int n, int d, bool interleaved,
                      const float* __restrict__ u, int n_u, const float* __restrict__ e, int u_chunk) {
  extern __shared__ float tri_smem[];
  __shared__ float warp_best[kWarps][kTile];
  const int stride = d + 1;  // odd (d is even): conflict-free row-per-lane reads
  const int pairs = d / 2;
  float* ks = tri_smem;                // [kTile][d + 1]
  float* es = ks + kTile * stride;     // [pairs]
  float* us = es + pairs;              // [u_chunk][d]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int j0 = blockIdx.x * kTile;
  const int tk = min(kTile, n - j0);

  const bf16* src = keys + size_t(j0) * d;  // the tile's rows are contiguous
  for (int idx = tid; idx < tk * d; idx += kThreads) ks[(idx / d) * stride + idx % d] = bf16_to_f32(src[idx]);
  for (int f = tid; f < pairs; f += kThreads) es[f] = e[f];
  __syncthreads();

  const float* k = ks + lane * stride;
  float best = -INFINITY;
  for (int c0 = 0; c0 < n_u; c0 += u_chunk) {  // uniform trip count: the barriers are safe
    const int cn = min(u_chunk, n_u - c0);
    if (c0 > 0) __syncthreads();  // the previous chunk has been consumed
    for (int idx = tid; idx < cn * d; idx += kThreads) us[idx] = u[size_t(c0) * d + idx];
    __syncthreads();
    if (lane < tk)
      for (int q = warp; q < cn; q += kWarps) best = fmaxf(best, dot_f32(us + q * d, k, d));
  }
  warp_best[warp][lane] = best;
  __syncthreads();

  if (warp == 0 && lane < tk) {
    float b = 0.0f;  // no queries: the score is the norm term alone
    if (n_u > 0) {
      b = warp_best[0][lane];
      for (int w = 1; w < kWarps; ++w) b = fmaxf(b, warp_best[w][lane]);
    }
    float norm = 0.0f;
    for (int f = 0; f < pairs; ++f) {
      const float re = interleaved ? k[2 * f] : k[f];
      const float im = interleaved ? k[2 * f + 1] : k[f + pairs];
      norm = fmaf(es[f], sqrtf(fmaf(re, re, im * im)), norm);
    }
    out[j0 + lane] = b + norm;
  }
}

}  // namespace

void tri_scores(float* out, const bf16* keys, int n, int head_dim, bool interleaved, const float* u, int n_u,
                const float* e) {
  if (n <= 0) return;
  if (n_u < 0) n_u = 0;
  const int d = head_dim;
  const size_t fixed = (size_t(kTile) * (d + 1) + d / 2) * sizeof(float);
  int u_chunk = 0;
  if (n_u > 0) {
    const size_t row = size_t(d) * sizeof(float);
    const size_t room = fixed < kSmemTarget ? (kSmemTarget - fixed) / row : 0;
    u_chunk = static_cast<int>(std::clamp<size_t>(room, 1, size_t(n_u)));
  }
  const size_t smem = fixed + size_t(u_chunk) * d * sizeof(float);
  allow_dynamic_smem(tri_scores_kernel, smem, "tri_scores shared memory");
  tri_scores_kernel<<<(n + kTile - 1) / kTile, kThreads, smem>>>(out, keys, n, d, interleaved, u, n_u, e, u_chunk);
  check(cudaGetLastError(), "tri_scores launch");
}

}  // namespace kvb::cuda
