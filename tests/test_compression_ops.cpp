// The KV-compression kernels (kernels/cpu/compression_cpu.hpp, shared/spec/triattention.md sections 2
// and 4): hand-checked small cases, then randomized invariants at awkward sizes against
// straightforward double-precision loops written here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/compression_cpu.hpp"

namespace kvb {
namespace {

std::vector<float> random_vector(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

double sum_of(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x;
  return s;
}

// Softmax in double.
std::vector<double> softmax_ref(const std::vector<double>& x) {
  std::vector<double> p(x.size());
  if (x.empty()) return p;
  const double m = *std::max_element(x.begin(), x.end());
  double z = 0;
  for (size_t i = 0; i < x.size(); ++i) z += p[i] = std::exp(x[i] - m);
  for (double& v : p) v /= z;
  return p;
}

// ---------------------------------------------------------------------------------------------
// Double-precision references.

// Lanes of frequency f's complex pair.
std::pair<int, int> pair_lanes(int f, int head_dim, bool interleaved) {
  return interleaved ? std::pair{2 * f, 2 * f + 1} : std::pair{f, f + head_dim / 2};
}

std::vector<double> tri_scores_ref(const std::vector<float>& keys, int n, int d, bool interleaved,
                                   const std::vector<float>& u, int n_u, const std::vector<float>& e) {
  std::vector<double> out(n);
  for (int j = 0; j < n; ++j) {
    const float* k = keys.data() + size_t(j) * d;
    double best = -INFINITY;
    for (int q = 0; q < n_u; ++q) {
      double dot = 0;
      for (int i = 0; i < d; ++i) dot += double(u[size_t(q) * d + i]) * k[i];
      best = std::max(best, dot);
    }
    double norm = 0;
    for (int f = 0; f < d / 2; ++f) {
      auto [a, b] = pair_lanes(f, d, interleaved);
      norm += double(e[f]) * std::hypot(double(k[a]), double(k[b]));
    }
    out[j] = (n_u > 0 ? best : 0.0) + norm;
  }
  return out;
}

std::vector<double> zscore_ref(const std::vector<float>& x) {
  const int n = int(x.size());
  double mean = 0;
  for (float v : x) mean += v;
  mean /= n;
  double var = 0;
  for (float v : x) var += (v - mean) * (v - mean);
  const double sd = std::max(std::sqrt(var / n), 1e-6);
  std::vector<double> out(n);
  for (int i = 0; i < n; ++i) out[i] = (x[i] - mean) / sd;
  return out;
}

std::vector<double> window_attention_ref(const std::vector<float>& queries, int W, int G,
                                         const std::vector<float>& keys, int n, int d) {
  std::vector<double> out(n, 0.0);
  for (int w = 0; w < W; ++w) {
    std::vector<double> logit(n, -INFINITY);
    for (int g = 0; g < G; ++g) {
      const float* q = queries.data() + (size_t(w) * G + g) * d;
      for (int j = 0; j < n; ++j) {
        double dot = 0;
        for (int i = 0; i < d; ++i) dot += double(q[i]) * keys[size_t(j) * d + i];
        logit[j] = std::max(logit[j], dot / std::sqrt(double(d)));
      }
    }
    auto p = softmax_ref(logit);
    for (int j = 0; j < n; ++j) out[j] += p[j] / W;
  }
  return out;
}

std::vector<double> max_pool_ref(const std::vector<float>& in, int radius) {
  const int n = int(in.size());
  std::vector<double> out(n);
  for (int j = 0; j < n; ++j) {
    double m = -INFINITY;
    for (int i = std::max(0, j - radius); i <= std::min(n - 1, j + radius); ++i) m = std::max(m, double(in[i]));
    out[j] = m;
  }
  return out;
}

std::vector<std::vector<double>> cosine_matrix(const std::vector<float>& keys, int n, int d) {
  std::vector<double> norm(n);
  for (int i = 0; i < n; ++i) {
    double s = 0;
    for (int c = 0; c < d; ++c) s += double(keys[size_t(i) * d + c]) * keys[size_t(i) * d + c];
    norm[i] = std::sqrt(s);
  }
  std::vector<std::vector<double>> sim(n, std::vector<double>(n, 0.0));
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      if (i == j) continue;
      double dot = 0;
      for (int c = 0; c < d; ++c) dot += double(keys[size_t(i) * d + c]) * keys[size_t(j) * d + c];
      sim[i][j] = dot / (norm[i] * norm[j]);
    }
  return sim;
}

std::vector<double> key_redundancy_ref(const std::vector<float>& keys, int n, int d, double threshold) {
  auto sim = cosine_matrix(keys, n, d);
  for (int i = 0; i < n; ++i) {
    int latest = 0;  // R-KV's index defaults to column 0 when no key is similar
    for (int j = 0; j < n; ++j)
      if (sim[i][j] > threshold) latest = j;
    sim[i][latest] = 0.0;
  }
  std::vector<double> col(n, 0.0);
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < n; ++i) col[j] += sim[i][j];
    col[j] /= n;
  }
  return softmax_ref(col);
}

