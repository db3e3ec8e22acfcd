#pragma once
// Eight-float vectors through the GCC/Clang vector extension: one AVX register where the target
// has AVX, two SSE registers otherwise. Explicit accumulators give the reductions the compiler's
// auto-vectoriser handles badly (it spills `omp simd` reduction lanes to the stack and re-adds
// them one by one, which dominated short dot products such as 8-wide attention heads).
#include <cstring>

namespace kvb::cpu {

typedef float f32x8 __attribute__((vector_size(32)));

inline f32x8 load8(const float* p) {
  f32x8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline void store8(float* p, f32x8 v) { std::memcpy(p, &v, sizeof v); }

inline f32x8 splat8(float x) { return f32x8{x, x, x, x, x, x, x, x}; }

inline float hsum8(f32x8 v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }

}  // namespace kvb::cpu
