#pragma once
// The batched operations of a KV-compression event: one interface, implemented by the CPU
// reference (kernels/cpu/compression_cpu.cpp) and the CUDA port (kernels/cuda/compression_cuda.cpp)
// under the same names. A method (engine/methods/kv_method.hpp) plans an event on the host from the
// cache's lengths and runs it through these ops, so each method's logic exists once for both
// backends; keys, positions and scores stay where the cache lives (kernels/kv_storage.hpp).
//
// An event is a list of groups. A group is one or more (layer, sequence, KV head) segments that
// share one kept set (TriAttention's per-KV-head selection spans the layers, its global selection
// every layer and KV head); all segments of a group hold `length` slots. An event runs
//   begin -> a scoring op -> select -> compact [-> shift_sinks] [-> read_positions] -> finish
// and may be split between groups (max_segments) into several begin .. compact runs.
//
// Views. A group's scores are indexed in slot order (SlotView::Slots: index i is slot i) or oldest
// first (SlotView::Positions: index i is the slot holding the i-th smallest position), whichever
// the method's evidence needs (pooling over neighbouring tokens, a chronological redundancy).
// Scores start at -inf. select sets the pinned slots' scores to +inf and keeps the
// `keep` best, ties to the lower index of the view; a pinned count above `keep` is the caller's
// error. The kept set does not depend on the backend or on how the event is split.
//
// Pins. A slot is pinned when its position p has p < below or p >= from, or its rank r among the
// group's positions (0 = oldest) has r < oldest or r >= length - newest. Rank pins and the
// positions view need the event's `ranks` (each group's slots sorted by position once, at begin).
//
// Errors: RuntimeFailure. A device reports a failed check at finish() (the event's one host
// synchronisation); the CPU at once.
#include <climits>
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/kv_storage.hpp"

namespace kvb {

struct Segment {
  int32_t layer = 0, seq = 0, kv_head = 0;
};

enum class SlotView { Slots, Positions };

struct PinRule {
  int32_t below = INT32_MIN;
  int32_t from = INT32_MAX;
  int32_t oldest = 0;
  int32_t newest = 0;
};

struct CompressionEvent {
  SlotView view = SlotView::Slots;
  bool ranks = false;
  std::vector<Segment> segments;     // group by group
  std::vector<int32_t> group_begin;  // n_groups + 1 offsets into segments
  // Per group:
  std::vector<int32_t> length;        // slots each of its segments holds now
  std::vector<int32_t> keep;          // slots it keeps (<= length)
  std::vector<PinRule> pins;
  std::vector<int32_t> processed;     // tokens its sequence has processed: the next query's position
  std::vector<uint64_t> noise_event;  // TriAttention's tie-break noise key

  int groups() const { return static_cast<int>(length.size()); }
  bool empty() const { return length.empty(); }
  void clear();
  // Opens a group; its segments follow with add_segment.
  void add_group(int32_t length, int32_t keep, const PinRule& pins, int32_t processed, uint64_t noise_event = 0);
  void add_segment(int layer, int seq, int kv_head);
  // Groups [first, first + count) as an event of their own (same view and ranks).
  CompressionEvent slice(int first, int count) const;
};

// How the segment scores of a group combine: the mean (each divided by the segment count, summed
// in segment order) or the maximum.
enum class GroupReduce { Mean, Max };

// TriAttention's scoring (shared/spec/triattention.md 2-3; engine/methods/tri_scoring.hpp): for
// every segment and every query head h of its KV head, the candidate slots (those not pinned) are
// scored with h's coefficients at the group's time,
//   raw[j] = max_q dot(u[q], k_j) + sum_f e[f] |pair_f(k_j)|
// z-scored over the candidates (population std clamped at 1e-6), given the tie-break noise
// fma(1e-6, hashed_uniform(seed, noise_event, ((layer * n_heads + h) << 32) | pos_j), z), and
// reduced by max over the group's heads; then the segments of a group combine by `reduce`.
struct TriEventScoring {
  std::span<const int32_t> times;     // the distinct `processed` values of the event's groups, ascending
  std::span<const float> coefficients;  // [times][n_layers][n_heads][stride], host memory
  int n_u = 1;                          // effective queries per head (0: norm term only)
  int stride = 0;                       // floats per head: n_u * head_dim, then head_dim / 2 norm weights
  int n_heads = 0;
  bool interleaved = false;             // pair lanes (2f, 2f+1), else (f, f + head_dim/2)
  uint64_t seed = 0;
  GroupReduce reduce = GroupReduce::Max;
};

// SnapKV's evidence (spec section 4), SlotView::Positions, one segment per group: the `window`
// most recent queries of the segment's sequence and layer (oldest first) against the n - window
// older keys (n = length): per query, logits q.k / sqrt(head_dim) reduced by max over the group's
// query heads, softmax over those keys, mean over the queries; max-pooled over 2 * pool_radius + 1
// neighbours. With R-KV's redundancy (key_redundancy over all n keys, oldest first) the score is
// fma(lambda, pooled, -((1 - lambda) * redundancy)).
struct WindowEventScoring {
  int window = 8;
  int pool_radius = 3;
  bool redundancy = false;
  float lambda = 0.1f;
  float threshold = 0.5f;
};

class CompressionOps {
 public:
  virtual ~CompressionOps() = default;

  virtual const KvGeometry& geometry() const = 0;
  // Live slots of (layer, seq, kv_head), from the host copy.
  virtual int length(int layer, int seq, int kv_head) const = 0;
  // Most segments one begin .. compact run may hold.
  virtual int max_segments() const = 0;

  virtual void begin(const CompressionEvent& event) = 0;
  virtual void tri_scores(const TriEventScoring& scoring) = 0;
  virtual void window_scores(const WindowEventScoring& scoring) = 0;
  // H2O: each group's scores are its (single) segment's accumulated slot scores.
  virtual void slot_scores() = 0;
  // Checks that each group's segments hold the same positions in the same slots (a selection
  // shared across layers relies on it).
  virtual void check_shared_layout() = 0;
  // Each group's scores in the event's view (length[g] values each, group by group), appended to
  // `out` in host memory: for tests and diagnostics, after a scoring op and before select (pinned
  // slots are not marked yet: they hold what the scoring left, -inf where it scored nothing).
  virtual void read_scores(std::vector<float>& out) = 0;
  // Pins, and chooses each group's `keep` best slots.
  virtual void select() = 0;
  // Compacts every segment of a group to the chosen slots (keys, values, positions and slot scores
  // move together, as cpu::compact_slots: kept slots below `keep` stay, the others fill the holes
  // in ascending order) and sets the lengths, host copy included.
  virtual void compact() = 0;
  // The positions each segment of the event holds after compact, segment by segment (keep[g]
  // values each, slot order), appended to `out` in host memory.
  virtual void read_positions(std::vector<int32_t>& out) = 0;
  // StreamingLLM's positions within the cache: the first `sinks` slots of every segment (the
  // sinks: the oldest tokens, which compaction never moves) take the keys their tokens had when
  // they joined the cache, rotated on by shift[g] positions (RoPE with `inv_freq`, `interleaved`
  // pairing), so that a query meets the sinks at their distance within the cache. The original
  // keys are captured into the cache's sink_keys where capture[g] is set (the sequence's first
  // shift); the cache must keep at least `sinks` of them.
  virtual void shift_sinks(int sinks, std::span<const int32_t> shift, std::span<const uint8_t> capture,
                           std::span<const double> inv_freq, bool interleaved) = 0;
  // Waits for the event's work and reports a failed check.
  virtual void finish() = 0;
};

}  // namespace kvb
