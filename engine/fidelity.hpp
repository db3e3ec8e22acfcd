#pragma once
// How far a method's next-token distribution moved from full attention's at one step.
namespace kvb {

struct StepFidelity {
  double kl = 0;               // KL(full || method), nats
  double full_logprob = 0;     // log p_full(trace token)
  double method_logprob = 0;   // log p_method(trace token)
  int full_argmax = 0;
  int method_argmax = 0;
};

// Both rows are raw logits over `vocab`. Identical rows give exactly kl = 0.
StepFidelity compare_logits(const float* full, const float* method, int vocab, int target);

}  // namespace kvb
