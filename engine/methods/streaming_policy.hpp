#pragma once
// StreamingLLM: keep the first `sink_tokens` positions (attention sinks) and the most recent
// budget - sink_tokens positions; evict the middle. Chosen by absolute position, the same for
// every layer and kv-head.
#include <vector>

#include "engine/methods/kv_policy.hpp"

namespace kvb {

// The slots StreamingLLM keeps of `len` slots at positions `pos`: the `sinks` oldest and the
// budget - sinks newest (order: scratch).
void streaming_keep(const int32_t* pos, int len, int sinks, int budget, std::vector<int>& order, std::vector<int>& keep);

class StreamingPolicy : public SlackPolicy {
 public:
  using SlackPolicy::SlackPolicy;

 protected:
  void select(const KvCache& cache, int layer, int seq, int kv_head, int len, std::vector<int>& keep) override;

 private:
  std::vector<int> order_;  // scratch
};

}  // namespace kvb
