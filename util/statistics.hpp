#pragma once
// Order statistics of a sample (latencies, divergences).
#include <vector>

namespace kvb {

struct Summary {
  int count = 0;
  double mean = 0, min = 0, max = 0, p50 = 0, p90 = 0, p99 = 0;
  double stddev = 0;  // sample standard deviation (n - 1); 0 for fewer than two values
};

// Percentiles by linear interpolation between closest ranks (numpy's default); all zero for an
// empty sample.
Summary summarize(std::vector<double> values);

}  // namespace kvb
