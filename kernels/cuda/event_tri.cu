// TriAttention's scoring of a compression event (event_tri_scores, kernels/compression_ops.hpp
// TriEventScoring), for every segment of the groups whose time row is in this pass, in three
// kernels:
//  1. raw: one block of 128 threads (4 warps) per (tile of 32 slots, segment). The tile's keys
//     are read once (coalesced bf16) into shared memory as fp32 with an odd row stride (lane l
//     reading row l hits a distinct bank) and serve all G query heads of the KV head: per head,
//     the effective queries go to shared memory in chunks of whole rows, warp w takes queries w,
//     w+4, ..., lane l key l, every dot product a fixed-order FMA chain; the max over queries per
//     warp, then over the warps; warp 0 adds the norm term sum_f e[f] |pair_f(k)| -> raw[s][h][j].
//  2. moments: one block of 256 threads per (segment, head): mean and population std (clamped at
//     1e-6) of the candidates' raw scores, in double with fixed-order block reductions.
//  3. combine: one thread per (slot, group): for every segment of the group in order, the max
//     over its heads of tie_break(z, hashed_uniform(...)) (kernels/compression_math.hpp), then the
//     group's mean (divided, summed in order) or max; pinned slots stay at -inf.
// Deterministic; the same formulas as the CPU ops up to the fp32 dot products' order.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "kernels/compression_math.hpp"
#include "kernels/cuda/compression_common.cuh"

