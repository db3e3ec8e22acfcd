#pragma once
// What a forward pass records besides computing its logits, for the compression methods and the
// replay metrics: one description for both backends (engine/transformer.hpp on the CPU,
// engine/cuda_transformer.hpp on a GPU), built from a method's traits (engine/methods/method.hpp).
//  - window_queries: each token's post-RoPE queries go into its sequence's query window in the
//    cache (SnapKV, R-KV: KvCacheExtras::window);
//  - slot_attention: the attention weight every query head gives a slot is added to the slot's
//    score in the cache (H2O's accumulated attention);
//  - retained_mass_of (a replay's reference forward): for every token, layer and query head, the
//    attention weight that falls on positions the method's cache `retained_mass_of` holds;
//    averaged per sequence by the forward's take_retained_mass;
//  - queries: each token's pre-RoPE queries (after Qwen3's q_norm), shown on the host
//    (calibration).
namespace kvb {

// Sees each token's queries as attention rotates them: [n_heads][head_dim], before RoPE.
class QueryObserver {
 public:
  virtual ~QueryObserver() = default;
  virtual void on_query(int layer, int seq, int pos, const float* pre_rope) = 0;
};

template <class Cache>
struct ForwardRecording {
  bool window_queries = false;
  bool slot_attention = false;
  const Cache* retained_mass_of = nullptr;
  QueryObserver* queries = nullptr;
};

}  // namespace kvb
