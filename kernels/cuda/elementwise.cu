// Elementwise and row-broadcast ops: embedding gather, SwiGLU, bias add and the fp32 <-> bf16
// conversions. All are memory-bound single passes: one thread per element, grid-stride loops with
// 64-bit indices (a 128k-token prefill through a 16k-wide FFN is 2^31 elements), and a grid capped
// at a few waves so huge counts do not launch millions of blocks.
//
// Row ops (embedding, add_bias) use a 2-D grid: x over the columns of a row, y over rows (capped at
// 65535, the y limit, and strided beyond), so the column index needs no 64-bit division.
//
// bf16 -> fp32 is done by shifting the bit pattern, not with __bfloat162float: on sm_90 that is
// cvt.f32.bf16, and the CPU side (kvb::float_from_bf16) is defined as the shift, NaN payloads
// included. fp32 -> bf16 uses __float2bfloat16_rn (round to nearest even, subnormals kept) except
// for NaN, which follows kvb::bf16_from_float (top bits kept, quiet bit set) rather than whatever
// NaN the hardware conversion produces, so the two sides agree bit for bit.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/ops_cuda.hpp"

namespace kvb::cuda {

namespace {

constexpr int kThreads = 256;
// 8192 blocks x 256 threads = 2M threads: several full waves on any current GPU (an H100 holds
// 132 x 2048 resident threads); the grid-stride loops cover larger counts.
constexpr int64_t kMaxBlocks = 8192;
constexpr int64_t kMaxRowBlocks = 65535;  // gridDim.y limit

int flat_blocks(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

// The same block budget as flat_blocks, spread over the rows first: one long row (add_bias as a
// residual add over rows = 1) still gets thousands of blocks, many short rows one column block each.
dim3 row_grid(int rows, int cols) {
  const int64_t y = rows < kMaxRowBlocks ? rows : kMaxRowBlocks;
  const int64_t want_x = (cols + int64_t(kThreads) - 1) / kThreads;
  const int64_t cap_x = kMaxBlocks / y > 1 ? kMaxBlocks / y : 1;
  return dim3(static_cast<unsigned>(want_x < cap_x ? want_x : cap_x), static_cast<unsigned>(y));
}

__device__ __forceinline__ float bf16_bits_to_float(uint16_t b) { return __uint_as_float(uint32_t(b) << 16); }

__device__ __forceinline__ uint16_t float_to_bf16_bits(float f) {
  const uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // NaN: as bf16_from_float
  return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}

__global__ void embedding_kernel(float* x, const uint16_t* table, const int32_t* tokens, int n, int dim) {
  // 64-bit counters: i + gridDim.y or j + stride may pass INT_MAX on the last sweep.
  for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
    const uint16_t* row = table + static_cast<int64_t>(tokens[i]) * dim;
    float* xr = x + i * dim;
    for (int64_t j = blockIdx.x * blockDim.x + threadIdx.x; j < dim; j += gridDim.x * blockDim.x)
      xr[j] = bf16_bits_to_float(row[j]);
  }
}

__global__ void swiglu_kernel(float* gate, const float* up, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float g = gate[i];
    // expf (not __expf): within 2 ulp, like the CPU's std::exp; large -g gives inf and g/inf = -0.
    gate[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void add_bias_kernel(float* y, const float* b, int rows, int n) {
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    float* yr = y + r * n;
    for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) yr[i] += b[i];
  }
}

__global__ void f32_to_bf16_kernel(uint16_t* y, const float* x, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = float_to_bf16_bits(x[i]);
}

__global__ void bf16_to_f32_kernel(float* y, const uint16_t* x, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = bf16_bits_to_float(x[i]);
}

}  // namespace

void embedding(float* x, const bf16* table, const int32_t* tokens, int n, int dim) {
  if (n <= 0 || dim <= 0) return;
  embedding_kernel<<<row_grid(n, dim), kThreads>>>(x, table, tokens, n, dim);
  KVB_CUDA_LAUNCH_CHECK();
}

void swiglu(float* gate, const float* up, int64_t n) {
  if (n <= 0) return;
  swiglu_kernel<<<flat_blocks(n), kThreads>>>(gate, up, n);
  KVB_CUDA_LAUNCH_CHECK();
}

void add_bias(float* y, const float* b, int rows, int n) {
  if (rows <= 0 || n <= 0) return;
  add_bias_kernel<<<row_grid(rows, n), kThreads>>>(y, b, rows, n);
  KVB_CUDA_LAUNCH_CHECK();
}

void f32_to_bf16(bf16* y, const float* x, int64_t n) {
  if (n <= 0) return;
  f32_to_bf16_kernel<<<flat_blocks(n), kThreads>>>(y, x, n);
  KVB_CUDA_LAUNCH_CHECK();
}

void bf16_to_f32(float* y, const bf16* x, int64_t n) {
  if (n <= 0) return;
  bf16_to_f32_kernel<<<flat_blocks(n), kThreads>>>(y, x, n);
  KVB_CUDA_LAUNCH_CHECK();
}

}  // namespace kvb::cuda
