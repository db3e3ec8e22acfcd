#pragma once
// The device workspace of the CUDA compression ops (kernels/cuda/compression_cuda.cpp) and the
// event tables they upload, laid out by one function (lay_out_compression_scratch) so that the
// engine's arena and the capacity planner count the same bytes. Host arithmetic only: compiled in
// every build.
//
// One run of an event holds at most max_segments segments (and as many groups). Per group, with
// C = capacity slots: scores [C] fp32 (in the event's view), order and rank [C] int32 (positions
// oldest first, and each slot's place in that order), kept [C] int32 (the chosen slots). Per
// segment: `work_rows` rows of C floats (TriAttention's raw per-head scores; SnapKV's window
// logits, attention and pooled scores) and, per query head, TriAttention's z-score moments.
// Sorting more than kSharedSortSlots slots falls back from shared to global memory (sort_keys).
// R-KV's redundancy runs redundancy_groups groups at a time through its column partials.
#include <cstddef>
#include <cstdint>

#include "kernels/device_carver.hpp"

namespace kvb {

// The largest group one block sorts in shared memory (8-byte keys, 128 KiB).
inline constexpr int kSharedSortSlots = 16384;

// A group of an event as the device reads it (kernels/compression_ops.hpp CompressionEvent).
struct DeviceGroup {
  int32_t seg_begin = 0, seg_end = 0;  // its segments
  int32_t length = 0, keep = 0;
  int32_t below = 0, from = 0, oldest = 0, newest = 0;  // pins
  int32_t processed = 0;
  int32_t time_row = -1;  // TriAttention: the row of the uploaded coefficient table (-1: not in this pass)
  uint64_t noise_event = 0;
};

struct DeviceSegment {
  int32_t layer = 0, seq = 0, kv_head = 0, group = 0;
  int64_t head = 0;  // KvGeometry::head(layer, seq, kv_head)
};

struct CompressionShape {
  int max_segments = 0;    // segments of one run (0: the run has no compression method)
  int batch_segments = 0;  // segments of a whole batch: the most one event can hold (its runs' host staging)
  int capacity = 0;
  int group = 1;
  int head_dim = 0;
  int window = 0;                        // SnapKV / R-KV observation window (0: neither runs)
  bool redundancy = false;               // R-KV runs
  int coefficient_rows = 0;              // TriAttention: times whose coefficient tables fit at once
  size_t coefficient_floats_per_row = 0;  // n_layers * n_heads * (max_queries * head_dim + head_dim / 2)
};

struct CompressionScratch {
  DeviceGroup* groups = nullptr;
  DeviceSegment* segments = nullptr;
  float* scores = nullptr;
  int32_t *order = nullptr, *rank = nullptr, *kept = nullptr;
  float* work = nullptr;
  double* moments = nullptr;         // [max_segments][max(group, window)][2]: TriAttention's mean and std
                                     // per head, SnapKV's softmax max and sum per window query
  uint64_t* sort_keys = nullptr;     // [max_segments][pow2(capacity)], only above kSharedSortSlots
  float* coefficients = nullptr;     // [coefficient_rows][coefficient_floats_per_row]
  double* redundancy_columns = nullptr;  // [redundancy_groups][redundancy_partial_slots]: [splits][n] each
  int32_t* redundancy_latest = nullptr;  // the same
  float* redundancy_norms = nullptr;     // [redundancy_groups][capacity]
  int redundancy_groups = 0;
  int32_t* group_args = nullptr;     // [max_segments][2]: per-group arguments (the sinks' shift)
  double* inv_freq = nullptr;        // [head_dim / 2]: RoPE frequencies (the sinks' shift)
  int32_t* flags = nullptr;          // [4]: failed checks, read at the end of an event
};

// Floats of `work` per slot and segment.
int compression_work_rows(const CompressionShape& shape);
// R-KV's column splits for n keys (a function of n only: the sums' order, and so their bits, do
// not depend on the batch).
int redundancy_splits(int n);
// Room for splits(n) * n partials for every n <= capacity.
size_t redundancy_partial_slots(int capacity);
// The smallest power of two >= n.
int sort_width(int n);

void lay_out_compression_scratch(DeviceCarver& carver, const CompressionShape& shape, CompressionScratch& out);

}  // namespace kvb
