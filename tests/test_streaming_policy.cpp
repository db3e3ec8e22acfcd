// StreamingLLM on hand-sized caches, and budgeted decoding end to end.
#include <gtest/gtest.h>

#include <algorithm>

#include "engine/decode_loop.hpp"
#include "engine/methods/kv_policy.hpp"
#include "engine/model.hpp"
#include "util/errors.hpp"

namespace kvb {
namespace {

ModelConfig tiny_cache_config() {
  ModelConfig c;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.head_dim = 2;
  return c;
}

std::vector<int> positions_of(const KvCache& cache, int layer, int head) {
  std::vector<int> p(cache.positions(layer, 0, head), cache.positions(layer, 0, head) + cache.length(layer, 0, head));
  std::sort(p.begin(), p.end());
  return p;
}

TEST(StreamingPolicy, KeepsSinksAndRecentWindowWithSlack) {
  PolicyConfig pc;
  pc.method = "streaming";
  pc.budget = 10;
  pc.divide_length = 4;
  auto policy = make_policy(pc, tiny_cache_config());
  KvCache cache(tiny_cache_config(), 1, policy->capacity(3, 100));
  for (int t = 0; t < 40; ++t) {
    for (int l = 0; l < 2; ++l)
      for (int h = 0; h < 2; ++h) cache.append_slot(l, 0, h, t);
    const int64_t evicted = policy->after_forward(cache, 0, SequenceProgress{1, t + 1, t == 0});
    const int len = cache.length(0, 0, 0);
    ASSERT_LE(len, pc.budget + pc.divide_length - 1) << "t " << t;  // cut back as soon as it reaches 14
    if (t + 1 == 14) {
      EXPECT_EQ(evicted, 4 * 4);  // 4 slots in each of 2 layers x 2 heads
      EXPECT_EQ(positions_of(cache, 0, 0), (std::vector<int>{0, 1, 2, 3, 8, 9, 10, 11, 12, 13}));
    }
  }
  // After 40 tokens: the 4 sinks and the most recent tokens, identical in every layer and head.
  const std::vector<int> p = positions_of(cache, 1, 1);
  EXPECT_EQ(std::vector<int>(p.begin(), p.begin() + 4), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(p.back(), 39);
  for (size_t i = 5; i < p.size(); ++i) EXPECT_EQ(p[i], p[i - 1] + 1);
  EXPECT_EQ(positions_of(cache, 0, 0), p);
}

TEST(StreamingPolicy, BudgetsItCannotHonourAreInputErrors) {
  PolicyConfig pc;
  pc.method = "streaming";
  EXPECT_THROW(check_policy(pc), InputError);  // no budget
  pc.budget = 4;
  EXPECT_THROW(check_policy(pc), InputError);  // not above the sinks
  pc.method = "nonsense";
  EXPECT_THROW(check_policy(pc), InputError);
}

TEST(StreamingPolicy, ReplayRespectsTheBudgetAndMatchesFullWhenItNeverEvicts) {
  Model m = load_model("synthetic:tiny,seed=4");
  DecodeRequest r;
  r.id = "s";
  r.prompt = {256, 10, 20, 30, 40, 50};
  for (int i = 0; i < 150; ++i) r.forced.push_back((i * 37 + 11) % 256);
  DecodeOptions opt;
  opt.mode = RunMode::Replay;
  DecodeOutput full = run_decode(m, {r}, opt);

  opt.policy.method = "streaming";
  opt.policy.budget = 32;
  opt.policy.divide_length = 16;
  DecodeOutput small = run_decode(m, {r}, opt);
  const uint64_t slot_bytes = uint64_t(m.config.n_layers) * m.config.n_kv_heads * m.config.head_dim * 2 * 4;
  EXPECT_LE(small.stats.kv_peak_bytes, uint64_t(32 + 16) * slot_bytes);
  EXPECT_GT(small.stats.compression_events, 0);
  EXPECT_NE(small.sequences[0].target_logprob, full.sequences[0].target_logprob);  // eviction changed something

  // Lockstep with full attention: eviction moves the distribution, and the metrics see it.
  const auto& kl = small.sequences[0].kl;
  ASSERT_EQ(kl.size(), r.forced.size());
  EXPECT_GT(*std::max_element(kl.begin(), kl.end()), 0.0f);
  EXPECT_EQ(small.sequences[0].full_logprob, full.sequences[0].target_logprob);  // the reference is full attention
  for (float k : full.sequences[0].kl) EXPECT_EQ(k, 0.0f);                       // full against itself: exactly 0

  opt.policy.budget = 1000;  // above the sequence length: a no-op
  DecodeOutput big = run_decode(m, {r}, opt);
  EXPECT_EQ(big.stats.compression_events, 0);
  for (float k : big.sequences[0].kl) EXPECT_EQ(k, 0.0f);
  EXPECT_EQ(big.sequences[0].full_predicted, big.sequences[0].predicted);
  EXPECT_EQ(big.sequences[0].target_logprob, full.sequences[0].target_logprob);
  EXPECT_EQ(big.sequences[0].predicted, full.sequences[0].predicted);
}

}  // namespace
}  // namespace kvb
