#pragma once
// exp for softmax, written so that loops calling it vectorise (libm's expf is a scalar call
// without -ffast-math, and dominated attention on small heads). Cody-Waite range reduction
// x = k ln2 + r, |r| <= ln2/2, then a degree-6 Taylor polynomial: relative error < 2e-7 over the
// range softmax uses (x <= 0). Inputs below -87 (including -inf) give exactly 0.
#include <cstdint>
#include <cstring>

namespace kvb::cpu {

inline float exp_approx(float x) {
  const float clamped = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float k = static_cast<float>(static_cast<int>(clamped * 1.44269504f + (clamped >= 0 ? 0.5f : -0.5f)));
  const float r = (clamped - k * 0.693359375f) + k * 2.12194440e-4f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;  // 2^k
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < -87.0f ? 0.0f : p * scale;
}

}  // namespace kvb::cpu
