#include "engine/methods/window_policy.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <optional>

#include "kernels/compression_ops.hpp"
#include "profiler/trace.hpp"

namespace kvb {

bool window_compression_due(const SequenceProgress& progress, int divide_length) {
  const int t = progress.processed;
  return progress.prefill || (t > 1 && (t - 1) % divide_length == 0);
}

WindowPolicy::WindowPolicy(const PolicyConfig& config, const ModelConfig& model)
    : BudgetedPolicy(config),
      redundancy_(config.method == "rkv"),
      n_layers_(model.n_layers),
      n_heads_(model.n_heads),
      head_dim_(model.head_dim),
      group_(model.group_size()),
      window_(config.observation_window) {}

float* WindowPolicy::window_queries(int seq, int layer, int pos) {
  const size_t token = size_t(n_heads_) * head_dim_;
  const size_t need = (size_t(seq + 1) * n_layers_) * window_ * token;
  if (queries_.size() < need) queries_.resize(need);
  return queries_.data() + ((size_t(seq) * n_layers_ + layer) * window_ + pos % window_) * token;
}

void WindowPolicy::on_query(int layer, int seq, int pos, const float*, const float* rotated) {
  std::memcpy(window_queries(seq, layer, pos), rotated, sizeof(float) * n_heads_ * head_dim_);
}

void WindowPolicy::select(const KvCache& cache, int layer, int seq, int kv_head, int processed) {
  std::optional<profiler::Range> range(std::in_place, "score");
  const int n = cache.length(layer, seq, kv_head), hd = head_dim_, older = n - window_;
  const int32_t* pos = cache.positions(layer, seq, kv_head);
  // Scores and pooling run over positions in order; the newest `window_` slots are the window's.
  slots_by_position(pos, n, order_);
  keys_.resize(size_t(n) * hd);
  for (int i = 0; i < n; ++i)
    std::memcpy(keys_.data() + size_t(i) * hd, cache.keys(layer, seq, kv_head) + size_t(order_[i]) * hd, sizeof(float) * hd);
  group_queries_.resize(size_t(window_) * group_ * hd);
  for (int w = 0; w < window_; ++w) {
    const float* q = window_queries(seq, layer, processed - window_ + w) + size_t(kv_head) * group_ * hd;
    std::memcpy(group_queries_.data() + size_t(w) * group_ * hd, q, sizeof(float) * group_ * hd);
  }
  attention_.resize(older);
  pooled_.resize(older);
  cpu::window_attention(attention_.data(), group_queries_.data(), window_, group_, keys_.data(), older, hd);
  cpu::max_pool(pooled_.data(), attention_.data(), older, config_.pool_radius);
  const float* score = pooled_.data();
  if (redundancy_) {
    redundant_.resize(n);
    cpu::key_redundancy(redundant_.data(), keys_.data(), n, hd, config_.rkv_threshold);
    score_.resize(older);
    const float lambda = config_.rkv_lambda;
    for (int i = 0; i < older; ++i) score_[i] = lambda * pooled_[i] - (1.0f - lambda) * redundant_[i];
    score = score_.data();
  }
  range.emplace("select");
  cpu::top_k(score, older, config_.budget - window_, top_);
  keep_.clear();
  for (int i : top_) keep_.push_back(order_[i]);
  keep_.insert(keep_.end(), order_.begin() + older, order_.end());
}

int64_t WindowPolicy::after_forward(KvCache& cache, int seq, const SequenceProgress& progress) {
  const int t = progress.processed;
  if (!window_compression_due(progress, config_.divide_length)) return 0;
  int64_t evicted = 0;
  for (int l = 0; l < cache.n_layers(); ++l) {
    for (int g = 0; g < cache.n_kv_heads(); ++g) {
      const int n = cache.length(l, seq, g);
      if (n <= config_.budget) continue;
      select(cache, l, seq, g, t);
      profiler::Range range("compact");
      cache.compact(l, seq, g, keep_);
      evicted += n - static_cast<int>(keep_.size());
    }
  }
  return evicted;
}

}  // namespace kvb
