#include "engine/kv_cache.hpp"

#include <cstring>

#include "util/errors.hpp"

namespace kvb {

KvCache::KvCache(const ModelConfig& c, int n_sequences, int capacity)
    : n_layers_(c.n_layers), n_seqs_(n_sequences), n_kv_heads_(c.n_kv_heads), head_dim_(c.head_dim), capacity_(capacity) {
  const size_t heads = size_t(n_layers_) * n_seqs_ * n_kv_heads_;
  k_.assign(heads * capacity_ * head_dim_, 0.0f);
  v_.assign(heads * capacity_ * head_dim_, 0.0f);
  pos_.assign(heads * capacity_, -1);
  score_.assign(heads * capacity_, 0.0f);
  len_.assign(heads, 0);
}

uint64_t KvCache::sequence_bytes(int seq) const {
  uint64_t slots = 0;
  for (int l = 0; l < n_layers_; ++l)
    for (int h = 0; h < n_kv_heads_; ++h) slots += len_[index(l, seq, h)];
  return slots * bytes_per_slot();
}

void KvCache::set_length(int layer, int seq, int kv_head, int n) {
  int32_t& len = len_[index(layer, seq, kv_head)];
  if (n < 0 || n > capacity_) fail_runtime("KV cache: length {} outside [0, {}]", n, capacity_);
  live_slots_ = live_slots_ - len + n;
  len = n;
  peak_slots_ = std::max(peak_slots_, live_slots_);
}

int KvCache::append_slot(int layer, int seq, int kv_head, int32_t pos) {
  const size_t i = index(layer, seq, kv_head);
  const int slot = len_[i];
  if (slot >= capacity_)
    fail_runtime("KV cache full: layer {} sequence {} kv-head {} already holds {} slots", layer, seq, kv_head, capacity_);
  pos_[i * capacity_ + slot] = pos;
  score_[i * capacity_ + slot] = 0.0f;
  len_[i] = slot + 1;
  peak_slots_ = std::max(peak_slots_, ++live_slots_);
  return slot;
}

void KvCache::compact(int layer, int seq, int kv_head, std::span<const int> keep) {
  const int len = length(layer, seq, kv_head);
  const int new_len = static_cast<int>(keep.size());
  kept_.assign(static_cast<size_t>(len), 0);
  for (int idx : keep) {
    if (idx < 0 || idx >= len || kept_[idx])
      fail_runtime("KV compaction: slot {} is out of range [0, {}) or listed twice", idx, len);
    kept_[idx] = 1;
  }
  float* k = keys(layer, seq, kv_head);
  float* v = values(layer, seq, kv_head);
  int32_t* p = positions(layer, seq, kv_head);
  float* score = slot_scores(layer, seq, kv_head);
  const size_t row = sizeof(float) * head_dim_;
  // Pair the holes below new_len with the kept slots at or above it, both in ascending order.
  int hole = 0;
  for (int src = new_len; src < len; ++src) {
    if (!kept_[src]) continue;
    while (kept_[hole]) ++hole;  // a hole exists: kept slots above new_len equal holes below it
    std::memcpy(k + size_t(hole) * head_dim_, k + size_t(src) * head_dim_, row);
    std::memcpy(v + size_t(hole) * head_dim_, v + size_t(src) * head_dim_, row);
    p[hole] = p[src];
    score[hole] = score[src];
    kept_[hole] = 1;
  }
  set_length(layer, seq, kv_head, new_len);
}

void KvCache::clear_sequence(int seq) {
  for (int l = 0; l < n_layers_; ++l)
    for (int h = 0; h < n_kv_heads_; ++h) set_length(l, seq, h, 0);
}

}  // namespace kvb
