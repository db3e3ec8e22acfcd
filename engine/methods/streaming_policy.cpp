#include "engine/methods/streaming_policy.hpp"

namespace kvb {

void streaming_keep(const int32_t* pos, int len, int sinks, int budget, std::vector<int>& order, std::vector<int>& keep) {
  slots_by_position(pos, len, order);
  keep.assign(order.begin(), order.begin() + sinks);
  keep.insert(keep.end(), order.end() - (budget - sinks), order.end());
}

void StreamingPolicy::select(const KvCache& cache, int layer, int seq, int kv_head, int len, std::vector<int>& keep) {
  streaming_keep(cache.positions(layer, seq, kv_head), len, config_.sink_tokens, config_.budget, order_, keep);
}

}  // namespace kvb
