#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>

#include "engine/kv_cache.hpp"
#include "util/errors.hpp"

namespace kvb {
namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 3;
  return c;
}

// Fills (layer, seq, head) with `n` slots whose key/value/position encode the token.
void fill(KvCache& cache, int layer, int seq, int head, int n) {
  for (int t = 0; t < n; ++t) {
    const int slot = cache.append_slot(layer, seq, head, 100 + t);
    for (int d = 0; d < cache.head_dim(); ++d) {
      cache.keys(layer, seq, head)[slot * cache.head_dim() + d] = t + 0.1f * d;
      cache.values(layer, seq, head)[slot * cache.head_dim() + d] = -t - 0.1f * d;
    }
  }
}

TEST(KvCache, CompactKeepsExactlyTheSelectedSlotsWithTheirPositions) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    const int len = 1 + trial % 40;
    KvCache cache(small_config(), 2, 64);
    fill(cache, 1, 1, 0, len);
    fill(cache, 1, 1, 1, len);
    std::vector<int> all(len);
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    const int keep_n = static_cast<int>(rng() % (len + 1));
    std::vector<int> keep(all.begin(), all.begin() + keep_n);
    const uint64_t before = cache.live_bytes();
    cache.compact(1, 1, 0, keep);
    ASSERT_EQ(cache.length(1, 1, 0), keep_n);
    ASSERT_EQ(cache.length(1, 1, 1), len);  // other heads untouched
    EXPECT_EQ(cache.live_bytes(), before - uint64_t(len - keep_n) * cache.bytes_per_slot());
    // The kept tokens, and only they, remain, each with its own key, value and position.
    std::map<int, int> remaining;  // token -> slot
    for (int s = 0; s < keep_n; ++s) {
      const int token = cache.positions(1, 1, 0)[s] - 100;
      ASSERT_FALSE(remaining.count(token));
      remaining[token] = s;
      for (int d = 0; d < 3; ++d) {
        ASSERT_FLOAT_EQ(cache.keys(1, 1, 0)[s * 3 + d], token + 0.1f * d);
        ASSERT_FLOAT_EQ(cache.values(1, 1, 0)[s * 3 + d], -token - 0.1f * d);
      }
    }
    for (int idx : keep) ASSERT_TRUE(remaining.count(idx)) << "token " << idx << " was lost";
    // Kept slots already below the new length did not move.
    for (int idx : keep)
      if (idx < keep_n) EXPECT_EQ(remaining[idx], idx);
  }
}

TEST(KvCache, CompactRejectsBadIndices) {
  KvCache cache(small_config(), 1, 8);
  fill(cache, 0, 0, 0, 5);
  EXPECT_THROW(cache.compact(0, 0, 0, std::vector<int>{1, 1}), RuntimeFailure);
  EXPECT_THROW(cache.compact(0, 0, 0, std::vector<int>{5}), RuntimeFailure);
  EXPECT_THROW(cache.compact(0, 0, 0, std::vector<int>{-1}), RuntimeFailure);
}

TEST(KvCache, BytesAreCountedAtTheValueType) {
  KvCacheExtras half;
  half.value_dtype = DType::F16;
  KvCache f32(small_config(), 2, 4), f16(small_config(), 2, 4, half);
  EXPECT_EQ(f16.bytes_per_slot() * 2, f32.bytes_per_slot());
  EXPECT_EQ(f16.capacity_bytes() * 2, f32.capacity_bytes());
  EXPECT_EQ(f16.value_dtype(), DType::F16);
}

TEST(KvCache, PeakAndCapacity) {
  KvCache cache(small_config(), 1, 4);
  fill(cache, 0, 0, 0, 4);
  EXPECT_THROW(cache.append_slot(0, 0, 0, 9), RuntimeFailure);
  EXPECT_EQ(cache.peak_bytes(), 0u);  // peaks are what the forward notes after appending
  cache.note_peak();
  EXPECT_EQ(cache.peak_bytes(), 4 * cache.bytes_per_slot());
  cache.compact(0, 0, 0, std::vector<int>{3});
  EXPECT_EQ(cache.live_bytes(), cache.bytes_per_slot());
  EXPECT_EQ(cache.peak_bytes(), 4 * cache.bytes_per_slot());
}

}  // namespace
}  // namespace kvb
