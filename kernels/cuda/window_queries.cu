// SnapKV / R-KV's observation window on the device: every forward stores each token's post-RoPE
// queries in its sequence's ring of the last `window` tokens, laid out per (sequence, layer,
// kv-head) as [window][group][head_dim] so that a compression event hands window_attention one
// contiguous block. Ring slot = pos % window: the order of the window's queries does not matter
// (window attention averages over them). Only tokens that are among the last `window` of their
// sequence in the batch are recorded (`which`), so no two writes of a launch hit one slot.
#include <cuda_runtime.h>

#include "kernels/cuda/compression_cuda.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/ops_cuda.hpp"

namespace kvb::cuda {

namespace {

constexpr int kThreads = 128;

// One block per (recorded token, query head); threads over head_dim.
__global__ void store_window_queries_kernel(float* __restrict__ ring, const float* __restrict__ q,
                                            const int32_t* __restrict__ which, const int32_t* __restrict__ seq,
                                            const int32_t* __restrict__ pos, int n_heads, int group, int head_dim,
                                            int window, int layer, int n_layers) {
  const int i = which[blockIdx.x / n_heads], h = blockIdx.x % n_heads;
  const int kv_head = h / group, member = h % group, n_kv_heads = n_heads / group;
  const size_t block = (size_t(seq[i]) * n_layers + layer) * n_kv_heads + kv_head;
  float* dst = ring + ((block * window + pos[i] % window) * group + member) * head_dim;
  const float* src = q + (size_t(i) * n_heads + h) * head_dim;
  for (int c = threadIdx.x; c < head_dim; c += kThreads) dst[c] = src[c];
}

}  // namespace

void store_window_queries(float* ring, const float* q, const int32_t* which, int count, const int32_t* seq,
                          const int32_t* pos, int n_heads, int group, int head_dim, int window, int layer, int n_layers) {
  if (count <= 0 || window <= 0) return;
  store_window_queries_kernel<<<count * n_heads, kThreads>>>(ring, q, which, seq, pos, n_heads, group, head_dim, window,
                                                             layer, n_layers);
  KVB_CUDA_LAUNCH_CHECK();
}

}  // namespace kvb::cuda
