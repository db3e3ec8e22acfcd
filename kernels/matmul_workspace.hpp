#pragma once
// The device workspace cuBLASLt gets for the bf16 matmuls (kernels/cuda/matmul.cpp): allocated
// once per process, outside the engine's arena, and counted by the capacity planner.
#include <cstddef>

namespace kvb {

inline constexpr size_t kMatmulWorkspaceBytes = size_t(32) << 20;  // enough for split-K on the largest shapes we run

}  // namespace kvb
