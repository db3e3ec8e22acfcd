#include "engine/cuda_layout.hpp"

#include <algorithm>

#include "engine/methods/tri_scoring.hpp"
#include "kernels/attention_workspace.hpp"

namespace kvb {

namespace {

// Segments one compression run holds at most, whatever the batch: enough to batch the events of
// a few dozen sequences of an 8B model, while the scratch stays a small share of the KV pool.
constexpr int kEventSegments = 4096;
// The TriAttention coefficient tables uploaded at once (several times of one event take turns).
constexpr size_t kCoefficientBytes = 64ull << 20;

}  // namespace

void lay_out_cuda_engine(DeviceCarver& a, const ModelConfig& c, bool tied, const CudaEngineShape& shape,
                         CudaEngineLayout& out) {
  const size_t dim = c.dim, qd = c.q_dim(), kvd = c.kv_dim(), hd = c.head_dim, ffn = c.ffn_dim;
  const size_t vocab = c.vocab_size, t = shape.max_batch_tokens, rows = shape.max_sequences;
  out.layers.assign(c.n_layers, CudaLayerWeights{});
  out.embedding = a.take<bf16>(vocab * dim);
  out.lm_head = tied ? out.embedding : a.take<bf16>(vocab * dim);
  out.final_norm = a.take<float>(dim);
  out.inv_freq = a.take<double>(hd / 2);
  for (CudaLayerWeights& l : out.layers) {
    l.wq = a.take<bf16>(qd * dim);
    l.wk = a.take<bf16>(kvd * dim);
    l.wv = a.take<bf16>(kvd * dim);
    l.wo = a.take<bf16>(dim * qd);
    l.w_gate = a.take<bf16>(ffn * dim);
    l.w_up = a.take<bf16>(ffn * dim);
    l.w_down = a.take<bf16>(dim * ffn);
    l.attn_norm = a.take<float>(dim);
    l.ffn_norm = a.take<float>(dim);
    l.bq = c.qkv_bias ? a.take<float>(qd) : nullptr;
    l.bk = c.qkv_bias ? a.take<float>(kvd) : nullptr;
    l.bv = c.qkv_bias ? a.take<float>(kvd) : nullptr;
    l.q_norm = c.qk_norm ? a.take<float>(hd) : nullptr;
    l.k_norm = c.qk_norm ? a.take<float>(hd) : nullptr;
  }
  out.weight_bytes = a.used();
  out.kv_pool = a.take<uint8_t>(shape.kv_pool_bytes);
  out.logits[0] = a.take<float>(rows * vocab);
  out.logits[1] = a.take<float>(rows * vocab);
  out.held_words = (shape.max_capacity + 31) / 32;
  out.held_bits = a.take<uint32_t>(rows * c.n_kv_heads * out.held_words);
  out.retained_mass = a.take<float>(rows);
  out.small_ids = a.take<int32_t>(rows);
  out.small_results = a.take<uint8_t>(rows * kLogitStatsBytes);
  out.x = a.take<float>(t * dim);
  out.xb = a.take<float>(t * std::max(dim, qd));
  out.q = a.take<float>(t * qd);
  out.k = a.take<float>(t * kvd);
  out.v = a.take<float>(t * kvd);
  out.att = a.take<float>(t * qd);
  out.hb = a.take<float>(t * ffn);
  out.hb2 = a.take<float>(t * ffn);
  out.gemm_in = a.take<bf16>(t * std::max({dim, qd, ffn}));
  out.attention_ws = a.take<float>(attention_workspace_floats(shape.max_batch_tokens, c.n_heads, c.head_dim, shape.max_capacity));
  out.tokens = a.take<int32_t>(t);
  out.seqs = a.take<int32_t>(t);
  out.pos = a.take<int32_t>(t);
  out.recorded = a.take<int32_t>(t);
  lay_out_compression_scratch(a, shape.compression, out.compression);
  out.total_bytes = a.used();
}

uint64_t cuda_engine_bytes(const ModelConfig& config, bool tied, const CudaEngineShape& shape) {
  DeviceCarver counter;
  CudaEngineLayout layout;
  lay_out_cuda_engine(counter, config, tied, shape, layout);
  return layout.total_bytes;
}

void lay_out_cuda_cache(DeviceCarver& a, const ModelConfig& c, int n_seqs, int capacity, const KvCacheExtras& extras,
                        KvStorage<bf16>& out) {
  out.geometry = kv_geometry(c, n_seqs, capacity, extras);
  const KvGeometry& g = out.geometry;
  out.keys = a.take<bf16>(g.slots() * g.head_dim);
  out.values = a.take<bf16>(g.slots() * g.head_dim);
  out.positions = a.take<int32_t>(g.slots());
  out.lengths = a.take<int32_t>(g.heads());
  out.slot_scores = extras.slot_scores ? a.take<float>(g.slots()) : nullptr;
  out.window_queries = extras.window > 0 ? a.take<float>(g.window_floats()) : nullptr;
  out.sink_keys = extras.sinks > 0 ? a.take<bf16>(g.sink_values()) : nullptr;
  out.host_lengths = nullptr;  // the cache object's own
}

uint64_t cuda_cache_bytes(const ModelConfig& config, int n_seqs, int capacity, const KvCacheExtras& extras) {
  DeviceCarver counter;
  KvStorage<bf16> storage;
  lay_out_cuda_cache(counter, config, n_seqs, capacity, extras, storage);
  return counter.used();
}

CompressionShape compression_shape(const ModelConfig& c, const std::vector<PolicyConfig>& policies, int max_sequences,
                                   int capacity) {
  CompressionShape s;
  bool compresses = false;
  size_t tri_stride = 0;
  for (const PolicyConfig& p : policies) {
    if (!traits(p.method).budgeted) continue;
    compresses = true;
    if (traits(p.method).query_window) s.window = std::max(s.window, p.observation_window);
    if (p.method == Method::RKV) s.redundancy = true;
    if (traits(p.method).needs_stats)
      tri_stride = std::max(tri_stride, size_t(TriScorer(c, p.tri.scoring).max_queries()) * c.head_dim + c.head_dim / 2);
  }
  if (!compresses) return s;
  s.capacity = capacity;
  s.group = c.group_size();
  s.head_dim = c.head_dim;
  const int all = max_sequences * c.n_layers * c.n_kv_heads;
  s.max_segments = std::min(all, std::max(c.n_layers * c.n_kv_heads, kEventSegments));
  s.batch_segments = all;
  if (tri_stride > 0) {
    s.coefficient_floats_per_row = size_t(c.n_layers) * c.n_heads * tri_stride;
    s.coefficient_rows = static_cast<int>(
        std::clamp<size_t>(kCoefficientBytes / (s.coefficient_floats_per_row * sizeof(float)), 1, size_t(max_sequences)));
  }
  return s;
}

}  // namespace kvb