std::vector<int> top_k_ref(const std::vector<float>& score, int k) {
  std::vector<int> idx(score.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return score[a] > score[b]; });
  idx.resize(k);
  return idx;
}

const int kAwkwardSizes[] = {1, 7, 33, 130};

// ---------------------------------------------------------------------------------------------
// tri_scores

// Two 4-lane keys whose pair magnitudes are whole numbers in both layouts:
//   k0 = [3,0,4,0]: half pairs (3,4)->5, (0,0)->0;  interleaved pairs (3,0)->3, (4,0)->4
//   k1 = [0,6,0,8]: half pairs (0,0)->0, (6,8)->10; interleaved pairs (0,6)->6, (0,8)->8
const std::vector<float> kHandKeys = {3, 0, 4, 0, 0, 6, 0, 8};
const std::vector<float> kHandE = {0.5f, 0.125f};

TEST(CompressionOps, TriScoresHandCaseHalfLayout) {
  const std::vector<float> u = {1, -1, 0.5f, 2};  // dot k0 = 3 + 2 = 5, dot k1 = -6 + 16 = 10
  std::vector<float> out(2, std::nanf(""));
  cpu::tri_scores(out.data(), kHandKeys.data(), 2, 4, /*interleaved=*/false, u.data(), 1, kHandE.data());
  EXPECT_NEAR(out[0], 5 + 0.5 * 5 + 0.125 * 0, 1e-5);   // 7.5
  EXPECT_NEAR(out[1], 10 + 0.5 * 0 + 0.125 * 10, 1e-5);  // 11.25
}

TEST(CompressionOps, TriScoresHandCaseInterleavedLayout) {
  const std::vector<float> u = {1, -1, 0.5f, 2};
  std::vector<float> out(2, std::nanf(""));
  cpu::tri_scores(out.data(), kHandKeys.data(), 2, 4, /*interleaved=*/true, u.data(), 1, kHandE.data());
  EXPECT_NEAR(out[0], 5 + 0.5 * 3 + 0.125 * 4, 1e-5);   // 7.0
  EXPECT_NEAR(out[1], 10 + 0.5 * 6 + 0.125 * 8, 1e-5);  // 14.0
}

TEST(CompressionOps, TriScoresNormOnlyWhenNoQueries) {
  std::vector<float> out(2, std::nanf(""));
  cpu::tri_scores(out.data(), kHandKeys.data(), 2, 4, false, nullptr, 0, kHandE.data());
  EXPECT_NEAR(out[0], 2.5, 1e-6);
  EXPECT_NEAR(out[1], 1.25, 1e-6);
  cpu::tri_scores(out.data(), kHandKeys.data(), 2, 4, true, nullptr, 0, kHandE.data());
  EXPECT_NEAR(out[0], 0.5 * 3 + 0.125 * 4, 1e-6);  // 2.0
  EXPECT_NEAR(out[1], 0.5 * 6 + 0.125 * 8, 1e-6);  // 4.0
}

