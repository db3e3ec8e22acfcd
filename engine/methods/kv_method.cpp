#include "engine/methods/kv_method.hpp"

#include <algorithm>

#include "engine/methods/method_factories.hpp"
#include "profiler/trace.hpp"
#include "util/errors.hpp"

namespace kvb {

namespace {

class FullMethod : public KvMethod {
 public:
  using KvMethod::KvMethod;

 protected:
  void plan(const CompressionOps&, const RowProgress&, int64_t, CompressionEvent&) override {}
  void score(CompressionOps&, const CompressionEvent&) override {}
};

}  // namespace

KvMethod::KvMethod(const PolicyConfig& config) : config_(config) {}

void KvMethod::begin_sequence(int seq) {
  if (static_cast<int>(events_.size()) <= seq) events_.resize(seq + 1, 0);
  events_[seq] = 0;
}

void KvMethod::plan_by_length(const CompressionOps& ops, const RowProgress& row, const PinRule& pins,
                              CompressionEvent& event) const {
  const KvGeometry& g = ops.geometry();
  const bool every_step = trigger_of(config_) == Trigger::EveryStep;
  for (int l = 0; l < g.n_layers; ++l)
    for (int h = 0; h < g.n_kv_heads; ++h) {
      const int len = ops.length(l, row.seq, h);
      if (every_step ? len <= config_.budget : len < config_.budget + config_.divide_length) continue;
      event.add_group(len, config_.budget, pins, row.processed);
      event.add_segment(l, row.seq, h);
    }
}

void KvMethod::run(CompressionOps& ops, const CompressionEvent& event, std::vector<int32_t>* positions) {
  ops.begin(event);
  {
    profiler::Range range("score");
    score(ops, event);
  }
  {
    profiler::Range range("select");
    ops.select();
  }
  profiler::Range range("compact");
  ops.compact();
  after_compact(ops, event);
  if (positions) ops.read_positions(*positions);
}

void KvMethod::compress(CompressionOps& ops, std::span<const RowProgress> rows, std::span<int64_t> evicted,
                        std::vector<KeptEvent>* kept) {
  std::fill(evicted.begin(), evicted.end(), 0);
  event_.clear();
  event_.view = view();
  event_.ranks = ranks();
  row_groups_.assign(1, 0);
  for (const RowProgress& row : rows) {
    if (static_cast<int>(events_.size()) <= row.seq) events_.resize(row.seq + 1, 0);
    plan(ops, row, events_[row.seq], event_);
    row_groups_.push_back(event_.groups());
  }
  if (event_.empty()) return;

  // One run when the ops take the whole event; else runs of whole groups.
  positions_.clear();
  std::vector<int32_t>* positions = kept ? &positions_ : nullptr;
  const int groups = event_.groups(), limit = ops.max_segments();
  if (static_cast<int>(event_.segments.size()) <= limit) {
    run(ops, event_, positions);
  } else {
    for (int first = 0; first < groups;) {
      int count = 0, segments = 0;
      while (first + count < groups) {
        const int size = event_.group_begin[first + count + 1] - event_.group_begin[first + count];
        if (count > 0 && segments + size > limit) break;
        segments += size;
        ++count;
      }
      if (segments > limit)
        fail_runtime("{}: one kept set spans {} (layer, KV head) segments, the compression workspace holds {}",
                     method_name(config_.method), segments, limit);
      run(ops, event_.slice(first, count), positions);
      first += count;
    }
  }
  ops.finish();

  // Per row: what was evicted (known from the plan: every group keeps exactly `keep`) and kept.
  size_t at = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (row_groups_[i + 1] == row_groups_[i]) continue;
    KeptEvent record;
    record.seq = rows[i].seq;
    record.processed = rows[i].processed;
    record.event = events_[rows[i].seq]++;
    for (int g = row_groups_[i]; g < row_groups_[i + 1]; ++g)
      for (int s = event_.group_begin[g]; s < event_.group_begin[g + 1]; ++s) {
        evicted[i] += event_.length[g] - event_.keep[g];
        if (!kept) continue;
        record.segments.push_back(event_.segments[s]);
        record.positions.emplace_back(positions_.begin() + at, positions_.begin() + at + event_.keep[g]);
        at += event_.keep[g];
      }
    if (kept) kept->push_back(std::move(record));
  }
}

std::unique_ptr<KvMethod> make_method(const PolicyConfig& config, const ModelConfig& model) {
  check_policy(config);
  switch (config.method) {
    case Method::Full: return std::make_unique<FullMethod>(config);
    case Method::TriAttention: return make_triattention_method(config, model);
    case Method::SnapKV:
    case Method::RKV: return make_window_method(config);
    case Method::Streaming: return make_streaming_method(config, model);
    case Method::H2O: return make_h2o_method(config);
  }
  fail_runtime("make_method: unknown method");
}

}  // namespace kvb
