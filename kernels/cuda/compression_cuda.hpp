#pragma once
// CUDA versions of the compression kernels (kernels/compression_ops.hpp) for one (layer, KV head)
// at a time, on bf16 keys, plus the device-side top-k and compaction a compression event needs.
// Device pointers, default stream, asynchronous; same results as the CPU kernels on the same
// (bf16-rounded) inputs, up to fp32 summation order.
#include <cstdint>

#include "kernels/bf16.hpp"

namespace kvb::cuda {

// cpu::tri_scores with bf16 keys [n][head_dim]; u [n_u][head_dim] and e [head_dim/2] fp32.
void tri_scores(float* out, const bf16* keys, int n, int head_dim, bool interleaved, const float* u, int n_u,
                const float* e);

// cpu::zscore (population std clamped at 1e-6), in place over n values.
void zscore(float* x, int n);

// cpu::window_attention with bf16 keys; queries [window][group][head_dim] fp32.
void window_attention(float* out, const float* queries, int window, int group, const bf16* keys, int n, int head_dim);

// cpu::max_pool.
void max_pool(float* out, const float* in, int n, int radius);

// cpu::key_redundancy with bf16 keys in chronological order (a row without a near-duplicate zeroes
// its entry for key 0).
void key_redundancy(float* out, const bf16* keys, int n, int head_dim, float threshold);

// out[i] = rows[index[i]] for i < n: gathers bf16 rows of head_dim (e.g. keys in position order).
void gather_rows(bf16* out, const bf16* rows, const int32_t* index, int n, int head_dim);

// cpu::top_k into device memory: out[0..min(k,n)) = indices of the largest scores, descending,
// ties to the lower index. n up to 16384.
void top_k(int32_t* out, const float* score, int n, int k);

// KvCache::compact on the device for one (layer, sequence, KV head): keeps exactly the `k` slots
// listed in `keep` (distinct, below the current length `len`), kept slots below k stay, kept slots
// at or above k fill the holes below k in ascending order (both sides ascending), keys, values and
// positions (and per-slot scores, when given) move together; *length becomes k.
void compact(bf16* keys, bf16* values, int32_t* positions, int32_t* length, const int32_t* keep, int k, int len,
             int head_dim, float* scores = nullptr);

// TriAttention's combination step for one (layer, KV head): with raw [group][n] the z-scored scores
// of the group's query heads for n candidate slots at `positions`, each candidate's group maximum
// of raw + 1e-6 * hashed_uniform(seed, event, ((head_key + h) << 32) | position) goes into agg:
// kTriAssign stores it, kTriMax keeps the larger, kTriAddDivided adds it divided by `divisor`
// (the mean over layers). Same bits as TriAttentionPolicy on the CPU.
constexpr int kTriAssign = 0, kTriMax = 1, kTriAddDivided = 2;
void tri_group_combine(float* agg, const float* raw, int group, int n, const int32_t* positions, uint64_t seed,
                       uint64_t event, uint64_t head_key, int mode, float divisor);

// out[i] = lambda * a[i] - (1 - lambda) * b[i]: R-KV's score from pooled attention and redundancy.
void weighted_difference(float* out, const float* a, const float* b, float lambda, int n);

// Stores the post-RoPE queries q ([n][n_heads][head_dim]) of `layer` of the `count` tokens
// i = which[0..count) in the query ring [n_seqs][n_layers][n_kv_heads][window][group][head_dim],
// slot pos[i] % window of sequence seq[i]. The tokens listed must map to distinct slots.
void store_window_queries(float* ring, const float* q, const int32_t* which, int count, const int32_t* seq,
                          const int32_t* pos, int n_heads, int group, int head_dim, int window, int layer, int n_layers);

}  // namespace kvb::cuda
