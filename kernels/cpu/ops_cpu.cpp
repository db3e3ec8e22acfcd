// CPU reference ops (matmul: matmul_cpu.cpp). Sums of products use explicit eight-lane
// accumulators (simd.hpp); simple reductions use `omp simd`, which lets the compiler reassociate
// float sums without -ffast-math.
#include <algorithm>
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

namespace {

// weighted_row_sum for `group` weight vectors x [group][rows] over the same w: y [group][n]. Each
// head's column sums are the same chain, in the same order, as weighted_row_sum's.
void weighted_row_sums(float* y, const float* x, int group, const float* w, int rows, int n) {
  constexpr int kHeads = 4;  // chains in flight: FMA latency x throughput on current x86
  for (int g0 = 0; g0 < group; g0 += kHeads) {
    const int heads = std::min(kHeads, group - g0);
    if (heads == 1) {
      weighted_row_sum(y + size_t(g0) * n, x + size_t(g0) * rows, w, rows, n);
      continue;
    }
    int c = 0;
    for (; c + 8 <= n; c += 8) {
      f32x8 acc[kHeads] = {splat8(0), splat8(0), splat8(0), splat8(0)};
      for (int r = 0; r < rows; ++r) {
        const f32x8 wv = load8(w + size_t(r) * n + c);
        for (int g = 0; g < heads; ++g) acc[g] += splat8(x[size_t(g0 + g) * rows + r]) * wv;
      }
      for (int g = 0; g < heads; ++g) store8(y + size_t(g0 + g) * n + c, acc[g]);
    }
    for (; c < n; ++c)
      for (int g = 0; g < heads; ++g) {
        const float* xg = x + size_t(g0 + g) * rows;
        float acc = 0;
        for (int r = 0; r < rows; ++r) acc += xg[r] * w[size_t(r) * n + c];
        y[size_t(g0 + g) * n + c] = acc;
      }
  }
}

}  // namespace

void attention_head(float* out, float* probs, const float* q, const float* keys, const float* values,
                    const int32_t* pos, int len, int qpos, int head_dim) {
  attention_group(out, probs, q, 1, keys, values, pos, len, qpos, head_dim);
}

void attention_group(float* out, float* probs, const float* q, int group, const float* keys, const float* values,
                     const int32_t* pos, int len, int qpos, int head_dim) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  // Scores are a [group x hd] by [len x hd]^T product (per element the bits of one head's).
  matmul(probs, q, keys, group, head_dim, len);
  for (int g = 0; g < group; ++g) {
    float* p = probs + size_t(g) * len;
    float max = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < len; ++j) {
      p[j] = pos[j] > qpos ? -std::numeric_limits<float>::infinity() : p[j] * scale;
      max = p[j] > max ? p[j] : max;  // not std::fmax: a libm call without -ffast-math
    }
    if (max == -std::numeric_limits<float>::infinity()) {  // no visible slot (or len == 0): the same for every head
      for (int j = 0; j < len * group; ++j) probs[j] = 0.0f;
      for (int c = 0; c < head_dim * group; ++c) out[c] = 0.0f;
      return;
    }
    const float sum = exp_shifted_sum(p, len, max);  // masked slots become exactly 0
    const float inv = 1.0f / sum;
    for (int j = 0; j < len; ++j) p[j] *= inv;
  }
  weighted_row_sums(out, probs, group, values, len, head_dim);
}

}  // namespace kvb::cpu
