#pragma once
// Rotary position embedding: the model's effective angular frequencies (with linear, llama3 or
// YaRN scaling) and the rotation itself, in either pairing.
#include <vector>

#include "engine/model_config.hpp"

namespace kvb {

// inv_freq[i] for pair i = 0..head_dim/2-1, exactly as Hugging Face's rotary modules compute it.
std::vector<double> rope_inv_freq(const ModelConfig& config);

// The factor cos/sin are multiplied by (YaRN's mscale / attention_factor; 1 otherwise).
double rope_attention_scale(const ModelConfig& config);

class RopeTable {
 public:
  explicit RopeTable(const ModelConfig& config);
  // Rotates `n_heads` heads of `x` ([n_heads][head_dim]) to absolute position `pos`.
  void apply(float* x, int n_heads, int pos) const;
  const std::vector<double>& inv_freq() const { return inv_freq_; }
  double attention_scale() const { return scale_; }

 private:
  int head_dim_;
  RopePairing pairing_;
  std::vector<double> inv_freq_;
  double scale_;
  mutable std::vector<float> cos_, sin_;  // per-call scratch for one position
};

}  // namespace kvb
