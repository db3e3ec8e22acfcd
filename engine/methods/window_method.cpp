// SnapKV and R-KV as the TriAttention baselines run them (shared/spec/triattention.md section 4):
// the forward keeps each layer's post-RoPE queries of the last `observation_window` tokens (the
// cache's query window); after the prefill and on the forward after every length multiple of
// divide_length, each (layer, KV head) holding more than `budget` slots keeps its window's own
// tokens plus the budget - window older slots that score best. SnapKV's score is the window's
// attention (GQA max, softmax, mean over the window) max-pooled over neighbouring positions; R-KV
// mixes it with key redundancy: lambda * attention - (1 - lambda) * redundancy. Both think in token
// order, so their events view slots oldest first (the ops' window_scores).
#include "engine/methods/method_factories.hpp"

namespace kvb {

namespace {

// Due after the prefill, and on the forward after each length multiple of divide_length.
bool window_compression_due(const RowProgress& row, int divide_length) {
  const int t = row.processed;
  return row.prefill || (t > 1 && (t - 1) % divide_length == 0);
}

class WindowMethod : public KvMethod {
 public:
  using KvMethod::KvMethod;

 protected:
  SlotView view() const override { return SlotView::Positions; }
  bool ranks() const override { return true; }

  void plan(const CompressionOps& ops, const RowProgress& row, int64_t, CompressionEvent& event) override {
    if (!window_compression_due(row, config_.divide_length)) return;
    PinRule pins;
    pins.newest = config_.observation_window;  // the window's own tokens
    const KvGeometry& g = ops.geometry();
    for (int l = 0; l < g.n_layers; ++l)
      for (int h = 0; h < g.n_kv_heads; ++h) {
        const int len = ops.length(l, row.seq, h);
        if (len <= config_.budget) continue;
        event.add_group(len, config_.budget, pins, row.processed);
        event.add_segment(l, row.seq, h);
      }
  }

  void score(CompressionOps& ops, const CompressionEvent&) override {
    WindowEventScoring scoring;
    scoring.window = config_.observation_window;
    scoring.pool_radius = config_.pool_radius;
    scoring.redundancy = config_.method == Method::RKV;
    scoring.lambda = config_.rkv_lambda;
    scoring.threshold = config_.rkv_threshold;
    ops.window_scores(scoring);
  }
};

}  // namespace

std::unique_ptr<KvMethod> make_window_method(const PolicyConfig& config) { return std::make_unique<WindowMethod>(config); }

}  // namespace kvb
