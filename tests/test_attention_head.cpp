// cpu::attention_head (one query head over one KV head's slots) against a straightforward
// double-precision loop: causal mask by position (slot order shuffled), probabilities that sum to
// 1 with masked slots exactly 0, awkward lengths and head dims.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/ops.hpp"

namespace kvb {
namespace {

struct Reference {
  std::vector<double> out, probs;
};

Reference reference_attention(const std::vector<float>& q, const std::vector<float>& keys,
                              const std::vector<float>& values, const std::vector<int32_t>& pos, int len, int qpos,
                              int hd) {
  Reference r{std::vector<double>(hd, 0.0), std::vector<double>(len, 0.0)};
  std::vector<double> s(len, -INFINITY);
  double max = -INFINITY;
  for (int j = 0; j < len; ++j) {
    if (pos[j] > qpos) continue;
    double d = 0;
    for (int c = 0; c < hd; ++c) d += double(q[c]) * keys[size_t(j) * hd + c];
    s[j] = d / std::sqrt(double(hd));
    max = std::max(max, s[j]);
  }
  double sum = 0;
  for (int j = 0; j < len; ++j)
    if (pos[j] <= qpos) sum += std::exp(s[j] - max);
  for (int j = 0; j < len; ++j) {
    if (pos[j] > qpos) continue;
    r.probs[j] = std::exp(s[j] - max) / sum;
    for (int c = 0; c < hd; ++c) r.out[c] += r.probs[j] * values[size_t(j) * hd + c];
  }
  return r;
}

TEST(CpuOps, AttentionHeadMatchesDoubleReference) {
  std::mt19937 rng(2024);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  struct Case {
    int len, hd;
    float q_scale;  // large scales sharpen the softmax
  };
  for (const Case c : std::vector<Case>{{1, 8}, {7, 64}, {9, 13}, {129, 64}, {300, 128}, {1000, 64}, {33, 128}, {64, 64}}) {
    for (float extra : {1.0f, 8.0f}) {
      const int len = c.len, hd = c.hd;
      std::vector<float> q(hd), keys(size_t(len) * hd), values(size_t(len) * hd);
      for (float& x : q) x = d(rng) * c.q_scale * extra;
      for (float& x : keys) x = d(rng);
      for (float& x : values) x = d(rng);
      // Positions 0..len-1 in shuffled slot order; the query sits somewhere inside, so slots after
      // it are masked (the query's own slot, or at least position 0, stays visible).
      std::vector<int32_t> pos(len);
      std::iota(pos.begin(), pos.end(), 0);
      std::shuffle(pos.begin(), pos.end(), rng);
      const int qpos = len == 1 ? 0 : std::uniform_int_distribution<int>(0, len - 1)(rng);

      std::vector<float> out(hd, NAN), probs(len, NAN);
      cpu::attention_head(out.data(), probs.data(), q.data(), keys.data(), values.data(), pos.data(), len, qpos, hd);
      const Reference ref = reference_attention(q, keys, values, pos, len, qpos, hd);

      double psum = 0;
      for (int j = 0; j < len; ++j) {
        if (pos[j] > qpos) {
          ASSERT_EQ(probs[j], 0.0f) << "masked slot " << j << " (pos " << pos[j] << " > " << qpos << "), len " << len;
        } else {
          ASSERT_NEAR(probs[j], ref.probs[j], 2e-6 + 1e-5 * ref.probs[j]) << "slot " << j << ", len " << len;
        }
        psum += probs[j];
      }
      ASSERT_NEAR(psum, 1.0, 1e-5) << "len " << len;
      for (int i = 0; i < hd; ++i)
        ASSERT_NEAR(out[i], ref.out[i], 1e-5 * (1.0 + std::fabs(ref.out[i]))) << "lane " << i << ", len " << len;
    }
  }
}

TEST(CpuOps, AttentionGroupGivesEachHeadsBitsOfAttentionHead) {
  std::mt19937 rng(77);
  std::uniform_real_distribution<float> d(-2.0f, 2.0f);
  for (int hd : {8, 13, 128})
    for (int group : {1, 2, 3, 5, 8})
      for (int len : {1, 9, 300}) {
        std::vector<float> q(size_t(group) * hd), keys(size_t(len) * hd), values(size_t(len) * hd);
        for (float& x : q) x = d(rng);
        for (float& x : keys) x = d(rng);
        for (float& x : values) x = d(rng);
        std::vector<int32_t> pos(len);
        std::iota(pos.begin(), pos.end(), 0);
        std::shuffle(pos.begin(), pos.end(), rng);
        const int qpos = len / 2;
        std::vector<float> out(size_t(group) * hd, NAN), probs(size_t(group) * len, NAN), one(hd), one_probs(len);
        cpu::attention_group(out.data(), probs.data(), q.data(), group, keys.data(), values.data(), pos.data(), len, qpos, hd);
        for (int g = 0; g < group; ++g) {
          cpu::attention_head(one.data(), one_probs.data(), q.data() + size_t(g) * hd, keys.data(), values.data(),
                              pos.data(), len, qpos, hd);
          for (int c = 0; c < hd; ++c) ASSERT_EQ(out[size_t(g) * hd + c], one[c]) << "hd " << hd << " group " << group << " len " << len;
          for (int j = 0; j < len; ++j) ASSERT_EQ(probs[size_t(g) * len + j], one_probs[j]);
        }
      }
}

TEST(CpuOps, AttentionHeadWithOnlyItsOwnSlotVisibleCopiesThatValue) {
  const int len = 5, hd = 16;
  std::vector<float> q(hd, 3.0f), keys(size_t(len) * hd, 1.0f), values(size_t(len) * hd);
  for (size_t i = 0; i < values.size(); ++i) values[i] = float(i);
  const std::vector<int32_t> pos{9, 4, 12, 7, 10};  // only slot 1 (position 4) is visible from 4
  std::vector<float> out(hd, NAN), probs(len, NAN);
  cpu::attention_head(out.data(), probs.data(), q.data(), keys.data(), values.data(), pos.data(), len, 4, hd);
  for (int j = 0; j < len; ++j) EXPECT_EQ(probs[j], j == 1 ? 1.0f : 0.0f) << j;
  for (int i = 0; i < hd; ++i) EXPECT_EQ(out[i], values[size_t(hd) + i]) << i;
}

TEST(CpuOps, AttentionHeadWithNoVisibleSlotWritesZeros) {
  const int len = 3, hd = 8;
  std::vector<float> q(hd, 1.0f), keys(size_t(len) * hd, 1.0f), values(size_t(len) * hd, 5.0f);
  const std::vector<int32_t> pos{3, 4, 5};
  std::vector<float> out(hd, NAN), probs(len, NAN);
  cpu::attention_head(out.data(), probs.data(), q.data(), keys.data(), values.data(), pos.data(), len, 2, hd);
  for (float p : probs) EXPECT_EQ(p, 0.0f);
  for (float o : out) EXPECT_EQ(o, 0.0f);
}

}  // namespace
}  // namespace kvb
