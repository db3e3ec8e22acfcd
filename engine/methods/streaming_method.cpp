// StreamingLLM: keeps the first `sink_tokens` positions (attention sinks) and the most recent
// budget - sink_tokens; evicts the middle. Decided per (layer, KV head) from positions alone (rank
// pins: every kept slot is pinned, nothing is scored), on the slack or the every-step trigger.
// With --streaming-positions cache, a query meets the sinks at their distance within the cache,
// as the StreamingLLM paper assigns positions: the recent window keeps its relative distances, so
// only the sinks' keys move -- rotated on by the number of tokens evicted between them and the
// window (docs/methods.md).
#include "engine/methods/method_factories.hpp"
#include "engine/rope.hpp"

namespace kvb {

namespace {

class StreamingMethod : public KvMethod {
 public:
  StreamingMethod(const PolicyConfig& config, const ModelConfig& model)
      : KvMethod(config), inv_freq_(rope_inv_freq(model)), interleaved_(model.rope_pairing == RopePairing::Interleaved) {}

  void begin_sequence(int seq) override {
    KvMethod::begin_sequence(seq);
    if (static_cast<int>(shift_.size()) <= seq) shift_.resize(seq + 1, 0);
    shift_[seq] = 0;
  }

 protected:
  bool ranks() const override { return true; }

  void plan(const CompressionOps& ops, const RowProgress& row, int64_t, CompressionEvent& event) override {
    PinRule pins;
    pins.oldest = config_.sink_tokens;
    pins.newest = config_.budget - config_.sink_tokens;
    plan_by_length(ops, row, pins, event);
  }

  void score(CompressionOps&, const CompressionEvent&) override {}

  void after_compact(CompressionOps& ops, const CompressionEvent& event) override {
    if (config_.streaming_positions != StreamingPositions::Cache || config_.sink_tokens == 0) return;
    // The oldest kept token after the sinks is at processed - (budget - sinks); within the cache
    // it sits right after them, sink_tokens: the window has moved processed - budget positions.
    shifts_.resize(event.groups());
    capture_.resize(event.groups());
    for (int g = 0; g < event.groups(); ++g) {
      const int seq = event.segments[event.group_begin[g]].seq;
      if (static_cast<int>(shift_.size()) <= seq) shift_.resize(seq + 1, 0);
      shifts_[g] = event.processed[g] - config_.budget;
      capture_[g] = shift_[seq] == 0;
    }
    ops.shift_sinks(config_.sink_tokens, shifts_, capture_, inv_freq_, interleaved_);
    for (int g = 0; g < event.groups(); ++g) shift_[event.segments[event.group_begin[g]].seq] = shifts_[g];
  }

 private:
  std::vector<double> inv_freq_;
  bool interleaved_;
  std::vector<int32_t> shift_;  // per cache row: how far the sinks have been moved on
  std::vector<int32_t> shifts_;
  std::vector<uint8_t> capture_;
};

}  // namespace

std::unique_ptr<KvMethod> make_streaming_method(const PolicyConfig& config, const ModelConfig& model) {
  return std::make_unique<StreamingMethod>(config, model);
}

}  // namespace kvb
