#include "engine/kv_cache.hpp"

#include "util/errors.hpp"

namespace kvb {

KvCache::KvCache(const ModelConfig& c, int n_sequences, int capacity)
    : n_layers_(c.n_layers), n_seqs_(n_sequences), n_kv_heads_(c.n_kv_heads), head_dim_(c.head_dim), capacity_(capacity) {
  const size_t heads = size_t(n_layers_) * n_seqs_ * n_kv_heads_;
  k_.assign(heads * capacity_ * head_dim_, 0.0f);
  v_.assign(heads * capacity_ * head_dim_, 0.0f);
  pos_.assign(heads * capacity_, -1);
  len_.assign(heads, 0);
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
  len_[i] = slot + 1;
  peak_slots_ = std::max(peak_slots_, ++live_slots_);
  return slot;
}

void KvCache::clear_sequence(int seq) {
  for (int l = 0; l < n_layers_; ++l)
    for (int h = 0; h < n_kv_heads_; ++h) set_length(l, seq, h, 0);
}

}  // namespace kvb
