#pragma once
// H2O (heavy-hitter oracle): every slot accumulates the attention probability it receives from
// the query heads of its group over all steps; at compression a slot survives if it is among the
// most recent budget/2 positions or, of the rest, among the budget - budget/2 highest accumulated
// scores (ties: lower slot index). Decided per layer and KV head.
#include <vector>

#include "engine/methods/kv_policy.hpp"
#include "engine/transformer.hpp"

namespace kvb {

class H2oPolicy : public SlackPolicy, public AttentionObserver {
 public:
  using SlackPolicy::SlackPolicy;
  AttentionObserver* observer() override { return this; }
  bool wants_probabilities() const override { return true; }
  void on_attention(KvCache& cache, int layer, int seq, int head, int kv_head, int pos, const float* probs,
                    int len) override;

  // The slots (indices below len) H2O keeps, given positions and accumulated scores.
  static std::vector<int> keep_set(const int32_t* pos, const float* score, int len, int budget);

 protected:
  void select(const KvCache& cache, int layer, int seq, int kv_head, int len, std::vector<int>& keep) override;
};

}  // namespace kvb
