// CPU reference of the compression kernels (kernels/compression_ops.hpp). Dot products go through
// the vectorised cpu::matmul (fp32, 8-lane accumulators); sums over a whole cache accumulate in
// double. These run once per compression event, not per token.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "kernels/compression_ops.hpp"
#include "kernels/ops.hpp"

namespace kvb::cpu {

void tri_scores(float* out, const float* keys, int n, int head_dim, bool interleaved, const float* u, int n_u,
                const float* e) {
  const int pairs = head_dim / 2;
  // The trig term: the best of the n_u effective queries' dot products with each key.
  std::vector<float> dots(n);
  std::fill(out, out + n, n_u > 0 ? -std::numeric_limits<float>::infinity() : 0.0f);
  for (int q = 0; q < n_u; ++q) {
    cpu::matmul(dots.data(), u + size_t(q) * head_dim, keys, 1, head_dim, n);
    for (int j = 0; j < n; ++j) out[j] = std::max(out[j], dots[j]);
  }
  for (int j = 0; j < n; ++j) {
    const float* k = keys + size_t(j) * head_dim;
    double norm = 0;
    for (int f = 0; f < pairs; ++f) {
      const float re = interleaved ? k[2 * f] : k[f];
      const float im = interleaved ? k[2 * f + 1] : k[f + pairs];
      norm += double(e[f]) * std::sqrt(double(re) * re + double(im) * im);
    }
    out[j] = static_cast<float>(out[j] + norm);
  }
}

void zscore(float* x, int n) {
  if (n <= 0) return;
  double mean = 0;
  for (int i = 0; i < n; ++i) mean += x[i];
  mean /= n;
  double var = 0;
  for (int i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  const double std = std::max(std::sqrt(var / n), 1e-6);  // population std, clamped as the HF path does
  for (int i = 0; i < n; ++i) x[i] = static_cast<float>((x[i] - mean) / std);
}

void window_attention(float* out, const float* queries, int window, int group, const float* keys, int n,
                      int head_dim) {
  std::fill(out, out + n, 0.0f);
  if (n <= 0 || window <= 0) return;
  const double scale = 1.0 / std::sqrt(double(head_dim));
  std::vector<double> logits(n);
  std::vector<float> dots(n);
  for (int w = 0; w < window; ++w) {
    std::fill(logits.begin(), logits.end(), -std::numeric_limits<double>::infinity());
    for (int g = 0; g < group; ++g) {  // GQA: the group's heads reduced by max before softmax
      cpu::matmul(dots.data(), queries + (size_t(w) * group + g) * head_dim, keys, 1, head_dim, n);
      for (int j = 0; j < n; ++j) logits[j] = std::max(logits[j], dots[j] * scale);
    }
    const double max = *std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (double& l : logits) sum += (l = std::exp(l - max));
    for (int j = 0; j < n; ++j) out[j] += static_cast<float>(logits[j] / sum / window);
  }
}

void max_pool(float* out, const float* in, int n, int radius) {
  for (int j = 0; j < n; ++j) {
    const int lo = std::max(0, j - radius), hi = std::min(n - 1, j + radius);
    out[j] = *std::max_element(in + lo, in + hi + 1);
  }
}

void key_redundancy(float* out, const float* keys, int n, int head_dim, float threshold) {
  if (n <= 0) return;
  std::vector<double> inv_norm(n);
  for (int i = 0; i < n; ++i) {
    const float* k = keys + size_t(i) * head_dim;
    double ss = 0;
    for (int d = 0; d < head_dim; ++d) ss += double(k[d]) * k[d];
    inv_norm[i] = 1.0 / (std::sqrt(ss) + 1e-8);
  }
  // Column sums of the similarity matrix, built row by row: row i contributes its similarities
  // except the diagonal and its latest near-duplicate (which R-KV thereby protects).
  std::vector<double> column(n, 0.0), row(n);
  std::vector<float> dots(n);
  for (int i = 0; i < n; ++i) {
    cpu::matmul(dots.data(), keys + size_t(i) * head_dim, keys, 1, head_dim, n);
    int latest = 0;  // as in R-KV: the retained index is 0 when no key is similar
    for (int j = 0; j < n; ++j) {
      row[j] = j == i ? 0.0 : dots[j] * inv_norm[i] * inv_norm[j];
      if (row[j] > threshold) latest = j;
    }
    row[latest] = 0;
    for (int j = 0; j < n; ++j) column[j] += row[j];
  }
  double max = -std::numeric_limits<double>::infinity();
  for (double& c : column) max = std::max(max, c /= n);
  double sum = 0;
  for (double& c : column) sum += (c = std::exp(c - max));
  for (int j = 0; j < n; ++j) out[j] = static_cast<float>(column[j] / sum);
}

void top_k(const float* score, int n, int k, std::vector<int>& out) {
  k = std::clamp(k, 0, n);
  out.resize(n);
  std::iota(out.begin(), out.end(), 0);
  std::partial_sort(out.begin(), out.begin() + k, out.end(),
                    [&](int a, int b) { return score[a] != score[b] ? score[a] > score[b] : a < b; });
  out.resize(k);
}

}  // namespace kvb::cpu
