// R-KV's key redundancy (cpu::key_redundancy) on bf16 keys: O(n^2 d), deterministic.
//
// Kernels, over a stream-ordered scratch:
//  1. inv_norm: one warp per key, inv[i] = 1 / (|k_i| + 1e-8) (sum of squares in fp32 with a
//     fixed butterfly, the root and reciprocal in double like the CPU).
//  2. latest: the similarity matrix in 64 x 64 tiles; block (row tile, split s) scans the column
//     tiles of its split and keeps, per row i, the largest j != i with sim(i, j) > threshold;
//     partial[s][i] (-1 when none).
//  3. column sums: block (column tile, split s) sums sim(i, j) over the rows i of its split,
//     skipping i == j and j == latest(i) = max(0, max_s partial[s][i]) (a row without a similar
//     key skips column 0, R-KV's default index, as the CPU does); each thread sums its rows in
//     ascending order in double, the 16 thread partials of a column are added in a fixed order.
//  4. softmax: one block of 1024 threads adds the splits of each column in order, divides by n,
//     and takes a softmax over the columns in double (fixed-order block reductions).
// The splits (a function of n only, never of the device) give the grid enough blocks to fill an
// H100 at n ~ 4K. Both tile kernels compute sim(i, j) = (dot * inv[i]) * inv[j], the dot being
// the fp32 FMA chain over lanes 0..d-1 in order, so the two agree bit for bit.
//
// Tiles: 256 threads as 16 x 16, thread (tx, ty) owns rows ty + 16a and columns tx + 16b (a, b <
// 4): per 32-lane slice the two 64 x 32 fp32 panels sit in shared memory with stride 33 (rows: a
// two-address broadcast per warp; columns: 16 distinct banks), 16 FMAs per 8 shared loads.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "kernels/cuda/compression_common.cuh"
#include "kernels/cuda/compression_cuda.hpp"

namespace kvb::cuda {

namespace {

using namespace compression_detail;

constexpr int kT = 64;        // tile side (keys)
constexpr int kK = 32;        // lanes per shared slice
constexpr int kThreads = 256; // 16 x 16
constexpr int kTargetBlocks = 256;
constexpr int kNormWarps = 8;
constexpr int kSoftmaxThreads = 1024;

struct Panels {
  float a[kT][kK + 1];  // rows i0 ..
  float b[kT][kK + 1];  // columns j0 ..
};

// acc[a][b] = dot(key i0 + ty + 16a, key j0 + tx + 16b) (0 where outside n). Synchronises.
__device__ void dot_tile(float (&acc)[4][4], const bf16* __restrict__ keys, int n, int d, int i0, int j0, Panels& p) {
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
#pragma unroll
  for (int a = 0; a < 4; ++a)
#pragma unroll
    for (int b = 0; b < 4; ++b) acc[a][b] = 0.0f;
  for (int k0 = 0; k0 < d; k0 += kK) {
    const int kn = min(kK, d - k0);
    __syncthreads();  // the previous slice (or tile) has been consumed
    for (int e = tid; e < kT * kK; e += kThreads) {
      const int r = e / kK, c = e % kK;
      const bool lane_in = c < kn;
      p.a[r][c] = lane_in && i0 + r < n ? bf16_to_f32(keys[size_t(i0 + r) * d + k0 + c]) : 0.0f;
      p.b[r][c] = lane_in && j0 + r < n ? bf16_to_f32(keys[size_t(j0 + r) * d + k0 + c]) : 0.0f;
    }
    __syncthreads();
    for (int kk = 0; kk < kn; ++kk) {
      float av[4], bv[4];
#pragma unroll
      for (int a = 0; a < 4; ++a) av[a] = p.a[ty + 16 * a][kk];
#pragma unroll
      for (int b = 0; b < 4; ++b) bv[b] = p.b[tx + 16 * b][kk];
#pragma unroll
      for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b) acc[a][b] = fmaf(av[a], bv[b], acc[a][b]);
    }
  }
}

__global__ void inv_norm_kernel(float* __restrict__ inv, const bf16* __restrict__ keys, int n, int d) {
  const int lane = threadIdx.x & 31, row = blockIdx.x * kNormWarps + (threadIdx.x >> 5);
  if (row >= n) return;  // the whole warp
  float ss = 0.0f;
  for (int c = lane; c < d; c += 32) {
    const float v = bf16_to_f32(keys[size_t(row) * d + c]);
    ss = fmaf(v, v, ss);
  }
  ss = warp_reduce(ss, SumOp{});
  if (lane == 0) inv[row] = static_cast<float>(1.0 / (sqrt(double(ss)) + 1e-8));
}

// Tiles [0, tiles) split into `splits` contiguous ranges.
__device__ __forceinline__ int split_begin(int s, int tiles, int splits) {
  return static_cast<int>((long long)s * tiles / splits);
}

// partial[s][i] = largest j in split s's column tiles with j != i and sim(i, j) > threshold, or -1.
__global__ void __launch_bounds__(kThreads)
    latest_similar_kernel(int32_t* __restrict__ partial, const bf16* __restrict__ keys, const float* __restrict__ inv,
                          int n, int d, float threshold, int tiles, int splits) {
  __shared__ Panels p;
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int i0 = blockIdx.x * kT, s = blockIdx.y;
  int best[4];
  float inv_i[4];
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    const int i = i0 + ty + 16 * a;
    best[a] = -1;
    inv_i[a] = i < n ? inv[i] : 0.0f;
  }
  const int t_end = split_begin(s + 1, tiles, splits);
  for (int t = split_begin(s, tiles, splits); t < t_end; ++t) {
    const int j0 = t * kT;
    float acc[4][4];
    dot_tile(acc, keys, n, d, i0, j0, p);
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      const int j = j0 + tx + 16 * b;
      if (j >= n) continue;
      const float inv_j = inv[j];
#pragma unroll
      for (int a = 0; a < 4; ++a) {
        const int i = i0 + ty + 16 * a;
        if (i < n && i != j && acc[a][b] * inv_i[a] * inv_j > threshold) best[a] = max(best[a], j);
      }
    }
  }
  // The 16 threads of one ty are one half of a warp: reduce over tx with xor offsets < 16.
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    int v = best[a];
    for (int off = 8; off > 0; off >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, off));
    const int i = i0 + ty + 16 * a;
    if (tx == 0 && i < n) partial[size_t(s) * n + i] = v;
  }
}

