// TriAttention's scorer (engine/methods/tri_scoring.hpp) against the direct formula of
// shared/spec/triattention.md section 2.1, written here in double precision: random pre-RoPE keys
// at random absolute positions are rotated into the cache's post-RoPE form with RopeTable (so they
// carry the attention scale s), then the reference inverts RoPE (divide by s, rotate by -p*omega),
// takes amplitudes and atan2 phases against the head's query centre and sums explicit cosines over
// the offsets. TriScorer, which never sees the positions (spec 2.2), must agree to 1e-5 of the
// score scale with both pairings, plain, llama3 and YaRN frequencies, both aggregations and the
// ablation flags.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/methods/query_stats.hpp"
#include "engine/methods/tri_scoring.hpp"
#include "engine/model_config.hpp"
#include "engine/rope.hpp"

namespace kvb {
namespace {

struct RopeVariant {
  std::string name;
  double theta;
  RopeScaling scaling;
};

RopeVariant plain(double theta) { return {"plain theta " + std::to_string(int64_t(theta)), theta, {}}; }

RopeVariant llama3() {
  RopeScaling s;
  s.type = RopeScalingType::Llama3;
  s.factor = 8.0;
  s.low_freq_factor = 1.0;
  s.high_freq_factor = 4.0;
  s.original_max_position = 8192;
  return {"llama3", 5e5, s};
}

RopeVariant yarn() {
  RopeScaling s;
  s.type = RopeScalingType::Yarn;
  s.factor = 32.0;
  s.original_max_position = 4096;
  s.beta_fast = 32.0;
  s.beta_slow = 1.0;
  return {"yarn", 1.5e5, s};
}

ModelConfig make_config(int head_dim, RopePairing pairing, const RopeVariant& v) {
  ModelConfig c;
  c.arch = Arch::Llama;
  c.n_layers = 1;
  c.dim = head_dim;
  c.n_heads = 1;
  c.n_kv_heads = 1;
  c.head_dim = head_dim;
  c.ffn_dim = 4 * head_dim;
  c.vocab_size = 32;
  c.max_seq_len = 131072;
  c.rope_theta = v.theta;
  c.rope_scaling = v.scaling;
  c.rope_pairing = pairing;
  return c;
}

std::pair<int, int> lanes(int f, int head_dim, bool interleaved) {
  return interleaved ? std::pair{2 * f, 2 * f + 1} : std::pair{f, f + head_dim / 2};
}

// Random statistics with qabs_f >= |qbar_f|; `spread` sets how far below 1 the concentration R_f
// goes (small spread: concentrated head, trig term dominates the norm term).
HeadStats random_stats(int F, double spread, std::mt19937& rng) {
  std::uniform_real_distribution<double> mag(0.0, 1.5), ang(-std::numbers::pi, std::numbers::pi), extra(0.0, spread);
  HeadStats h;
  for (int f = 0; f < F; ++f) {
    const double m = mag(rng), a = ang(rng);
    h.q_mean_real.push_back(float(m * std::cos(a)));
    h.q_mean_imag.push_back(float(m * std::sin(a)));
    const double mbar = std::hypot(double(h.q_mean_real.back()), double(h.q_mean_imag.back()));
    h.q_abs_mean.push_back(float(mbar * (1.0 + extra(rng)) + 1e-3));
  }
  return h;
}

struct KeySet {
  std::vector<float> post;   // [n][head_dim], post-RoPE (includes s), as the cache stores them
  std::vector<int64_t> pos;  // absolute positions p < t
};

KeySet random_keys(const ModelConfig& c, const RopeTable& rope, int n, int64_t t, std::mt19937& rng) {
  const int d = c.head_dim;
  std::uniform_real_distribution<float> lane(-1.0f, 1.0f);
  std::uniform_int_distribution<int64_t> where(0, t - 1);
  KeySet k;
  k.post.resize(size_t(n) * d);
  for (int j = 0; j < n; ++j) {
    const float outlier = (j % 5 == 3) ? 4.0f : 1.0f;
    for (int i = 0; i < d; ++i) k.post[size_t(j) * d + i] = outlier * lane(rng);
    const int64_t p = j == 0 ? 0 : j == 1 ? t - 1 : where(rng);
    k.pos.push_back(p);
    rope.apply(k.post.data() + size_t(j) * d, 1, int(p));
  }
  return k;
}

std::vector<int64_t> expected_offsets(int64_t offset_max) {
  std::vector<int64_t> d;
  for (int64_t x = 1; x <= offset_max; x *= 2) d.push_back(x);
  return d;
}

// Spec 2.1, HF path, in double.
std::vector<double> direct_scores(const ModelConfig& c, const HeadStats& h, int64_t t, const KeySet& keys,
                                  const TriScoringOptions& o) {
  const int d = c.head_dim, F = d / 2;
  const bool interleaved = c.rope_pairing == RopePairing::Interleaved;
  const std::vector<double> omega = rope_inv_freq(c);
  const double s = rope_attention_scale(c);
  const double w = s * s;  // freq_scale_sq
  const std::vector<int64_t> D = expected_offsets(o.offset_max);
  const int n = int(keys.pos.size());
  std::vector<double> out(n);
  std::vector<double> amp(F), phi(F);
  for (int j = 0; j < n; ++j) {
    const float* y = keys.post.data() + size_t(j) * d;
    const int64_t p = keys.pos[j];
    double norm = 0;
    for (int f = 0; f < F; ++f) {
      auto [a, b] = lanes(f, d, interleaved);
      // Invert RoPE: divide by s, rotate by -p*omega.
      const double y0 = y[a] / s, y1 = y[b] / s;
      const double cs = std::cos(double(p) * omega[f]), sn = std::sin(double(p) * omega[f]);
      const double k0 = y0 * cs + y1 * sn, k1 = y1 * cs - y0 * sn;
      const double qr = h.q_mean_real[f], qi = h.q_mean_imag[f];
      // qbar * conj(kappa)
      const double re = qr * k0 + qi * k1, im = qi * k0 - qr * k1;
      const double kabs = std::hypot(k0, k1), qbar_abs = std::hypot(qr, qi);
      amp[f] = qbar_abs * kabs;
      phi[f] = std::atan2(im, re);
      const double cf = o.disable_mlr ? double(h.q_abs_mean[f]) : double(h.q_abs_mean[f]) - qbar_abs;
      norm += w * cf * kabs;
    }
    if (o.disable_trig) {
      out[j] = norm;
      continue;
    }
    double sum = 0, best = -INFINITY;
    for (int64_t delta : D) {
      double trig = 0;
      for (int f = 0; f < F; ++f) trig += w * amp[f] * std::cos(double(t + delta - p) * omega[f] + phi[f]);
      sum += trig + norm;
      best = std::max(best, trig + norm);
    }
    out[j] = o.aggregation == TriAggregation::Mean ? sum / double(D.size()) : best;
  }
  return out;
}

std::string describe(const RopeVariant& v, const ModelConfig& c, const TriScoringOptions& o, int64_t t) {
  std::ostringstream s;
  s << v.name << ", head_dim " << c.head_dim << ", " << to_string(c.rope_pairing) << ", "
    << (o.aggregation == TriAggregation::Mean ? "mean" : "max") << ", offset_max " << o.offset_max
    << (o.disable_mlr ? ", disable_mlr" : "") << (o.disable_trig ? ", disable_trig" : "") << ", t " << t;
  return s.str();
}

// |got - ref| <= 1e-5 * max(1, max|ref|) for every key.
::testing::AssertionResult close_to_reference(const std::vector<float>& got, const std::vector<double>& ref) {
  double scale = 1.0;
  for (double r : ref) scale = std::max(scale, std::fabs(r));
  const double tol = 1e-5 * scale;
  for (size_t j = 0; j < ref.size(); ++j)
    if (!(std::fabs(double(got[j]) - ref[j]) <= tol))
      return ::testing::AssertionFailure() << "key " << j << ": TriScorer " << got[j] << ", direct formula " << ref[j]
                                           << " (|diff| " << std::fabs(double(got[j]) - ref[j]) << " > tol " << tol
                                           << ")";
  return ::testing::AssertionSuccess();
}

// Every pairing, head_dim, aggregation, ablation flag, offset range and a span of t (up to ~40000,
// where t*omega reaches 4e4 rad and (t+delta)*omega 1e5 rad) for one RoPE variant.
void check_variant(const RopeVariant& v, int n_keys = 37) {
  std::mt19937 rng(1234);
  int checked = 0;
  for (int d : {64, 128})
    for (RopePairing pairing : {RopePairing::Half, RopePairing::Interleaved}) {
      const ModelConfig c = make_config(d, pairing, v);
      const RopeTable rope(c);
      // Two heads: a diffuse one and a concentrated one (trig term dominant).
      const std::vector<HeadStats> heads = {random_stats(d / 2, 1.0, rng), random_stats(d / 2, 0.05, rng)};
      for (int64_t t : {int64_t(1), int64_t(137), int64_t(4097), int64_t(39999)}) {
        const KeySet keys = random_keys(c, rope, n_keys, t, rng);
        for (TriAggregation agg : {TriAggregation::Mean, TriAggregation::Max})
          for (int64_t offset_max : {int64_t(65536), int64_t(16)})
            for (int flags = 0; flags < 4; ++flags) {
              TriScoringOptions o;
              o.aggregation = agg;
              o.offset_max = offset_max;
              o.disable_mlr = flags & 1;
              o.disable_trig = flags & 2;
              const TriScorer scorer(c, o);
              for (size_t hi = 0; hi < heads.size(); ++hi) {
                std::vector<float> out(n_keys, std::nanf(""));
                scorer.score(heads[hi], t, keys.post.data(), n_keys, out.data());
                const auto ref = direct_scores(c, heads[hi], t, keys, o);
                ASSERT_TRUE(close_to_reference(out, ref)) << describe(v, c, o, t) << ", head " << hi;
                ++checked;
              }
            }
      }
    }
  EXPECT_EQ(checked, 2 * 2 * 4 * 2 * 2 * 4 * 2);
}

// ---------------------------------------------------------------------------------------------
// The reference itself: with one offset and c_f = 0, trig(delta) is the RoPE attention logit
// (without 1/sqrt(d)) between the query centre rotated by RopeTable to t + delta and the cached key.

TEST(TriScoring, DirectFormulaIsTheRopeLogitOfTheQueryCentre) {
  std::mt19937 rng(7);
  for (const RopeVariant& v : {plain(1e4), llama3(), yarn()})
    for (RopePairing pairing : {RopePairing::Half, RopePairing::Interleaved}) {
      const ModelConfig c = make_config(64, pairing, v);
      const RopeTable rope(c);
      const int d = c.head_dim, F = d / 2;
      const bool interleaved = pairing == RopePairing::Interleaved;
      HeadStats h = random_stats(F, 0.0, rng);
      for (int f = 0; f < F; ++f) h.q_abs_mean[f] = std::hypot(h.q_mean_real[f], h.q_mean_imag[f]);
      const int64_t t = 30001;
      const KeySet keys = random_keys(c, rope, 9, t, rng);
      TriScoringOptions o;
      o.offset_max = 1;  // delta = 1 only
      const auto ref = direct_scores(c, h, t, keys, o);
      std::vector<float> q(d);
      for (int f = 0; f < F; ++f) {
        auto [a, b] = lanes(f, d, interleaved);
        q[a] = h.q_mean_real[f];
        q[b] = h.q_mean_imag[f];
      }
      rope.apply(q.data(), 1, int(t + 1));
      for (int j = 0; j < 9; ++j) {
        double logit = 0;
        for (int i = 0; i < d; ++i) logit += double(q[i]) * keys.post[size_t(j) * d + i];
        // The norm term is w*(qabs - |qbar|)*|kappa| with qabs rounded to float: ~1e-7.
        EXPECT_NEAR(ref[j], logit, 1e-4 * std::max(1.0, std::fabs(logit))) << v.name << " " << to_string(pairing);
      }
    }
}

TEST(TriScoring, TestedRopeVariantsReallyRescale) {
  // YaRN must have s != 1 and llama3 must have rescaled frequencies, or the tests below prove less.
  const ModelConfig y = make_config(64, RopePairing::Half, yarn());
  EXPECT_NEAR(rope_attention_scale(y), 0.1 * std::log(32.0) + 1.0, 1e-12);
  EXPECT_NEAR(RopeTable(y).attention_scale(), rope_attention_scale(y), 1e-12);
  const auto yarn_f = rope_inv_freq(y), yarn_plain = rope_inv_freq(make_config(64, RopePairing::Half, plain(1.5e5)));
  EXPECT_NE(yarn_f.back(), yarn_plain.back());
  const ModelConfig l = make_config(128, RopePairing::Half, llama3());
  const auto l_f = rope_inv_freq(l), l_plain = rope_inv_freq(make_config(128, RopePairing::Half, plain(5e5)));
  EXPECT_NEAR(l_f.back(), l_plain.back() / 8.0, 1e-15);
  EXPECT_EQ(l_f.front(), l_plain.front());
  EXPECT_EQ(rope_attention_scale(l), 1.0);
}

// ---------------------------------------------------------------------------------------------
// TriScorer against the direct formula.

TEST(TriScoring, OffsetsAreGeometricUpToOffsetMax) {
  const ModelConfig c = make_config(64, RopePairing::Half, plain(1e4));
  for (int64_t m : {int64_t(65536), int64_t(16), int64_t(20), int64_t(1), int64_t(100000)}) {
    TriScoringOptions o;
    o.offset_max = m;
    EXPECT_EQ(TriScorer(c, o).offsets(), expected_offsets(m)) << m;
  }
  TriScoringOptions o;
  EXPECT_EQ(TriScorer(c, o).offsets().size(), 17u);
  EXPECT_EQ(TriScorer(c, o).offsets().back(), 65536);
}

TEST(TriScoring, MatchesDirectFormulaPlainRopeTheta1e4) { check_variant(plain(1e4)); }
TEST(TriScoring, MatchesDirectFormulaPlainRopeTheta1e6) { check_variant(plain(1e6)); }
TEST(TriScoring, MatchesDirectFormulaLlama3Frequencies) { check_variant(llama3()); }
TEST(TriScoring, MatchesDirectFormulaYarnFrequenciesAndScale) { check_variant(yarn()); }

TEST(TriScoring, ScoreIsIndependentOfKeyOrderAndBatchSize) {
  // Each key's score depends on that key alone: scoring one key at a time gives the same numbers.
  std::mt19937 rng(99);
  const ModelConfig c = make_config(128, RopePairing::Half, yarn());
  const RopeTable rope(c);
  const HeadStats h = random_stats(64, 0.3, rng);
  const int64_t t = 20000;
  const KeySet keys = random_keys(c, rope, 13, t, rng);
  for (TriAggregation agg : {TriAggregation::Mean, TriAggregation::Max}) {
    TriScoringOptions o;
    o.aggregation = agg;
    const TriScorer scorer(c, o);
    std::vector<float> all(13);
    scorer.score(h, t, keys.post.data(), 13, all.data());
    for (int j = 0; j < 13; ++j) {
      float one = std::nanf("");
      scorer.score(h, t, keys.post.data() + size_t(j) * 128, 1, &one);
      EXPECT_NEAR(one, all[j], 1e-6 * std::max(1.0f, std::fabs(all[j]))) << j;
    }
    float untouched = -123.0f;
    scorer.score(h, t, keys.post.data(), 0, &untouched);  // n = 0: nothing written
    EXPECT_EQ(untouched, -123.0f);
  }
}

}  // namespace
}  // namespace kvb
