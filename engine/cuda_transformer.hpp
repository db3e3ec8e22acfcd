#pragma once
// The forward pass on an NVIDIA GPU: the CPU Transformer's computation (engine/transformer.hpp)
// with bf16 weights and KV cache on the device and fp32 activations, through the CUDA ops
// (kernels/cuda/ops_cuda.hpp). Weights, a pool for the KV caches, the logits and every workspace
// (the compression methods' included) live in one arena sized at construction from a
// CudaEngineShape; nothing is allocated while decoding. Built only with the CUDA backend
// (KVBENCH_HAVE_CUDA).
#include <cstdint>
#include <span>
#include <vector>

#include "engine/model.hpp"
#include "engine/transformer.hpp"
#include "kernels/cuda/device_arena.hpp"

namespace kvb {

// What the engine is sized for, decided before anything is allocated.
struct CudaEngineShape {
  int max_batch_tokens = 512;  // tokens in one forward (a prefill chunk or a decode batch)
  int max_sequences = 1;       // sequences in one batch (rows of logits per forward)
  int max_capacity = 1;        // slots per (layer, sequence, kv-head) of any cache
  uint64_t kv_pool_bytes = 0;  // the caches of one batch together (the method's and the reference's)
  int query_window = 0;        // post-RoPE queries kept per sequence for SnapKV / R-KV (0: none)
};

// Device bytes of a cache of `n_seqs` x `capacity` slots (keys, values, positions, lengths, and a
// score per slot for H2O; each layer's pieces 256-byte aligned, as the arena hands them out).
uint64_t cuda_cache_bytes(const ModelConfig& config, int n_seqs, int capacity, bool slot_scores = false);

// The KV cache of a batch of sequences, carved from the engine's pool. Device layout per layer as
// in kernels/cuda/ops_cuda.hpp; the host keeps every (layer, sequence, kv-head)'s length.
class CudaKvCache {
 public:
  struct Layer {
    bf16 *keys = nullptr, *values = nullptr;  // [n_seqs][n_kv_heads][capacity][head_dim]
    int32_t *positions = nullptr, *lengths = nullptr;
    float* scores = nullptr;  // [n_seqs][n_kv_heads][capacity] accumulated attention (H2O), else null
  };

  int n_layers() const { return static_cast<int>(layers_.size()); }
  int n_sequences() const { return n_seqs_; }
  int n_kv_heads() const { return n_kv_heads_; }
  int head_dim() const { return head_dim_; }
  int capacity() const { return capacity_; }
  const Layer& layer(int l) const { return layers_[l]; }
  // Device pointers to the slots of one (layer, sequence, kv-head).
  bf16* keys(int l, int seq, int kv_head) const { return layers_[l].keys + slot_offset(seq, kv_head) * head_dim_; }
  bf16* values(int l, int seq, int kv_head) const { return layers_[l].values + slot_offset(seq, kv_head) * head_dim_; }
  int32_t* positions(int l, int seq, int kv_head) const { return layers_[l].positions + slot_offset(seq, kv_head); }
  float* slot_scores(int l, int seq, int kv_head) const {
    return layers_[l].scores ? layers_[l].scores + slot_offset(seq, kv_head) : nullptr;
  }
  int length(int l, int seq, int kv_head) const { return lengths_[index(l, seq, kv_head)]; }

  // The absolute positions of the slots of (layer, seq, kv_head), copied to the host.
  void download_positions(int l, int seq, int kv_head, std::vector<int32_t>& out) const;
  // cuda::compact on (layer, seq, kv_head) with `keep` (k distinct slot indices, device memory);
  // slot scores move with their slots and the freed slots' scores return to 0.
  void compact(int l, int seq, int kv_head, const int32_t* keep, int k);

  // Bytes held by live slots (K and V, bf16).
  uint64_t sequence_bytes(int seq) const;
  uint64_t peak_bytes() const { return peak_slots_ * bytes_per_slot(); }
  uint64_t capacity_bytes() const { return uint64_t(n_layers()) * n_seqs_ * n_kv_heads_ * capacity_ * bytes_per_slot(); }
  uint64_t bytes_per_slot() const { return uint64_t(2) * head_dim_ * sizeof(bf16); }

 private:
  friend class CudaTransformer;
  size_t index(int l, int seq, int kv_head) const { return (size_t(l) * n_seqs_ + seq) * n_kv_heads_ + kv_head; }
  size_t slot_offset(int seq, int kv_head) const { return (size_t(seq) * n_kv_heads_ + kv_head) * capacity_; }
  // Counts one more slot of every (layer, kv-head) of `seq`; RuntimeFailure when one is full.
  void reserve_slot(int seq);
  void note_live_slots();

