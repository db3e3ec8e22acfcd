#pragma once
// The KV cache of a batch of sequences in host memory (fp32), laid out as kernels/kv_storage.hpp
// describes: per (layer, sequence, kv-head) slots with an explicit length and the absolute position
// of every slot (docs/design.md, "KV layout"); optionally a per-slot score (H2O) and each
// sequence's query window (SnapKV, R-KV). Slot order carries no meaning: anything that needs "the
// most recent tokens" asks pos, never the slot index, so a compression method can evict slots and
// compact the rest. Errors: RuntimeFailure (a full cache, a bad compaction).
#include <cstdint>
#include <span>
#include <vector>

#include "engine/model_config.hpp"
#include "kernels/dtype.hpp"
#include "kernels/kv_storage.hpp"

namespace kvb {

// What a cache keeps besides keys, values and positions (a method's traits decide).
struct KvCacheExtras {
  bool slot_scores = false;  // a score per slot, 0 for a new slot, moved with it by compaction
  int window = 0;            // post-RoPE queries of the last `window` tokens per (sequence, layer)
  int sinks = 0;             // the original keys of this many sinks per (layer, sequence, KV head) (StreamingLLM's
                             // positions within the cache)
  DType value_dtype = DType::F32;  // CPU: F32, or BF16/F16: keys and values rounded to it as the forward
                                  // stores them (--kv-dtype; bf16 is the CUDA backend's KV precision).
                                  // The slots stay 4 bytes; every byte count below is at value_dtype's size
};

// The geometry of a cache of n_sequences x capacity slots of `config`'s model with `extras`.
KvGeometry kv_geometry(const ModelConfig& config, int n_sequences, int capacity, const KvCacheExtras& extras);

class KvCache {
 public:
  KvCache(const ModelConfig& config, int n_sequences, int capacity, const KvCacheExtras& extras = {});

  const KvGeometry& geometry() const { return g_; }
  int n_layers() const { return g_.n_layers; }
  int n_sequences() const { return g_.n_seqs; }
  int n_kv_heads() const { return g_.n_kv_heads; }
  int head_dim() const { return g_.head_dim; }
  int capacity() const { return g_.capacity; }
  DType value_dtype() const { return value_dtype_; }

  // Slots of one (layer, sequence, kv-head): keys/values [capacity][head_dim], positions [capacity].
  float* keys(int layer, int seq, int kv_head) { return k_.data() + slot0(layer, seq, kv_head) * g_.head_dim; }
  float* values(int layer, int seq, int kv_head) { return v_.data() + slot0(layer, seq, kv_head) * g_.head_dim; }
  int32_t* positions(int layer, int seq, int kv_head) { return pos_.data() + slot0(layer, seq, kv_head); }
  const float* keys(int layer, int seq, int kv_head) const { return k_.data() + slot0(layer, seq, kv_head) * g_.head_dim; }
  const float* values(int layer, int seq, int kv_head) const {
    return v_.data() + slot0(layer, seq, kv_head) * g_.head_dim;
  }
  const int32_t* positions(int layer, int seq, int kv_head) const { return pos_.data() + slot0(layer, seq, kv_head); }
  // The per-slot scores (nullptr when the cache keeps none).
  float* slot_scores(int layer, int seq, int kv_head) {
    return score_.empty() ? nullptr : score_.data() + slot0(layer, seq, kv_head);
  }
  const float* slot_scores(int layer, int seq, int kv_head) const {
    return score_.empty() ? nullptr : score_.data() + slot0(layer, seq, kv_head);
  }
  // [window][group][head_dim]: the queries of the last `window` tokens, ring slot pos % window.
  float* window_queries(int seq, int layer, int kv_head) {
    return window_.data() + g_.window_offset(seq, layer, kv_head);
  }
  int length(int layer, int seq, int kv_head) const { return len_[g_.head(layer, seq, kv_head)]; }
  void set_length(int layer, int seq, int kv_head, int n);

  // Reserves the next slot of (layer, seq, kv_head) for a token at absolute position `pos` and
  // returns its index; throws RuntimeFailure when the slots are full.
  int append_slot(int layer, int seq, int kv_head, int32_t pos);

  // cpu::compact_slots on (layer, seq, kv_head): keeps exactly `keep`, makes them the first slots.
  void compact(int layer, int seq, int kv_head, std::span<const int> keep);

  // Forgets every slot of a sequence (its batch row can take a new sequence).
  void clear_sequence(int seq);

  // Where everything lives, for the forward pass and the compression ops.
  KvStorage<float> storage();

  // Bytes held by live slots (K and V at value_dtype) now; note_peak() records them as a candidate peak
  // (the forward calls it after appending), peak_bytes() the most recorded.
  uint64_t live_bytes() const;
  void note_peak();
  uint64_t peak_bytes() const { return peak_slots_ * bytes_per_slot(); }
  // Bytes held by the live slots of one sequence.
  uint64_t sequence_bytes(int seq) const;
  uint64_t capacity_bytes() const { return storage_bytes(value_dtype_, k_.size() + v_.size()); }
  uint64_t bytes_per_slot() const { return storage_bytes(value_dtype_, uint64_t(2) * g_.head_dim); }

 private:
  size_t slot0(int layer, int seq, int kv_head) const { return g_.head(layer, seq, kv_head) * g_.capacity; }

  KvGeometry g_;
  std::vector<float> k_, v_;
  std::vector<int32_t> pos_;
  std::vector<float> score_, window_, sink_keys_;
  std::vector<int32_t> len_;
  uint64_t peak_slots_ = 0;
  DType value_dtype_ = DType::F32;
  std::vector<uint8_t> flags_;  // compact() scratch, one flag per slot
};

}  // namespace kvb
