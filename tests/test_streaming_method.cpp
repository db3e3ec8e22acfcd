// StreamingLLM on hand-sized caches, both triggers, positions within the cache, and budgeted
// decoding end to end.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "engine/decode_loop.hpp"
#include "engine/methods/kv_method.hpp"
#include "engine/model.hpp"
#include "engine/rope.hpp"
#include "kernels/cpu/compression_cpu.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

namespace kvb {
namespace {

ModelConfig tiny_cache_config() {
  ModelConfig c;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.head_dim = 2;
  c.rope_theta = 10000.0;
  return c;
}

std::vector<int> positions_of(const KvCache& cache, int layer, int head) {
  std::vector<int> p(cache.positions(layer, 0, head), cache.positions(layer, 0, head) + cache.length(layer, 0, head));
  std::sort(p.begin(), p.end());
  return p;
}

PolicyConfig streaming(int budget, int divide) {
  PolicyConfig pc;
  pc.method = Method::Streaming;
  pc.budget = budget;
  pc.divide_length = divide;
  return pc;
}

TEST(StreamingMethod, KeepsSinksAndRecentWindowWithSlack) {
  const PolicyConfig pc = streaming(10, 4);
  auto method = make_method(pc, tiny_cache_config());
  KvCache cache(tiny_cache_config(), 1, method->capacity(3, 100));
  method->begin_sequence(0);
  for (int t = 0; t < 40; ++t) {
    for (int l = 0; l < 2; ++l)
      for (int h = 0; h < 2; ++h) cache.append_slot(l, 0, h, t);
    const int64_t evicted = test::compress_row(*method, cache, RowProgress{0, 1, t + 1, t == 0});
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

TEST(StreamingMethod, EveryStepTriggerHoldsExactlyTheBudget) {
  PolicyConfig pc = streaming(10, 4);
  pc.trigger = Trigger::EveryStep;
  auto method = make_method(pc, tiny_cache_config());
  EXPECT_EQ(method->capacity(3, 100), 11);
  KvCache cache(tiny_cache_config(), 1, 11);
  method->begin_sequence(0);
  for (int t = 0; t < 30; ++t) {
    for (int l = 0; l < 2; ++l)
      for (int h = 0; h < 2; ++h) cache.append_slot(l, 0, h, t);
    const int64_t evicted = test::compress_row(*method, cache, RowProgress{0, 1, t + 1, t == 0});
    EXPECT_EQ(evicted, t + 1 > 10 ? 4 : 0) << "t " << t;  // one slot in each of 2 layers x 2 heads
    EXPECT_EQ(cache.length(1, 0, 1), std::min(t + 1, 10));
  }
  EXPECT_EQ(positions_of(cache, 0, 1), (std::vector<int>{0, 1, 2, 3, 24, 25, 26, 27, 28, 29}));
}

TEST(StreamingMethod, BudgetsAndTriggersItCannotHonourAreInputErrors) {
  PolicyConfig pc = streaming(0, 128);
  EXPECT_THROW(check_policy(pc), InputError);  // no budget
  pc.budget = 4;
  EXPECT_THROW(check_policy(pc), InputError);  // not above the sinks
  EXPECT_THROW(parse_method("nonsense"), InputError);
  PolicyConfig snap = pc;
  snap.method = Method::SnapKV;
  snap.budget = 64;
  snap.trigger = Trigger::EveryStep;
  EXPECT_THROW(check_policy(snap), InputError);  // SnapKV runs its own schedule
  EXPECT_THROW(parse_trigger("sometimes"), InputError);
}

// A key at position p rotated on by s positions is the key RoPE gives position p + s.
TEST(StreamingMethod, RotatingAKeyOnEqualsRopeAtTheLaterPosition) {
  ModelConfig c = tiny_cache_config();
  c.head_dim = 8;
  for (RopePairing pairing : {RopePairing::Half, RopePairing::Interleaved}) {
    c.rope_pairing = pairing;
    const RopeTable rope(c);
    const std::vector<float> x = {0.3f, -1.2f, 0.7f, 2.0f, -0.4f, 0.9f, 1.1f, -0.6f};
    std::vector<float> at_p = x, at_ps = x;
    rope.apply(at_p.data(), 1, 37);
    rope.apply(at_ps.data(), 1, 37 + 250);
    cpu::rotate_key(at_p.data(), 8, rope.inv_freq(), pairing == RopePairing::Interleaved, 250);
    for (int i = 0; i < 8; ++i) EXPECT_NEAR(at_p[i], at_ps[i], 1e-5f) << "lane " << i;
  }
}

// --streaming-positions cache: after an eviction the sinks' keys are their original keys moved on
// by processed - budget positions (the window's shift), from the originals every time.
TEST(StreamingMethod, CachePositionsMoveTheSinksOnByTheWindowsShift) {
  const ModelConfig c = tiny_cache_config();
  PolicyConfig pc = streaming(6, 4);
  pc.sink_tokens = 2;
  pc.streaming_positions = StreamingPositions::Cache;
  auto method = make_method(pc, c);
  KvCache cache(c, 1, 10, cache_extras(pc));
  method->begin_sequence(0);
  auto key_of = [](int pos) { return std::vector<float>{1.0f + pos, 0.5f}; };
  const std::vector<double> inv_freq = rope_inv_freq(c);
  for (int t = 0; t < 20; ++t) {
    for (int l = 0; l < 2; ++l)
      for (int h = 0; h < 2; ++h) {
        const int slot = cache.append_slot(l, 0, h, t);
        const std::vector<float> k = key_of(t);
        std::copy(k.begin(), k.end(), cache.keys(l, 0, h) + 2 * slot);
      }
    if (test::compress_row(*method, cache, RowProgress{0, 1, t + 1, t == 0}) == 0) continue;
    // Evicted at t + 1 = 10 and 14 and 18: sinks 0 and 1 (slots 0 and 1) moved on by t + 1 - 6.
    for (int j = 0; j < 2; ++j) {
      std::vector<float> want = key_of(j);
      cpu::rotate_key(want.data(), 2, inv_freq, false, t + 1 - 6);
      EXPECT_EQ(cache.positions(1, 0, 1)[j], j);
      EXPECT_NEAR(cache.keys(1, 0, 1)[2 * j], want[0], 1e-6f) << "t " << t;
      EXPECT_NEAR(cache.keys(1, 0, 1)[2 * j + 1], want[1], 1e-6f) << "t " << t;
    }
  }
}

TEST(StreamingMethod, ReplayRespectsTheBudgetAndMatchesFullWhenItNeverEvicts) {
  Model m = load_model("synthetic:tiny,seed=4");
  DecodeRequest r;
  r.id = "s";
  r.prompt = {256, 10, 20, 30, 40, 50};
  for (int i = 0; i < 150; ++i) r.forced.push_back((i * 37 + 11) % 256);
  DecodeOptions opt;
  opt.mode = RunMode::Replay;
  DecodeOutput full = run_decode(m, {r}, opt);

  opt.policy = streaming(32, 16);
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

  // Positions within the cache change what attention sees of the sinks, nothing of the budget.
  opt.policy.streaming_positions = StreamingPositions::Cache;
  DecodeOutput in_cache = run_decode(m, {r}, opt);
  EXPECT_EQ(in_cache.stats.kv_peak_bytes, small.stats.kv_peak_bytes);
  EXPECT_EQ(in_cache.stats.compression_events, small.stats.compression_events);
  EXPECT_NE(in_cache.sequences[0].kl, small.sequences[0].kl);
  opt.policy.streaming_positions = StreamingPositions::Absolute;

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
