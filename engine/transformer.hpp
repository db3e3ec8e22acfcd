#pragma once
// One forward pass of a decoder-only transformer over a batch of tokens on the CPU backend,
// written to be read top to bottom (after llama2.c's run.c).
#include <span>
#include <vector>

#include "engine/kv_cache.hpp"
#include "engine/model.hpp"
#include "engine/rope.hpp"

namespace kvb {

// One token of a batch: which sequence (KV-cache row) it belongs to, its absolute position, and
// whether its logits are wanted. Tokens of one sequence appear in position order.
struct BatchToken {
  int seq = 0;
  int pos = 0;
  int token = 0;
  bool want_logits = true;
};

// Sees what a forward computes inside attention, for methods that score slots by it (H2O's
// accumulated attention, SnapKV's observation window) and for calibration (pre-RoPE queries).
// Called serially; a forward with an observer that wants probabilities does not split its heads
// across threads.
class AttentionObserver {
 public:
  virtual ~AttentionObserver() = default;
  // The queries of the token at `pos` of `seq` in `layer`, all query heads ([n_heads][head_dim]):
  // as attention sees them before the rotation (after Qwen3's q_norm) and after it.
  virtual void on_query(int /*layer*/, int /*seq*/, int /*pos*/, const float* /*pre_rope*/,
                        const float* /*rotated*/) {}
  // Whether on_attention is wanted (it costs the forward its parallel attention).
  virtual bool wants_probabilities() const { return false; }
  // probs[j] is the weight query head `head` (reading KV head `kv_head`) of the token at `pos`
  // gave slot j of (layer, seq, kv_head) in `cache`.
  virtual void on_attention(KvCache& /*cache*/, int /*layer*/, int /*seq*/, int /*head*/, int /*kv_head*/,
                            int /*pos*/, const float* /*probs*/, int /*len*/) {}
};

class Transformer {
 public:
  // `max_batch_tokens` bounds one forward call (scratch buffers are sized once, up front).
  Transformer(const Model& model, int max_batch_tokens);

  // Appends the K/V of every token to `cache` and writes one row of vocab_size logits per token
  // with want_logits, in batch order. Each token attends to its sequence's cached slots whose
  // position is <= its own (so a whole prompt can go in one call, causally).
  void forward(std::span<const BatchToken> batch, KvCache& cache, float* logits);

  const Model& model() const { return model_; }
  // nullptr (the default) for none; applies to the following forward calls.
  void set_attention_observer(AttentionObserver* observer) { observer_ = observer; }

 private:
  void attention(std::span<const BatchToken> batch, int layer, KvCache& cache);

  const Model& model_;
  const ModelConfig& cfg_;
  RopeTable rope_;
  int max_tokens_;
  AttentionObserver* observer_ = nullptr;
  // Scratch, [max_tokens][...]
  std::vector<float> x_, xb_, q_, k_, v_, att_out_, hb_, hb2_, scores_;
  std::vector<float> q_pre_rope_;  // one token's queries, kept for the observer
};

// Logits for every position of `tokens` (one sequence, from position 0), [T * vocab]; a
// convenience for tests and calibration.
std::vector<float> compute_all_logits(const Model& model, std::span<const int> tokens);

}  // namespace kvb
