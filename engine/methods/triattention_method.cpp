// TriAttention (shared/spec/triattention.md sections 2-3, the HF research path): when a sequence's
// cache reaches budget + divide_length after a decode step (never at the prefill), every query
// head scores the cached keys of its KV head with the trigonometric series of its calibrated query
// centre (engine/methods/tri_scoring.hpp); scores are z-scored per head over the competing slots,
// get seeded 1e-6 tie-break noise, are reduced by max over each GQA group, and the top slots are
// kept -- per KV head across layers (mean over layers), globally (max over everything), or per
// layer and KV head. The prompt and an optional recent window are pinned and count against the
// budget. The numeric work is the ops' tri_scores (kernels/compression_ops.hpp).
#include <algorithm>
#include <climits>

#include <fmt/format.h>

#include "engine/methods/method_factories.hpp"
#include "engine/methods/tri_scoring.hpp"
#include "util/errors.hpp"

namespace kvb {

namespace {

class TriAttentionMethod : public KvMethod {
 public:
  TriAttentionMethod(const PolicyConfig& config, const ModelConfig& model)
      : KvMethod(config),
        scorer_(model, config.tri.scoring),
        n_layers_(model.n_layers),
        n_heads_(model.n_heads),
        head_dim_(model.head_dim),
        stride_(scorer_.max_queries() * model.head_dim + model.head_dim / 2),
        norm_weights_(size_t(model.n_layers) * model.n_heads * (model.head_dim / 2)) {
    // The norm weights do not depend on time: once, for every head.
    const int pairs = head_dim_ / 2;
    for (int l = 0; l < n_layers_; ++l)
      for (int h = 0; h < n_heads_; ++h)
        scorer_.norm_weights(config_.stats->at(l, h), norm_weights_.data() + (size_t(l) * n_heads_ + h) * pairs);
  }

  void check_prompt(int prompt_tokens, const std::string& sequence_id) const override {
    if (!config_.tri.protect_prompt || config_.budget > prompt_tokens + config_.tri.window) return;
    fail_input("--budget {}: triattention pins the prompt of sequence {} ({} tokens){}, so the budget must exceed {} "
               "(or use --tri-protect-prompt false)",
               config_.budget, sequence_id, prompt_tokens,
               config_.tri.window > 0 ? fmt::format(" and a recent window of {}", config_.tri.window) : "",
               prompt_tokens + config_.tri.window);
  }

 protected:
  void plan(const CompressionOps& ops, const RowProgress& row, int64_t event_index, CompressionEvent& event) override {
    if (row.prefill) return;  // never at the prefill (spec 3.1)
    const int n = ops.length(0, row.seq, 0);
    if (n < config_.budget + config_.divide_length) return;  // slack trigger, prompt counted
    PinRule pins;
    if (config_.tri.protect_prompt) pins.below = row.prompt_tokens;
    pins.from = row.processed - config_.tri.window;
    const KvGeometry& g = ops.geometry();
    auto group = [&](int len) { event.add_group(len, config_.budget, pins, row.processed, uint64_t(event_index)); };
    switch (config_.tri.selection) {
      case TriSelection::PerLayerHead:
        for (int l = 0; l < g.n_layers; ++l)
          for (int h = 0; h < g.n_kv_heads; ++h) {
            group(ops.length(l, row.seq, h));
            event.add_segment(l, row.seq, h);
          }
        break;
      case TriSelection::PerHead:  // one kept set per KV head, shared by the layers
        for (int h = 0; h < g.n_kv_heads; ++h) {
          group(ops.length(0, row.seq, h));
          for (int l = 0; l < g.n_layers; ++l) event.add_segment(l, row.seq, h);
        }
        break;
      case TriSelection::Global:  // one kept set for everything
        group(n);
        for (int l = 0; l < g.n_layers; ++l)
          for (int h = 0; h < g.n_kv_heads; ++h) event.add_segment(l, row.seq, h);
        break;
    }
  }

  void score(CompressionOps& ops, const CompressionEvent& event) override {
    if (config_.tri.selection != TriSelection::PerLayerHead) ops.check_shared_layout();
    // Every head's effective queries and norm weights at each distinct time of the event (the
    // tables of the last call serve again when the times are the same: the runs of one event).
    std::vector<int32_t> times(event.processed.begin(), event.processed.end());
    std::sort(times.begin(), times.end());
    times.erase(std::unique(times.begin(), times.end()), times.end());
    if (times != times_) {
      times_ = std::move(times);
      coefficients_.resize(times_.size() * n_layers_ * n_heads_ * stride_);
      const int pairs = head_dim_ / 2;
      for (size_t t = 0; t < times_.size(); ++t) {
        const TriScorer::Phase phase = scorer_.phase(times_[t]);
        for (int l = 0; l < n_layers_; ++l)
          for (int h = 0; h < n_heads_; ++h) {
            float* at = coefficients_.data() + ((t * n_layers_ + l) * n_heads_ + h) * stride_;
            n_u_ = scorer_.effective_queries(config_.stats->at(l, h), phase, at);
            const float* e = norm_weights_.data() + (size_t(l) * n_heads_ + h) * pairs;
            std::copy(e, e + pairs, at + stride_ - pairs);
          }
      }
    }
    TriEventScoring scoring;
    scoring.times = times_;
    scoring.coefficients = coefficients_;
    scoring.n_u = n_u_;
    scoring.stride = stride_;
    scoring.n_heads = n_heads_;
    scoring.interleaved = scorer_.interleaved();
    scoring.seed = config_.tri.seed;
    // Per KV head: the mean over layers of each layer's group maximum; otherwise the maximum.
    scoring.reduce = config_.tri.selection == TriSelection::PerHead ? GroupReduce::Mean : GroupReduce::Max;
    ops.tri_scores(scoring);
  }

 private:
  TriScorer scorer_;
  int n_layers_, n_heads_, head_dim_;
  size_t stride_;  // floats per head: max_queries x head_dim effective queries, then head_dim / 2 norm weights
  std::vector<float> norm_weights_;  // [layer][head][head_dim / 2]
  std::vector<int32_t> times_;      // the times of the tables below
  std::vector<float> coefficients_;  // [time][layer][head][stride]
  int n_u_ = 0;
};

}  // namespace

std::unique_ptr<KvMethod> make_triattention_method(const PolicyConfig& config, const ModelConfig& model) {
  check_stats_match_model(*config.stats, model, config.stats->source_path);
  return std::make_unique<TriAttentionMethod>(config, model);
}

}  // namespace kvb
