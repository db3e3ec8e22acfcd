// CPU reference ops. Written for the compiler's vectoriser: `omp simd reduction` lets it
// reassociate the float sums (as -ffast-math would) without changing the semantics of the rest
// of the program. Threads are used only where a call has enough work to pay for waking them.
#include <cmath>
#include <cstddef>

#include "kernels/ops.hpp"

namespace kvb::cpu {

namespace {
// Below this many multiply-adds, a parallel region costs more than it saves (measured on a
// 2-core machine: a wake-up is a few microseconds, one core does ~1e4 MACs per microsecond).
constexpr int64_t kParallelMinWork = int64_t(1) << 17;
}  // namespace

void matmul(float* y, const float* x, const float* w, int rows, int in, int out) {
  const int64_t work = int64_t(rows) * in * out;
  // Four input rows share each weight-row load (prefill); decode has rows = batch size.
#pragma omp parallel for schedule(static) if (work >= kParallelMinWork)
  for (int o = 0; o < out; ++o) {
    const float* wr = w + size_t(o) * in;
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
      const float* x0 = x + size_t(r) * in;
      const float* x1 = x0 + in;
      const float* x2 = x1 + in;
      const float* x3 = x2 + in;
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
      for (int i = 0; i < in; ++i) {
        s0 += wr[i] * x0[i];
        s1 += wr[i] * x1[i];
        s2 += wr[i] * x2[i];
        s3 += wr[i] * x3[i];
      }
      y[size_t(r) * out + o] = s0;
      y[size_t(r + 1) * out + o] = s1;
      y[size_t(r + 2) * out + o] = s2;
      y[size_t(r + 3) * out + o] = s3;
    }
    for (; r < rows; ++r) {
      const float* xr = x + size_t(r) * in;
      float s = 0;
#pragma omp simd reduction(+ : s)
      for (int i = 0; i < in; ++i) s += wr[i] * xr[i];
      y[size_t(r) * out + o] = s;
    }
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
  for (int i = 1; i < n; ++i) max = std::fmax(max, x[i]);
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
