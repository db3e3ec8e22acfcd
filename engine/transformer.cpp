#include "engine/transformer.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "kernels/cpu/parallel.hpp"
#include "kernels/ops.hpp"
#include "profiler/trace.hpp"
#include "util/errors.hpp"

namespace kvb {


Transformer::Transformer(const Model& model, int max_batch_tokens)
    : model_(model), cfg_(model.config), rope_(model.config), max_tokens_(max_batch_tokens) {
  const size_t t = static_cast<size_t>(max_batch_tokens);
  x_.resize(t * cfg_.dim);
  xb_.resize(t * std::max(cfg_.dim, cfg_.q_dim()));
  q_.resize(t * cfg_.q_dim());
  k_.resize(t * cfg_.kv_dim());
  v_.resize(t * cfg_.kv_dim());
  att_out_.resize(t * cfg_.q_dim());
  hb_.resize(t * cfg_.ffn_dim);
  hb2_.resize(t * cfg_.ffn_dim);
}

void Transformer::attention(std::span<const BatchToken> batch, int layer, KvCache& cache,
                            const ForwardRecording<KvCache>& record) {
  const int n_tok = static_cast<int>(batch.size());
  const int hd = cfg_.head_dim, n_heads = cfg_.n_heads, group = cfg_.group_size(), n_kv = cfg_.n_kv_heads;
  const size_t per_thread = static_cast<size_t>(cache.capacity()) * group;
  if (scores_.size() < per_thread * cpu::ThreadPool::instance().threads()) scores_.resize(per_thread * cpu::ThreadPool::instance().threads());
  int64_t work = 0;
  for (const BatchToken& t : batch) work += int64_t(cache.length(layer, t.seq, 0)) * hd * n_heads;

  // Recording the weights sums them across heads: serial, in (token, head) order.
  const bool weights_recorded = record.slot_attention || record.retained_mass_of;
  // One task per (token, KV head): the group's query heads share its keys and values.
  cpu::parallel_for(n_tok * n_kv, work >= (int64_t(1) << 16) && !weights_recorded, [&](int task) {
    const int i = task / n_kv, kvh = task % n_kv;
    const BatchToken& tok = batch[i];
    const float* q = q_.data() + size_t(i) * cfg_.q_dim() + size_t(kvh) * group * hd;
    const int32_t* pos = cache.positions(layer, tok.seq, kvh);
    const int len = cache.length(layer, tok.seq, kvh);
    float* scores = scores_.data() + per_thread * cpu::ThreadPool::current_index();
    float* out = att_out_.data() + size_t(i) * cfg_.q_dim() + size_t(kvh) * group * hd;
    // Causality is by absolute position, not slot index (slots may be reordered by eviction).
    cpu::attention_group(out, scores, q, group, cache.keys(layer, tok.seq, kvh), cache.values(layer, tok.seq, kvh), pos,
                         len, tok.pos, hd);
    for (int g = 0; g < group; ++g) {
      const float* score = scores + size_t(g) * len;
      if (record.slot_attention) {
        float* slot_score = cache.slot_scores(layer, tok.seq, kvh);
        for (int j = 0; j < len; ++j) slot_score[j] += score[j];
      }
      if (record.retained_mass_of) retained_.add(layer, tok.seq, kvh, score, pos, len);
    }
  });
}

void Transformer::forward(std::span<const BatchToken> batch, KvCache& cache, float* logits,
                          const ForwardRecording<KvCache>& record) {
  const int n = static_cast<int>(batch.size());
  if (n == 0) return;
  if (n > max_tokens_) fail_runtime("forward: batch of {} tokens exceeds the {} the engine was sized for", n, max_tokens_);
  const KvGeometry& geo = cache.geometry();
  if (record.window_queries && geo.window == 0) fail_runtime("forward: window queries recorded into a cache without a window");
  if (record.slot_attention && !cache.slot_scores(0, 0, 0)) fail_runtime("forward: slot attention recorded into a cache without slot scores");
  if (record.retained_mass_of) {
    // The positions the method's cache holds now, for the sequences of this batch.
    rows_.clear();
    for (const BatchToken& t : batch)
      if (rows_.empty() || rows_.back() != t.seq) rows_.push_back(t.seq);
    retained_.snapshot(*record.retained_mass_of, rows_);
  }
  const ModelWeights& w = model_.weights;
  const int dim = cfg_.dim, qd = cfg_.q_dim(), kvd = cfg_.kv_dim(), hd = cfg_.head_dim, ffn = cfg_.ffn_dim;

  for (int i = 0; i < n; ++i) {
    const int token = batch[i].token;
    if (token < 0 || token >= cfg_.vocab_size)
      fail_input("token id {} is outside the model's vocabulary of {}", token, cfg_.vocab_size);
    cpu::dequantize_row(x_.data() + size_t(i) * dim, w.token_embedding.matrix(), token);
  }

  for (int l = 0; l < cfg_.n_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    // Attention block.
    std::optional<profiler::Range> range(std::in_place, "attention");
    cpu::rmsnorm(xb_.data(), x_.data(), lw.attn_norm.f32(), n, dim, cfg_.norm_eps);
    cpu::matmul(q_.data(), xb_.data(), lw.wq.matrix(), n);
    cpu::matmul(k_.data(), xb_.data(), lw.wk.matrix(), n);
    cpu::matmul(v_.data(), xb_.data(), lw.wv.matrix(), n);
    if (cfg_.qkv_bias) {
      cpu::add_bias(q_.data(), lw.bq.f32(), n, qd);
      cpu::add_bias(k_.data(), lw.bk.f32(), n, kvd);
      cpu::add_bias(v_.data(), lw.bv.f32(), n, kvd);
    }
    if (cfg_.qk_norm) {  // Qwen3: per-head RMSNorm before RoPE
      cpu::rmsnorm(q_.data(), q_.data(), lw.q_norm.f32(), n * cfg_.n_heads, hd, cfg_.norm_eps);
      cpu::rmsnorm(k_.data(), k_.data(), lw.k_norm.f32(), n * cfg_.n_kv_heads, hd, cfg_.norm_eps);
    }
    for (int i = 0; i < n; ++i) {
      const BatchToken& t = batch[i];
      float* q = q_.data() + size_t(i) * qd;
      float* k = k_.data() + size_t(i) * kvd;
      if (record.queries) record.queries->on_query(l, t.seq, t.pos, q);
      rope_.apply(q, cfg_.n_heads, t.pos);
      if (record.window_queries) {  // ring slot pos % window of every KV head's group
        const size_t group_floats = size_t(geo.group) * hd;
        for (int h = 0; h < cfg_.n_kv_heads; ++h)
          std::memcpy(cache.window_queries(t.seq, l, h) + size_t(t.pos % geo.window) * group_floats,
                      q + size_t(h) * group_floats, sizeof(float) * group_floats);
      }
      rope_.apply(k, cfg_.n_kv_heads, t.pos);
      const float* v = v_.data() + size_t(i) * kvd;
      for (int h = 0; h < cfg_.n_kv_heads; ++h) {
        const int slot = cache.append_slot(l, t.seq, h, t.pos);
        float* kd = cache.keys(l, t.seq, h) + size_t(slot) * hd;
        float* vd = cache.values(l, t.seq, h) + size_t(slot) * hd;
        std::memcpy(kd, k + size_t(h) * hd, sizeof(float) * hd);
        std::memcpy(vd, v + size_t(h) * hd, sizeof(float) * hd);
        round_to(kd, hd, cache.value_dtype());
        round_to(vd, hd, cache.value_dtype());
      }
    }
    if (l == cfg_.n_layers - 1) cache.note_peak();  // every token of the batch is in the cache now
    attention(batch, l, cache, record);
    cpu::matmul(xb_.data(), att_out_.data(), lw.wo.matrix(), n);
    for (size_t i = 0; i < size_t(n) * dim; ++i) x_[i] += xb_[i];

    // Feed-forward block (SwiGLU).
    range.emplace("mlp");
    cpu::rmsnorm(xb_.data(), x_.data(), lw.ffn_norm.f32(), n, dim, cfg_.norm_eps);
    cpu::matmul(hb_.data(), xb_.data(), lw.w_gate.matrix(), n);
    cpu::matmul(hb2_.data(), xb_.data(), lw.w_up.matrix(), n);
    cpu::swiglu(hb_.data(), hb2_.data(), int64_t(n) * ffn);
    cpu::matmul(xb_.data(), hb_.data(), lw.w_down.matrix(), n);
    for (size_t i = 0; i < size_t(n) * dim; ++i) x_[i] += xb_[i];
  }

  // Final norm and classifier, only for the rows whose logits are wanted.
  profiler::Range range("logits");
  int rows = 0;
  for (int i = 0; i < n; ++i) {
    if (!batch[i].want_logits) continue;
    cpu::rmsnorm(xb_.data() + size_t(rows) * dim, x_.data() + size_t(i) * dim, w.final_norm.f32(), 1, dim,
                 cfg_.norm_eps);
    ++rows;
  }
  if (rows > 0) cpu::matmul(logits, xb_.data(), w.lm_head().matrix(), rows);
}

std::vector<float> compute_all_logits(const Model& model, std::span<const int> tokens) {
  const int n = static_cast<int>(tokens.size());
  KvCache cache(model.config, 1, std::max(n, 1));
  Transformer tf(model, std::max(n, 1));
  std::vector<BatchToken> batch(n);
  for (int i = 0; i < n; ++i) batch[i] = BatchToken{0, i, tokens[i], true};
  std::vector<float> logits(size_t(n) * model.config.vocab_size);
  tf.forward(batch, cache, logits.data());
  return logits;
}

}  // namespace kvb
