// CPU reference ops (matmul: matmul_cpu.cpp). Sums of products use explicit eight-lane
// accumulators (simd.hpp); simple reductions use `omp simd`, which lets the compiler reassociate
// float sums without -ffast-math.
#include <cmath>
#include <cstddef>
#include <limits>

#include "kernels/cpu/exp_approx.hpp"
#include "kernels/cpu/simd.hpp"
#include "kernels/ops.hpp"

namespace kvb::cpu {

void weighted_row_sum(float* y, const float* x, const float* w, int rows, int n) {
  int c = 0;
  // Eight columns at a time, their sums held in a register across all rows.
  for (; c + 8 <= n; c += 8) {
    f32x8 acc = splat8(0);
    for (int r = 0; r < rows; ++r) acc += splat8(x[r]) * load8(w + size_t(r) * n + c);
    store8(y + c, acc);
  }
  for (; c < n; ++c) {
    float acc = 0;
    for (int r = 0; r < rows; ++r) acc += x[r] * w[size_t(r) * n + c];
    y[c] = acc;
  }
}

void rmsnorm(float* y, const float* x, const float* weight, int rows, int n, float eps) {
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + size_t(r) * n;
    float* yr = y + size_t(r) * n;
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int i = 0; i < n; ++i) ss += xr[i] * xr[i];
    const float inv = 1.0f / std::sqrt(ss / n + eps);
    for (int i = 0; i < n; ++i) yr[i] = xr[i] * inv * weight[i];
  }
}

void swiglu(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void softmax(float* x, int n) {
  float max = x[0];
  for (int i = 1; i < n; ++i) max = x[i] > max ? x[i] : max;
  const float sum = exp_shifted_sum(x, n, max);
  const float inv = 1.0f / sum;
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

void add_bias(float* y, const float* b, int rows, int n) {
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < n; ++i) y[size_t(r) * n + i] += b[i];
}

void attention_head(float* out, float* probs, const float* q, const float* keys, const float* values,
                    const int32_t* pos, int len, int qpos, int head_dim) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  // Scores are a [len x hd] by [hd] product.
  matmul(probs, q, keys, 1, head_dim, len);
  float max = -std::numeric_limits<float>::infinity();
  for (int j = 0; j < len; ++j) {
    probs[j] = pos[j] > qpos ? -std::numeric_limits<float>::infinity() : probs[j] * scale;
    max = probs[j] > max ? probs[j] : max;  // not std::fmax: a libm call without -ffast-math
  }
  if (max == -std::numeric_limits<float>::infinity()) {  // no visible slot (or len == 0)
    for (int j = 0; j < len; ++j) probs[j] = 0.0f;
    for (int c = 0; c < head_dim; ++c) out[c] = 0.0f;
    return;
  }
  const float sum = exp_shifted_sum(probs, len, max);  // masked slots become exactly 0
  const float inv = 1.0f / sum;
  for (int j = 0; j < len; ++j) probs[j] *= inv;
  weighted_row_sum(out, probs, values, len, head_dim);
}

}  // namespace kvb::cpu
