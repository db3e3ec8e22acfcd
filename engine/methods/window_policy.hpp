#pragma once
// SnapKV and R-KV as the TriAttention baselines run them (shared/spec/triattention.md section 4):
// each layer keeps the post-RoPE queries of the last `observation_window` tokens; after the
// prefill and after every forward that follows a length multiple of divide_length, each
// (layer, KV head) holding more than `budget` slots keeps its window's own tokens plus the
// budget - window older slots that score best. SnapKV's score is the window's attention (GQA
// max, softmax, mean over the window) max-pooled over neighbouring positions; R-KV mixes it with
// key redundancy: lambda * attention - (1 - lambda) * redundancy.
#include <vector>

#include "engine/methods/kv_policy.hpp"
#include "engine/transformer.hpp"

namespace kvb {

// Due after the prefill, and on the forward after each length multiple of divide_length.
bool window_compression_due(const SequenceProgress& progress, int divide_length);

class WindowPolicy : public BudgetedPolicy, public AttentionObserver {
 public:
  WindowPolicy(const PolicyConfig& config, const ModelConfig& model);
  AttentionObserver* observer() override { return this; }
  void on_query(int layer, int seq, int pos, const float* pre_rope, const float* rotated) override;
  int64_t after_forward(KvCache& cache, int seq, const SequenceProgress& progress) override;

 private:
  // Scores the slots of (layer, seq, kv_head), oldest first in order_, and fills keep_.
  void select(const KvCache& cache, int layer, int seq, int kv_head, int processed);
  float* window_queries(int seq, int layer, int pos);  // [n_heads][head_dim] of the token at pos

  bool redundancy_;  // R-KV
  int n_layers_, n_heads_, head_dim_, group_, window_;
  std::vector<float> queries_;  // per cache row and layer, a ring of `window` tokens' queries
  // Scratch.
  std::vector<int> order_, top_, keep_;
  std::vector<float> keys_, group_queries_, attention_, pooled_, redundant_, score_;
};

}  // namespace kvb
