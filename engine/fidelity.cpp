#include "engine/fidelity.hpp"

#include <cmath>

#include "engine/sampler.hpp"

namespace kvb {

namespace {
// log sum exp of a row, in double: KL sums many tiny terms.
double log_sum_exp(const float* x, int n, int at_max) {
  const double max = x[at_max];
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(double(x[i]) - max);
  return max + std::log(sum);
}
}  // namespace

StepFidelity compare_logits(const float* full, const float* method, int vocab, int target) {
  StepFidelity f;
  f.full_argmax = argmax(full, vocab);
  f.method_argmax = argmax(method, vocab);
  const double lse_f = log_sum_exp(full, vocab, f.full_argmax);
  const double lse_m = log_sum_exp(method, vocab, f.method_argmax);
  double kl = 0;
  for (int i = 0; i < vocab; ++i) {
    const double lf = full[i] - lse_f, lm = method[i] - lse_m;
    kl += std::exp(lf) * (lf - lm);
  }
  f.kl = kl > 0 ? kl : 0.0;  // rounding can leave -1e-17 for identical rows
  f.full_logprob = full[target] - lse_f;
  f.method_logprob = method[target] - lse_m;
  return f;
}

}  // namespace kvb