// partial_col[s][j] = sum over the rows i of split s (ascending per thread) of sim(i, j), without
// i == j and j == latest(i) (0 when row i has no similar key).
__global__ void __launch_bounds__(kThreads)
    column_sum_kernel(double* __restrict__ partial_col, const bf16* __restrict__ keys, const float* __restrict__ inv,
                      const int32_t* __restrict__ partial_latest, int n, int d, int tiles, int splits) {
  __shared__ Panels p;
  __shared__ double part[16][kT];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int j0 = blockIdx.x * kT, s = blockIdx.y;
  double sum[4] = {0.0, 0.0, 0.0, 0.0};
  float inv_j[4];
#pragma unroll
  for (int b = 0; b < 4; ++b) {
    const int j = j0 + tx + 16 * b;
    inv_j[b] = j < n ? inv[j] : 0.0f;
  }
  const int t_end = split_begin(s + 1, tiles, splits);
  for (int t = split_begin(s, tiles, splits); t < t_end; ++t) {
    const int i0 = t * kT;
    float acc[4][4];
    dot_tile(acc, keys, n, d, i0, j0, p);
#pragma unroll
    for (int a = 0; a < 4; ++a) {
      const int i = i0 + ty + 16 * a;
      if (i >= n) continue;
      const float inv_i = inv[i];
      int latest = 0;  // no similar key: R-KV's default index 0 (the CPU reference's rule)
      for (int q = 0; q < splits; ++q) latest = max(latest, partial_latest[size_t(q) * n + i]);
#pragma unroll
      for (int b = 0; b < 4; ++b) {
        const int j = j0 + tx + 16 * b;
        if (j < n && j != i && j != latest) sum[b] += double(acc[a][b] * inv_i * inv_j[b]);
      }
    }
  }
#pragma unroll
  for (int b = 0; b < 4; ++b) part[ty][tx + 16 * b] = sum[b];
  __syncthreads();
  if (tid < kT && j0 + tid < n) {
    double c = 0.0;
    for (int y = 0; y < 16; ++y) c += part[y][tid];
    partial_col[size_t(s) * n + j0 + tid] = c;
  }
}

__global__ void __launch_bounds__(kSoftmaxThreads)
    redundancy_softmax_kernel(float* __restrict__ out, double* __restrict__ partial_col, int n, int splits) {
  __shared__ double buf[32];
  double m = -HUGE_VAL;
  for (int j = threadIdx.x; j < n; j += kSoftmaxThreads) {
    double c = 0.0;
    for (int s = 0; s < splits; ++s) c += partial_col[size_t(s) * n + j];
    c /= n;
    partial_col[j] = c;  // split 0's row now holds the column mean (only this thread touches j)
    m = fmax(m, c);
  }
  m = block_reduce(m, -HUGE_VAL, MaxOp{}, buf);
  double z = 0.0;
  for (int j = threadIdx.x; j < n; j += kSoftmaxThreads) z += exp(partial_col[j] - m);
  z = block_reduce(z, 0.0, SumOp{}, buf);
  for (int j = threadIdx.x; j < n; j += kSoftmaxThreads) out[j] = static_cast<float>(exp(partial_col[j] - m) / z);
}

}  // namespace

void key_redundancy(float* out, const bf16* keys, int n, int head_dim, float threshold) {
  if (n <= 0) return;
  const int d = head_dim;
  const int tiles = (n + kT - 1) / kT;
  const int splits = std::clamp((kTargetBlocks + tiles - 1) / tiles, 1, tiles);

  const size_t col_bytes = align_up(size_t(splits) * n * sizeof(double), 16);
  const size_t inv_bytes = align_up(size_t(n) * sizeof(float), 16);
  StreamScratch scratch(col_bytes + inv_bytes + size_t(splits) * n * sizeof(int32_t), "key_redundancy scratch");
  double* partial_col = scratch.at<double>(0);
  float* inv = scratch.at<float>(col_bytes);
  int32_t* partial_latest = scratch.at<int32_t>(col_bytes + inv_bytes);

  inv_norm_kernel<<<(n + kNormWarps - 1) / kNormWarps, kNormWarps * 32>>>(inv, keys, n, d);
  check(cudaGetLastError(), "key_redundancy norm launch");
  latest_similar_kernel<<<dim3(tiles, splits), kThreads>>>(partial_latest, keys, inv, n, d, threshold, tiles, splits);
  check(cudaGetLastError(), "key_redundancy latest-similar launch");
  column_sum_kernel<<<dim3(tiles, splits), kThreads>>>(partial_col, keys, inv, partial_latest, n, d, tiles, splits);
  check(cudaGetLastError(), "key_redundancy column-sum launch");
  redundancy_softmax_kernel<<<1, kSoftmaxThreads>>>(out, partial_col, n, splits);
  check(cudaGetLastError(), "key_redundancy softmax launch");
}

}  // namespace kvb::cuda
