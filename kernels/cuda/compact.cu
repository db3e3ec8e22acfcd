// KvCache::compact on the device for one (layer, sequence, KV head).
//
// Precondition (not validated on the device, like every kernel here): `keep` holds k distinct
// slot indices in [0, len), 0 <= k <= len <= capacity. Then the unkept slots below k ("holes")
// are exactly as many as the kept slots at or above k ("movers"); pairing them in ascending
// order, hole r receives mover r's key row, value row and position, and *length becomes k: the
// result is KvCache::compact's, slot for slot (slots at or above k keep their stale contents, as
// there). Indices outside [0, len) are ignored and at most min(k, len - k) pairs are moved, so a
// violated precondition gives a wrong cache, never an out-of-bounds access.
//
// Two kernels over a stream-ordered scratch of 2 min(k, len - k) + 1 ints:
//  1. plan (one block of 1024 threads): a bitmap of the kept slots in shared memory (len / 8
//     bytes, atomicOr per keep entry: the bits do not depend on the order); then the holes, then
//     the movers, are listed in ascending order: each thread takes one 32-slot word, counts its
//     candidates with popc, a block-wide exclusive scan gives its offset, and it writes its slots
//     bit by bit in ascending order. Writes the pair count and *length = k.
//  2. move: one warp per pair (8 per block), the lanes copy the key and value rows (sources all
//     at or above k, destinations all below: no overlap, no order between pairs needed), lane 0
//     the position.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/compression_common.cuh"
#include "kernels/cuda/compression_cuda.hpp"

namespace kvb::cuda {

namespace {

using namespace compression_detail;

constexpr int kPlanThreads = 1024;
constexpr int kMoveWarps = 8;

// Lists, in ascending order, the slots s in [begin, end) whose kept bit equals `want_kept` into
// list[0 .. cap); returns how many there are (possibly more than cap). Synchronises the block.
__device__ int list_slots(const uint32_t* kept, int begin, int end, bool want_kept, int32_t* list, int cap,
                          int* scan_buf) {
  if (begin >= end) return 0;
  const int w_begin = begin >> 5, w_end = (end + 31) >> 5;
  int total = 0;
  for (int w0 = w_begin; w0 < w_end; w0 += kPlanThreads) {  // uniform trip count
    const int w = w0 + int(threadIdx.x);
    uint32_t m = 0;
    if (w < w_end) {
      m = want_kept ? kept[w] : ~kept[w];
      const int lo = w << 5;
      if (begin > lo) m &= ~0u << (begin - lo);        // begin - lo in [1, 31]
      if (end < lo + 32) m &= (1u << (end - lo)) - 1;  // end - lo in [1, 31]
    }
    int chunk = 0;
    int r = total + block_exclusive_scan(__popc(m), scan_buf, &chunk);
    for (; m != 0; m &= m - 1, ++r)
      if (r < cap) list[r] = (w << 5) + __ffs(m) - 1;
    total += chunk;
  }
  return total;
}

__global__ void __launch_bounds__(kPlanThreads)
    compact_plan_kernel(int32_t* __restrict__ holes, int32_t* __restrict__ movers, int32_t* __restrict__ count,
                        int32_t* __restrict__ length, const int32_t* __restrict__ keep, int k, int len, int cap) {
  extern __shared__ uint32_t compact_kept[];  // one bit per slot below len
  __shared__ int scan_buf[32];
  const int words = (len + 31) >> 5;
  for (int w = threadIdx.x; w < words; w += kPlanThreads) compact_kept[w] = 0;
  __syncthreads();
  for (int r = threadIdx.x; r < k; r += kPlanThreads) {
    const int s = keep[r];
    if (unsigned(s) < unsigned(len)) atomicOr(&compact_kept[s >> 5], 1u << (s & 31));
  }
  __syncthreads();
  const int n_holes = list_slots(compact_kept, 0, k, false, holes, cap, scan_buf);
  const int n_movers = list_slots(compact_kept, k, len, true, movers, cap, scan_buf);
  if (threadIdx.x == 0) {
    *count = min(cap, min(n_holes, n_movers));
    *length = k;
  }
}

__global__ void compact_move_kernel(bf16* __restrict__ keys, bf16* __restrict__ values, int32_t* __restrict__ positions,
                                    float* __restrict__ scores, const int32_t* __restrict__ holes, const int32_t* __restrict__ movers,
                                    const int32_t* __restrict__ count, int head_dim) {
  const int lane = threadIdx.x & 31;
  const int r = blockIdx.x * kMoveWarps + (threadIdx.x >> 5);
  if (r >= *count) return;
  const int dst = holes[r], src = movers[r];
  const size_t d0 = size_t(dst) * head_dim, s0 = size_t(src) * head_dim;
  for (int c = lane; c < head_dim; c += 32) {
    keys[d0 + c] = keys[s0 + c];
    values[d0 + c] = values[s0 + c];
  }
  if (lane == 0) {
    positions[dst] = positions[src];
    if (scores) scores[dst] = scores[src];
  }
}

__global__ void set_length_kernel(int32_t* length, int k) { *length = k; }

}  // namespace

void compact(bf16* keys, bf16* values, int32_t* positions, int32_t* length, const int32_t* keep, int k, int len,
             int head_dim, float* scores) {
  if (k < 0 || len < 0 || k > len) check(cudaErrorInvalidValue, "compact: k outside [0, len]");
  const int cap = std::min(k, len - k);  // pairs to move: at most the holes below k and the slots above it
  if (cap == 0) {                        // nothing to move (k == len or k == 0)
    set_length_kernel<<<1, 1>>>(length, k);
    check(cudaGetLastError(), "compact launch");
    return;
  }
  StreamScratch scratch((2 * size_t(cap) + 1) * sizeof(int32_t), "compact scratch");
  int32_t* holes = scratch.at<int32_t>(0);
  int32_t* movers = holes + cap;
  int32_t* count = movers + cap;
  const size_t smem = size_t((len + 31) / 32) * sizeof(uint32_t);
  allow_dynamic_smem(compact_plan_kernel, smem, "compact shared memory");
  compact_plan_kernel<<<1, kPlanThreads, smem>>>(holes, movers, count, length, keep, k, len, cap);
  check(cudaGetLastError(), "compact plan launch");
  compact_move_kernel<<<(cap + kMoveWarps - 1) / kMoveWarps, kMoveWarps * 32>>>(keys, values, positions, scores, holes,
                                                                               movers, count, head_dim);
  check(cudaGetLastError(), "compact move launch");
}

}  // namespace kvb::cuda
