// H2O on hand-sized caches: which slots survive, and that accumulated scores travel with them.
#include <gtest/gtest.h>

#include <algorithm>

#include "engine/decode_loop.hpp"
#include "engine/methods/h2o_policy.hpp"
#include "engine/model.hpp"

namespace kvb {
namespace {

TEST(H2oPolicy, KeepsRecentHalfAndHeaviestOfTheRest) {
  // Slots hold positions in shuffled order; scores favour positions 2 and 5.
  const int32_t pos[] = {7, 0, 9, 2, 5, 1, 8, 3, 6, 4};
  const float score[] = {0.1f, 0.2f, 0.0f, 3.0f, 2.0f, 0.2f, 0.0f, 0.3f, 0.1f, 0.05f};
  std::vector<int> keep = H2oPolicy::keep_set(pos, score, 10, 6);
  std::vector<int> kept_pos;
  for (int k : keep) kept_pos.push_back(pos[k]);
  std::sort(kept_pos.begin(), kept_pos.end());
  // Recent: positions 9, 8, 7. Heaviest of the rest: 2 (3.0), 5 (2.0), 3 (0.3).
  EXPECT_EQ(kept_pos, (std::vector<int>{2, 3, 5, 7, 8, 9}));
  // Ties are broken by the lower slot index: positions 0 and 1 both score 0.2 (slots 1 and 5).
  keep = H2oPolicy::keep_set(pos, score, 10, 10 - 2);
  kept_pos.clear();
  for (int k : keep) kept_pos.push_back(pos[k]);
  std::sort(kept_pos.begin(), kept_pos.end());
  EXPECT_EQ(kept_pos, (std::vector<int>{0, 2, 3, 5, 6, 7, 8, 9}));
}

TEST(H2oPolicy, ScoresAccumulateAndMoveWithTheirSlots) {
  ModelConfig c;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 2;
  KvCache cache(c, 1, 8);
  for (int t = 0; t < 6; ++t) cache.append_slot(0, 0, 0, t);
  PolicyConfig pc;
  pc.method = "h2o";
  pc.budget = 2;
  pc.divide_length = 4;
  H2oPolicy policy(pc);
  const float p0[] = {0.5f, 0.0f, 0.1f, 0.0f, 0.2f, 0.2f};
  policy.on_attention(cache, 0, 0, 0, 0, 5, p0, 6);
  policy.on_attention(cache, 0, 0, 1, 0, 5, p0, 6);  // both query heads of the group add up
  EXPECT_FLOAT_EQ(cache.slot_scores(0, 0, 0)[0], 1.0f);
  EXPECT_EQ(policy.after_forward(cache, 0, SequenceProgress{1, 6, false}), 4);
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

TEST(H2oPolicy, ReplayRespectsTheBudget) {
  Model m = load_model("synthetic:tiny,seed=9");
  DecodeRequest r;
  r.id = "h";
  r.prompt = {256, 1, 2, 3};
  for (int i = 0; i < 120; ++i) r.forced.push_back((i * 53 + 7) % 256);
  DecodeOptions opt;
  opt.mode = RunMode::Replay;
  opt.policy.method = "h2o";
  opt.policy.budget = 20;
  opt.policy.divide_length = 10;
  DecodeOutput out = run_decode(m, {r}, opt);
  const uint64_t slot_bytes = uint64_t(m.config.n_layers) * m.config.n_kv_heads * m.config.head_dim * 2 * 4;
  EXPECT_LE(out.stats.kv_peak_bytes, 30 * slot_bytes);
  EXPECT_GT(out.stats.compression_events, 0);
  EXPECT_EQ(out.sequences[0].kl.size(), r.forced.size());
}

}  // namespace
}  // namespace kvb
