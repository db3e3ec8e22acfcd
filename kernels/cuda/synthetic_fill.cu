// A synthetic model's weights generated where they are used: element i of a tensor is
// kvb::synthetic_value(key, i, scale, offset) (util/counter_hash.hpp), the CPU loader's value,
// stored as bf16 (matrices) or fp32 (norms and biases). A grid-stride loop with 64-bit indices:
// an 8B model's embedding alone has 6e8 elements.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "util/counter_hash.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/ops_cuda.hpp"

namespace kvb::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 8192;

__device__ __forceinline__ void store(float* out, int64_t i, float v) { out[i] = v; }
__device__ __forceinline__ void store(bf16* out, int64_t i, float v) {
  out[i] = __bfloat16_as_ushort(__float2bfloat16_rn(v));  // finite by construction: no NaN case
}

template <class T>
__global__ void synthetic_fill_kernel(T* out, int64_t n, uint64_t key, float scale, float offset) {
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += int64_t(gridDim.x) * kThreads)
    store(out, i, synthetic_value(key, static_cast<uint64_t>(i), scale, offset));
}

template <class T>
void launch(T* out, int64_t n, uint64_t key, float scale, float offset) {
  if (n <= 0) return;
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  synthetic_fill_kernel<<<static_cast<int>(blocks < kMaxBlocks ? blocks : kMaxBlocks), kThreads>>>(out, n, key, scale,
                                                                                                 offset);
  KVB_CUDA_LAUNCH_CHECK();
}

}  // namespace

void synthetic_fill(bf16* out, int64_t n, uint64_t key, float scale, float offset) { launch(out, n, key, scale, offset); }
void synthetic_fill(float* out, int64_t n, uint64_t key, float scale, float offset) { launch(out, n, key, scale, offset); }

}  // namespace kvb::cuda
