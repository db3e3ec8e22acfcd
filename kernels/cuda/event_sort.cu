// The sorting steps of a compression event (kernels/cuda/compression_cuda.hpp): event_begin
// orders each group's slots by position (when the event needs ranks), event_select pins and keeps
// each group's best `keep` slots.
//
// Both sort one 64-bit key per slot, descending, whose unsigned order is the wanted order, so the
// result is unique and does not depend on the schedule:
//  - by position: high word 0x7fffffff - position (older first), low word ~slot;
//  - by score (cpu::top_k): high word the score's bits mapped to an order-preserving unsigned
//    (-0 taken as +0, since the CPU comparison ties them; a pinned slot's score is +inf), low word
//    ~index in the view (a lower index ranks higher).
// Keys are padded with 0 (below every real key) to the next power of two P. A group of at most
// kSharedSortSlots slots is bitonic-sorted by one block in dynamic shared memory (8 P bytes: 128 KiB
// at P = 16384, within the H100's 227 KiB opt-in); longer groups run the same network stage by
// stage over global memory (one launch per stage for all of them).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/compression_common.cuh"

namespace kvb::cuda {

namespace {

using namespace compression_detail;
using Key = unsigned long long;

constexpr int kMaxThreads = 1024;
constexpr int kGlobalThreads = 256;

__device__ __forceinline__ Key position_key(int32_t pos, int slot) {
  return (Key(uint32_t(0x7fffffff - pos)) << 32) | Key(0xffffffffu - uint32_t(slot));
}

__device__ __forceinline__ Key score_key(float score, int index) {
  uint32_t u = __float_as_uint(score);
  if ((u << 1) == 0) u = 0;                        // -0 ties with +0
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);  // order-preserving for non-NaN floats
  return (Key(u) << 32) | Key(0xffffffffu - uint32_t(index));
}

__device__ __forceinline__ int key_index(Key key) { return int(0xffffffffu - uint32_t(key & 0xffffffffu)); }

__device__ __forceinline__ int sort_width_of(int n) {
  int p = 1;
  while (p < n) p <<= 1;
  return p;
}

// One compare-exchange of pair t of the stage (size, stride): elements lo and lo + stride, in
// descending order where lo & size == 0 and ascending elsewhere (so the final merge, size == P,
// leaves the whole array descending).
__device__ __forceinline__ void compare_exchange(Key* a, int t, int size, int stride) {
  const int lo = ((t & ~(stride - 1)) << 1) | (t & (stride - 1));
  const int hi = lo + stride;
  const Key x = a[lo], y = a[hi];
  const bool descending = (lo & size) == 0;
  if (descending ? x < y : x > y) {
    a[lo] = y;
    a[hi] = x;
  }
}

__device__ void block_sort_descending(Key* a, int p) {
  __syncthreads();
  const int half = p >> 1;
  for (int size = 2; size <= p; size <<= 1)
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int t = threadIdx.x; t < half; t += blockDim.x) compare_exchange(a, t, size, stride);
      __syncthreads();
    }
}

// The key of view index i of group g: its position, or its (pinned: +inf) score.
template <bool kByScore>
__device__ Key slot_key(const DeviceEvent& e, const KvStorage<bf16>& c, int g, int i) {
  const DeviceGroup& grp = e.groups[g];
  const int32_t* pos = c.positions + first_slot(e.segments[grp.seg_begin], c.geometry.capacity);
  if (!kByScore) return position_key(pos[i], i);
  const size_t row = size_t(g) * e.row;
  const int slot = e.positions_view ? e.order[row + i] : i;
  const int rank = e.rank ? (e.positions_view ? i : e.rank[row + i]) : -1;
  const float score = is_pinned(grp, pos[slot], rank) ? INFINITY : e.scores[row + i];
  return score_key(score, i);
}

// What the sorted keys become: the order and ranks, or the kept slots.
template <bool kByScore>
__device__ void write_sorted(const DeviceEvent& e, int g, int r, Key key) {
  const DeviceGroup& grp = e.groups[g];
  const size_t row = size_t(g) * e.row;
  const int i = key_index(key);
  if (kByScore) {
    if (r < grp.keep) e.kept[row + r] = e.positions_view ? e.order[row + i] : i;
  } else if (r < grp.length) {
    e.order[row + r] = i;
    e.rank[row + i] = r;
  }
}