namespace kvb::cuda {

namespace {

using namespace compression_detail;

constexpr int kTile = 32;  // slots per block (one per lane)
constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr size_t kSmemTarget = 40 * 1024;  // tile + one chunk of u, below the 48 KiB default
constexpr int kMomentThreads = 256;
constexpr int kCombineThreads = 256;

// The group's row of the pass's coefficient table, or -1 when it is scored in another pass.
__device__ __forceinline__ int pass_row(const DeviceGroup& g, const TriDeviceScoring& s) {
  const int r = g.time_row - s.first_row;
  return r >= 0 && r < s.rows ? r : -1;
}

__device__ __forceinline__ int slot_rank(const DeviceEvent& e, int g, int j) {
  return e.rank ? e.rank[size_t(g) * e.row + j] : -1;
}

__global__ void __launch_bounds__(kThreads)
    tri_raw_kernel(DeviceEvent e, KvStorage<bf16> c, TriDeviceScoring s, float* __restrict__ raw, int u_chunk) {
  extern __shared__ float tri_smem[];
  __shared__ float warp_best[kWarps][kTile];
  const DeviceSegment seg = e.segments[blockIdx.y];
  const DeviceGroup grp = e.groups[seg.group];
  const int row = pass_row(grp, s);
  const int j0 = blockIdx.x * kTile;
  if (row < 0 || j0 >= grp.length) return;
  const KvGeometry& geo = c.geometry;
  const int d = geo.head_dim, G = geo.group, stride = d + 1, pairs = d / 2;
  float* ks = tri_smem;             // [kTile][d + 1]
  float* es = ks + kTile * stride;  // [pairs]
  float* us = es + pairs;           // [u_chunk][d]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int tk = min(kTile, grp.length - j0);

  const bf16* src = c.keys + (first_slot(seg, geo.capacity) + j0) * d;  // the tile's rows are contiguous
  for (int idx = tid; idx < tk * d; idx += kThreads) ks[(idx / d) * stride + idx % d] = bf16_to_f32(src[idx]);
  const float* k = ks + lane * stride;
  for (int hi = 0; hi < G; ++hi) {
    const int h = seg.kv_head * G + hi;
    const float* coeff = s.coefficients + ((size_t(row) * geo.n_layers + seg.layer) * s.n_heads + h) * s.stride;
    const float* e_f = coeff + s.stride - pairs;
    __syncthreads();  // the tile is loaded / the previous head is done with es and us
    for (int f = tid; f < pairs; f += kThreads) es[f] = e_f[f];
    float best = -INFINITY;
    for (int c0 = 0; c0 < s.n_u; c0 += u_chunk) {  // uniform trip count: the barriers are safe
      const int cn = min(u_chunk, s.n_u - c0);
      __syncthreads();  // the previous chunk has been consumed
      for (int idx = tid; idx < cn * d; idx += kThreads) us[idx] = coeff[size_t(c0) * d + idx];
      __syncthreads();
      if (lane < tk)
        for (int q = warp; q < cn; q += kWarps) best = fmaxf(best, dot_f32(us + size_t(q) * d, k, d));
    }
    warp_best[warp][lane] = best;
    __syncthreads();
    if (warp == 0 && lane < tk) {
      float b = 0.0f;  // no queries: the score is the norm term alone
      if (s.n_u > 0) {
        b = warp_best[0][lane];
        for (int w = 1; w < kWarps; ++w) b = fmaxf(b, warp_best[w][lane]);
      }
      float norm = 0.0f;
      for (int f = 0; f < pairs; ++f) {
        const float re = s.interleaved ? k[2 * f] : k[f];
        const float im = s.interleaved ? k[2 * f + 1] : k[f + pairs];
        norm = fmaf(es[f], sqrtf(fmaf(re, re, im * im)), norm);
      }
      raw[(size_t(blockIdx.y) * G + hi) * e.row + j0 + lane] = b + norm;
    }
  }
}

__global__ void __launch_bounds__(kMomentThreads)
    tri_moments_kernel(DeviceEvent e, KvStorage<bf16> c, TriDeviceScoring s, const float* __restrict__ raw,
                       double* __restrict__ moments) {
  __shared__ double buf[32];
  const int G = c.geometry.group;
  const int si = blockIdx.x / G, hi = blockIdx.x % G;
  const DeviceSegment seg = e.segments[si];
  const DeviceGroup grp = e.groups[seg.group];
  if (pass_row(grp, s) < 0) return;
  const int32_t* pos = c.positions + first_slot(seg, c.geometry.capacity);
  const float* x = raw + (size_t(si) * G + hi) * e.row;
  double sum = 0.0, count = 0.0;
  for (int j = threadIdx.x; j < grp.length; j += kMomentThreads)
    if (!is_pinned(grp, pos[j], slot_rank(e, seg.group, j))) {
      sum += x[j];
      count += 1.0;
    }
  sum = block_reduce(sum, 0.0, SumOp{}, buf);
  count = block_reduce(count, 0.0, SumOp{}, buf);
  const double mean = count > 0 ? sum / count : 0.0;
  double var = 0.0;
  for (int j = threadIdx.x; j < grp.length; j += kMomentThreads)
    if (!is_pinned(grp, pos[j], slot_rank(e, seg.group, j))) {
      const double dx = x[j] - mean;
      var += dx * dx;
    }
  var = block_reduce(var, 0.0, SumOp{}, buf);
  if (threadIdx.x == 0) {
    moments[(size_t(si) * G + hi) * 2] = mean;
    moments[(size_t(si) * G + hi) * 2 + 1] = fmax(sqrt(count > 0 ? var / count : 0.0), 1e-6);
  }
}

__global__ void tri_combine_kernel(DeviceEvent e, KvStorage<bf16> c, TriDeviceScoring s, const float* __restrict__ raw,
                                   const double* __restrict__ moments) {
  const int g = blockIdx.y, j = blockIdx.x * kCombineThreads + threadIdx.x;
  const DeviceGroup grp = e.groups[g];
  if (pass_row(grp, s) < 0 || j >= grp.length) return;
  const int G = c.geometry.group, cap = c.geometry.capacity;
  if (is_pinned(grp, c.positions[first_slot(e.segments[grp.seg_begin], cap) + j], slot_rank(e, g, j))) return;
  const int n_seg = grp.seg_end - grp.seg_begin;
  float agg = s.mean ? 0.0f : -INFINITY;
  for (int si = grp.seg_begin; si < grp.seg_end; ++si) {
    const DeviceSegment seg = e.segments[si];
    const uint32_t pos = uint32_t(c.positions[first_slot(seg, cap) + j]);
    float best = -INFINITY;
    for (int hi = 0; hi < G; ++hi) {
      const size_t m = (size_t(si) * G + hi) * 2;
      const float z = static_cast<float>((double(raw[(size_t(si) * G + hi) * e.row + j]) - moments[m]) / moments[m + 1]);
      const uint64_t head_key = uint64_t(seg.layer) * s.n_heads + uint64_t(seg.kv_head) * G + hi;
      best = fmaxf(best, tie_break(z, hashed_uniform(s.seed, grp.noise_event, (head_key << 32) | pos)));
    }
    agg = s.mean ? agg + best / n_seg : fmaxf(agg, best);
  }
  e.scores[size_t(g) * e.row + j] = agg;
}

}  // namespace

void event_tri_scores(const DeviceEvent& e, const KvStorage<bf16>& c, const TriDeviceScoring& s, float* raw,
                      double* moments) {
  if (e.n_segments == 0 || e.max_length == 0) return;
  const int d = c.geometry.head_dim;
  const size_t fixed = (size_t(kTile) * (d + 1) + d / 2) * sizeof(float);
  int u_chunk = 1;
  if (s.n_u > 0) {
    const size_t row = size_t(d) * sizeof(float);
    const size_t room = fixed < kSmemTarget ? (kSmemTarget - fixed) / row : 0;
    u_chunk = static_cast<int>(std::clamp<size_t>(room, 1, size_t(s.n_u)));
  }
  const size_t smem = fixed + size_t(u_chunk) * d * sizeof(float);
  allow_dynamic_smem(tri_raw_kernel, smem);
  tri_raw_kernel<<<dim3(blocks_for(e.max_length, kTile), e.n_segments), kThreads, smem>>>(e, c, s, raw, u_chunk);
  KVB_CUDA_LAUNCH_CHECK();
  tri_moments_kernel<<<e.n_segments * c.geometry.group, kMomentThreads>>>(e, c, s, raw, moments);
  KVB_CUDA_LAUNCH_CHECK();
  tri_combine_kernel<<<dim3(blocks_for(e.max_length, kCombineThreads), e.n_groups), kCombineThreads>>>(e, c, s, raw,
                                                                                                       moments);
  KVB_CUDA_LAUNCH_CHECK();
}

}  // namespace kvb::cuda
