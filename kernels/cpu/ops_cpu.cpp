// CPU reference ops. Written for the compiler's vectoriser: `omp simd reduction` lets it
// reassociate the float sums (as -ffast-math would) without changing the semantics of the rest
// of the program. Threads are used only where a call has enough work to pay for waking them.
#include <cmath>
#include <cstddef>

#include "kernels/cpu/parallel.hpp"
#include "kernels/ops.hpp"

namespace kvb::cpu {

namespace {
// Below this many multiply-adds, a parallel region costs more than it saves (measured on a
// 2-core machine: a wake-up is a few microseconds, one core does ~1e4 MACs per microsecond).
constexpr int64_t kParallelMinWork = int64_t(1) << 17;
}  // namespace

namespace {

// Four dot products of length n in one pass, so the FMA chains interleave: with one
// accumulator a short dot (n = 64) is latency-bound and ends in a horizontal sum per output.
[[gnu::always_inline]] inline void dot4(const float* a0, const float* a1, const float* a2, const float* a3, const float* b, int n,
                 float* out0, float* out1, float* out2, float* out3) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
  for (int i = 0; i < n; ++i) {
    s0 += a0[i] * b[i];
    s1 += a1[i] * b[i];
    s2 += a2[i] * b[i];
    s3 += a3[i] * b[i];
  }
  *out0 = s0;
  *out1 = s1;
  *out2 = s2;
  *out3 = s3;
}

[[gnu::always_inline]] inline float dot(const float* a, const float* b, int n) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
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
      dot4(w0, w0 + in, w0 + 2 * size_t(in), w0 + 3 * size_t(in), x + size_t(r) * in, in, yr, yr + 1, yr + 2, yr + 3);
    }
  });
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
  float sum = 0;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

void add_bias(float* y, const float* b, int rows, int n) {
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < n; ++i) y[size_t(r) * n + i] += b[i];
}

}  // namespace kvb::cpu
