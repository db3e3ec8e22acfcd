#pragma once
// The KV cache of a batch of sequences, laid out per (layer, sequence, kv-head) with an explicit
// length and the absolute position of every slot (docs/design.md, "KV layout"). Slot order carries
// no meaning: anything that needs "the most recent tokens" asks pos, never the slot index, so a
// compression method can evict slots and compact the rest.
#include <cstdint>
#include <span>
#include <vector>

#include "engine/model_config.hpp"

namespace kvb {

class KvCache {
 public:
  KvCache(const ModelConfig& config, int n_sequences, int capacity);

  int n_layers() const { return n_layers_; }
  int n_sequences() const { return n_seqs_; }
  int n_kv_heads() const { return n_kv_heads_; }
  int head_dim() const { return head_dim_; }
  int capacity() const { return capacity_; }

  // Slots of one (layer, sequence, kv-head): keys/values [capacity][head_dim], positions [capacity].
  float* keys(int layer, int seq, int kv_head) { return k_.data() + head_offset(layer, seq, kv_head) * head_dim_; }
  float* values(int layer, int seq, int kv_head) { return v_.data() + head_offset(layer, seq, kv_head) * head_dim_; }
  int32_t* positions(int layer, int seq, int kv_head) { return pos_.data() + head_offset(layer, seq, kv_head); }
  const float* keys(int layer, int seq, int kv_head) const { return k_.data() + head_offset(layer, seq, kv_head) * head_dim_; }
  const float* values(int layer, int seq, int kv_head) const { return v_.data() + head_offset(layer, seq, kv_head) * head_dim_; }
  const int32_t* positions(int layer, int seq, int kv_head) const { return pos_.data() + head_offset(layer, seq, kv_head); }
  // A per-slot score a method may accumulate (H2O's attention mass); 0 for a new slot, moved with
  // its slot by compact().
  float* slot_scores(int layer, int seq, int kv_head) { return score_.data() + head_offset(layer, seq, kv_head); }
  const float* slot_scores(int layer, int seq, int kv_head) const { return score_.data() + head_offset(layer, seq, kv_head); }
  int length(int layer, int seq, int kv_head) const { return len_[index(layer, seq, kv_head)]; }
  void set_length(int layer, int seq, int kv_head, int n);

  // Reserves the next slot of (layer, seq, kv_head) for a token at absolute position `pos` and
  // returns its index; throws RuntimeFailure when the slots are full.
  int append_slot(int layer, int seq, int kv_head, int32_t pos);

  // Keeps exactly the slots `keep` (distinct indices below the current length) of (layer, seq,
  // kv_head) and makes them the first keep.size() slots: kept slots already below the new length
  // stay where they are, kept slots above it fill the evicted holes below it, positions move with
  // their keys and values (at most length - keep.size() slot moves). Throws RuntimeFailure on an
  // index that is out of range or repeated.
  void compact(int layer, int seq, int kv_head, std::span<const int> keep);

  // Forgets every slot of a sequence (its batch row can take a new sequence).
  void clear_sequence(int seq);

  // Bytes held by live slots (K and V, fp32) now, and the most ever held.
  uint64_t live_bytes() const { return live_slots_ * bytes_per_slot(); }
  uint64_t peak_bytes() const { return peak_slots_ * bytes_per_slot(); }
  // Bytes held by the live slots of one sequence.
  uint64_t sequence_bytes(int seq) const;
  uint64_t capacity_bytes() const { return uint64_t(k_.size() + v_.size()) * sizeof(float); }
  uint64_t bytes_per_slot() const { return uint64_t(2) * head_dim_ * sizeof(float); }

 private:
  size_t index(int layer, int seq, int kv_head) const {
    return (size_t(layer) * n_seqs_ + seq) * n_kv_heads_ + kv_head;
  }
  size_t head_offset(int layer, int seq, int kv_head) const { return index(layer, seq, kv_head) * capacity_; }

  int n_layers_, n_seqs_, n_kv_heads_, head_dim_, capacity_;
  std::vector<float> k_, v_;
  std::vector<int32_t> pos_;
  std::vector<float> score_;
  std::vector<int32_t> len_;
  uint64_t live_slots_ = 0, peak_slots_ = 0;
  std::vector<uint8_t> kept_;  // compact() scratch, one flag per slot
};

}  // namespace kvb
