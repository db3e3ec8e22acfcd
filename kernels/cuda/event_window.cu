// SnapKV's and R-KV's scoring of a compression event (event_window_scores, kernels/compression_ops.hpp
// WindowEventScoring): each group is one (layer, sequence, KV head) seen oldest first (slot
// order[i] for view index i); its n = length slots split into the n - W older ones, which are
// scored, and the window's W own tokens, which are pinned. Kernels, all groups at once:
//  1. logits: one block of 128 threads per (tile of 32 older keys, group): the tile is read once
//     (bf16 rows through the order) into shared memory as fp32 (odd row stride), the window's
//     queries follow in chunks of whole window queries (all G heads of each), oldest first (ring
//     slot (processed - W + w) % ring); warp w takes window queries w, w+4, ..., lane l key l: the
//     max over the G heads of fixed-order fp32 dot products, times 1/sqrt(head_dim).
//  2. stats: one block of 1024 threads per (window query, group): max over the older keys, then the
//     sum of exp(logit - max) in double, fixed-order block reductions.
//  3. attention: one thread per key: sum over w, in order, of exp(l - max_w) / sum_w / W; then
//     the max pool over 2 * radius + 1 neighbours (one thread per key).
//  4. R-KV: the redundancy of all n keys (below), redundancy_groups groups at a time, and the mix
//     rkv_mix(lambda, pooled, redundancy) (kernels/compression_math.hpp) into the scores.
// Redundancy (cpu::key_redundancy), O(n^2 d) per group: inv_norm (one warp per key), the latest
// similar key per row and the column sums over 64 x 64 similarity tiles split `redundancy_splits(n)`
// ways (a function of n only, so the sums' order does not depend on the batch), and a softmax over
// the column means in double (one block per group). sim(i, j) = (dot * inv[i]) * inv[j], the dot
// the fp32 FMA chain over the lanes in order, in both tile kernels.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "kernels/compression_math.hpp"
#include "kernels/cuda/compression_common.cuh"

