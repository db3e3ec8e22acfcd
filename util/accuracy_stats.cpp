#include "util/accuracy_stats.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "util/counter_hash.hpp"
#include "util/errors.hpp"

namespace kvb {

namespace {

// The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
double normal_quantile(double p) {
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01,  -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  auto tail = [&](double q) {
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  };
  if (p < 0.02425) return tail(std::sqrt(-2 * std::log(p)));
  if (p > 1 - 0.02425) return -tail(std::sqrt(-2 * std::log(1 - p)));
  const double q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
         (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// Linear interpolation between closest ranks of a sorted sample.
double quantile(const std::vector<double>& sorted, double q) {
  const double at = std::clamp(q, 0.0, 1.0) * double(sorted.size() - 1);
  const size_t i = static_cast<size_t>(at);
  if (i + 1 >= sorted.size()) return sorted.back();
  return sorted[i] + (at - double(i)) * (sorted[i + 1] - sorted[i]);
}

std::vector<double> item_means(const DrawOutcomes& outcomes) {
  if (outcomes.empty()) fail_input("accuracy: no graded items");
  std::vector<double> means;
  for (const auto& draws : outcomes) {
    if (draws.empty()) fail_input("accuracy: an item has no graded draw");
    means.push_back(double(std::accumulate(draws.begin(), draws.end(), 0)) / double(draws.size()));
  }
  return means;
}

}  // namespace

double pass_at_k(int n, int c, int k) {
  if (k < 1 || k > n || c < 0 || c > n) fail_input("pass@{}: needs 1 <= k <= n draws ({}) and 0 <= correct <= n", k, n);
  if (n - c < k) return 1.0;
  // 1 - prod_{i = n-c+1}^{n} (1 - k / i): C(n - c, k) / C(n, k) without factorials.
  double none = 1.0;
  for (int i = n - c + 1; i <= n; ++i) none *= 1.0 - double(k) / double(i);
  return 1.0 - none;
}

Interval bca_interval_of_mean(const std::vector<double>& values, int resamples, uint64_t seed) {
  const size_t n = values.size();
  const double mean = std::accumulate(values.begin(), values.end(), 0.0) / double(n);
  if (n < 2 || resamples < 2) return {mean, mean};
  std::vector<double> boot(resamples);
  for (int b = 0; b < resamples; ++b) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += values[splitmix64(splitmix64(seed ^ uint64_t(b)) ^ i) % n];
    boot[b] = sum / double(n);
  }
  std::sort(boot.begin(), boot.end());
  // Bias correction: where the estimate falls among its resamples; acceleration from the jackknife.
  const double below = double(std::lower_bound(boot.begin(), boot.end(), mean) - boot.begin());
  const double ties = double(std::upper_bound(boot.begin(), boot.end(), mean) - boot.begin()) - below;
  const double share = std::clamp((below + 0.5 * ties) / resamples, 0.5 / resamples, 1.0 - 0.5 / resamples);
  const double z0 = normal_quantile(share);
  const double sum = mean * double(n);
  double jack_mean = 0;
  std::vector<double> jack(n);
  for (size_t i = 0; i < n; ++i) jack_mean += jack[i] = (sum - values[i]) / double(n - 1);
  jack_mean /= double(n);
  double num = 0, den = 0;
  for (double j : jack) {
    const double d = jack_mean - j;
    num += d * d * d;
    den += d * d;
  }
  const double accel = den > 0 ? num / (6.0 * std::pow(den, 1.5)) : 0.0;
  auto adjusted = [&](double alpha) {
    const double z = normal_quantile(alpha);
    return normal_cdf(z0 + (z0 + z) / (1.0 - accel * (z0 + z)));
  };
  return {quantile(boot, adjusted(0.025)), quantile(boot, adjusted(0.975))};
}

AccuracySummary summarize_accuracy(const DrawOutcomes& outcomes, int resamples, uint64_t seed) {
  const std::vector<double> means = item_means(outcomes);
  AccuracySummary s;
  s.items = static_cast<int>(outcomes.size());
  s.draws = static_cast<int>(outcomes[0].size());
  for (const auto& draws : outcomes) {
    s.draws = std::min(s.draws, static_cast<int>(draws.size()));
    s.total += static_cast<int64_t>(draws.size());
    s.correct += std::accumulate(draws.begin(), draws.end(), int64_t(0));
  }
  s.avg = std::accumulate(means.begin(), means.end(), 0.0) / double(means.size());
  for (int k = 1; k <= s.draws; ++k) {
    double sum = 0;
    for (const auto& draws : outcomes)
      sum += pass_at_k(static_cast<int>(draws.size()), std::accumulate(draws.begin(), draws.end(), 0), k);
    s.pass_at_k.push_back(sum / double(outcomes.size()));
  }
  s.ci95 = bca_interval_of_mean(means, resamples, seed);
  return s;
}

PairedDifference paired_difference(const DrawOutcomes& method, const DrawOutcomes& reference, int resamples,
                                   uint64_t seed) {
  if (method.size() != reference.size())
    fail_input("accuracy: {} items against a reference of {}: a paired difference needs the same items", method.size(),
               reference.size());
  for (size_t i = 0; i < method.size(); ++i)
    if (method[i].size() != reference[i].size())
      fail_input("accuracy: item {} has {} draws against the reference's {}: a paired difference needs the same draws",
                 i, method[i].size(), reference[i].size());
  const std::vector<double> a = item_means(method), b = item_means(reference);
  std::vector<double> d(a.size());
  for (size_t i = 0; i < d.size(); ++i) d[i] = a[i] - b[i];
  PairedDifference p;
  p.difference = std::accumulate(d.begin(), d.end(), 0.0) / double(d.size());
  p.ci95 = bca_interval_of_mean(d, resamples, seed);
  p.verdict = p.ci95.high < 0 ? "loss" : p.ci95.low > 0 ? "gain" : "no measurable loss";
  return p;
}

}  // namespace kvb
