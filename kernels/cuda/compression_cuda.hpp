#pragma once
// The CUDA compression ops (kernels/compression_ops.hpp) and the batched kernels behind them.
// Every kernel works on all groups or segments of one run of an event at once (blockIdx.y, or a
// block per group/segment), reads the cache where it lives and takes its workspace from the
// engine's arena (kernels/compression_scratch.hpp); the host uploads each run's tables once and
// synchronises once per event, in finish(). Same decisions as the CPU ops on the same
// (bf16-rounded) inputs, up to fp32 summation order in the scores; ties in top-k and compaction
// follow the CPU's rules exactly. Default stream, asynchronous; .cu files report errors through
// KVB_CUDA_CHECK (kernels/cuda/cuda_check.hpp).
#include <cstdint>
#include <memory>

#include "kernels/bf16.hpp"
#include "kernels/compression_ops.hpp"
#include "kernels/compression_scratch.hpp"
#include "kernels/kv_storage.hpp"

namespace kvb {

// The CompressionOps of a device cache; `scratch` was laid out for `shape` in the engine's arena.
std::unique_ptr<CompressionOps> make_cuda_compression_ops(const KvStorage<bf16>& cache, const CompressionScratch& scratch,
                                                          const CompressionShape& shape);

}  // namespace kvb

namespace kvb::cuda {

// One run of an event as the kernels see it: device tables and the per-group rows of the scratch.
struct DeviceEvent {
  const DeviceGroup* groups = nullptr;
  const DeviceSegment* segments = nullptr;
  int n_groups = 0, n_segments = 0;
  int max_length = 0;   // the longest group (grid sizing)
  int row = 0;          // floats (ints) per group row of scores, order, rank, kept: the cache capacity
  bool positions_view = false;
  int32_t* order = nullptr;  // [group][row]: slots oldest first (with ranks), else null
  int32_t* rank = nullptr;   // [group][row]: each slot's place in order, else null
  float* scores = nullptr;   // [group][row], in the view
  int32_t* kept = nullptr;   // [group][row]: the chosen slots (keep of them)
};

// Scores -inf; with order/rank, each group's slots sorted by position (sort_keys: global scratch
// of [groups][sort_width(row)] keys for groups longer than kSharedSortSlots, else unused).
void event_begin(const DeviceEvent& e, const KvStorage<bf16>& cache, uint64_t* sort_keys);

// TriAttention (TriEventScoring) for the groups whose time_row is in [first_row, first_row + rows):
// coefficients holds those rows, [rows][n_layers][n_heads][stride]; raw [segment][group][row] and
// moments [segment][group][2] are workspace.
struct TriDeviceScoring {
  const float* coefficients = nullptr;
  int first_row = 0, rows = 0;
  int n_u = 1, stride = 0, n_heads = 0;
  bool interleaved = false;
  uint64_t seed = 0;
  bool mean = false;  // GroupReduce::Mean
};
void event_tri_scores(const DeviceEvent& e, const KvStorage<bf16>& cache, const TriDeviceScoring& s, float* raw,
                      double* moments);

// SnapKV / R-KV (WindowEventScoring), positions view, one segment per group. work: [group][window
// + 2][row] floats; the redundancy partials of `scratch` take redundancy_groups groups at a time.
void event_window_scores(const DeviceEvent& e, const KvStorage<bf16>& cache, int window, int pool_radius,
                         bool redundancy, float lambda, float threshold, float* work, const CompressionScratch& scratch);

// H2O: scores = the first segment's slot scores.
void event_slot_scores(const DeviceEvent& e, const KvStorage<bf16>& cache);

// flags[0] |= 1 when a segment's positions differ from its group's first segment's.
void event_check_shared_layout(const DeviceEvent& e, const KvStorage<bf16>& cache, int32_t* flags);

// Pins (+inf) and the top `keep` of each group into kept (slot indices).
void event_select(const DeviceEvent& e, const KvStorage<bf16>& cache, uint64_t* sort_keys);

// Every segment keeps its group's kept slots (cpu::compact_slots' moves); device lengths := keep;
// freed slot scores return to 0.
void event_compact(const DeviceEvent& e, const KvStorage<bf16>& cache);

// out[segment][0..keep) = the segment's positions after compaction (rows of `row` ints).
void event_read_positions(const DeviceEvent& e, const KvStorage<bf16>& cache, int32_t* out);

// CompressionOps::shift_sinks; args [group][2] = (shift, capture); the originals in cache.sink_keys.
void event_shift_sinks(const DeviceEvent& e, const KvStorage<bf16>& cache, int sinks, const int32_t* args,
                       const double* inv_freq, bool interleaved);

// Stores the post-RoPE queries q ([n][n_heads][head_dim]) of `layer` of the `count` tokens
// i = which[0..count) in the query window [n_seqs][n_layers][n_kv_heads][window][group][head_dim],
// slot pos[i] % window of sequence seq[i]. The tokens listed must map to distinct slots.
void store_window_queries(float* ring, const float* q, const int32_t* which, int count, const int32_t* seq,
                          const int32_t* pos, int n_heads, int group, int head_dim, int window, int layer, int n_layers);

}  // namespace kvb::cuda