namespace kvb::cuda {

namespace {

using namespace compression_detail;

constexpr int kTile = 32;
constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kStatsThreads = 1024;
constexpr int kPointThreads = 256;
constexpr size_t kSmemTarget = 40 * 1024;

struct WindowArgs {
  int window, radius;
  float scale;  // 1 / sqrt(head_dim)
  float* work;  // [group][window + 2][row]: logits, attention, pooled
  double* stats;  // [group][window][2]: max, sum
};

__device__ __forceinline__ float* logits_row(const DeviceEvent& e, const WindowArgs& a, int g, int w) {
  return a.work + (size_t(g) * (a.window + 2) + w) * e.row;
}

// Key row of view index i of group g (oldest first), in the cache.
__device__ __forceinline__ const bf16* key_row(const DeviceEvent& e, const KvStorage<bf16>& c, int g, int i) {
  const DeviceSegment& seg = e.segments[e.groups[g].seg_begin];
  return c.keys + (first_slot(seg, c.geometry.capacity) + e.order[size_t(g) * e.row + i]) * c.geometry.head_dim;
}

__global__ void __launch_bounds__(kThreads)
    window_logits_kernel(DeviceEvent e, KvStorage<bf16> c, WindowArgs a, int w_chunk) {
  extern __shared__ float win_smem[];
  const int g = blockIdx.y;
  const DeviceGroup grp = e.groups[g];
  const int older = grp.length - a.window, j0 = blockIdx.x * kTile;
  if (j0 >= older) return;
  const KvGeometry& geo = c.geometry;
  const int d = geo.head_dim, G = geo.group, stride = d + 1;
  float* ks = win_smem;             // [kTile][d + 1]
  float* qs = ks + kTile * stride;  // [w_chunk * G][d]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int tk = min(kTile, older - j0);
  for (int idx = tid; idx < tk * d; idx += kThreads) ks[(idx / d) * stride + idx % d] = bf16_to_f32(key_row(e, c, g, j0 + idx / d)[idx % d]);

  const DeviceSegment seg = e.segments[grp.seg_begin];
  const float* ring = c.window_queries + ((size_t(seg.seq) * geo.n_layers + seg.layer) * geo.n_kv_heads + seg.kv_head) *
                                             geo.window * G * d;
  const float* k = ks + lane * stride;
  const size_t row_floats = size_t(G) * d;  // one window query: its G heads
  for (int c0 = 0; c0 < a.window; c0 += w_chunk) {
    const int cn = min(w_chunk, a.window - c0);
    __syncthreads();  // the tile is loaded / the previous chunk has been consumed
    for (size_t idx = tid; idx < size_t(cn) * row_floats; idx += kThreads) {
      const int w = c0 + int(idx / row_floats);
      const int slot = (grp.processed - a.window + w) % geo.window;  // oldest first
      qs[idx] = ring[size_t(slot) * row_floats + idx % row_floats];
    }
    __syncthreads();
    if (lane < tk)
      for (int w = warp; w < cn; w += kWarps) {
        float m = -INFINITY;
        for (int h = 0; h < G; ++h) m = fmaxf(m, dot_f32(qs + (size_t(w) * G + h) * d, k, d));
        logits_row(e, a, g, c0 + w)[j0 + lane] = m * a.scale;
      }
  }
}

__global__ void __launch_bounds__(kStatsThreads) window_stats_kernel(DeviceEvent e, WindowArgs a) {
  __shared__ float fbuf[32];
  __shared__ double dbuf[32];
  const int g = blockIdx.y, w = blockIdx.x;
  const int older = e.groups[g].length - a.window;
  if (older <= 0) return;
  const float* l = logits_row(e, a, g, w);
  float m = -INFINITY;
  for (int j = threadIdx.x; j < older; j += kStatsThreads) m = fmaxf(m, l[j]);
  m = block_reduce(m, -INFINITY, MaxOp{}, fbuf);
  double s = 0.0;
  for (int j = threadIdx.x; j < older; j += kStatsThreads) s += double(expf(l[j] - m));
  s = block_reduce(s, 0.0, SumOp{}, dbuf);
  if (threadIdx.x == 0) {
    a.stats[(size_t(g) * a.window + w) * 2] = m;
    a.stats[(size_t(g) * a.window + w) * 2 + 1] = s;
  }
}

__global__ void window_attention_kernel(DeviceEvent e, WindowArgs a) {
  const int g = blockIdx.y, j = blockIdx.x * kPointThreads + threadIdx.x;
  if (j >= e.groups[g].length - a.window) return;
  float acc = 0.0f;
  for (int w = 0; w < a.window; ++w) {
    const double* st = a.stats + (size_t(g) * a.window + w) * 2;
    acc += static_cast<float>(double(expf(logits_row(e, a, g, w)[j] - float(st[0]))) / st[1] / a.window);
  }
  logits_row(e, a, g, a.window)[j] = acc;
}

// Pooled attention into the last work row, and into the scores when there is no redundancy.
__global__ void window_pool_kernel(DeviceEvent e, WindowArgs a, bool to_scores) {
  const int g = blockIdx.y, j = blockIdx.x * kPointThreads + threadIdx.x;
  const int older = e.groups[g].length - a.window;
  if (j >= older) return;
  const float* in = logits_row(e, a, g, a.window);
  const int lo = max(0, j - a.radius), hi = min(older - 1, j + a.radius);
  float m = in[lo];
  for (int i = lo + 1; i <= hi; ++i) m = fmaxf(m, in[i]);
  logits_row(e, a, g, a.window + 1)[j] = m;
  if (to_scores) e.scores[size_t(g) * e.row + j] = m;
}

// --- Redundancy ---------------------------------------------------------------------------------

constexpr int kT = 64;         // tile side (keys)
constexpr int kK = 32;         // lanes per shared slice
constexpr int kRThreads = 256; // 16 x 16
constexpr int kNormWarps = 8;
constexpr int kSoftmaxThreads = 1024;

__device__ __forceinline__ int splits_of(int n) {
  const int tiles = max(1, (n + kT - 1) / kT);
  return min(max((256 + tiles - 1) / tiles, 1), tiles);
}

struct RedundancyArgs {
  int first_group;  // the groups [first_group, first_group + gridDim.z) of this chunk
  float threshold;
  double* columns;  // [chunk group][partial_slots]
  int32_t* latest;
  float* norms;     // [chunk group][row]
  size_t partial_slots;
};

struct Panels {
  float a[kT][kK + 1];  // rows i0 ..
  float b[kT][kK + 1];  // columns j0 ..
};

// acc[a][b] = dot(key i0 + ty + 16a, key j0 + tx + 16b) (0 where outside n), keys oldest first.
__device__ void dot_tile(float (&acc)[4][4], const DeviceEvent& e, const KvStorage<bf16>& c, int g, int n, int i0,
                         int j0, Panels& p) {
  const int d = c.geometry.head_dim;
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
#pragma unroll
  for (int x = 0; x < 4; ++x)
#pragma unroll
    for (int y = 0; y < 4; ++y) acc[x][y] = 0.0f;
  for (int k0 = 0; k0 < d; k0 += kK) {
    const int kn = min(kK, d - k0);
    __syncthreads();  // the previous slice (or tile) has been consumed
    for (int q = tid; q < kT * kK; q += kRThreads) {
      const int r = q / kK, col = q % kK;
      const bool lane_in = col < kn;
      p.a[r][col] = lane_in && i0 + r < n ? bf16_to_f32(key_row(e, c, g, i0 + r)[k0 + col]) : 0.0f;
      p.b[r][col] = lane_in && j0 + r < n ? bf16_to_f32(key_row(e, c, g, j0 + r)[k0 + col]) : 0.0f;
    }
    __syncthreads();
    for (int kk = 0; kk < kn; ++kk) {
      float av[4], bv[4];
#pragma unroll
      for (int x = 0; x < 4; ++x) av[x] = p.a[ty + 16 * x][kk];
#pragma unroll
      for (int y = 0; y < 4; ++y) bv[y] = p.b[tx + 16 * y][kk];
#pragma unroll
      for (int x = 0; x < 4; ++x)
#pragma unroll
        for (int y = 0; y < 4; ++y) acc[x][y] = fmaf(av[x], bv[y], acc[x][y]);
    }
  }
}

__global__ void inv_norm_kernel(DeviceEvent e, KvStorage<bf16> c, RedundancyArgs r) {
  const int gl = blockIdx.y, g = r.first_group + gl;
  const int n = e.groups[g].length, d = c.geometry.head_dim;
  const int lane = threadIdx.x & 31, i = blockIdx.x * kNormWarps + (threadIdx.x >> 5);
  if (i >= n) return;  // the whole warp
  const bf16* k = key_row(e, c, g, i);
  float ss = 0.0f;
  for (int col = lane; col < d; col += 32) {
    const float v = bf16_to_f32(k[col]);
    ss = fmaf(v, v, ss);
  }
  ss = warp_reduce(ss, SumOp{});
  if (lane == 0) r.norms[size_t(gl) * e.row + i] = static_cast<float>(1.0 / (sqrt(double(ss)) + 1e-8));
}

__device__ __forceinline__ int split_begin(int s, int tiles, int splits) {
  return static_cast<int>((long long)s * tiles / splits);
}

// latest[s][i] = largest j in split s's column tiles with j != i and sim(i, j) > threshold, or -1.
__global__ void __launch_bounds__(kRThreads) latest_similar_kernel(DeviceEvent e, KvStorage<bf16> c, RedundancyArgs r) {
  __shared__ Panels p;
  const int gl = blockIdx.z, g = r.first_group + gl;
  const int n = e.groups[g].length, tiles = (n + kT - 1) / kT, splits = splits_of(n);
  const int s = blockIdx.y, i0 = blockIdx.x * kT;
  if (s >= splits || i0 >= n) return;
  const float* inv = r.norms + size_t(gl) * e.row;
  int32_t* latest = r.latest + size_t(gl) * r.partial_slots;
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  int best[4];
  float inv_i[4];
#pragma unroll
  for (int x = 0; x < 4; ++x) {
    const int i = i0 + ty + 16 * x;
    best[x] = -1;
    inv_i[x] = i < n ? inv[i] : 0.0f;
  }
  const int t_end = split_begin(s + 1, tiles, splits);
  for (int t = split_begin(s, tiles, splits); t < t_end; ++t) {
    const int j0 = t * kT;
    float acc[4][4];
    dot_tile(acc, e, c, g, n, i0, j0, p);
#pragma unroll
    for (int y = 0; y < 4; ++y) {
      const int j = j0 + tx + 16 * y;
      if (j >= n) continue;
      const float inv_j = inv[j];
#pragma unroll
      for (int x = 0; x < 4; ++x) {
        const int i = i0 + ty + 16 * x;
        if (i < n && i != j && acc[x][y] * inv_i[x] * inv_j > r.threshold) best[x] = max(best[x], j);
      }
    }
  }
  // The 16 threads of one ty are one half of a warp: reduce over tx with xor offsets < 16.
#pragma unroll
  for (int x = 0; x < 4; ++x) {
    int v = best[x];
    for (int off = 8; off > 0; off >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, off));
    const int i = i0 + ty + 16 * x;
    if (tx == 0 && i < n) latest[size_t(s) * n + i] = v;
  }
}

// columns[s][j] = sum over the rows i of split s (ascending per thread) of sim(i, j), without
// i == j and j == latest(i) (0 when row i has no similar key: R-KV's default index).
__global__ void __launch_bounds__(kRThreads) column_sum_kernel(DeviceEvent e, KvStorage<bf16> c, RedundancyArgs r) {
  __shared__ Panels p;
  __shared__ double part[16][kT];
  const int gl = blockIdx.z, g = r.first_group + gl;
  const int n = e.groups[g].length, tiles = (n + kT - 1) / kT, splits = splits_of(n);
  const int s = blockIdx.y, j0 = blockIdx.x * kT;
  if (s >= splits || j0 >= n) return;
  const float* inv = r.norms + size_t(gl) * e.row;
  const int32_t* latest = r.latest + size_t(gl) * r.partial_slots;
  double* columns = r.columns + size_t(gl) * r.partial_slots;
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  double sum[4] = {0.0, 0.0, 0.0, 0.0};
  float inv_j[4];
#pragma unroll
  for (int y = 0; y < 4; ++y) {
    const int j = j0 + tx + 16 * y;
    inv_j[y] = j < n ? inv[j] : 0.0f;
  }
  const int t_end = split_begin(s + 1, tiles, splits);
  for (int t = split_begin(s, tiles, splits); t < t_end; ++t) {
    const int i0 = t * kT;
    float acc[4][4];
    dot_tile(acc, e, c, g, n, i0, j0, p);
#pragma unroll
    for (int x = 0; x < 4; ++x) {
      const int i = i0 + ty + 16 * x;
      if (i >= n) continue;
      const float inv_i = inv[i];
      int last = 0;
      for (int q = 0; q < splits; ++q) last = max(last, latest[size_t(q) * n + i]);
#pragma unroll
      for (int y = 0; y < 4; ++y) {
        const int j = j0 + tx + 16 * y;
        if (j < n && j != i && j != last) sum[y] += double(acc[x][y] * inv_i * inv_j[y]);
      }
    }
  }
#pragma unroll
  for (int y = 0; y < 4; ++y) part[ty][tx + 16 * y] = sum[y];
  __syncthreads();
  if (tid < kT && j0 + tid < n) {
    double col = 0.0;
    for (int y = 0; y < 16; ++y) col += part[y][tid];
    columns[size_t(s) * n + j0 + tid] = col;
  }
}

// Softmax of the column means (one block per group), mixed with the pooled attention into the
// scores of the older slots.
__global__ void __launch_bounds__(kSoftmaxThreads)
    redundancy_mix_kernel(DeviceEvent e, RedundancyArgs r, WindowArgs a, float lambda) {
  __shared__ double buf[32];
  const int gl = blockIdx.x, g = r.first_group + gl;
  const int n = e.groups[g].length, splits = splits_of(n);
  double* columns = r.columns + size_t(gl) * r.partial_slots;
  double m = -HUGE_VAL;
  for (int j = threadIdx.x; j < n; j += kSoftmaxThreads) {
    double col = 0.0;
    for (int s = 0; s < splits; ++s) col += columns[size_t(s) * n + j];
    col /= n;
    columns[j] = col;  // split 0's row now holds the column mean (only this thread touches j)
    m = fmax(m, col);
  }
  m = block_reduce(m, -HUGE_VAL, MaxOp{}, buf);
  double z = 0.0;
  for (int j = threadIdx.x; j < n; j += kSoftmaxThreads) z += exp(columns[j] - m);
  z = block_reduce(z, 0.0, SumOp{}, buf);
  const float* pooled = logits_row(e, a, g, a.window + 1);
  for (int j = threadIdx.x; j < n - a.window; j += kSoftmaxThreads)
    e.scores[size_t(g) * e.row + j] = rkv_mix(lambda, pooled[j], static_cast<float>(exp(columns[j] - m) / z));
}

}  // namespace

