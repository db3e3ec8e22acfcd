// Compaction of every segment of a compression event (event_compact): cpu::compact_slots on the
// device, one block of 1024 threads per segment, all segments in one launch.
//
// A segment keeps its group's `keep` chosen slots (distinct, below the length `len`: the select
// step's output). The unkept slots below keep ("holes") are exactly as many as the kept slots at or
// above it ("movers"); pairing both in ascending order, hole r receives mover r's key row, value row,
// position and slot score, and the length becomes keep: the CPU's result, slot for slot (slots at
// or above keep hold stale contents, their scores return to 0). Indices outside [0, len) are
// ignored and at most min(keep, len - keep) pairs move, so a violated precondition gives a wrong
// cache, never an out-of-bounds access.
//
// The block builds a bitmap of the kept slots in shared memory (atomicOr: the bits do not depend on
// the order), then takes the pairs in chunks of kChunk: the holes, then the movers, of ranks
// [base, base + kChunk) are listed in ascending order (each thread one 32-slot word: popc, a
// block-wide exclusive scan, bit by bit), and one warp per pair copies the rows (sources all at or
// above keep, destinations all below: no overlap, no order between pairs needed).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/compression_common.cuh"

namespace kvb::cuda {

namespace {

using namespace compression_detail;

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kChunk = 2048;

// Lists, in ascending order, the slots s in [begin, end) whose kept bit equals `want_kept` and whose
// rank among them is in [skip, skip + cap) into list[rank - skip]; returns how many match in all.
// Synchronises the block.
__device__ int list_slots(const uint32_t* kept, int begin, int end, bool want_kept, int32_t* list, int skip, int cap,
                          int* scan_buf) {
  if (begin >= end) return 0;
  const int w_begin = begin >> 5, w_end = (end + 31) >> 5;
  int total = 0;
  for (int w0 = w_begin; w0 < w_end; w0 += kThreads) {  // uniform trip count
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
      if (r >= skip && r < skip + cap) list[r - skip] = (w << 5) + __ffs(m) - 1;
    total += chunk;
  }
  return total;
}

__global__ void __launch_bounds__(kThreads) compact_kernel(DeviceEvent e, KvStorage<bf16> c) {
  extern __shared__ uint32_t compact_kept[];  // one bit per slot below len
  __shared__ int32_t holes[kChunk], movers[kChunk];
  __shared__ int scan_buf[32];
  const DeviceSegment seg = e.segments[blockIdx.x];
  const DeviceGroup grp = e.groups[seg.group];
  const int len = grp.length, k = grp.keep, d = c.geometry.head_dim;
  const size_t first = first_slot(seg, c.geometry.capacity);
  bf16* keys = c.keys + first * d;
  bf16* values = c.values + first * d;
  int32_t* positions = c.positions + first;
  float* scores = c.slot_scores ? c.slot_scores + first : nullptr;
  const int32_t* keep = e.kept + size_t(seg.group) * e.row;

  const int words = (len + 31) >> 5;
  for (int w = threadIdx.x; w < words; w += kThreads) compact_kept[w] = 0;
  __syncthreads();
  for (int r = threadIdx.x; r < k; r += kThreads) {
    const int s = keep[r];
    if (unsigned(s) < unsigned(len)) atomicOr(&compact_kept[s >> 5], 1u << (s & 31));
  }
  __syncthreads();
  const int pairs = min(k, len - k);
  for (int base = 0; base < pairs; base += kChunk) {  // uniform trip count
    const int n_holes = list_slots(compact_kept, 0, k, false, holes, base, kChunk, scan_buf);
    const int n_movers = list_slots(compact_kept, k, len, true, movers, base, kChunk, scan_buf);
    __syncthreads();
    const int count = min(kChunk, min(n_holes, n_movers) - base);
    const int lane = threadIdx.x & 31;
    for (int p = threadIdx.x >> 5; p < count; p += kWarps) {
      const int dst = holes[p], src = movers[p];
      for (int col = lane; col < d; col += 32) {
        keys[size_t(dst) * d + col] = keys[size_t(src) * d + col];
        values[size_t(dst) * d + col] = values[size_t(src) * d + col];
      }
      if (lane == 0) {
        positions[dst] = positions[src];
        if (scores) scores[dst] = scores[src];
      }
    }
    __syncthreads();  // the lists are consumed before the next chunk overwrites them
  }
  if (scores)
    for (int s = k + int(threadIdx.x); s < len; s += kThreads) scores[s] = 0.0f;  // new slots start at 0
  if (threadIdx.x == 0) c.lengths[seg.head] = k;
}

}  // namespace

void event_compact(const DeviceEvent& e, const KvStorage<bf16>& c) {
  if (e.n_segments == 0) return;
  const size_t smem = size_t((e.max_length + 31) / 32) * sizeof(uint32_t);
  allow_dynamic_smem(compact_kernel, smem);
  compact_kernel<<<e.n_segments, kThreads, smem>>>(e, c);
  KVB_CUDA_LAUNCH_CHECK();
}

}  // namespace kvb::cuda
