#pragma once
// Accuracy as a researcher would publish it, from the correctness of every (item, draw): avg@N
// (the mean over items of each item's mean over its draws: the paper's AIME metric), unbiased
// pass@k for k <= N (Chen et al. 2021), and a 95% confidence interval over items -- what another
// set of items from the same population would give -- by a bias-corrected and accelerated (BCa)
// bootstrap over items. A plain percentile bootstrap under-covers with few items (93.9% at 30
// items in tests/test_accuracy_stats.cpp's simulation); BCa covers 94.6-95.1%. For a compressed
// method against full attention on the same items and draws, the paired difference of avg@N with
// its paired BCa interval (items resampled together) and a verdict. Deterministic: the resamples
// come from a seeded counter-based stream, the same on every platform.
#include <cstdint>
#include <string>
#include <vector>

namespace kvb {

// outcomes[item][draw]: 1 correct, 0 not. Every item has at least one draw.
using DrawOutcomes = std::vector<std::vector<uint8_t>>;

struct Interval {
  double low = 0, high = 0;
};

struct AccuracySummary {
  int items = 0;
  int draws = 0;                  // the fewest draws of any item (pass@k is reported up to it)
  int64_t correct = 0, total = 0;  // over every draw
  double avg = 0;                  // avg@N
  std::vector<double> pass_at_k;   // [k - 1] for k = 1 .. draws
  Interval ci95;                   // of avg, over items
};

struct PairedDifference {
  double difference = 0;  // method's avg@N - the reference's
  Interval ci95;
  std::string verdict;    // "gain", "loss", or "no measurable loss"
};

inline constexpr int kBootstrapResamples = 10000;

// InputError when there are no items or an item has no draws.
AccuracySummary summarize_accuracy(const DrawOutcomes& outcomes, int resamples = kBootstrapResamples,
                                   uint64_t seed = 0);

// `method` against `reference` item by item (the same items, in the same order, each with the
// same number of draws: InputError otherwise). The verdict is "loss" when the whole interval is
// below 0, "gain" when above, else "no measurable loss".
PairedDifference paired_difference(const DrawOutcomes& method, const DrawOutcomes& reference,
                                   int resamples = kBootstrapResamples, uint64_t seed = 0);

// Unbiased pass@k of one item with n draws, c of them correct: 1 - C(n - c, k) / C(n, k).
double pass_at_k(int n, int c, int k);

// The BCa 95% interval of the mean of `values` by `resamples` bootstrap resamples (indices drawn
// from a counter-based stream keyed by `seed`).
Interval bca_interval_of_mean(const std::vector<double>& values, int resamples, uint64_t seed);

}  // namespace kvb
