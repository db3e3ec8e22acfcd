#pragma once
// bfloat16 as a bit pattern, usable from host code that never includes cuda_bf16.h: the CUDA
// backend stores weights and the KV cache in bf16; host code converts with these (round to nearest
// even, like __float2bfloat16_rn; NaN stays NaN).
#include <cstdint>
#include <cstring>

namespace kvb {

using bf16 = uint16_t;

inline bf16 bf16_from_float(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16>((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<bf16>(u >> 16);
}

inline float float_from_bf16(bf16 b) {
  const uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

}  // namespace kvb
