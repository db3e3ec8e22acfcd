#include "engine/methods/h2o_policy.hpp"

#include <algorithm>
#include <numeric>

namespace kvb {

int H2oPolicy::capacity(int prompt_tokens, int total_tokens) const {
  return std::min(total_tokens, std::max(prompt_tokens, config_.budget + config_.divide_length));
}

void H2oPolicy::on_attention(KvCache& cache, int layer, int seq, int, int kv_head, int, const float* probs, int len) {
  float* score = cache.slot_scores(layer, seq, kv_head);
  for (int j = 0; j < len; ++j) score[j] += probs[j];
}

std::vector<int> H2oPolicy::select(const int32_t* pos, const float* score, int len, int budget) {
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

int64_t H2oPolicy::after_forward(KvCache& cache, int seq) {
  int64_t evicted = 0;
  for (int l = 0; l < cache.n_layers(); ++l) {
    for (int h = 0; h < cache.n_kv_heads(); ++h) {
      const int len = cache.length(l, seq, h);
      if (len < config_.budget + config_.divide_length) continue;
      const std::vector<int> keep = select(cache.positions(l, seq, h), cache.slot_scores(l, seq, h), len, config_.budget);
      cache.compact(l, seq, h, keep);
      evicted += len - config_.budget;
    }
  }
  return evicted;
}

}  // namespace kvb
