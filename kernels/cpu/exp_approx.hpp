#pragma once
// exp for softmax, eight lanes at a time (libm's expf is a scalar call without -ffast-math and
// dominated attention on small heads). Cody-Waite range reduction x = k ln2 + r, |r| <= ln2/2,
// then a degree-6 Taylor polynomial: relative error < 3e-7. Inputs below -87 (including -inf,
// which is how masked attention slots arrive) give exactly 0.
#include <cstdint>

#include "kernels/cpu/simd.hpp"

namespace kvb::cpu {

typedef int32_t i32x8 __attribute__((vector_size(32)));

inline f32x8 exp8(f32x8 x) {
  const f32x8 lo = splat8(-87.0f), hi = splat8(88.0f);
  const f32x8 c = x < lo ? lo : (x > hi ? hi : x);
  const f32x8 t = c * splat8(1.44269504f);
  // Round to nearest: add +-0.5, then truncate toward zero.
  const i32x8 k = __builtin_convertvector(t + (t >= splat8(0.0f) ? splat8(0.5f) : splat8(-0.5f)), i32x8);
  const f32x8 kf = __builtin_convertvector(k, f32x8);
  const f32x8 r = (c - kf * splat8(0.693359375f)) + kf * splat8(2.12194440e-4f);
  f32x8 p = splat8(1.0f / 720.0f);
  p = p * r + splat8(1.0f / 120.0f);
  p = p * r + splat8(1.0f / 24.0f);
  p = p * r + splat8(1.0f / 6.0f);
  p = p * r + splat8(0.5f);
  p = p * r + splat8(1.0f);
  p = p * r + splat8(1.0f);
  const f32x8 scale = __builtin_bit_cast(f32x8, (k + 127) << 23);  // 2^k
  return x < lo ? splat8(0.0f) : p * scale;
}

inline float exp_approx(float x) { return exp8(splat8(x))[0]; }

// x[i] = exp(x[i] - shift) for i < n; returns the sum of the results.
inline float exp_shifted_sum(float* x, int n, float shift) {
  f32x8 acc = splat8(0.0f);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const f32x8 e = exp8(load8(x + i) - splat8(shift));
    store8(x + i, e);
    acc += e;
  }
  float sum = hsum8(acc);
  for (; i < n; ++i) {
    x[i] = exp_approx(x[i] - shift);
    sum += x[i];
  }
  return sum;
}

}  // namespace kvb::cpu
