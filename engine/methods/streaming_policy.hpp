#pragma once
// StreamingLLM: keep the first `sink_tokens` positions (attention sinks) and the most recent
// budget - sink_tokens positions; evict the middle. Chosen by absolute position, the same for
// every layer and kv-head. Triggered with the same slack as the other budgeted methods: when a
// cache reaches budget + divide_length slots it is cut back to budget.
#include <vector>

#include "engine/methods/kv_policy.hpp"

namespace kvb {

class StreamingPolicy : public KvPolicy {
 public:
  explicit StreamingPolicy(const PolicyConfig& config) : config_(config) {}
  int capacity(int prompt_tokens, int total_tokens) const override;
  int64_t after_forward(KvCache& cache, int seq) override;

 private:
  PolicyConfig config_;
  std::vector<int> order_, keep_;  // scratch
};

}  // namespace kvb
