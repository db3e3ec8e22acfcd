// CPU ops against straightforward double-precision loops on random inputs of awkward sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/exp_approx.hpp"
#include "kernels/ops.hpp"

namespace kvb {
namespace {

std::vector<float> random_vector(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(CpuOps, MatmulMatchesNaiveLoops) {
  std::mt19937 rng(7);
  // Sizes straddle the 4-row and 4-output blocks and the threading threshold.
  for (auto [rows, in, out] : std::vector<std::tuple<int, int, int>>{
           {1, 1, 1}, {1, 8, 5}, {3, 7, 9}, {4, 64, 172}, {5, 33, 4}, {9, 130, 67}, {1, 1024, 515}, {17, 256, 300}}) {
    auto x = random_vector(size_t(rows) * in, rng);
    auto w = random_vector(size_t(out) * in, rng);
    std::vector<float> y(size_t(rows) * out, std::nanf(""));
    cpu::matmul(y.data(), x.data(), w.data(), rows, in, out);
    for (int r = 0; r < rows; ++r)
      for (int o = 0; o < out; ++o) {
        double ref = 0;
        for (int i = 0; i < in; ++i) ref += double(x[size_t(r) * in + i]) * w[size_t(o) * in + i];
        ASSERT_NEAR(y[size_t(r) * out + o], ref, 1e-5 * std::sqrt(double(in)) + 1e-6)
            << "rows " << rows << " in " << in << " out " << out << " at " << r << "," << o;
      }
  }
}

TEST(CpuOps, RmsnormSwigluSoftmaxBias) {
  std::mt19937 rng(11);
  const int rows = 3, n = 37;
  auto x = random_vector(size_t(rows) * n, rng);
  auto w = random_vector(n, rng);
  std::vector<float> y(x.size());
  cpu::rmsnorm(y.data(), x.data(), w.data(), rows, n, 1e-5f);
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += double(x[r * n + i]) * x[r * n + i];
    const double inv = 1.0 / std::sqrt(ss / n + 1e-5);
    for (int i = 0; i < n; ++i) ASSERT_NEAR(y[r * n + i], x[r * n + i] * inv * w[i], 1e-5);
  }

  auto gate = random_vector(n, rng), up = random_vector(n, rng), g = gate;
  cpu::swiglu(g.data(), up.data(), n);
  for (int i = 0; i < n; ++i) ASSERT_NEAR(g[i], gate[i] / (1 + std::exp(-double(gate[i]))) * up[i], 1e-6);

  auto s = random_vector(n, rng), p = s;
  for (float& v : p) v *= 30.0f;  // large logits: the max shift must keep exp finite
  s = p;
  cpu::softmax(p.data(), n);
  double max = *std::max_element(s.begin(), s.end()), sum = 0;
  for (float v : s) sum += std::exp(double(v) - max);
  for (int i = 0; i < n; ++i) ASSERT_NEAR(p[i], std::exp(double(s[i]) - max) / sum, 1e-6);

  std::vector<float> yb(size_t(rows) * n, 1.0f);
  cpu::add_bias(yb.data(), w.data(), rows, n);
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < n; ++i) ASSERT_FLOAT_EQ(yb[r * n + i], 1.0f + w[i]);
}

}  // namespace
}  // namespace kvb

namespace kvb {
namespace {

TEST(CpuOps, WeightedRowSumMatchesNaiveLoops) {
  std::mt19937 rng(3);
  for (auto [rows, n] : std::vector<std::pair<int, int>>{{1, 1}, {5, 8}, {7, 9}, {130, 64}, {33, 128}, {2, 23}}) {
    auto x = random_vector(rows, rng), w = random_vector(size_t(rows) * n, rng);
    std::vector<float> y(n, std::nanf(""));
    cpu::weighted_row_sum(y.data(), x.data(), w.data(), rows, n);
    for (int c = 0; c < n; ++c) {
      double ref = 0;
      for (int r = 0; r < rows; ++r) ref += double(x[r]) * w[size_t(r) * n + c];
      ASSERT_NEAR(y[c], ref, 1e-5 * std::sqrt(double(rows)) + 1e-6) << rows << "x" << n << " col " << c;
    }
  }
}

TEST(CpuOps, ExpApproxIsAccurate) {
  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
    const double ref = std::exp(double(x));
    ASSERT_NEAR(cpu::exp_approx(x) / ref, 1.0, 3e-7) << x;
  }
  EXPECT_EQ(cpu::exp_approx(-INFINITY), 0.0f);
  EXPECT_EQ(cpu::exp_approx(-100.0f), 0.0f);
  EXPECT_EQ(cpu::exp_approx(0.0f), 1.0f);
}

}  // namespace
}  // namespace kvb