TEST(CompressionOps, TriScoresTakesTheMaxOverQueries) {
  // u0: dots (5, 10); u1 = [2,0,1,0]: dots (10, 0) -> max (10, 10), in either order.
  const std::vector<float> u01 = {1, -1, 0.5f, 2, 2, 0, 1, 0};
  const std::vector<float> u10 = {2, 0, 1, 0, 1, -1, 0.5f, 2};
  for (const auto* u : {&u01, &u10}) {
    std::vector<float> out(2, std::nanf(""));
    cpu::tri_scores(out.data(), kHandKeys.data(), 2, 4, false, u->data(), 2, kHandE.data());
    EXPECT_NEAR(out[0], 10 + 2.5, 1e-5);
    EXPECT_NEAR(out[1], 10 + 1.25, 1e-5);
  }
  // All dots negative: the max is negative too (no implicit 0 candidate).
  // -u0: dots (-5, -10); [-1,-1,-1,-1]: dots (-7, -14) -> max (-5, -10).
  const std::vector<float> neg = {-1, 1, -0.5f, -2, -1, -1, -1, -1};
  std::vector<float> out(2, std::nanf(""));
  cpu::tri_scores(out.data(), kHandKeys.data(), 2, 4, false, neg.data(), 2, kHandE.data());
  EXPECT_NEAR(out[0], -5 + 2.5, 1e-5);
  EXPECT_NEAR(out[1], -10 + 1.25, 1e-5);
}

TEST(CompressionOps, TriScoresMatchReferenceAtAwkwardSizes) {
  std::mt19937 rng(101);
  for (int d : {4, 64, 128})
    for (bool interleaved : {false, true})
      for (int n_u : {0, 1, 2, 17})
        for (int n : kAwkwardSizes) {
          auto keys = random_vector(size_t(n) * d, rng, -2.0f, 2.0f);
          auto u = random_vector(size_t(std::max(n_u, 1)) * d, rng);
          auto e = random_vector(d / 2, rng, 0.0f, 1.0f);
          std::vector<float> out(n, std::nanf(""));
          cpu::tri_scores(out.data(), keys.data(), n, d, interleaved, n_u ? u.data() : nullptr, n_u, e.data());
          auto ref = tri_scores_ref(keys, n, d, interleaved, u, n_u, e);
          const double tol = 1e-5 * std::max(1.0, max_abs(ref));
          for (int j = 0; j < n; ++j)
            ASSERT_NEAR(out[j], ref[j], tol) << "d " << d << " interleaved " << interleaved << " n_u " << n_u
                                             << " n " << n << " key " << j;
        }
}

// ---------------------------------------------------------------------------------------------
// zscore

TEST(CompressionOps, ZscoreKnownValuesPopulationStd) {
  // mean 5, population std 2 (the sample std would be 2.138).
  std::vector<float> x = {2, 4, 4, 4, 5, 5, 7, 9};
  cpu::zscore(x.data(), int(x.size()));
  const double expect[] = {-1.5, -0.5, -0.5, -0.5, 0, 0, 1, 2};
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], expect[i], 1e-6) << i;
}

TEST(CompressionOps, ZscoreConstantVectorIsAllZeros) {
  for (float c : {0.0f, 3.0f, -2.5f, 1024.0f}) {
    std::vector<float> x(9, c);
    cpu::zscore(x.data(), int(x.size()));
    for (float v : x) {
      ASSERT_TRUE(std::isfinite(v)) << c;
      ASSERT_EQ(v, 0.0f) << c;
    }
  }
}

TEST(CompressionOps, ZscoreSingleValueIsZero) {
  std::vector<float> x = {42.0f};
  cpu::zscore(x.data(), 1);
  EXPECT_EQ(x[0], 0.0f);
}

