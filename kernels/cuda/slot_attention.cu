// slot_attention and mark_held_positions (ops_cuda.hpp): the attention distribution itself, for
// what needs its weights rather than its output -- H2O's attention accumulated per slot and the
// retained attention mass of a replay. One block per (token, query head), 128 threads striding
// over the slots, three passes over the visible slots (max, sum of exponentials, weights), each
// recomputing q.k from the bf16 keys: simple rather than fast, since only H2O and replay's
// reference forward pay for it (K read three more times per layer).
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/compression_common.cuh"
#include "kernels/cuda/ops_cuda.hpp"

namespace kvb::cuda {

namespace {

using namespace compression_detail;

constexpr int kThreads = 128;
constexpr int kMaxHeadDim = 256;

__device__ __forceinline__ float slot_logit(const float* q, const bf16* k, int head_dim, float scale) {
  float s = 0.0f;
  for (int c = 0; c < head_dim; ++c) s = fmaf(q[c], bf16_to_f32(k[c]), s);
  return s * scale;
}

__global__ void __launch_bounds__(kThreads)
    slot_attention_kernel(const float* __restrict__ q, const bf16* __restrict__ keys,
                          const int32_t* __restrict__ positions, const int32_t* __restrict__ lengths,
                          const int32_t* __restrict__ seq, const int32_t* __restrict__ pos, int n_heads, int n_kv_heads,
                          int head_dim, int capacity, float* __restrict__ scores, const uint32_t* __restrict__ held,
                          int held_words, float* __restrict__ mass) {
  __shared__ float qs[kMaxHeadDim];
  __shared__ float buf[32];
  const int i = blockIdx.x / n_heads, h = blockIdx.x % n_heads;
  const size_t head = size_t(seq[i]) * n_kv_heads + h / (n_heads / n_kv_heads);
  const int len = lengths[head], at = pos[i];
  const bf16* k = keys + head * capacity * head_dim;
  const int32_t* slot_pos = positions + head * capacity;
  for (int c = threadIdx.x; c < head_dim; c += kThreads) qs[c] = q[(size_t(i) * n_heads + h) * head_dim + c];
  __syncthreads();
  const float scale = rsqrtf(float(head_dim)), neg_inf = -__int_as_float(0x7f800000);
  float m = neg_inf;
  for (int j = threadIdx.x; j < len; j += kThreads)
    if (slot_pos[j] <= at) m = fmaxf(m, slot_logit(qs, k + size_t(j) * head_dim, head_dim, scale));
  m = block_reduce(m, neg_inf, MaxOp{}, buf);
  if (m == neg_inf) return;  // no visible slot (uniform across the block)
  float sum = 0.0f;
  for (int j = threadIdx.x; j < len; j += kThreads)
    if (slot_pos[j] <= at) sum += expf(slot_logit(qs, k + size_t(j) * head_dim, head_dim, scale) - m);
  sum = block_reduce(sum, 0.0f, SumOp{}, buf);
  float on_held = 0.0f;
  for (int j = threadIdx.x; j < len; j += kThreads) {
    if (slot_pos[j] > at) continue;
    const float w = expf(slot_logit(qs, k + size_t(j) * head_dim, head_dim, scale) - m) / sum;
    if (scores) atomicAdd(&scores[head * capacity + j], w);
    const int p = slot_pos[j];
    if (held && p >= 0 && p < held_words * 32 && (held[head * held_words + (p >> 5)] >> (p & 31) & 1u)) on_held += w;
  }
  if (held) {
    on_held = block_reduce(on_held, 0.0f, SumOp{}, buf);
    if (threadIdx.x == 0) atomicAdd(&mass[seq[i]], on_held);
  }
}

// One block per (sequence, KV head) of the holding cache.
__global__ void mark_held_kernel(uint32_t* __restrict__ held, const int32_t* __restrict__ positions,
                                 const int32_t* __restrict__ lengths, int capacity, int held_words) {
  const size_t head = blockIdx.x;
  const int len = lengths[head];
  for (int j = threadIdx.x; j < len; j += kThreads) {
    const int p = positions[head * capacity + j];
    if (p >= 0 && p < held_words * 32) atomicOr(&held[head * held_words + (p >> 5)], 1u << (p & 31));
  }
}

}  // namespace

void slot_attention(const float* q, const bf16* keys, const int32_t* positions, const int32_t* lengths,
                    const int32_t* seq, const int32_t* pos, int n, int n_heads, int n_kv_heads, int head_dim,
                    int capacity, float* scores, const uint32_t* held, int held_words, float* mass) {
  if (n <= 0 || (!scores && !held)) return;
  if (head_dim > kMaxHeadDim) fail_argument("slot_attention", "head_dim above 256");
  slot_attention_kernel<<<n * n_heads, kThreads>>>(q, keys, positions, lengths, seq, pos, n_heads, n_kv_heads, head_dim,
                                                   capacity, scores, held, held_words, mass);
  KVB_CUDA_LAUNCH_CHECK();
}

void mark_held_positions(uint32_t* held, const int32_t* positions, const int32_t* lengths, int n_heads_total,
                         int capacity, int held_words) {
  if (n_heads_total <= 0) return;
  KVB_CUDA_CHECK(cudaMemsetAsync(held, 0, sizeof(uint32_t) * size_t(n_heads_total) * held_words, 0));
  mark_held_kernel<<<n_heads_total, kThreads>>>(held, positions, lengths, capacity, held_words);
  KVB_CUDA_LAUNCH_CHECK();
}

}  // namespace kvb::cuda
