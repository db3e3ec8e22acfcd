#include "engine/methods/kv_policy.hpp"

#include <algorithm>
#include <numeric>

#include "engine/methods/h2o_policy.hpp"
#include "engine/methods/streaming_policy.hpp"
#include "engine/methods/triattention_policy.hpp"
#include "engine/methods/window_policy.hpp"
#include "profiler/trace.hpp"
#include "util/errors.hpp"

namespace kvb {

namespace {

class FullPolicy : public KvPolicy {
 public:
  int capacity(int prompt_tokens, int total_tokens) const override {
    return cache_capacity(PolicyConfig{}, prompt_tokens, total_tokens);
  }
  int64_t after_forward(KvCache&, int, const SequenceProgress&) override { return 0; }
};

}  // namespace

int cache_capacity(const PolicyConfig& c, int prompt_tokens, int total_tokens) {
  if (c.method == "full" || c.budget <= 0) return total_tokens;
  // TriAttention never compresses at the prefill: an unpinned prompt longer than the trigger is
  // still whole when the first decode token joins it.
  const int held_prompt = c.method == "triattention" ? prompt_tokens + 1 : prompt_tokens;
  return std::min(total_tokens, std::max(held_prompt, c.budget + c.divide_length));
}

int BudgetedPolicy::capacity(int prompt_tokens, int total_tokens) const {
  return cache_capacity(config_, prompt_tokens, total_tokens);
}

int64_t SlackPolicy::after_forward(KvCache& cache, int seq, const SequenceProgress&) {
  int64_t evicted = 0;
  for (int l = 0; l < cache.n_layers(); ++l) {
    for (int h = 0; h < cache.n_kv_heads(); ++h) {
      const int len = cache.length(l, seq, h);
      if (len < config_.budget + config_.divide_length) continue;
      keep_.clear();
      {
        profiler::Range range("select");
        select(cache, l, seq, h, len, keep_);
      }
      profiler::Range range("compact");
      cache.compact(l, seq, h, keep_);
      evicted += len - static_cast<int>(keep_.size());
    }
  }
  return evicted;
}

void slots_by_position(const int32_t* pos, int len, std::vector<int>& order) {
  order.resize(len);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return pos[a] < pos[b]; });
}

const std::vector<std::string>& known_methods() {
  static const std::vector<std::string> methods = {"full", "triattention", "snapkv", "rkv", "streaming", "h2o"};
  return methods;
}

void check_policy(const PolicyConfig& c) {
  const auto& known = known_methods();
  if (std::find(known.begin(), known.end(), c.method) == known.end())
    fail_input("--method {}: unknown method (known: full, triattention, snapkv, rkv, streaming, h2o)", c.method);
  if (c.method == "full") return;
  if (c.budget <= 0) fail_input("--budget: method {} needs a positive token budget (a comma list, e.g. --budget 512,1024)", c.method);
  if (c.divide_length <= 0) fail_input("--divide-length {}: must be positive", c.divide_length);
  if (c.method == "streaming" && c.budget <= c.sink_tokens)
    fail_input("--budget {}: streaming keeps {} sink tokens plus a recent window, so the budget must exceed {}", c.budget,
               c.sink_tokens, c.sink_tokens);
  if (c.method == "h2o" && c.budget < 2)
    fail_input("--budget {}: h2o splits the budget between recent and heavy-hitter tokens; use at least 2", c.budget);
  if ((c.method == "snapkv" || c.method == "rkv") && c.budget <= c.observation_window)
    fail_input("--budget {}: {} always keeps its observation window of {} tokens, so the budget must exceed {}", c.budget,
               c.method, c.observation_window, c.observation_window);
  if (c.method == "triattention") {
    if (c.tri.window < 0 || c.tri.window >= c.budget)
      fail_input("--tri-window {}: the recent window must be at least 0 and below the budget ({})", c.tri.window, c.budget);
    if (c.tri.scoring.offset_max < 1) fail_input("--tri-offset-max {}: must be at least 1", c.tri.scoring.offset_max);
    if (!c.stats)
      fail_input("--method triattention needs calibrated query statistics: pass --stats FILE (an official TriAttention "
                 ".pt file, one written by `kvbench calibrate --model M --text FILE --out STATS`, or self to calibrate on the "
                 "run's own tokens)");
  }
}

std::unique_ptr<KvPolicy> make_policy(const PolicyConfig& c, const ModelConfig& model) {
  check_policy(c);
  if (c.method == "full") return std::make_unique<FullPolicy>();
  if (c.method == "streaming") return std::make_unique<StreamingPolicy>(c);
  if (c.method == "h2o") return std::make_unique<H2oPolicy>(c);
  if (c.method == "snapkv" || c.method == "rkv") return std::make_unique<WindowPolicy>(c, model);
  check_stats_match_model(*c.stats, model, c.stats->source_path);
  return std::make_unique<TriAttentionPolicy>(c, model);
}

}  // namespace kvb