TEST(CompressionOps, ZscoreClampsTinyStdTo1e6) {
  // mean 1e-7, population std 1e-7 < 1e-6: divided by 1e-6, not by the std (+-1) nor by 1 (+-1e-7).
  std::vector<float> x = {0.0f, 2e-7f};
  cpu::zscore(x.data(), 2);
  EXPECT_NEAR(x[0], -0.1, 1e-4);
  EXPECT_NEAR(x[1], 0.1, 1e-4);
}

TEST(CompressionOps, ZscoreMatchesReferenceAtAwkwardSizes) {
  std::mt19937 rng(5);
  for (int n : kAwkwardSizes) {
    auto x = random_vector(n, rng, -30.0f, 50.0f);
    auto ref = zscore_ref(x);
    cpu::zscore(x.data(), n);
    double mean = 0, var = 0;
    for (int i = 0; i < n; ++i) {
      ASSERT_NEAR(x[i], ref[i], 1e-5 * std::max(1.0, max_abs(ref))) << "n " << n << " at " << i;
      mean += x[i];
    }
    mean /= n;
    for (float v : x) var += (v - mean) * (v - mean);
    EXPECT_NEAR(mean, 0.0, 1e-5) << n;
    if (n > 1) EXPECT_NEAR(var / n, 1.0, 1e-4) << n;  // population variance 1 afterwards
  }
}

// ---------------------------------------------------------------------------------------------
// window_attention

TEST(CompressionOps, WindowAttentionHandCase) {
  // head_dim 4 (logits divided by 2), W = 2 window queries, G = 2 heads, 3 keys.
  const int d = 4, W = 2, G = 2, n = 3;
  const std::vector<float> keys = {1, 0, 0, 0,   // k0
                                   0, 1, 0, 0,   // k1
                                   0, 0, 0, 0};  // k2
  const std::vector<float> queries = {
      2, 0, 0, 0,   0, 4, 0, 0,    // w0: head0 logits (1,0,0), head1 (0,2,0) -> max (1,2,0)
      -2, 0, 0, 0,  0, 0, 0, 0};   // w1: head0 (-1,0,0), head1 (0,0,0)       -> max (0,0,0)
  std::vector<float> out(n, std::nanf(""));
  cpu::window_attention(out.data(), queries.data(), W, G, keys.data(), n, d);
  const double z = std::exp(1.0) + std::exp(2.0) + 1.0;
  const double expect[] = {(std::exp(1.0) / z + 1.0 / 3) / 2,   // 0.22103
                           (std::exp(2.0) / z + 1.0 / 3) / 2,   // 0.51148
                           (1.0 / z + 1.0 / 3) / 2};            // 0.26749
  for (int j = 0; j < n; ++j) EXPECT_NEAR(out[j], expect[j], 1e-6) << j;
  EXPECT_NEAR(sum_of(out), 1.0, 1e-6);
}

TEST(CompressionOps, WindowAttentionMatchesReferenceAtAwkwardSizes) {
  std::mt19937 rng(17);
  for (int d : {4, 64})
    for (auto [W, G] : std::vector<std::pair<int, int>>{{1, 1}, {8, 1}, {8, 4}, {3, 7}})
      for (int n : kAwkwardSizes) {
        auto keys = random_vector(size_t(n) * d, rng, -2.0f, 2.0f);
        auto queries = random_vector(size_t(W) * G * d, rng, -2.0f, 2.0f);
        std::vector<float> out(n, std::nanf(""));
        cpu::window_attention(out.data(), queries.data(), W, G, keys.data(), n, d);
        auto ref = window_attention_ref(queries, W, G, keys, n, d);
        for (int j = 0; j < n; ++j)
          ASSERT_NEAR(out[j], ref[j], 1e-5 * std::max(1e-2, max_abs(ref)))
              << "d " << d << " W " << W << " G " << G << " n " << n << " at " << j;
        EXPECT_NEAR(sum_of(out), 1.0, 1e-5) << "d " << d << " W " << W << " G " << G << " n " << n;
      }
}

// ---------------------------------------------------------------------------------------------
// max_pool

