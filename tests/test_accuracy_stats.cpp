// Accuracy statistics (util/accuracy_stats.hpp): avg@N, unbiased pass@k and paired differences on
// hand-computed cases, and the coverage of the 95% interval in a simulation: many seeded runs of
// items drawn from a known population of per-item accuracies, 8 draws each; the interval must
// cover the population's mean accuracy at least 92% of the time with 30 items and 94-96% of the
// time with 500.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "util/accuracy_stats.hpp"
#include "util/counter_hash.hpp"
#include "util/errors.hpp"

namespace kvb {
namespace {

TEST(AccuracyStats, AvgAtNIsTheMeanOfPerItemMeans) {
  // Item 0: 3 of 4; item 1: 0 of 4; item 2: 4 of 4 -> (0.75 + 0 + 1) / 3.
  const DrawOutcomes o = {{1, 1, 0, 1}, {0, 0, 0, 0}, {1, 1, 1, 1}};
  const AccuracySummary s = summarize_accuracy(o, 2000, 1);
  EXPECT_EQ(s.items, 3);
  EXPECT_EQ(s.draws, 4);
  EXPECT_EQ(s.correct, 7);
  EXPECT_EQ(s.total, 12);
  EXPECT_DOUBLE_EQ(s.avg, 1.75 / 3);
  ASSERT_EQ(s.pass_at_k.size(), 4u);
  EXPECT_DOUBLE_EQ(s.pass_at_k[0], s.avg);  // pass@1 = avg@N
  // pass@2: item 0: 1 - C(1,2)/C(4,2) = 1; item 1: 0; item 2: 1.
  EXPECT_DOUBLE_EQ(s.pass_at_k[1], 2.0 / 3);
  EXPECT_LE(s.ci95.low, s.avg);
  EXPECT_GE(s.ci95.high, s.avg);
  EXPECT_GE(s.ci95.low, 0.0);
  EXPECT_LE(s.ci95.high, 1.0);
}

TEST(AccuracyStats, PassAtKByHand) {
  EXPECT_DOUBLE_EQ(pass_at_k(8, 0, 1), 0.0);
  EXPECT_DOUBLE_EQ(pass_at_k(8, 8, 8), 1.0);
  EXPECT_DOUBLE_EQ(pass_at_k(8, 2, 1), 0.25);
  // n = 5, c = 2, k = 2: 1 - C(3,2)/C(5,2) = 1 - 3/10.
  EXPECT_NEAR(pass_at_k(5, 2, 2), 0.7, 1e-12);
  // n = 8, c = 1, k = 4: 1 - C(7,4)/C(8,4) = 1 - 35/70.
  EXPECT_NEAR(pass_at_k(8, 1, 4), 0.5, 1e-12);
  EXPECT_THROW(pass_at_k(4, 1, 5), InputError);
  EXPECT_THROW(pass_at_k(4, 5, 1), InputError);
}

TEST(AccuracyStats, ConstantOutcomesHaveAPointInterval) {
  const AccuracySummary s = summarize_accuracy(DrawOutcomes(30, std::vector<uint8_t>(8, 0)));
  EXPECT_EQ(s.avg, 0.0);
  EXPECT_EQ(s.ci95.low, 0.0);
  EXPECT_EQ(s.ci95.high, 0.0);
}

TEST(AccuracyStats, PairedDifferenceAndVerdicts) {
  DrawOutcomes full(40, std::vector<uint8_t>(4, 1)), worse = full, same = full;
  for (size_t i = 0; i < worse.size(); ++i) worse[i][i % 4] = 0;  // a quarter of every item's draws lost
  const PairedDifference loss = paired_difference(worse, full);
  EXPECT_DOUBLE_EQ(loss.difference, -0.25);
  EXPECT_EQ(loss.verdict, "loss");
  EXPECT_EQ(paired_difference(full, worse).verdict, "gain");
  const PairedDifference none = paired_difference(same, full);
  EXPECT_EQ(none.difference, 0.0);
  EXPECT_EQ(none.verdict, "no measurable loss");
  // One item of 40 flipped: inside the noise.
  same[3] = {0, 0, 0, 0};
  EXPECT_EQ(paired_difference(same, full).verdict, "no measurable loss");
  EXPECT_THROW(paired_difference(DrawOutcomes(3, {1}), DrawOutcomes(4, {1})), InputError);
  EXPECT_THROW(paired_difference(DrawOutcomes(3, {1}), DrawOutcomes(3, {1, 0})), InputError);
  EXPECT_THROW(summarize_accuracy({}), InputError);
}

TEST(AccuracyStats, SameSeedSameInterval) {
  const DrawOutcomes o = {{1, 0}, {0, 0}, {1, 1}, {0, 1}, {1, 1}};
  const AccuracySummary a = summarize_accuracy(o, 1000, 7), b = summarize_accuracy(o, 1000, 7);
  EXPECT_EQ(a.ci95.low, b.ci95.low);
  EXPECT_EQ(a.ci95.high, b.ci95.high);
}

// Coverage over `runs` simulated benchmarks of `items` items, each item's accuracy p drawn from
// the population `draw_p` (a function of a uniform number), 8 draws per item.
double coverage(int items, int runs, const std::function<double(double)>& draw_p, double truth, uint64_t seed) {
  auto uniform = [](uint64_t key) { return double(splitmix64(key) >> 11) * 0x1.0p-53; };
  int covered = 0;
  for (int r = 0; r < runs; ++r) {
    DrawOutcomes o(items);
    for (int i = 0; i < items; ++i) {
      const uint64_t item_key = splitmix64(seed ^ (uint64_t(r) << 32) ^ uint64_t(i));
      const double p = draw_p(uniform(item_key));
      for (int d = 0; d < 8; ++d) o[i].push_back(uniform(item_key + 1 + d) < p);
    }
    const Interval ci = summarize_accuracy(o, 1000, splitmix64(seed * 1000003 + r)).ci95;
    covered += ci.low <= truth && truth <= ci.high;
  }
  return double(covered) / runs;
}

TEST(AccuracyStats, IntervalsCoverThePopulationAccuracy) {
  // A skewed population (mean 1/4) and a bimodal one (most items nearly always or nearly never
  // solved, as on AIME; mean 0.475).
  const auto skewed = [](double u) { return u * u * u; };
  const auto bimodal = [](double u) { return u < 0.5 ? 0.05 : 0.9; };
  for (const auto& [name, population, truth] :
       {std::tuple<const char*, std::function<double(double)>, double>{"skewed", skewed, 0.25},
        std::tuple<const char*, std::function<double(double)>, double>{"bimodal", bimodal, 0.475}}) {
    // Enough runs that the estimate of the coverage itself is within 0.4% (one standard error).
    const double small = coverage(30, 2000, population, truth, 11);
    EXPECT_GE(small, 0.92) << name << ", 30 items";
    const double large = coverage(500, 3000, population, truth, 12);
    EXPECT_GE(large, 0.94) << name << ", 500 items";
    EXPECT_LE(large, 0.96) << name << ", 500 items";
  }
}

}  // namespace
}  // namespace kvb
