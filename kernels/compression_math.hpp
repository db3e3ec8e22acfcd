#pragma once
// Scalar formulas of the compression methods that the CPU reference and the CUDA kernels must
// compute to the same bits. Each states its rounding explicitly (one fused multiply-add), so no
// compiler's choice to contract `a + b * c` -- GCC with -march=native contracts on the host,
// nvcc contracts on the device, not always the same product -- can make the two sides differ.
#include <math.h>

#include "util/counter_hash.hpp"

namespace kvb {

// TriAttention's tie-break noise on a z-scored score z: z + 1e-6 * u, u = hashed_uniform(...).
KVB_HOST_DEVICE inline float tie_break(float z, float u) { return fmaf(1e-6f, u, z); }

// R-KV's score: lambda * attention - (1 - lambda) * redundancy.
KVB_HOST_DEVICE inline float rkv_mix(float lambda, float attention, float redundancy) {
  return fmaf(lambda, attention, -((1.0f - lambda) * redundancy));
}

}  // namespace kvb
