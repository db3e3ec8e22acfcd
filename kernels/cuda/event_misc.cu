// The small steps of a compression event (kernels/cuda/compression_cuda.hpp): H2O's slot scores
// as the group's scores, the shared-layout check, the positions read back for --dump-kept, and
// StreamingLLM's sinks moved on within the cache. One thread per slot (or lane), all groups or
// segments of the run in one launch.
#include <cuda_runtime.h>

#include <cmath>

#include "kernels/cuda/compression_common.cuh"

namespace kvb::cuda {

namespace {

using namespace compression_detail;

constexpr int kThreads = 256;

__global__ void slot_scores_kernel(DeviceEvent e, KvStorage<bf16> c) {
  const int g = blockIdx.y, j = blockIdx.x * kThreads + threadIdx.x;
  const DeviceGroup grp = e.groups[g];
  if (j >= grp.length) return;
  e.scores[size_t(g) * e.row + j] = c.slot_scores[first_slot(e.segments[grp.seg_begin], c.geometry.capacity) + j];
}

__global__ void check_layout_kernel(DeviceEvent e, KvStorage<bf16> c, int32_t* flags) {
  const int s = blockIdx.y, j = blockIdx.x * kThreads + threadIdx.x;
  const DeviceSegment seg = e.segments[s];
  const DeviceGroup grp = e.groups[seg.group];
  if (j >= grp.length) return;
  const int cap = c.geometry.capacity;
  const DeviceSegment ref = e.segments[grp.seg_begin];
  if (c.positions[first_slot(seg, cap) + j] != c.positions[first_slot(ref, cap) + j] || c.lengths[seg.head] != grp.length)
    atomicOr(flags, 1);
}

__global__ void read_positions_kernel(DeviceEvent e, KvStorage<bf16> c, int32_t* out) {
  const int s = blockIdx.y, j = blockIdx.x * kThreads + threadIdx.x;
  const DeviceSegment seg = e.segments[s];
  if (j >= e.groups[seg.group].keep) return;
  out[size_t(s) * e.row + j] = c.positions[first_slot(seg, c.geometry.capacity) + j];
}

// One block per segment, one thread per lane pair of each sink.
__global__ void shift_sinks_kernel(DeviceEvent e, KvStorage<bf16> c, int sinks, const int32_t* args,
                                   const double* inv_freq, bool interleaved) {
  const DeviceSegment seg = e.segments[blockIdx.x];
  const int32_t shift = args[2 * seg.group], capture = args[2 * seg.group + 1];
  const int d = c.geometry.head_dim, pairs = d / 2;
  bf16* keys = c.keys + first_slot(seg, c.geometry.capacity) * d;
  bf16* original = c.sink_keys + size_t(seg.head) * c.geometry.sinks * d;
  if (capture)
    for (int i = threadIdx.x; i < sinks * d; i += blockDim.x) original[i] = keys[i];
  __syncthreads();
  for (int t = threadIdx.x; t < sinks * pairs; t += blockDim.x) {
    const int j = t / pairs, f = t % pairs;
    const int lre = interleaved ? 2 * f : f, lim = interleaved ? 2 * f + 1 : f + pairs;
    double sn, cs;
    sincos(double(shift) * inv_freq[f], &sn, &cs);
    const double re = bf16_to_f32(original[size_t(j) * d + lre]), im = bf16_to_f32(original[size_t(j) * d + lim]);
    keys[size_t(j) * d + lre] = bf16_round(static_cast<float>(re * cs - im * sn));
    keys[size_t(j) * d + lim] = bf16_round(static_cast<float>(re * sn + im * cs));
  }
}

}  // namespace

void event_slot_scores(const DeviceEvent& e, const KvStorage<bf16>& c) {
  if (e.n_groups == 0 || e.max_length == 0) return;
  if (!c.slot_scores) fail_argument("slot scores", "the cache keeps none");
  slot_scores_kernel<<<dim3(blocks_for(e.max_length, kThreads), e.n_groups), kThreads>>>(e, c);
  KVB_CUDA_LAUNCH_CHECK();
}

void event_check_shared_layout(const DeviceEvent& e, const KvStorage<bf16>& c, int32_t* flags) {
  if (e.n_segments == 0 || e.max_length == 0) return;
  check_layout_kernel<<<dim3(blocks_for(e.max_length, kThreads), e.n_segments), kThreads>>>(e, c, flags);
  KVB_CUDA_LAUNCH_CHECK();
}

void event_read_positions(const DeviceEvent& e, const KvStorage<bf16>& c, int32_t* out) {
  if (e.n_segments == 0 || e.max_length == 0) return;
  read_positions_kernel<<<dim3(blocks_for(e.max_length, kThreads), e.n_segments), kThreads>>>(e, c, out);
  KVB_CUDA_LAUNCH_CHECK();
}

void event_shift_sinks(const DeviceEvent& e, const KvStorage<bf16>& c, int sinks, const int32_t* args,
                       const double* inv_freq, bool interleaved) {
  if (e.n_segments == 0 || sinks <= 0) return;
  if (!c.sink_keys || sinks > c.geometry.sinks) fail_argument("shift sinks", "no room for the sinks' original keys");
  shift_sinks_kernel<<<e.n_segments, kThreads>>>(e, c, sinks, args, inv_freq, interleaved);
  KVB_CUDA_LAUNCH_CHECK();
}

}  // namespace kvb::cuda
