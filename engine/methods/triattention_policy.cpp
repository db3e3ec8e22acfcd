#include "engine/methods/triattention_policy.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "kernels/compression_ops.hpp"
#include "profiler/trace.hpp"
#include "util/errors.hpp"

namespace kvb {

TriAttentionPolicy::TriAttentionPolicy(const PolicyConfig& config, const ModelConfig& model)
    : BudgetedPolicy(config), scorer_(model, config.tri.scoring), group_(model.group_size()), n_heads_(model.n_heads) {}

void TriAttentionPolicy::check_prompt(int prompt_tokens, const std::string& sequence_id) const {
  if (!config_.tri.protect_prompt || config_.budget > prompt_tokens + config_.tri.window) return;
  fail_input("--budget {}: triattention pins the prompt of sequence {} ({} tokens){}, so the budget must exceed {} "
             "(or use --tri-protect-prompt false)",
             config_.budget, sequence_id, prompt_tokens,
             config_.tri.window > 0 ? fmt::format(" and a recent window of {}", config_.tri.window) : "",
             prompt_tokens + config_.tri.window);
}

void TriAttentionPolicy::begin_sequence(int seq) {
  if (static_cast<int>(events_.size()) <= seq) events_.resize(seq + 1);
  events_[seq] = 0;
}

void split_pinned_slots(const int32_t* pos, int len, int pinned_below, int recent_from, std::vector<int>& pinned,
                        std::vector<int>& candidates) {
  pinned.clear();
  candidates.clear();
  for (int j = 0; j < len; ++j) (pos[j] < pinned_below || pos[j] >= recent_from ? pinned : candidates).push_back(j);
}

void TriAttentionPolicy::split_slots(const KvCache& cache, int layer, int seq, int kv_head,
                                     const SequenceProgress& progress) {
  split_pinned_slots(cache.positions(layer, seq, kv_head), cache.length(layer, seq, kv_head),
                     config_.tri.protect_prompt ? progress.prompt_tokens : 0, progress.processed - config_.tri.window,
                     pinned_, candidates_);
}

void TriAttentionPolicy::group_scores(const KvCache& cache, int layer, int seq, int kv_head, int64_t t,
                                      uint64_t event, std::vector<float>& out) {
  profiler::Range range("score");
  const int hd = cache.head_dim(), n = static_cast<int>(candidates_.size());
  const float* keys = cache.keys(layer, seq, kv_head);
  const int32_t* pos = cache.positions(layer, seq, kv_head);
  keys_.resize(size_t(n) * hd);
  for (int c = 0; c < n; ++c)
    std::memcpy(keys_.data() + size_t(c) * hd, keys + size_t(candidates_[c]) * hd, sizeof(float) * hd);
  out.assign(n, -std::numeric_limits<float>::infinity());
  raw_.resize(n);
  for (int h = kv_head * group_; h < (kv_head + 1) * group_; ++h) {
    scorer_.score(config_.stats->at(layer, h), t, keys_.data(), n, raw_.data());
    cpu::zscore(raw_.data(), n);
    // Noise keyed by (seed, event, head, position): every sequence draws the same stream, as the
    // HF path re-seeds its generator per generation, whatever the batch or evaluation order.
    const uint64_t head_key = uint64_t(layer) * n_heads_ + h;
    for (int c = 0; c < n; ++c) {
      const float noise = 1e-6f * cpu::hashed_uniform(config_.tri.seed, event, (head_key << 32) | uint32_t(pos[candidates_[c]]));
      out[c] = std::max(out[c], raw_[c] + noise);
    }
  }
}

void TriAttentionPolicy::choose(const std::vector<float>& score) {
  profiler::Range range("select");
  const int free = config_.budget - static_cast<int>(pinned_.size());
  cpu::top_k(score.data(), static_cast<int>(score.size()), free, top_);
  keep_ = pinned_;
  for (int c : top_) keep_.push_back(candidates_[c]);
}

void TriAttentionPolicy::check_same_layout(const KvCache& cache, int layer, int seq, int kv_head, int ref_layer,
                                           int ref_head) {
  const int n = cache.length(ref_layer, seq, ref_head);
  if (cache.length(layer, seq, kv_head) != n ||
      std::memcmp(cache.positions(layer, seq, kv_head), cache.positions(ref_layer, seq, ref_head), sizeof(int32_t) * n) != 0)
    fail_runtime("triattention: the slots of layer {} kv-head {} differ from layer {} kv-head {}; a shared selection "
                 "needs identical layouts",
                 layer, kv_head, ref_layer, ref_head);
}

int64_t TriAttentionPolicy::after_forward(KvCache& cache, int seq, const SequenceProgress& progress) {
  if (progress.prefill) return 0;  // TriAttention never compresses at prefill (spec 3.1)
  const int n = cache.length(0, seq, 0);
  if (n < config_.budget + config_.divide_length) return 0;  // slack trigger, prompt counted
  if (static_cast<int>(events_.size()) <= seq) events_.resize(seq + 1, 0);
  const uint64_t event = events_[seq]++;
  const int64_t t = progress.processed;
  const int layers = cache.n_layers(), kv_heads = cache.n_kv_heads();
  int64_t evicted = 0;
  auto compact = [&](int l, int g) {
    profiler::Range range("compact");
    evicted += cache.length(l, seq, g) - static_cast<int>(keep_.size());
    cache.compact(l, seq, g, keep_);
  };
  switch (config_.tri.selection) {
    case TriSelection::PerLayerHead:
      for (int l = 0; l < layers; ++l) {
        for (int g = 0; g < kv_heads; ++g) {
          split_slots(cache, l, seq, g, progress);
          group_scores(cache, l, seq, g, t, event, agg_);
          choose(agg_);
          compact(l, g);
        }
      }
      break;
    case TriSelection::PerHead:
      // One kept set per KV head: the mean over layers of each layer's group maximum.
      for (int g = 0; g < kv_heads; ++g) {
        split_slots(cache, 0, seq, g, progress);
        agg_.assign(candidates_.size(), 0.0f);
        for (int l = 0; l < layers; ++l) {
          check_same_layout(cache, l, seq, g, 0, g);
          group_scores(cache, l, seq, g, t, event, group_max_);
          for (size_t c = 0; c < agg_.size(); ++c) agg_[c] += group_max_[c] / layers;
        }
        choose(agg_);
        for (int l = 0; l < layers; ++l) compact(l, g);
      }
      break;
    case TriSelection::Global:
      // One kept set for every layer and KV head: the maximum over all query heads.
      split_slots(cache, 0, seq, 0, progress);
      agg_.assign(candidates_.size(), -std::numeric_limits<float>::infinity());
      for (int l = 0; l < layers; ++l) {
        for (int g = 0; g < kv_heads; ++g) {
          check_same_layout(cache, l, seq, g, 0, 0);
          group_scores(cache, l, seq, g, t, event, group_max_);
          for (size_t c = 0; c < agg_.size(); ++c) agg_[c] = std::max(agg_[c], group_max_[c]);
        }
      }
      choose(agg_);
      for (int l = 0; l < layers; ++l)
        for (int g = 0; g < kv_heads; ++g) compact(l, g);
      break;
  }
  return evicted;
}

}  // namespace kvb
