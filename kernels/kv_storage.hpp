#pragma once
// Where a batch's KV cache lives, as the forward pass and the compression ops see it: one layout
// for both backends (docs/design.md, "KV layout"), in host memory with fp32 keys and values on the
// CPU (engine/kv_cache.hpp) and in device memory with bf16 ones on CUDA (engine/cuda_transformer.hpp).
//
//   keys, values     [n_layers][n_seqs][n_kv_heads][capacity][head_dim]   T (float or bf16)
//   positions        [n_layers][n_seqs][n_kv_heads][capacity]             int32, absolute position of each slot
//   slot_scores      [n_layers][n_seqs][n_kv_heads][capacity]             fp32 (H2O's accumulated attention), or null
//   window_queries   [n_seqs][n_layers][n_kv_heads][window][group][head_dim] fp32: the last `window` post-RoPE
//                    queries of each sequence (ring slot pos % window), or null (window 0)
//   sink_keys        [n_layers][n_seqs][n_kv_heads][sinks][head_dim] T: the keys StreamingLLM's sinks had when
//                    they joined the cache (positions within the cache), or null (sinks 0)
//   lengths          [n_layers][n_seqs][n_kv_heads]                       int32 live slots, in the backend's memory
//   host_lengths     the same, in host memory (the CPU's lengths themselves; a copy CUDA keeps in step)
//
// Slot order carries no meaning: a slot's token is known by its position (RoPE is already applied
// to stored keys), so compaction may move slots. Slots at or above a length hold stale data.
#include <cstddef>
#include <cstdint>

namespace kvb {

struct KvGeometry {
  int n_layers = 0, n_seqs = 0, n_kv_heads = 0, capacity = 0, head_dim = 0;
  int group = 1;   // query heads per KV head
  int window = 0;  // queries kept per (sequence, layer) for SnapKV / R-KV (0: none)
  int sinks = 0;   // original sink keys kept per (layer, sequence, kv head) (0: none)

  // Index of (layer, seq, kv_head) among the lengths; times capacity, its first slot.
  size_t head(int layer, int seq, int kv_head) const { return (size_t(layer) * n_seqs + seq) * n_kv_heads + kv_head; }
  size_t heads() const { return size_t(n_layers) * n_seqs * n_kv_heads; }
  size_t slots() const { return heads() * capacity; }
  // First float of (seq, layer, kv_head)'s query window.
  size_t window_offset(int seq, int layer, int kv_head) const {
    return ((size_t(seq) * n_layers + layer) * n_kv_heads + kv_head) * window * group * head_dim;
  }
  size_t window_floats() const { return size_t(n_seqs) * n_layers * n_kv_heads * window * group * head_dim; }
  size_t sink_values() const { return heads() * sinks * head_dim; }
};

template <class T>
struct KvStorage {
  KvGeometry geometry;
  T* keys = nullptr;
  T* values = nullptr;
  int32_t* positions = nullptr;
  float* slot_scores = nullptr;
  float* window_queries = nullptr;
  T* sink_keys = nullptr;
  int32_t* lengths = nullptr;
  int32_t* host_lengths = nullptr;
};

}  // namespace kvb
