#pragma once
// Retained attention mass: the share of full attention's probability that falls on the keys a
// compressed cache still holds. Observes the lockstep reference forward of a replay; before each
// reference forward, snapshot() records which positions the method's cache holds per (layer,
// kv-head), and every reference attention row adds the probability it gives those positions.
#include <cstdint>
#include <span>
#include <vector>

#include "engine/kv_cache.hpp"
#include "engine/transformer.hpp"

namespace kvb {

class RetainedMass : public AttentionObserver {
 public:
  // Positions `method` holds now, for the sequences (cache rows) of the next reference forward.
  void snapshot(const KvCache& method, std::span<const int> rows);
  bool wants_probabilities() const override { return true; }
  void on_attention(KvCache& reference, int layer, int seq, int head, int kv_head, int pos, const float* probs,
                    int len) override;
  // Mean over layers, query heads and tokens observed for `seq` since the last take (NaN if
  // none); resets.
  double take(int seq);

 private:
  struct Row {
    int span = 0;               // positions covered per (layer, kv-head)
    std::vector<uint8_t> held;  // [layer][kv_head][span]: 1 where the method holds that position
    double sum = 0;
    int64_t count = 0;
  };
  std::vector<Row> rows_;
  int n_kv_heads_ = 0;
};

}  // namespace kvb
