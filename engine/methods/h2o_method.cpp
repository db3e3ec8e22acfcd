// H2O (heavy-hitter oracle): the forward adds the attention probability every slot receives from
// the query heads of its group into the slot's score (ForwardRecording::slot_attention); at
// compression a (layer, KV head) keeps its most recent budget/2 positions (rank pins) and, of the
// rest, the budget - budget/2 highest accumulated scores (ties: lower slot index). Slack or
// every-step trigger.
#include "engine/methods/method_factories.hpp"

namespace kvb {

namespace {

class H2oMethod : public KvMethod {
 public:
  using KvMethod::KvMethod;

 protected:
  bool ranks() const override { return true; }

  void plan(const CompressionOps& ops, const RowProgress& row, int64_t, CompressionEvent& event) override {
    PinRule pins;
    pins.newest = config_.budget / 2;
    plan_by_length(ops, row, pins, event);
  }

  void score(CompressionOps& ops, const CompressionEvent&) override { ops.slot_scores(); }
};

}  // namespace

std::unique_ptr<KvMethod> make_h2o_method(const PolicyConfig& config) { return std::make_unique<H2oMethod>(config); }

}  // namespace kvb
