// CPU reference ops. Dot products use explicit eight-lane accumulators (simd.hpp); simple
// reductions use `omp simd`, which lets the compiler reassociate float sums without -ffast-math.
// Threads are used only where a call has enough work to pay for waking them.
#include <cmath>
#include <cstddef>
#include <limits>

#include "kernels/cpu/exp_approx.hpp"
#include "kernels/cpu/parallel.hpp"
#include "kernels/cpu/simd.hpp"
#include "kernels/ops.hpp"

namespace kvb::cpu {

namespace {
// Below this many multiply-adds, a parallel region costs more than it saves (measured on a
// 2-core machine: a wake-up is a few microseconds, one core does ~1e4 MACs per microsecond).
constexpr int64_t kParallelMinWork = int64_t(1) << 17;
}  // namespace

namespace {

// Four dot products of length n in one pass: each load of b feeds four independent FMA chains,
// and each chain keeps eight lanes in a register until one horizontal sum at the end.
[[gnu::always_inline]] inline void dot4(const float* a0, const float* a1, const float* a2, const float* a3,
                                        const float* b, int n, float* out) {
  f32x8 s0 = splat8(0), s1 = s0, s2 = s0, s3 = s0;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const f32x8 bv = load8(b + i);
    s0 += load8(a0 + i) * bv;
    s1 += load8(a1 + i) * bv;
    s2 += load8(a2 + i) * bv;
    s3 += load8(a3 + i) * bv;
  }
  float t0 = hsum8(s0), t1 = hsum8(s1), t2 = hsum8(s2), t3 = hsum8(s3);
  for (; i < n; ++i) {
    t0 += a0[i] * b[i];
    t1 += a1[i] * b[i];
    t2 += a2[i] * b[i];
    t3 += a3[i] * b[i];
  }
  out[0] = t0;
  out[1] = t1;
  out[2] = t2;
  out[3] = t3;
}

[[gnu::always_inline]] inline float dot(const float* a, const float* b, int n) {
  f32x8 s = splat8(0);
  int i = 0;
  for (; i + 8 <= n; i += 8) s += load8(a + i) * load8(b + i);
  float t = hsum8(s);
  for (; i < n; ++i) t += a[i] * b[i];
  return t;
}

}  // namespace

void matmul(float* y, const float* x, const float* w, int rows, int in, int out) {
  const int64_t work = int64_t(rows) * in * out;
  const int blocks = (out + 3) / 4;
  parallel_for(blocks, work >= kParallelMinWork, [=](int b) {
    const int o = 4 * b;
    if (o + 4 > out) {  // tail rows of w
      for (int oo = o; oo < out; ++oo)
        for (int r = 0; r < rows; ++r) y[size_t(r) * out + oo] = dot(w + size_t(oo) * in, x + size_t(r) * in, in);
      return;
    }
    // Four weight rows share each load of an input row.
    const float* w0 = w + size_t(o) * in;
    for (int r = 0; r < rows; ++r) {
      float* yr = y + size_t(r) * out + o;
      dot4(w0, w0 + in, w0 + 2 * size_t(in), w0 + 3 * size_t(in), x + size_t(r) * in, in, yr);
    }
  });
}

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