TEST(CompressionOps, MaxPoolRadius3HandCase) {
  // Spikes at 0 (3) and 5 (7), n = 12, kernel 7.
  const std::vector<float> in = {3, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 1};
  std::vector<float> out(in.size(), std::nanf(""));
  cpu::max_pool(out.data(), in.data(), int(in.size()), 3);
  const std::vector<float> expect = {3, 3, 7, 7, 7, 7, 7, 7, 7, 1, 1, 1};
  EXPECT_EQ(out, expect);
}

TEST(CompressionOps, MaxPoolEdgesArePaddedWithMinusInfinity) {
  // All negative: padding must not contribute a 0.
  const std::vector<float> in = {-5, -4, -3, -2, -1, -2, -3, -4, -5};
  std::vector<float> out(in.size(), std::nanf(""));
  cpu::max_pool(out.data(), in.data(), int(in.size()), 3);
  const std::vector<float> expect = {-2, -1, -1, -1, -1, -1, -1, -1, -2};
  EXPECT_EQ(out, expect);
}

TEST(CompressionOps, MaxPoolShorterThanKernel) {
  const std::vector<float> in = {-1, -7, -3};
  std::vector<float> out(3, std::nanf(""));
  cpu::max_pool(out.data(), in.data(), 3, 3);
  EXPECT_EQ(out, (std::vector<float>{-1, -1, -1}));
  std::vector<float> one = {-4.5f}, one_out = {std::nanf("")};
  cpu::max_pool(one_out.data(), one.data(), 1, 3);
  EXPECT_EQ(one_out[0], -4.5f);
}

TEST(CompressionOps, MaxPoolRadiusZeroIsIdentity) {
  const std::vector<float> in = {0.5f, -2, 9, 1};
  std::vector<float> out(4, std::nanf(""));
  cpu::max_pool(out.data(), in.data(), 4, 0);
  EXPECT_EQ(out, in);
}

TEST(CompressionOps, MaxPoolMatchesReferenceAtAwkwardSizes) {
  std::mt19937 rng(23);
  for (int radius : {0, 1, 3, 40})
    for (int n : kAwkwardSizes) {
      auto in = random_vector(n, rng, -3.0f, -1.0f);  // negative, so a zero padding would show
      std::vector<float> out(n, std::nanf(""));
      cpu::max_pool(out.data(), in.data(), n, radius);
      auto ref = max_pool_ref(in, radius);
      for (int j = 0; j < n; ++j) ASSERT_EQ(double(out[j]), ref[j]) << "radius " << radius << " n " << n << " at " << j;
    }
}

// ---------------------------------------------------------------------------------------------
// key_redundancy

// Five 2-lane keys (norms deliberately not 1):
//   k0 = [1,0], k1 = [2.5,0] (cos 1 with k0), k2 = [0,0.5] (orthogonal to k0,k1),
//   k3 = [3,4] (cos 0.6 with k0,k1; 0.8 with k2), k4 = [-7,0] (no similar key: cos -1,-1,0,-0.6).
const std::vector<float> kRedundancyKeys = {1, 0, 2.5f, 0, 0, 0.5f, 3, 4, -7, 0};

TEST(CompressionOps, KeyRedundancyHandCaseZeroesTheLatestSimilarKey) {
  // Threshold 0.5. Rows after zeroing the diagonal and each row's LATEST j with sim > 0.5:
  //   row0 [0, 1, 0, 0.6, -1] -> latest similar j=3 (not the most similar j=1) -> [0, 1, 0, 0, -1]
  //   row1 [1, 0, 0, 0.6, -1] -> j=3                                             -> [1, 0, 0, 0, -1]
  //   row2 [0, 0, 0, 0.8, 0]  -> j=3                                             -> [0, 0, 0, 0, 0]
  //   row3 [.6,.6,.8, 0,-.6]  -> j=2                                             -> [.6,.6, 0, 0,-.6]
  //   row4 [-1,-1, 0,-.6, 0]  -> none > 0.5: the index defaults to 0 -> [0,-1, 0,-.6, 0]
  // column sums (1.6, 0.6, 0, -0.6, -2.6), means /5 = (0.32, 0.12, 0, -0.12, -0.52).
  std::vector<float> out(5, std::nanf(""));
  cpu::key_redundancy(out.data(), kRedundancyKeys.data(), 5, 2, 0.5f);
  static const double means[] = {0.32, 0.12, 0.0, -0.12, -0.52};
  const auto expect = softmax_ref(std::vector<double>(std::begin(means), std::end(means)));
  for (int j = 0; j < 5; ++j) EXPECT_NEAR(out[j], expect[j], 1e-6) << j;
  EXPECT_NEAR(sum_of(out), 1.0, 1e-6);
}

