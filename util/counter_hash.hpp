#pragma once
// Counter-based random numbers shared by host and device code: a value depends only on its keys,
// never on the order, thread or device that draws it, so the CPU and CUDA paths draw the same
// tie-break noise and the same synthetic weights.
#include <math.h>

#include <cstdint>

#ifdef __CUDACC__
#define KVB_HOST_DEVICE __host__ __device__
#else
#define KVB_HOST_DEVICE
#endif

namespace kvb {

// splitmix64's finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mix.
KVB_HOST_DEVICE inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A uniform number in [0, 1) determined by three keys.
KVB_HOST_DEVICE inline float hashed_uniform(uint64_t a, uint64_t b, uint64_t c) {
  return static_cast<float>(splitmix64(splitmix64(splitmix64(a) ^ b) ^ c) >> 40) * 0x1.0p-24f;
}

// Element i of a synthetic weight tensor whose key is `key`: uniform in [-1, 1) scaled to unit
// variance, times `scale`, plus `offset` in one fused multiply-add, written out so that the host
// (where GCC would contract it anyway) and the device round the same way. The double steps
// before it are exact or correctly rounded on both (a product by a power of two, one multiply and
// one subtraction, no contraction candidates: the subtraction's operand is not a product).
KVB_HOST_DEVICE inline float synthetic_value(uint64_t key, uint64_t i, float scale, float offset) {
  const double u = (splitmix64(key ^ i) >> 11) * 0x1.0p-53 * 2.0 - 1.0;
  const float x = static_cast<float>(u * 1.7320508075688772);
  return fmaf(scale, x, offset);
}

}  // namespace kvb
