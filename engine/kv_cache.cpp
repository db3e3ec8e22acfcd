#include "engine/kv_cache.hpp"

#include <algorithm>
#include <numeric>

#include "kernels/cpu/compression_cpu.hpp"
#include "util/errors.hpp"

namespace kvb {

KvGeometry kv_geometry(const ModelConfig& c, int n_sequences, int capacity, const KvCacheExtras& extras) {
  KvGeometry g;
  g.n_layers = c.n_layers;
  g.n_seqs = n_sequences;
  g.n_kv_heads = c.n_kv_heads;
  g.capacity = capacity;
  g.head_dim = c.head_dim;
  g.group = c.group_size();
  g.window = extras.window;
  g.sinks = extras.sinks;
  return g;
}

KvCache::KvCache(const ModelConfig& c, int n_sequences, int capacity, const KvCacheExtras& extras)
    : g_(kv_geometry(c, n_sequences, capacity, extras)), value_dtype_(extras.value_dtype) {
  k_.assign(g_.slots() * g_.head_dim, 0.0f);
  v_.assign(g_.slots() * g_.head_dim, 0.0f);
  pos_.assign(g_.slots(), -1);
  if (extras.slot_scores) score_.assign(g_.slots(), 0.0f);
  window_.assign(g_.window_floats(), 0.0f);
  sink_keys_.assign(g_.sink_values(), 0.0f);
  len_.assign(g_.heads(), 0);
}

KvStorage<float> KvCache::storage() {
  KvStorage<float> s;
  s.geometry = g_;
  s.keys = k_.data();
  s.values = v_.data();
  s.positions = pos_.data();
  s.slot_scores = score_.empty() ? nullptr : score_.data();
  s.window_queries = window_.empty() ? nullptr : window_.data();
  s.sink_keys = sink_keys_.empty() ? nullptr : sink_keys_.data();
  s.lengths = len_.data();
  s.host_lengths = len_.data();
  return s;
}

uint64_t KvCache::live_bytes() const { return std::accumulate(len_.begin(), len_.end(), uint64_t(0)) * bytes_per_slot(); }

void KvCache::note_peak() { peak_slots_ = std::max<uint64_t>(peak_slots_, live_bytes() / bytes_per_slot()); }

uint64_t KvCache::sequence_bytes(int seq) const {
  uint64_t slots = 0;
  for (int l = 0; l < g_.n_layers; ++l)
    for (int h = 0; h < g_.n_kv_heads; ++h) slots += length(l, seq, h);
  return slots * bytes_per_slot();
}

void KvCache::set_length(int layer, int seq, int kv_head, int n) {
  if (n < 0 || n > g_.capacity) fail_runtime("KV cache: length {} outside [0, {}]", n, g_.capacity);
  len_[g_.head(layer, seq, kv_head)] = n;
}

int KvCache::append_slot(int layer, int seq, int kv_head, int32_t pos) {
  const size_t i = g_.head(layer, seq, kv_head);
  const int slot = len_[i];
  if (slot >= g_.capacity)
    fail_runtime("KV cache full: layer {} sequence {} kv-head {} already holds {} slots", layer, seq, kv_head, g_.capacity);
  pos_[i * g_.capacity + slot] = pos;
  if (!score_.empty()) score_[i * g_.capacity + slot] = 0.0f;
  len_[i] = slot + 1;
  return slot;
}

void KvCache::compact(int layer, int seq, int kv_head, std::span<const int> keep) {
  cpu::compact_slots(storage(), g_.head(layer, seq, kv_head), keep, flags_);
}

void KvCache::clear_sequence(int seq) {
  for (int l = 0; l < g_.n_layers; ++l)
    for (int h = 0; h < g_.n_kv_heads; ++h) set_length(l, seq, h, 0);
}

}  // namespace kvb
