#pragma once
// The CPU reference of the compression ops (kernels/compression_ops.hpp): the numeric kernels of
// one (layer, KV head) -- the oracles the CUDA port is tested against -- and the CompressionOps of
// a host KV cache, which runs an event group by group through them. Keys are rows of head_dim
// floats; the kernels know nothing of models, caches or methods.
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kernels/compression_ops.hpp"
#include "kernels/kv_storage.hpp"

namespace kvb::cpu {

// TriAttention's score of n post-RoPE keys ([n][head_dim]) for one query head:
//   out[j] = max_q dot(u[q], k_j) + sum_f e[f] * |pair_f(k_j)|
// where u holds n_u effective queries ([n_u][head_dim], already laid out in the keys' lanes) and
// pair_f is the complex pair of frequency f: lanes (f, f + head_dim/2) when !interleaved, else
// (2f, 2f+1). Mean aggregation passes one effective query (spec 2.2), max aggregation one per
// offset, disable_trig none (the score is the norm term alone; u may then be null).
void tri_scores(float* out, const float* keys, int n, int head_dim, bool interleaved, const float* u, int n_u,
                const float* e);

// x = (x - mean) / max(population std, 1e-6), over n values (none: nothing to do).
void zscore(float* x, int n);

// SnapKV's attention evidence for one KV head: `queries` holds the observation window's W query
// vectors for each of the group's G query heads ([W][G][head_dim]); for each window query the
// logits q.k/sqrt(head_dim) against the n keys are reduced by max over the G heads, softmaxed
// over the n keys, and out[j] is the mean of those distributions over the W queries.
void window_attention(float* out, const float* queries, int window, int group, const float* keys, int n,
                      int head_dim);

// out[j] = max(in[j - radius .. j + radius] within [0, n)): 1-D max pooling, stride 1, padded so
// that out has n values (kernel 2*radius + 1). out and in must not overlap.
void max_pool(float* out, const float* in, int n, int radius);

// R-KV's redundancy of n keys in chronological order ([n][head_dim]): cosine similarities with the
// diagonal zeroed; in every row i the similarity to the latest key j with similarity > threshold is
// zeroed (that near-duplicate is kept), or to key 0 when there is none (R-KV's default index);
// out = softmax over j of the column means. A zero key has similarity 0 to everything.
void key_redundancy(float* out, const float* keys, int n, int head_dim, float threshold);

// Replaces out with the min(k, n) indices of the largest scores, in descending score order, ties
// to the lower index. Scores must not be NaN.
void top_k(const float* score, int n, int k, std::vector<int>& out);

// The slot indices 0..len-1 ordered by their absolute positions `pos` (oldest first).
void slots_by_position(const int32_t* pos, int len, std::vector<int>& order);

// Keeps exactly the slots `keep` (distinct indices below the current length) of the cache's head
// `head` (KvGeometry::head) and makes them the first keep.size() slots: kept slots already below
// the new length stay where they are, kept slots above it fill the evicted holes below it in
// ascending order, keys, values, positions (and slot scores) move together, and the length becomes
// keep.size(). RuntimeFailure on an index that is out of range or repeated. `flags`: scratch.
void compact_slots(const KvStorage<float>& cache, size_t head, std::span<const int> keep, std::vector<uint8_t>& flags);

// Rotates every pair of the head_dim lanes of `key` by `shift` positions of RoPE: angle shift *
// inv_freq[f] in double, no attention scale (the key carries it already).
void rotate_key(float* key, int head_dim, std::span<const double> inv_freq, bool interleaved, int64_t shift);

}  // namespace kvb::cpu

namespace kvb {

// The compression ops of a host KV cache (its storage must outlive them).
std::unique_ptr<CompressionOps> make_cpu_compression_ops(const KvStorage<float>& cache);

}  // namespace kvb