TEST(CompressionOps, KeyRedundancyUsesTheThresholdArgument) {
  // Threshold 0.7: only cos 1 (k0<->k1) and 0.8 (k2<->k3) count.
  //   row0 [0, 1, 0, .6,-1] -> j=1 -> [0, 0, 0, .6, -1]
  //   row1 [1, 0, 0, .6,-1] -> j=0 -> [0, 0, 0, .6, -1]
  //   row2 [0, 0, 0, .8, 0] -> j=3 -> [0, 0, 0, 0, 0]
  //   row3 [.6,.6,.8,0,-.6] -> j=2 -> [.6,.6, 0, 0, -.6]
  //   row4 [-1,-1,0,-.6, 0] -> none: column 0 -> [0,-1, 0,-.6, 0]
  // column sums (0.6, -0.4, 0, 0.6, -2.6) / 5.
  std::vector<float> out(5, std::nanf(""));
  cpu::key_redundancy(out.data(), kRedundancyKeys.data(), 5, 2, 0.7f);
  static const double means[] = {0.12, -0.08, 0.0, 0.12, -0.52};
  const auto expect = softmax_ref(std::vector<double>(std::begin(means), std::end(means)));
  for (int j = 0; j < 5; ++j) EXPECT_NEAR(out[j], expect[j], 1e-6) << j;
}

TEST(CompressionOps, KeyRedundancyFourKeysAllSimilarPairs) {
  // Only the first four keys: means over 4 rows.
  //   row0 [0,1,0,.6] -> j=3 -> [0,1,0,0];  row1 [1,0,0,.6] -> [1,0,0,0];
  //   row2 [0,0,0,.8] -> [0,0,0,0];        row3 [.6,.6,.8,0] -> j=2 -> [.6,.6,0,0]
  // column means (0.4, 0.4, 0, 0).
  std::vector<float> out(4, std::nanf(""));
  cpu::key_redundancy(out.data(), kRedundancyKeys.data(), 4, 2, 0.5f);
  // (Spelled as a static array: GCC 12.2 with -march=native on AVX-512 miscompiled the braced list
  // {0.4, 0.4, 0.0, 0.0} here into four copies of 0.4.)
  static const double means[] = {0.4, 0.4, 0.0, 0.0};
  const auto expect = softmax_ref(std::vector<double>(std::begin(means), std::end(means)));
  for (int j = 0; j < 4; ++j) EXPECT_NEAR(out[j], expect[j], 1e-6) << j;
}

TEST(CompressionOps, KeyRedundancySingleKey) {
  const std::vector<float> k = {0.3f, -0.2f, 0.9f, 0.1f};
  std::vector<float> out = {std::nanf("")};
  cpu::key_redundancy(out.data(), k.data(), 1, 4, 0.5f);
  EXPECT_NEAR(out[0], 1.0, 1e-6);
}

