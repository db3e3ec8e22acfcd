#pragma once
// Next-token choice: greedy (temperature 0) or seeded sampling at a temperature, truncated as
// Hugging Face's warpers do, in their order: top-k (the k most likely), then top-p (the smallest
// most-likely set whose mass reaches top_p of what is left), then min-p (tokens at least min_p
// times as likely as the most likely). Ties rank by token id.
#include <cstdint>
#include <vector>

namespace kvb {

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy
  float top_p = 1.0f;        // (0, 1]
  int top_k = 0;             // 0 = off
  float min_p = 0.0f;        // [0, 1); 0 = off
  uint64_t seed = 0;
};

// xoshiro256** seeded through splitmix64: small, fast, and the same stream on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform();  // [0, 1)

 private:
  uint64_t s_[4];
};

class Sampler {
 public:
  // One sampler per sequence: its stream depends only on (seed, sequence index), so results do
  // not depend on how sequences are batched.
  Sampler(const SamplingParams& params, uint64_t sequence_index);
  int sample(const float* logits, int vocab);

 private:
  SamplingParams params_;
  Rng rng_;
  std::vector<float> probs_;
  std::vector<int> order_;
};

// Index of the largest logit (lowest index among ties).
int argmax(const float* logits, int n);

}  // namespace kvb
