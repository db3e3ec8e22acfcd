#pragma once
// Helpers shared by the compression kernels (kernels/cuda/compression_cuda.hpp); included by .cu
// files only (it needs nvcc). bf16 loads without cuda_bf16.h, block reductions in a fixed order
// (bitwise reproducible for a given block size), the opt-in for more than 48 KiB of dynamic
// shared memory, and what every event kernel asks of a group.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/bf16.hpp"
#include "kernels/compression_scratch.hpp"
#include "kernels/cuda/compression_cuda.hpp"
#include "kernels/cuda/cuda_check.hpp"

namespace kvb::cuda::compression_detail {

// bf16 bit pattern -> fp32 (exact).
__device__ __forceinline__ float bf16_to_f32(bf16 b) { return __uint_as_float(uint32_t(b) << 16); }

// fp32 -> bf16 bit pattern, round to nearest even, NaN stays NaN (kernels/bf16.hpp bf16_from_float).
__device__ __forceinline__ bf16 bf16_round(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<bf16>(u >> 16);
}

// Fixed-order dot product: four interleaved FMA chains, combined as (s0 + s1) + (s2 + s3).
__device__ __forceinline__ float dot_f32(const float* a, const float* b, int d) {
  float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
  int i = 0;
  for (; i + 4 <= d; i += 4) {
    s0 = fmaf(a[i], b[i], s0);
    s1 = fmaf(a[i + 1], b[i + 1], s1);
    s2 = fmaf(a[i + 2], b[i + 2], s2);
    s3 = fmaf(a[i + 3], b[i + 3], s3);
  }
  for (; i < d; ++i) s0 = fmaf(a[i], b[i], s0);
  return (s0 + s1) + (s2 + s3);
}

struct SumOp {
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
  __device__ __forceinline__ double operator()(double a, double b) const { return fmax(a, b); }
};

// Butterfly over the 32 lanes: every lane ends with the same value, bitwise (each step combines
// a and b on one lane and b and a on its partner, and both operations are commutative).
template <class T, class Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
  for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Reduction over the whole block (blockDim.x a multiple of 32, at most 1024), returned to every
// thread: a butterfly per warp, then every warp reduces the per-warp results the same way. The
// order is fixed by blockDim.x alone, so the result is reproducible run to run. `buf` holds 32
// values in shared memory; the call synchronises the block (all threads must call it).
template <class T, class Op>
__device__ T block_reduce(T v, T identity, Op op, T* buf) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_reduce(v, op);
  __syncthreads();  // a previous call's readers are done with buf
  if (lane == 0) buf[warp] = v;
  __syncthreads();
  return warp_reduce(lane < warps ? buf[lane] : identity, op);
}

// Exclusive prefix sum of one int per thread over the block (blockDim.x a multiple of 32, at most
// 1024); *total receives the block's sum on every thread. Synchronises the block.
__device__ inline int block_exclusive_scan(int v, int* buf, int* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  int incl = v;
  for (int off = 1; off < 32; off <<= 1) {
    const int y = __shfl_up_sync(0xffffffffu, incl, off);
    if (lane >= off) incl += y;
  }
  __syncthreads();
  if (lane == 31) buf[warp] = incl;
  __syncthreads();
  const int wsum = lane < warps ? buf[lane] : 0;
  int winc = wsum;
  for (int off = 1; off < 32; off <<= 1) {
    const int y = __shfl_up_sync(0xffffffffu, winc, off);
    if (lane >= off) winc += y;
  }
  const int warp_offset = __shfl_sync(0xffffffffu, winc - wsum, warp);
  *total = __shfl_sync(0xffffffffu, winc, 31);
  return warp_offset + incl - v;
}

// Rounds a byte offset up to `align` (a power of two).
inline size_t align_up(size_t bytes, size_t align) { return (bytes + align - 1) & ~(align - 1); }

// Kernels that need more than the default 48 KiB of dynamic shared memory must opt in.
template <class Kernel>
void allow_dynamic_smem(Kernel* kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    KVB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

// --- Events (kernels/cuda/compression_cuda.hpp) ---------------------------------------------

// Whether a slot at position `pos` of rank `rank` (-1: no ranks) is pinned by its group.
__device__ __forceinline__ bool is_pinned(const DeviceGroup& g, int32_t pos, int rank) {
  if (pos < g.below || pos >= g.from) return true;
  return rank >= 0 && (rank < g.oldest || rank >= g.length - g.newest);
}

// The first slot of a segment's (layer, seq, kv head) in the cache.
__device__ __forceinline__ size_t first_slot(const DeviceSegment& s, int capacity) { return size_t(s.head) * capacity; }

// Blocks of `threads` covering n.
inline int blocks_for(long long n, int threads) { return static_cast<int>((n + threads - 1) / threads); }

}  // namespace kvb::cuda::compression_detail