void event_window_scores(const DeviceEvent& e, const KvStorage<bf16>& c, int window, int pool_radius, bool redundancy,
                         float lambda, float threshold, float* work, const CompressionScratch& scratch) {
  if (e.n_groups == 0 || e.max_length <= window) return;
  if (window <= 0 || window > c.geometry.window || !e.order)
    fail_argument("window scores", "needs the cache's query window and the positions view");
  const int d = c.geometry.head_dim, G = c.geometry.group;
  WindowArgs a{window, std::clamp(pool_radius, 0, e.max_length), static_cast<float>(1.0 / std::sqrt(double(d))), work,
               scratch.moments};
  const size_t tile = size_t(kTile) * (d + 1) * sizeof(float);
  const size_t per_window = size_t(G) * d * sizeof(float);
  const size_t room = tile < kSmemTarget ? (kSmemTarget - tile) / per_window : size_t(window);
  const int w_chunk = static_cast<int>(std::clamp<size_t>(room, 1, size_t(window)));
  const size_t smem = tile + size_t(w_chunk) * per_window;
  allow_dynamic_smem(window_logits_kernel, smem);
  const int older = e.max_length - window;
  window_logits_kernel<<<dim3(blocks_for(older, kTile), e.n_groups), kThreads, smem>>>(e, c, a, w_chunk);
  KVB_CUDA_LAUNCH_CHECK();
  window_stats_kernel<<<dim3(window, e.n_groups), kStatsThreads>>>(e, a);
  KVB_CUDA_LAUNCH_CHECK();
  const dim3 points(blocks_for(older, kPointThreads), e.n_groups);
  window_attention_kernel<<<points, kPointThreads>>>(e, a);
  KVB_CUDA_LAUNCH_CHECK();
  window_pool_kernel<<<points, kPointThreads>>>(e, a, !redundancy);
  KVB_CUDA_LAUNCH_CHECK();
  if (!redundancy) return;
  const int n = e.max_length, tiles = blocks_for(n, kT);
  int most_splits = 1;  // over every group length up to n (shorter groups split more ways)
  for (int t = 1; t <= tiles; ++t) most_splits = std::max(most_splits, std::min((256 + t - 1) / t, t));
  RedundancyArgs r{0, threshold, scratch.redundancy_columns, scratch.redundancy_latest, scratch.redundancy_norms,
                   redundancy_partial_slots(e.row)};
  for (int first = 0; first < e.n_groups; first += scratch.redundancy_groups) {
    const int count = std::min(scratch.redundancy_groups, e.n_groups - first);
    r.first_group = first;
    inv_norm_kernel<<<dim3(blocks_for(n, kNormWarps), count), kNormWarps * 32>>>(e, c, r);
    KVB_CUDA_LAUNCH_CHECK();
    const dim3 tiles_grid(tiles, most_splits, count);
    latest_similar_kernel<<<tiles_grid, kRThreads>>>(e, c, r);
    KVB_CUDA_LAUNCH_CHECK();
    column_sum_kernel<<<tiles_grid, kRThreads>>>(e, c, r);
    KVB_CUDA_LAUNCH_CHECK();
    redundancy_mix_kernel<<<count, kSoftmaxThreads>>>(e, r, a, lambda);
    KVB_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace kvb::cuda
