#pragma once
// One forward pass of a decoder-only transformer over a batch of tokens on the CPU backend,
// written to be read top to bottom (after llama2.c's run.c).
#include <span>
#include <vector>

#include "engine/forward_recording.hpp"
#include "engine/kv_cache.hpp"
#include "engine/model.hpp"
#include "engine/retained_mass.hpp"
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

class Transformer {
 public:
  // `max_batch_tokens` bounds one forward call (scratch buffers are sized once, up front).
  Transformer(const Model& model, int max_batch_tokens);

  // Appends the K/V of every token to `cache` and writes one row of vocab_size logits per token
  // with want_logits, in batch order. Each token attends to its sequence's cached slots whose
  // position is <= its own (so a whole prompt can go in one call, causally). Records what `record`
  // asks (engine/forward_recording.hpp); recording attention weights (slot_attention,
  // retained_mass_of) costs the forward its parallel attention.
  void forward(std::span<const BatchToken> batch, KvCache& cache, float* logits,
               const ForwardRecording<KvCache>& record = {});

  // The retained attention mass of `seq` (mean over layers, query heads and tokens) measured by
  // forwards with retained_mass_of since the last take; NaN when none measured it.
  double take_retained_mass(int seq) { return retained_.take(seq); }

  const Model& model() const { return model_; }

 private:
  void attention(std::span<const BatchToken> batch, int layer, KvCache& cache, const ForwardRecording<KvCache>& record);

  const Model& model_;
  const ModelConfig& cfg_;
  RopeTable rope_;
  int max_tokens_;
  RetainedMass retained_;
  // Scratch, [max_tokens][...]
  std::vector<float> x_, xb_, q_, k_, v_, att_out_, hb_, hb2_, scores_;
  std::vector<int> rows_;  // the sequences of a batch, for the retained mass
};

// Logits for every position of `tokens` (one sequence, from position 0), [T * vocab]; a
// convenience for tests and calibration.
std::vector<float> compute_all_logits(const Model& model, std::span<const int> tokens);

}  // namespace kvb