template <bool kByScore>
__global__ void __launch_bounds__(kMaxThreads) sort_shared_kernel(DeviceEvent e, KvStorage<bf16> c) {
  extern __shared__ Key sort_smem[];
  const int g = blockIdx.x, len = e.groups[g].length;
  if (len > kSharedSortSlots || len == 0) return;
  const int p = sort_width_of(len);
  for (int i = threadIdx.x; i < p; i += blockDim.x) sort_smem[i] = i < len ? slot_key<kByScore>(e, c, g, i) : Key(0);
  block_sort_descending(sort_smem, p);
  for (int r = threadIdx.x; r < len; r += blockDim.x) write_sorted<kByScore>(e, g, r, sort_smem[r]);
}

// The global-memory network for groups above kSharedSortSlots: init, one launch per stage, write.
template <bool kByScore>
__global__ void sort_global_init_kernel(DeviceEvent e, KvStorage<bf16> c, Key* keys, int width) {
  const int g = blockIdx.y, len = e.groups[g].length;
  const int i = blockIdx.x * kGlobalThreads + threadIdx.x;
  if (len <= kSharedSortSlots || i >= sort_width_of(len)) return;
  keys[size_t(g) * width + i] = i < len ? slot_key<kByScore>(e, c, g, i) : Key(0);
}

__global__ void sort_global_stage_kernel(DeviceEvent e, Key* keys, int width, int size, int stride) {
  const int g = blockIdx.y, len = e.groups[g].length;
  const int t = blockIdx.x * kGlobalThreads + threadIdx.x;
  if (len <= kSharedSortSlots || size > sort_width_of(len) || t >= sort_width_of(len) / 2) return;
  compare_exchange(keys + size_t(g) * width, t, size, stride);
}

template <bool kByScore>
__global__ void sort_global_write_kernel(DeviceEvent e, const Key* keys, int width) {
  const int g = blockIdx.y, len = e.groups[g].length;
  const int r = blockIdx.x * kGlobalThreads + threadIdx.x;
  if (len <= kSharedSortSlots || r >= len) return;
  write_sorted<kByScore>(e, g, r, keys[size_t(g) * width + r]);
}

template <bool kByScore>
void sort_groups(const DeviceEvent& e, const KvStorage<bf16>& c, uint64_t* sort_keys) {
  if (e.n_groups == 0 || e.max_length == 0) return;
  const int p = std::min(sort_width(e.max_length), kSharedSortSlots);
  const size_t smem = size_t(p) * sizeof(Key);
  allow_dynamic_smem(sort_shared_kernel<kByScore>, smem);
  sort_shared_kernel<kByScore><<<e.n_groups, std::clamp(p / 2, 32, kMaxThreads), smem>>>(e, c);
  KVB_CUDA_LAUNCH_CHECK();
  if (e.max_length <= kSharedSortSlots) return;
  if (!sort_keys) fail_argument("compression sort", "a group above the shared-memory sort has no global scratch");
  const int width = sort_width(e.row);
  const dim3 grid(blocks_for(width, kGlobalThreads), e.n_groups);
  sort_global_init_kernel<kByScore><<<grid, kGlobalThreads>>>(e, c, reinterpret_cast<Key*>(sort_keys), width);
  KVB_CUDA_LAUNCH_CHECK();
  const dim3 stage_grid(blocks_for(width / 2, kGlobalThreads), e.n_groups);
  for (int size = 2; size <= width; size <<= 1)
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      sort_global_stage_kernel<<<stage_grid, kGlobalThreads>>>(e, reinterpret_cast<Key*>(sort_keys), width, size, stride);
      KVB_CUDA_LAUNCH_CHECK();
    }
  sort_global_write_kernel<kByScore><<<grid, kGlobalThreads>>>(e, reinterpret_cast<const Key*>(sort_keys), width);
  KVB_CUDA_LAUNCH_CHECK();
}

__global__ void init_scores_kernel(DeviceEvent e) {
  const int g = blockIdx.y;
  const int i = blockIdx.x * kGlobalThreads + threadIdx.x;
  if (i < e.groups[g].length) e.scores[size_t(g) * e.row + i] = -INFINITY;
}

}  // namespace

void event_begin(const DeviceEvent& e, const KvStorage<bf16>& cache, uint64_t* sort_keys) {
  if (e.n_groups == 0 || e.max_length == 0) return;
  init_scores_kernel<<<dim3(blocks_for(e.max_length, kGlobalThreads), e.n_groups), kGlobalThreads>>>(e);
  KVB_CUDA_LAUNCH_CHECK();
  if (e.order) sort_groups<false>(e, cache, sort_keys);
}

void event_select(const DeviceEvent& e, const KvStorage<bf16>& cache, uint64_t* sort_keys) {
  sort_groups<true>(e, cache, sort_keys);
}

}  // namespace kvb::cuda
