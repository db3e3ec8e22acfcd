#include "engine/methods/streaming_policy.hpp"

#include <algorithm>
#include <numeric>

namespace kvb {

void StreamingPolicy::select(const KvCache& cache, int layer, int seq, int kv_head, int len, std::vector<int>& keep) {
  const int32_t* pos = cache.positions(layer, seq, kv_head);
  order_.resize(len);
  std::iota(order_.begin(), order_.end(), 0);
  std::sort(order_.begin(), order_.end(), [&](int a, int b) { return pos[a] < pos[b]; });
  const int sinks = config_.sink_tokens, recent = config_.budget - config_.sink_tokens;
  keep.assign(order_.begin(), order_.begin() + sinks);
  keep.insert(keep.end(), order_.end() - recent, order_.end());
}

}  // namespace kvb
