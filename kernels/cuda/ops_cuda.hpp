#pragma once
// CUDA versions of the ops in kernels/ops.hpp and kernels/compression_ops.hpp: same semantics,
// device pointers, launched on the default stream, asynchronous (call synchronize() to wait and to
// surface errors). Weights and the KV cache are bf16 (kernels/bf16.hpp), activations and
// accumulation fp32. Errors throw RuntimeFailure naming the op.
//
// KV cache layout on the device, per layer (pointers below are the layer's base):
//   keys, values [n_seqs][n_kv_heads][capacity][head_dim] bf16
//   positions    [n_seqs][n_kv_heads][capacity] int32 (absolute position of each slot)
//   lengths      [n_seqs][n_kv_heads] int32
// the CPU KvCache's layout (engine/kv_cache.hpp) with bf16 instead of fp32.
#include <cstddef>
#include <cstdint>

#include "kernels/bf16.hpp"

namespace kvb::cuda {

// --- Elementwise and row ops -------------------------------------------------------------------

// y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight, per row of n (y may alias x)
void rmsnorm(float* y, const float* x, const float* weight, int rows, int n, float eps);

// x[i][:] = table[tokens[i]][:] as fp32; table [vocab][dim] bf16.
void embedding(float* x, const bf16* table, const int32_t* tokens, int n, int dim);

// Rotates n_heads heads of each of n tokens ([n][n_heads][head_dim]) to position pos[i]: pair f
// (lanes f, f+d/2, or 2f, 2f+1 when interleaved) by angle pos * inv_freq[f], computed in double,
// with cos and sin multiplied by `scale` (YaRN's attention factor). Same as RopeTable::apply.
void rope(float* x, const int32_t* pos, int n, int n_heads, int head_dim, const double* inv_freq, float scale,
          bool interleaved);

// gate[i] = silu(gate[i]) * up[i]
void swiglu(float* gate, const float* up, int64_t n);

// y[r][i] += b[i]
void add_bias(float* y, const float* b, int rows, int n);

void f32_to_bf16(bf16* y, const float* x, int64_t n);
void bf16_to_f32(float* y, const bf16* x, int64_t n);

// --- Attention over the KV cache ---------------------------------------------------------------

// Appends token i's keys and values (k, v: [n][n_kv_heads][head_dim] fp32, rounded to bf16) to
// slot lengths[seq[i]][h] of every KV head h of sequence seq[i], records pos[i] there and
// increments the length. Tokens of one sequence are appended in batch order. The caller guarantees
// capacity.
void append_kv(bf16* keys, bf16* values, int32_t* positions, int32_t* lengths, const float* k, const float* v,
               const int32_t* seq, const int32_t* pos, int n, int n_kv_heads, int head_dim, int capacity);

// For every token i and query head h: softmax over the slots j of (seq[i], h / group) with
// positions[j] <= pos[i] of q.k_j / sqrt(head_dim), times the values; out, q: [n][n_heads][head_dim].
// Decode (one token per sequence) splits long caches across blocks and merges the partial results
// through `workspace` (kernels/attention_workspace.hpp); prefill (many tokens of one sequence) tiles the
// queries. Same result as the CPU attention (kernels/ops.hpp) up to bf16 rounding of K and V.
void attention(float* out, const float* q, const bf16* keys, const bf16* values, const int32_t* positions,
               const int32_t* lengths, const int32_t* seq, const int32_t* pos, int n, int n_heads, int n_kv_heads,
               int head_dim, int capacity, float* workspace);

// The weights `attention` gives the slots (same inputs and masking), reduced two ways (either
// output may be null): scores[(seq[i] * n_kv_heads + g) * capacity + j] += w_j for every token i
// and query head reading KV head g (H2O's accumulated attention), and mass[seq[i]] += the sum of
// w_j over slots whose position is set in held ([n_seqs][n_kv_heads][held_words] bits; positions
// beyond held_words * 32 are not held), over every token and query head (retained attention
// mass). head_dim up to 256.
void slot_attention(const float* q, const bf16* keys, const int32_t* positions, const int32_t* lengths,
                    const int32_t* seq, const int32_t* pos, int n, int n_heads, int n_kv_heads, int head_dim,
                    int capacity, float* scores, const uint32_t* held, int held_words, float* mass);

// held [n_heads_total][held_words] := the bitmap of the positions each of the n_heads_total
// (sequence, KV head) slot rows of a cache layer holds (positions [n_heads_total][capacity],
// lengths [n_heads_total]).
void mark_held_positions(uint32_t* held, const int32_t* positions, const int32_t* lengths, int n_heads_total,
                         int capacity, int held_words);

// --- Matrix products (cuBLASLt) ----------------------------------------------------------------

// y[r][o] = sum_i x[r][i] * w[o][i] with w bf16 [out][in] and x, y fp32: x is rounded to bf16 into
// `x_scratch` (rows * in), the product accumulates in fp32. One cuBLASLt handle per process.
void matmul(float* y, const float* x, const bf16* w, int rows, int in, int out, bf16* x_scratch);

// --- Logits statistics (replay): only scalars cross to the host ---------------------------------

struct LogitStats {
  float method_logprob = 0;  // log softmax(method)[target]
  float full_logprob = 0;    // log softmax(full)[target] (= method's without a reference)
  float kl = 0;              // KL(full || method), nats (0 without a reference)
  int32_t method_argmax = 0;
  int32_t full_argmax = 0;
};
// One LogitStats per row of `rows` x vocab logits; `full` may be null (no lockstep reference).
// Argmax ties go to the lower token id. Same as engine/fidelity.hpp compare_logits.
void logits_stats(LogitStats* out, const float* method, const float* full, const int32_t* targets, int rows, int vocab);

// --- Synthetic weights ---------------------------------------------------------------------------

// out[i] = synthetic_value(key, i, scale, offset) (util/counter_hash.hpp) for i < n.
void synthetic_fill(bf16* out, int64_t n, uint64_t key, float scale, float offset);
void synthetic_fill(float* out, int64_t n, uint64_t key, float scale, float offset);

// --- Device memory -----------------------------------------------------------------------------

// Throws RuntimeFailure "CUDA out of memory allocating <what> (<bytes>; <free> of <total> free)".
void* device_alloc_bytes(size_t bytes, const char* what);
void device_free(void* p);
void copy_to_device_bytes(void* dst, const void* src, size_t bytes);
void copy_to_host_bytes(void* dst, const void* src, size_t bytes);
void fill_bytes(void* dst, int value, size_t bytes);
void synchronize(const char* what);
// Page-locked host memory, and copies between it and the device that do not wait for the host:
// ordered on the default stream, complete at the next synchronize().
void* pinned_alloc_bytes(size_t bytes, const char* what);
void pinned_free(void* p);
void copy_to_device_async(void* dst, const void* pinned_src, size_t bytes);
void copy_to_host_async(void* pinned_dst, const void* src, size_t bytes);
// Makes GPU `index` current for this thread (RuntimeFailure naming it when it does not answer).
void select_device(int index);
// Free and total bytes of the current GPU.
void memory_info(size_t* free_bytes, size_t* total_bytes);


}  // namespace kvb::cuda
