#include "engine/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kvb {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) {
  for (uint64_t& s : s_) s = splitmix64(seed);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return (next() >> 11) * 0x1.0p-53; }

int argmax(const float* logits, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return best;
}

Sampler::Sampler(const SamplingParams& params, uint64_t sequence_index)
    : params_(params), rng_(params.seed * 0x9e3779b97f4a7c15ull + sequence_index) {}

int Sampler::sample(const float* logits, int vocab) {
  if (params_.temperature <= 0.0f) return argmax(logits, vocab);
  probs_.resize(vocab);
  const float max = logits[argmax(logits, vocab)];
  double sum = 0;
  for (int i = 0; i < vocab; ++i) {
    probs_[i] = std::exp((logits[i] - max) / params_.temperature);
    sum += probs_[i];
  }
  const double r = rng_.uniform();
  if (params_.top_p >= 1.0f && params_.top_k <= 0 && params_.min_p <= 0.0f) {
    double acc = 0, target = r * sum;
    for (int i = 0; i < vocab; ++i) {
      acc += probs_[i];
      if (acc > target) return i;
    }
    return vocab - 1;
  }
  // Most likely first (ties by index); top-k, then the nucleus of what is left, then min-p.
  order_.resize(vocab);
  std::iota(order_.begin(), order_.end(), 0);
  std::sort(order_.begin(), order_.end(), [&](int a, int b) {
    return probs_[a] != probs_[b] ? probs_[a] > probs_[b] : a < b;
  });
  int limit = params_.top_k > 0 ? std::min(params_.top_k, vocab) : vocab;
  if (limit < vocab) {
    sum = 0;
    for (int i = 0; i < limit; ++i) sum += probs_[order_[i]];
  }
  double kept = 0;
  int n = 0;
  while (n < limit) {
    kept += probs_[order_[n++]];
    if (kept >= params_.top_p * sum) break;
  }
  if (params_.min_p > 0.0f) {
    const double floor = double(params_.min_p) * probs_[order_[0]];
    while (n > 1 && probs_[order_[n - 1]] < floor) kept -= probs_[order_[--n]];
  }
  double acc = 0, target = r * kept;
  for (int i = 0; i < n; ++i) {
    acc += probs_[order_[i]];
    if (acc > target) return order_[i];
  }
  return order_[n - 1];
}

}  // namespace kvb
