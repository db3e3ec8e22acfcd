#include "engine/methods/h2o_policy.hpp"

#include <algorithm>
#include <numeric>

namespace kvb {

void H2oPolicy::on_attention(KvCache& cache, int layer, int seq, int, int kv_head, int, const float* probs, int len) {
  float* score = cache.slot_scores(layer, seq, kv_head);
  for (int j = 0; j < len; ++j) score[j] += probs[j];
}

std::vector<int> H2oPolicy::keep_set(const int32_t* pos, const float* score, int len, int budget) {
  std::vector<int> order(len);
  std::iota(order.begin(), order.end(), 0);
  // Most recent first.
  std::sort(order.begin(), order.end(), [&](int a, int b) { return pos[a] > pos[b]; });
  const int recent = budget / 2;
  std::vector<int> keep(order.begin(), order.begin() + recent);
  std::vector<int> rest(order.begin() + recent, order.end());
  const int heavy = budget - recent;
  std::partial_sort(rest.begin(), rest.begin() + heavy, rest.end(),
                    [&](int a, int b) { return score[a] != score[b] ? score[a] > score[b] : a < b; });
  keep.insert(keep.end(), rest.begin(), rest.begin() + heavy);
  return keep;
}

void H2oPolicy::select(const KvCache& cache, int layer, int seq, int kv_head, int len, std::vector<int>& keep) {
  keep = keep_set(cache.positions(layer, seq, kv_head), cache.slot_scores(layer, seq, kv_head), len, config_.budget);
}

}  // namespace kvb
