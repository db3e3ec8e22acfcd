// append_kv (ops_cuda.hpp): two kernels, both one block of kThreads per batch token.
//
//  1. write: token i's slot in every KV head h of its sequence s is lengths[s][h] + rank(i), where
//     rank(i) = how many earlier tokens of the batch belong to s (a block-wide count over seq[0..i)),
//     so tokens of one sequence land in consecutive slots in batch order, deterministically. The
//     block rounds k and v to bf16 (round to nearest even, bit for bit kvb::bf16_from_float) and
//     writes them, and pos[i] into positions. lengths is only read.
//  2. lengths: the last token of each sequence in the batch (no later token of s: a block-wide
//     test over seq(i..n)) sets lengths[s][h] += rank + 1 for every h; no other block touches them.
// Writes that would fall at or beyond `capacity` (the caller guarantees they do not) are dropped
// and the length stops at capacity, so a broken caller cannot corrupt neighbouring heads.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/ops_cuda.hpp"

namespace kvb::cuda {

namespace {

constexpr int kThreads = 128;

// Same arithmetic as kvb::bf16_from_float (bf16.hpp), NaN included.
__device__ __forceinline__ uint16_t to_bf16_rne(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// Number of j in [lo, hi) with seq[j] == s, returned to every thread of the block.
__device__ int block_count_equal(const int32_t* __restrict__ seq, int lo, int hi, int32_t s) {
  __shared__ int warp_counts[kThreads / 32];
  int c = 0;
  for (int j = lo + threadIdx.x; j < hi; j += kThreads) c += seq[j] == s;
  for (int off = 16; off > 0; off >>= 1) c += __shfl_xor_sync(0xffffffffu, c, off);
  if (threadIdx.x % 32 == 0) warp_counts[threadIdx.x / 32] = c;
  __syncthreads();
  int total = 0;
#pragma unroll
  for (int w = 0; w < kThreads / 32; ++w) total += warp_counts[w];
  __syncthreads();  // warp_counts may be reused by a later call
  return total;
}

__global__ void __launch_bounds__(kThreads)
    append_kv_write_kernel(bf16* __restrict__ keys, bf16* __restrict__ values, int32_t* __restrict__ positions,
                           const int32_t* __restrict__ lengths, const float* __restrict__ k,
                           const float* __restrict__ v, const int32_t* __restrict__ seq,
                           const int32_t* __restrict__ pos, int n_kv_heads, int head_dim, int capacity) {
  const int i = blockIdx.x;
  const int32_t s = seq[i];
  const int rank = block_count_equal(seq, 0, i, s);
  const int row = n_kv_heads * head_dim;
  const float* ki = k + static_cast<size_t>(i) * row;
  const float* vi = v + static_cast<size_t>(i) * row;
  for (int e = threadIdx.x; e < row; e += kThreads) {
    const int h = e / head_dim, c = e - h * head_dim;
    const size_t head = static_cast<size_t>(s) * n_kv_heads + h;
    const int slot = lengths[head] + rank;
    if (slot >= capacity) continue;
    const size_t at = (head * capacity + slot) * head_dim + c;
    keys[at] = to_bf16_rne(ki[e]);
    values[at] = to_bf16_rne(vi[e]);
  }
  for (int h = threadIdx.x; h < n_kv_heads; h += kThreads) {
    const size_t head = static_cast<size_t>(s) * n_kv_heads + h;
    const int slot = lengths[head] + rank;
    if (slot < capacity) positions[head * capacity + slot] = pos[i];
  }
}

__global__ void __launch_bounds__(kThreads)
    append_kv_lengths_kernel(int32_t* __restrict__ lengths, const int32_t* __restrict__ seq, int n, int n_kv_heads,
                             int capacity) {
  const int i = blockIdx.x;
  const int32_t s = seq[i];
  if (block_count_equal(seq, i + 1, n, s) != 0) return;  // not the sequence's last token
  const int added = block_count_equal(seq, 0, i, s) + 1;
  for (int h = threadIdx.x; h < n_kv_heads; h += kThreads) {
    int32_t& len = lengths[static_cast<size_t>(s) * n_kv_heads + h];
    len = min(len + added, capacity);
  }
}

}  // namespace

void append_kv(bf16* keys, bf16* values, int32_t* positions, int32_t* lengths, const float* k, const float* v,
               const int32_t* seq, const int32_t* pos, int n, int n_kv_heads, int head_dim, int capacity) {
  if (n <= 0 || n_kv_heads <= 0 || head_dim <= 0) return;
  append_kv_write_kernel<<<n, kThreads>>>(keys, values, positions, lengths, k, v, seq, pos, n_kv_heads, head_dim,
                                          capacity);
  KVB_CUDA_LAUNCH_CHECK();
  append_kv_lengths_kernel<<<n, kThreads>>>(lengths, seq, n, n_kv_heads, capacity);
  KVB_CUDA_LAUNCH_CHECK();
}

}  // namespace kvb::cuda
