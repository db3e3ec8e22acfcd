#pragma once
// A KV-cache compression method, written once for every backend (docs/design.md, "Method"). After
// each forward the decode backend hands the method the rows it fed; the method decides on the
// host, from the cache's lengths and each row's progress, which (layer, KV head) segments of which
// rows are due, and runs one batched event over all of them through the backend's compression
// ops (kernels/compression_ops.hpp): score, pin, select, compact. It never reads keys, positions
// or scores itself, so the CPU and the GPU make the same decisions from the same logic.
//
// `full` never evicts; a budgeted method keeps each (layer, KV head) between `budget` and its
// trigger's peak (engine/methods/method.hpp cache_capacity), so the bytes it reports are the bytes
// it holds. Method-specific semantics: engine/methods/{triattention,window,streaming,h2o}_method.cpp
// and docs/methods.md.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/methods/method.hpp"
#include "engine/model_config.hpp"
#include "kernels/compression_ops.hpp"

namespace kvb {

// Where a sequence stands when its method runs.
struct RowProgress {
  int seq = 0;            // the cache row
  int prompt_tokens = 0;  // P
  int processed = 0;      // tokens fed so far, prompt included: the next token's position
  bool prefill = false;   // this forward completed the prompt
};

// What one event kept of one row (--dump-kept): the positions each compacted (layer, KV head)
// holds afterwards, in slot order.
struct KeptEvent {
  int seq = 0;
  int processed = 0;
  int64_t event = 0;  // this row's compression events before this one
  std::vector<Segment> segments;
  std::vector<std::vector<int32_t>> positions;  // per segment
};

class KvMethod {
 public:
  explicit KvMethod(const PolicyConfig& config);
  virtual ~KvMethod() = default;

  const PolicyConfig& config() const { return config_; }
  const MethodTraits& traits() const { return kvb::traits(config_.method); }
  // Slots per (layer, sequence, kv-head) a sequence with this prompt and this many tokens in all needs.
  int capacity(int prompt_tokens, int total_tokens) const { return cache_capacity(config_, prompt_tokens, total_tokens); }
  // InputError naming --budget when a sequence with this prompt cannot be run within the budget.
  virtual void check_prompt(int /*prompt_tokens*/, const std::string& /*sequence_id*/) const {}
  // Cache row `seq` takes a new sequence (its per-sequence state starts over).
  virtual void begin_sequence(int seq);

  // After a forward that appended to the rows in `rows`: compresses every row that is due, in one
  // event through `ops`; evicted[i] receives the slots evicted from rows[i] (layers and KV heads
  // summed). With `kept`, appends what each compacted row holds afterwards.
  void compress(CompressionOps& ops, std::span<const RowProgress> rows, std::span<int64_t> evicted,
                std::vector<KeptEvent>* kept = nullptr);

 protected:
  // Adds the groups of `row` that are due now to `event` (none: the row is not due). `event_index`
  // is the row's count of earlier events.
  virtual void plan(const CompressionOps& ops, const RowProgress& row, int64_t event_index, CompressionEvent& event) = 0;
  // Scores `event` (some of the planned groups: the ops may take them in several runs).
  virtual void score(CompressionOps& ops, const CompressionEvent& event) = 0;
  // After the compaction of `event`.
  virtual void after_compact(CompressionOps& /*ops*/, const CompressionEvent& /*event*/) {}
  // The view and ranks every event of this method uses.
  virtual SlotView view() const { return SlotView::Slots; }
  virtual bool ranks() const { return false; }

  // The per-(layer, KV head) trigger of streaming and H2O: adds one group, keeping `budget`, for
  // every (layer, KV head) of `row` that holds budget + divide_length slots or more (slack) or more
  // than budget (every step).
  void plan_by_length(const CompressionOps& ops, const RowProgress& row, const PinRule& pins, CompressionEvent& event) const;

  const PolicyConfig config_;

 private:
  void run(CompressionOps& ops, const CompressionEvent& event, std::vector<int32_t>* positions);

  std::vector<int64_t> events_;  // per cache row: compression events so far
  CompressionEvent event_;       // scratch
  std::vector<int> row_groups_;
  std::vector<int32_t> positions_;
};

// Builds the method of `config` for `model` after check_policy; InputError when statistics do not
// fit the model.
std::unique_ptr<KvMethod> make_method(const PolicyConfig& config, const ModelConfig& model);

}  // namespace kvb