// Keys around a few random centres so that many pairs exceed the threshold, regenerated until no
// cosine lies within 2e-5 of it (float rounding must not flip a comparison).
std::vector<float> clustered_keys(int n, int d, double threshold, std::mt19937& rng) {
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::uniform_int_distribution<int> pick(0, 3);
  for (;;) {
    std::vector<std::vector<float>> centre(4, std::vector<float>(d));
    for (auto& c : centre)
      for (float& v : c) v = g(rng);
    std::vector<float> keys(size_t(n) * d);
    for (int i = 0; i < n; ++i) {
      const auto& c = centre[pick(rng)];
      const float noise = (i % 3 == 0) ? 1.5f : 0.5f;
      const float scale = 0.5f + 0.1f * float(i % 7);
      for (int x = 0; x < d; ++x) keys[size_t(i) * d + x] = scale * (c[x] + noise * g(rng));
    }
    auto sim = cosine_matrix(keys, n, d);
    bool ok = true;
    for (int i = 0; i < n && ok; ++i)
      for (int j = 0; j < n && ok; ++j)
        if (i != j && std::fabs(sim[i][j] - threshold) < 2e-5) ok = false;
    if (ok) return keys;
  }
}

TEST(CompressionOps, KeyRedundancyMatchesReferenceAtAwkwardSizes) {
  std::mt19937 rng(29);
  for (int d : {2, 64})
    for (int n : kAwkwardSizes) {
      auto keys = clustered_keys(n, d, 0.5, rng);
      // The hand-made clusters must exercise the zeroing rule.
      auto sim = cosine_matrix(keys, n, d);
      int similar_pairs = 0;
      for (auto& row : sim)
        for (double v : row) similar_pairs += v > 0.5;
      if (n >= 7) EXPECT_GT(similar_pairs, n) << "d " << d << " n " << n;

      std::vector<float> out(n, std::nanf(""));
      cpu::key_redundancy(out.data(), keys.data(), n, d, 0.5f);
      auto ref = key_redundancy_ref(keys, n, d, 0.5);
      for (int j = 0; j < n; ++j)
        ASSERT_NEAR(out[j], ref[j], 1e-5 * max_abs(ref) + 1e-7) << "d " << d << " n " << n << " at " << j;
      EXPECT_NEAR(sum_of(out), 1.0, 1e-5);
    }
}

// ---------------------------------------------------------------------------------------------
// top_k

TEST(CompressionOps, TopKDescendingWithTiesToLowerIndex) {
  const std::vector<float> s = {1, 3, 3, 2, 3, -1};
  std::vector<int> out = {99, 98, 97, 96, 95, 94, 93};  // stale content must be replaced
  cpu::top_k(s.data(), 6, 3, out);
  EXPECT_EQ(out, (std::vector<int>{1, 2, 4}));
  cpu::top_k(s.data(), 6, 4, out);
  EXPECT_EQ(out, (std::vector<int>{1, 2, 4, 3}));
  cpu::top_k(s.data(), 6, 1, out);
  EXPECT_EQ(out, (std::vector<int>{1}));
}

TEST(CompressionOps, TopKZeroAndAll) {
  const std::vector<float> s = {-0.5f, 2, -0.5f, 7, 2};
  std::vector<int> out = {1, 2, 3};
  cpu::top_k(s.data(), 5, 0, out);
  EXPECT_TRUE(out.empty());
  cpu::top_k(s.data(), 5, 5, out);
  EXPECT_EQ(out, (std::vector<int>{3, 1, 4, 0, 2}));
  const std::vector<float> one = {-3};
  cpu::top_k(one.data(), 1, 1, out);
  EXPECT_EQ(out, (std::vector<int>{0}));
}

TEST(CompressionOps, TopKMatchesReferenceAtAwkwardSizes) {
  std::mt19937 rng(31);
  for (int n : kAwkwardSizes) {
    // Few distinct values (like bf16 scores): many exact ties.
    std::uniform_int_distribution<int> v(-4, 4);
    std::vector<float> tied(n), spread = random_vector(n, rng);
    for (float& x : tied) x = 0.25f * float(v(rng));
    for (const auto* s : {&tied, &spread})
      for (int k : {0, 1, n / 2, n - 1, n}) {
        if (k < 0) continue;
        std::vector<int> out;
        cpu::top_k(s->data(), n, k, out);
        ASSERT_EQ(out, top_k_ref(*s, k)) << "n " << n << " k " << k;
      }
  }
}

}  // namespace
}  // namespace kvb
