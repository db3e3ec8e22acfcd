#pragma once
// TriAttention (shared/spec/triattention.md sections 2-3, HF research path): when a sequence's
// cache reaches budget + divide_length after a decode step, every query head scores the cached
// keys of its KV head with the trigonometric series of its calibrated query centre
// (engine/methods/tri_scoring.hpp); scores are z-scored per head over the competing slots, get
// seeded 1e-6 tie-break noise, are reduced by max over each GQA group, and the top slots are kept
// (per KV head across layers, globally, or per layer and KV head). The prompt and an optional
// recent window are pinned and count against the budget.
#include <string>
#include <vector>

#include "engine/methods/kv_policy.hpp"
#include "engine/methods/tri_scoring.hpp"

namespace kvb {

// Splits the slots 0..len-1 at positions `pos` into those TriAttention pins (the prompt when
// protected, positions below `pinned_below`, and the recent window from `recent_from` on) and
// the candidates it scores, both in slot order.
void split_pinned_slots(const int32_t* pos, int len, int pinned_below, int recent_from, std::vector<int>& pinned,
                        std::vector<int>& candidates);

class TriAttentionPolicy : public BudgetedPolicy {
 public:
  TriAttentionPolicy(const PolicyConfig& config, const ModelConfig& model);
  void check_prompt(int prompt_tokens, const std::string& sequence_id) const override;
  void begin_sequence(int seq) override;
  int64_t after_forward(KvCache& cache, int seq, const SequenceProgress& progress) override;

 private:
  // Splits the slots of (layer, seq, kv_head) into pinned_ and candidates_.
  void split_slots(const KvCache& cache, int layer, int seq, int kv_head, const SequenceProgress& progress);
  // Per candidate slot: the max over the group's query heads of the z-scored, noised score.
  void group_scores(const KvCache& cache, int layer, int seq, int kv_head, int64_t t, uint64_t event,
                    std::vector<float>& out);
  // pinned_ plus the best-scoring candidates, budget slots in all.
  void choose(const std::vector<float>& score);
  // Throws RuntimeFailure unless (layer, seq, kv_head) holds the same positions as the reference
  // slots (selection shared across layers relies on identical layouts).
  static void check_same_layout(const KvCache& cache, int layer, int seq, int kv_head, int ref_layer, int ref_head);

  TriScorer scorer_;
  int group_;
  int n_heads_;
  std::vector<uint64_t> events_;  // compression events so far, per cache row (a noise key)
  // Scratch.
  std::vector<int> pinned_, candidates_, keep_, top_;
  std::vector<float> keys_, raw_, agg_, group_max_;
};

}  // namespace kvb
