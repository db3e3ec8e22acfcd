// H2O on hand-sized caches: which slots survive, that accumulated scores travel with them and are
// what the forward adds up, and both triggers end to end.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "engine/decode_loop.hpp"
#include "engine/methods/kv_method.hpp"
#include "engine/model.hpp"
#include "engine/transformer.hpp"
#include "test_support.hpp"

namespace kvb {
namespace {

ModelConfig one_head_config() {
  ModelConfig c;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 2;
  return c;
}

PolicyConfig h2o(int budget, int divide) {
  PolicyConfig pc;
  pc.method = Method::H2O;
  pc.budget = budget;
  pc.divide_length = divide;
  return pc;
}

// A cache whose slots hold `pos` (in that slot order) with accumulated scores `score`; H2O at
// `budget` (slack trigger: budget + divide = the slots held) keeps the positions returned.
std::vector<int> kept_positions(std::span<const int32_t> pos, std::span<const float> score, int budget) {
  const ModelConfig c = one_head_config();
  const int n = static_cast<int>(pos.size());
  KvCache cache(c, 1, n, KvCacheExtras{true, 0});
  for (int j = 0; j < n; ++j) {
    cache.append_slot(0, 0, 0, pos[j]);
    cache.slot_scores(0, 0, 0)[j] = score[j];
  }
  auto method = make_method(h2o(budget, n - budget), c);
  method->begin_sequence(0);
  EXPECT_EQ(test::compress_row(*method, cache, RowProgress{0, 1, 10, false}), n - budget);
  std::vector<int> out(cache.positions(0, 0, 0), cache.positions(0, 0, 0) + cache.length(0, 0, 0));
  std::sort(out.begin(), out.end());
  return out;
}

TEST(H2oMethod, KeepsRecentHalfAndHeaviestOfTheRest) {
  // Slots hold positions in shuffled order; scores favour positions 2 and 5.
  const int32_t pos[] = {7, 0, 9, 2, 5, 1, 8, 3, 6, 4};
  const float score[] = {0.1f, 0.2f, 0.0f, 3.0f, 2.0f, 0.2f, 0.0f, 0.3f, 0.1f, 0.05f};
  // Recent: positions 9, 8, 7. Heaviest of the rest: 2 (3.0), 5 (2.0), 3 (0.3).
  EXPECT_EQ(kept_positions(pos, score, 6), (std::vector<int>{2, 3, 5, 7, 8, 9}));
  // Ties are broken by the lower slot index: positions 0 and 1 both score 0.2 (slots 1 and 5).
  EXPECT_EQ(kept_positions(pos, score, 8), (std::vector<int>{0, 2, 3, 5, 6, 7, 8, 9}));
}

TEST(H2oMethod, ScoresMoveWithTheirSlots) {
  const ModelConfig c = one_head_config();
  KvCache cache(c, 1, 8, KvCacheExtras{true, 0});
  for (int t = 0; t < 6; ++t) cache.append_slot(0, 0, 0, t);
  const float p0[] = {1.0f, 0.0f, 0.2f, 0.0f, 0.4f, 0.4f};  // two query heads' weights, added up
  std::copy(std::begin(p0), std::end(p0), cache.slot_scores(0, 0, 0));
  auto method = make_method(h2o(2, 4), c);
  method->begin_sequence(0);
  EXPECT_EQ(test::compress_row(*method, cache, RowProgress{0, 1, 6, false}), 4);
  ASSERT_EQ(cache.length(0, 0, 0), 2);
  // Kept: the most recent (position 5) and the heaviest of the rest (position 0, score 1.0).
  std::vector<std::pair<int, float>> kept;
  for (int s = 0; s < 2; ++s) kept.push_back({cache.positions(0, 0, 0)[s], cache.slot_scores(0, 0, 0)[s]});
  std::sort(kept.begin(), kept.end());
  EXPECT_EQ(kept[0].first, 0);
  EXPECT_FLOAT_EQ(kept[0].second, 1.0f);
  EXPECT_EQ(kept[1].first, 5);
  EXPECT_FLOAT_EQ(kept[1].second, 0.4f);
}

// The forward's slot attention: every query head's weights sum to 1, so after T tokens each (layer,
// KV head) of a sequence has accumulated G x T in all, and a slot no later token could see (none:
// causality by position) nothing beyond what the tokens after it gave.
TEST(H2oMethod, TheForwardAccumulatesEveryQueryHeadsAttention) {
  const Model m = load_model("synthetic:tiny,seed=5");
  const ModelConfig& c = m.config;
  KvCache cache(c, 1, 16, KvCacheExtras{true, 0});
  Transformer tf(m, 16);
  std::vector<BatchToken> batch;
  for (int p = 0; p < 12; ++p) batch.push_back(BatchToken{0, p, (p * 31 + 7) % c.vocab_size, p == 11});
  std::vector<float> logits(c.vocab_size);
  ForwardRecording<KvCache> record;
  record.slot_attention = true;
  tf.forward(batch, cache, logits.data(), record);
  for (int l = 0; l < c.n_layers; ++l)
    for (int h = 0; h < c.n_kv_heads; ++h) {
      const float* s = cache.slot_scores(l, 0, h);
      double total = 0;
      for (int j = 0; j < cache.length(l, 0, h); ++j) {
        EXPECT_GE(s[j], 0.0f);
        total += s[j];
      }
      EXPECT_NEAR(total, double(c.group_size()) * 12, 1e-4) << "layer " << l << " kv-head " << h;
    }
}

DecodeRequest replay_request() {
  DecodeRequest r;
  r.id = "h";
  r.prompt = {256, 1, 2, 3};
  for (int i = 0; i < 120; ++i) r.forced.push_back((i * 53 + 7) % 256);
  return r;
}

TEST(H2oMethod, ReplayRespectsTheBudget) {
  Model m = load_model("synthetic:tiny,seed=9");
  const DecodeRequest r = replay_request();
  DecodeOptions opt;
  opt.mode = RunMode::Replay;
  opt.policy = h2o(20, 10);
  DecodeOutput out = run_decode(m, {r}, opt);
  const uint64_t slot_bytes = uint64_t(m.config.n_layers) * m.config.n_kv_heads * m.config.head_dim * 2 * 4;
  EXPECT_LE(out.stats.kv_peak_bytes, 30 * slot_bytes);
  EXPECT_GT(out.stats.compression_events, 0);
  EXPECT_EQ(out.sequences[0].kl.size(), r.forced.size());
}

// As published: every step cuts the cache back to exactly the budget, so attention never sees
// more than budget + 1 slots (the new token joins before the eviction).
TEST(H2oMethod, EveryStepTriggerHoldsExactlyTheBudget) {
  Model m = load_model("synthetic:tiny,seed=9");
  const DecodeRequest r = replay_request();
  DecodeOptions opt;
  opt.mode = RunMode::Replay;
  opt.policy = h2o(20, 10);
  opt.policy.trigger = Trigger::EveryStep;
  EXPECT_EQ(cache_capacity(opt.policy, 4, 124), 21);
  DecodeOutput out = run_decode(m, {r}, opt);
  const uint64_t slot_bytes = uint64_t(m.config.n_layers) * m.config.n_kv_heads * m.config.head_dim * 2 * 4;
  EXPECT_EQ(out.stats.kv_peak_bytes, 21 * slot_bytes);
  const auto& held = out.sequences[0].kv_bytes;
  // Step i's logits come from a forward over the 4 prompt tokens and i more until the cache holds
  // budget + 1; from then on budget + 1.
  for (size_t i = 0; i < held.size(); ++i) EXPECT_EQ(held[i], std::min<uint64_t>(4 + i, 21) * slot_bytes) << "step " << i;
  // One event per forward from the one that first exceeds the budget (position 20) on.
  EXPECT_EQ(out.stats.compression_events, int64_t(4 + r.forced.size() - 1) - 20);
}

}  // namespace
}  // namespace kvb
