#pragma once
// The forward pass on an NVIDIA GPU: the CPU Transformer's computation (engine/transformer.hpp)
// with bf16 weights and KV cache on the device and fp32 activations, through the CUDA ops
// (kernels/cuda/ops_cuda.hpp). Weights, a pool for the KV caches, the logits and every workspace
// (the compression ops' included) live in one arena laid out by engine/cuda_layout.hpp from a
// CudaEngineShape; nothing is allocated while decoding. Built only with the CUDA backend
// (KVBENCH_HAVE_CUDA).
#include <cstdint>
#include <span>
#include <vector>

#include "engine/cuda_layout.hpp"
#include "engine/forward_recording.hpp"
#include "engine/model.hpp"
#include "engine/transformer.hpp"
#include "kernels/cuda/device_arena.hpp"

namespace kvb {

// The KV cache of a batch of sequences, carved from the engine's pool: kernels/kv_storage.hpp's
// layout in device memory (bf16), the lengths also on the host.
class CudaKvCache {
 public:
  const KvGeometry& geometry() const { return s_.geometry; }
  int n_layers() const { return s_.geometry.n_layers; }
  int n_sequences() const { return s_.geometry.n_seqs; }
  int n_kv_heads() const { return s_.geometry.n_kv_heads; }
  int capacity() const { return s_.geometry.capacity; }
  int length(int l, int seq, int kv_head) const { return lengths_[s_.geometry.head(l, seq, kv_head)]; }
  // Device pointers of one layer's slots ([n_seqs][n_kv_heads][capacity]...) and lengths.
  bf16* keys(int l) const { return s_.keys + layer_slots(l) * s_.geometry.head_dim; }
  bf16* values(int l) const { return s_.values + layer_slots(l) * s_.geometry.head_dim; }
  int32_t* positions(int l) const { return s_.positions + layer_slots(l); }
  float* slot_scores(int l) const { return s_.slot_scores ? s_.slot_scores + layer_slots(l) : nullptr; }
  int32_t* lengths(int l) const { return s_.lengths + size_t(l) * s_.geometry.n_seqs * s_.geometry.n_kv_heads; }
  float* window_queries() const { return s_.window_queries; }
  // Where everything lives, for the compression ops (host_lengths: this cache's host copy).
  KvStorage<bf16> storage() {
    KvStorage<bf16> s = s_;
    s.host_lengths = lengths_.data();
    return s;
  }

  // Empties row `seq` (lengths 0 on both sides, its slot scores back to 0) for a new sequence.
  void clear_sequence(int seq);

  // Bytes held by live slots (K and V, bf16).
  uint64_t sequence_bytes(int seq) const;
  uint64_t peak_bytes() const { return peak_slots_ * bytes_per_slot(); }
  uint64_t capacity_bytes() const { return uint64_t(s_.geometry.slots()) * bytes_per_slot(); }
  uint64_t bytes_per_slot() const { return uint64_t(2) * s_.geometry.head_dim * sizeof(bf16); }

 private:
  friend class CudaTransformer;
  size_t layer_slots(int l) const { return size_t(l) * s_.geometry.n_seqs * s_.geometry.n_kv_heads * s_.geometry.capacity; }
  // Counts one more slot of every (layer, kv-head) of `seq`; RuntimeFailure when one is full.
  void reserve_slot(int seq);
  void note_peak();

  KvStorage<bf16> s_;
  std::vector<int32_t> lengths_;  // host copy, [layer][seq][kv_head]
  uint64_t peak_slots_ = 0;
};

class CudaTransformer {
 public:
  // Puts the weights on the device — matrices rounded to bf16, vectors fp32 — and sizes everything
  // else from `shape`. A model loaded with its weights has them uploaded; one loaded without
  // (LoadOptions::skip_weights) has them streamed from its files (engine/weight_stream.hpp: each
  // tensor from the mapping through two pinned staging buffers, no host copy of the model); a
  // config-only `synthetic:` model has them generated on the device (the same values the CPU
  // loader computes). RuntimeFailure (out of memory, naming what and the free memory) when it does
  // not fit; InputError for a bad file.
  CudaTransformer(const Model& model, const CudaEngineShape& shape);
  // Whether the engine of `model` uses its embedding as the classifier.
  static bool tied(const Model& model);

  const ModelConfig& config() const { return cfg_; }
  const CudaEngineShape& shape() const { return shape_; }
  size_t device_bytes() const { return layout_.total_bytes; }
  uint64_t weight_bytes() const { return layout_.weight_bytes; }
  // The storage types the weights came in, e.g. "BF16" or "F32+Q8_0" ("BF16 (generated on the
  // device)" for a synthetic model), and the seconds putting them on the device took.
  const std::string& stored_dtypes() const { return stored_dtypes_; }
  double weight_seconds() const { return weight_seconds_; }

  // Carves a cache of n_seqs x capacity slots (with what `extras` asks) from the pool at byte
  // `pool_offset`, every slot empty; RuntimeFailure when it does not fit the pool or the shape.
  CudaKvCache make_cache(int n_seqs, int capacity, uint64_t pool_offset, const KvCacheExtras& extras = {});

  // Transformer::forward's contract on `cache`: appends every token's K/V and writes the logits
  // of the tokens with want_logits into `logits` (device memory, rows of vocab_size, batch
  // order); returns how many rows. Records what `record` asks (engine/forward_recording.hpp).
  int forward(std::span<const BatchToken> batch, CudaKvCache& cache, float* logits,
              const ForwardRecording<CudaKvCache>& record = {});
  // Transformer::take_retained_mass.
  double take_retained_mass(int seq);

  // Device logits buffers of max_sequences rows: one for the method, one for the reference.
  float* method_logits() const { return layout_.logits[0]; }
  float* reference_logits() const { return layout_.logits[1]; }
  // The compression ops' workspace (kernels/compression_scratch.hpp).
  const CompressionScratch& compression_scratch() const { return layout_.compression; }
  // Device staging for the few ids and statistics a step exchanges with the host.
  int32_t* small_ids() const { return layout_.small_ids; }
  void* small_results() const { return layout_.small_results; }

 private:
  void upload_weights();
  void stream_weights();
  void generate_synthetic_weights();
  // Where the weight of (role, layer) lives on the device: bf16 for a matrix, fp32 for a vector.
  void* device_weight(Role role, int layer) const;
  // Converts and copies one checked tensor through the staging buffers.
  void put_weight(const WeightSlot& slot, const RawTensor& raw, std::span<uint8_t> a, std::span<uint8_t> b);
  // Uploads the indices of the batch's tokens whose queries go into the query window; returns how many.
  int list_recorded_tokens(std::span<const BatchToken> batch, int window);

  const Model& model_;
  const ModelConfig& cfg_;
  std::string stored_dtypes_;
  double weight_seconds_ = 0;
  CudaEngineShape shape_;
  cuda::DeviceArena arena_;
  CudaEngineLayout layout_;
  std::vector<int32_t> host_ids_;  // staging for tokens, seqs, positions
  std::vector<int32_t> host_recorded_, latest_pos_;
  std::vector<float> host_queries_, host_mass_;
  std::vector<double> retained_sum_;     // per sequence row, since its last take
  std::vector<int64_t> retained_count_;  // (token, layer, query head) rows summed
};

}  // namespace kvb