  int n_seqs_ = 0, n_kv_heads_ = 0, head_dim_ = 0, capacity_ = 0;
  std::vector<Layer> layers_;
  std::vector<int32_t> lengths_;  // host copy, [layer][seq][kv_head]
  uint64_t live_slots_ = 0, peak_slots_ = 0;
};

// What a forward measures of its attention besides computing it: the attention weights of every
// slot, reduced into the cache's slot scores (H2O) and/or into the retained attention mass, the
// weight on positions another cache holds (a replay's reference forward, held_by = the method's);
// and each token's pre-RoPE queries, copied to the host and shown to `queries` (calibration;
// on_query's `rotated` is null).
struct AttentionTap {
  bool accumulate_slot_scores = false;
  const CudaKvCache* held_by = nullptr;
  AttentionObserver* queries = nullptr;
};

// Device scratch of the compression methods (engine/cuda_decode_backend.cpp), sized for the
// engine's largest cache: one (layer, kv-head) at a time.
struct CudaCompressionScratch {
  bf16* keys = nullptr;           // [max_capacity][head_dim] gathered keys
  float *score = nullptr, *aux = nullptr, *total = nullptr;  // [max_capacity] each
  float* raw = nullptr;           // [group][max_capacity] per query head
  int32_t *index = nullptr, *keep = nullptr, *top = nullptr;  // [max_capacity] each
  int32_t* index_positions = nullptr;                         // [max_capacity]
  float* coefficients = nullptr;  // TriAttention's effective queries and norm weights, all heads of all layers
  size_t coefficient_floats = 0;
};

class CudaTransformer {
 public:
  // Uploads the model's weights rounded to bf16, or generates a synthetic model's on the device
  // (a config-only `synthetic:` Model: the same values the CPU loader computes), and sizes
  // everything else from `shape`. RuntimeFailure (out of memory, naming what and the free memory)
  // when it does not fit.
  CudaTransformer(const Model& model, const CudaEngineShape& shape);
  // Device bytes such an engine takes (nothing is allocated).
  static uint64_t bytes_needed(const Model& model, const CudaEngineShape& shape);

  const ModelConfig& config() const { return cfg_; }
  const CudaEngineShape& shape() const { return shape_; }
  size_t device_bytes() const { return arena_.planned_bytes(); }
  uint64_t weight_bytes() const { return weight_bytes_; }

  // Carves a cache of n_seqs x capacity slots (with slot scores for H2O) from the pool at byte
  // `pool_offset`, every slot empty; RuntimeFailure when it does not fit the pool or the shape.
  CudaKvCache make_cache(int n_seqs, int capacity, uint64_t pool_offset, bool slot_scores = false);

  // Transformer::forward's contract on `cache`: appends every token's K/V and writes the logits
  // of the tokens with want_logits into `logits` (device memory, rows of vocab_size, batch
  // order); returns how many rows. With record_queries, each token's post-RoPE queries go into
  // the query window of its sequence (window_queries); `tap` adds what it asks of the attention.
  int forward(std::span<const BatchToken> batch, CudaKvCache& cache, float* logits, bool record_queries = false,
              const AttentionTap& tap = {});

  // Device logits buffers of max_sequences rows: one for the method, one for the reference.
  float* method_logits() const { return logits_[0]; }
  float* reference_logits() const { return logits_[1]; }
  // The last query_window post-RoPE queries of (seq, layer, kv_head), [window][group][head_dim]
  // fp32, in ring order (slot pos % window): what SnapKV's window attention averages over.
  const float* window_queries(int seq, int layer, int kv_head) const;
  CudaCompressionScratch& scratch() { return scratch_; }
  // Per sequence row: the retained attention mass summed by forwards with a held_by tap, summed
  // over layers, query heads and tokens (the caller divides and clears).
  float* retained_mass_sums() const { return retained_mass_; }
  // Device staging for the few ids and statistics a step exchanges with the host.
  int32_t* small_ids() const { return small_ids_; }
  void* small_results() const { return small_results_; }

 private:
  struct Layer {
    bf16 *wq = nullptr, *wk = nullptr, *wv = nullptr, *wo = nullptr;
    bf16 *w_gate = nullptr, *w_up = nullptr, *w_down = nullptr;
    float *attn_norm = nullptr, *ffn_norm = nullptr, *bq = nullptr, *bk = nullptr, *bv = nullptr;
    float *q_norm = nullptr, *k_norm = nullptr;
  };
  struct PlanOnly {};
  CudaTransformer(const Model& model, const CudaEngineShape& shape, PlanOnly);
  // Takes every piece from the arena (run once to plan, once to hand out).
  void layout();
  void upload_weights();
  void generate_synthetic_weights();
  // Uploads the indices of the batch's tokens whose queries go into the query window; returns how many.
  int list_recorded_tokens(std::span<const BatchToken> batch);

  const Model& model_;
  const ModelConfig& cfg_;
  CudaEngineShape shape_;
  cuda::DeviceArena arena_;
  uint64_t weight_bytes_ = 0;
  std::vector<Layer> layers_;
  bf16 *embedding_ = nullptr, *lm_head_ = nullptr;
  float* final_norm_ = nullptr;
  double* inv_freq_ = nullptr;
  uint8_t* kv_pool_ = nullptr;
  float* logits_[2] = {nullptr, nullptr};
  float* query_ring_ = nullptr;  // [max_sequences][layers][n_kv_heads][window][group][head_dim]
  uint32_t* held_bits_ = nullptr;  // one layer's held positions, [max_sequences][n_kv_heads][held_words_]
  int held_words_ = 0;
  float* retained_mass_ = nullptr;  // [max_sequences]
  CudaCompressionScratch scratch_;
  int32_t* small_ids_ = nullptr;
  void* small_results_ = nullptr;
  // Workspace [max_tokens][...] and the batch's token, sequence and position ids.
  float *x_ = nullptr, *xb_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr, *att_ = nullptr;
  float *hb_ = nullptr, *hb2_ = nullptr, *attention_ws_ = nullptr;
  bf16* gemm_in_ = nullptr;
  int32_t *tokens_ = nullptr, *seqs_ = nullptr, *pos_ = nullptr, *recorded_ = nullptr;
  std::vector<int32_t> host_ids_;  // staging for tokens, seqs, positions
  std::vector<int32_t> host_recorded_, latest_pos_;
  std::vector<float> host_queries_;
};

}  // namespace kvb
