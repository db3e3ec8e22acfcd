#include "engine/methods/streaming_policy.hpp"

#include <algorithm>
#include <numeric>

namespace kvb {

int StreamingPolicy::capacity(int prompt_tokens, int total_tokens) const {
  // A prompt longer than the trigger is held whole until the compression that follows prefill.
  return std::min(total_tokens, std::max(prompt_tokens, config_.budget + config_.divide_length));
}

int64_t StreamingPolicy::after_forward(KvCache& cache, int seq) {
  int64_t evicted = 0;
  for (int l = 0; l < cache.n_layers(); ++l) {
    for (int h = 0; h < cache.n_kv_heads(); ++h) {
      const int len = cache.length(l, seq, h);
      if (len < config_.budget + config_.divide_length) continue;
      const int32_t* pos = cache.positions(l, seq, h);
      order_.resize(len);
      std::iota(order_.begin(), order_.end(), 0);
      std::sort(order_.begin(), order_.end(), [&](int a, int b) { return pos[a] < pos[b]; });
      const int sinks = config_.sink_tokens, recent = config_.budget - config_.sink_tokens;
      keep_.assign(order_.begin(), order_.begin() + sinks);
      keep_.insert(keep_.end(), order_.end() - recent, order_.end());
      cache.compact(l, seq, h, keep_);
      evicted += len - config_.budget;
    }
  }
  return evicted;
}

}  // namespace kvb
