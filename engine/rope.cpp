#include "engine/rope.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace kvb {

namespace {

// YaRN: the dimension index at which a frequency completes `rotations` turns over the original context.
double yarn_correction_dim(double rotations, int dim, double base, double max_pos) {
  return dim * std::log(max_pos / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(base));
}

}  // namespace

std::vector<double> rope_inv_freq(const ModelConfig& c) {
  const int dim = c.head_dim;
  const int pairs = dim / 2;
  std::vector<double> inv(pairs);
  for (int i = 0; i < pairs; ++i) inv[i] = 1.0 / std::pow(c.rope_theta, (2.0 * i) / dim);
  const RopeScaling& s = c.rope_scaling;
  switch (s.type) {
    case RopeScalingType::None:
      break;
    case RopeScalingType::Linear:
      for (double& f : inv) f /= s.factor;
      break;
    case RopeScalingType::Llama3: {
      // Long wavelengths are slowed by `factor`, short ones kept, the band between blended.
      const double old_ctx = static_cast<double>(s.original_max_position);
      const double low_wavelen = old_ctx / s.low_freq_factor;
      const double high_wavelen = old_ctx / s.high_freq_factor;
      for (double& f : inv) {
        const double wavelen = 2.0 * std::numbers::pi / f;
        if (wavelen > low_wavelen) {
          f /= s.factor;
        } else if (wavelen >= high_wavelen) {
          const double smooth = (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
          f = (1.0 - smooth) * f / s.factor + smooth * f;
        }
      }
      break;
    }
    case RopeScalingType::Yarn: {
      const double max_pos = static_cast<double>(s.original_max_position);
      double low = std::floor(yarn_correction_dim(s.beta_fast, dim, c.rope_theta, max_pos));
      double high = std::ceil(yarn_correction_dim(s.beta_slow, dim, c.rope_theta, max_pos));
      low = std::max(low, 0.0);
      high = std::min(high, static_cast<double>(dim - 1));
      if (low == high) high += 0.001;  // avoid a zero-width ramp
      for (int i = 0; i < pairs; ++i) {
        const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
        const double extrapolation_weight = 1.0 - ramp;
        const double extrapolated = inv[i];
        const double interpolated = inv[i] / s.factor;
        inv[i] = interpolated * (1.0 - extrapolation_weight) + extrapolated * extrapolation_weight;
      }
      break;
    }
  }
  return inv;
}

double rope_attention_scale(const ModelConfig& c) {
  if (c.rope_scaling.type != RopeScalingType::Yarn) return 1.0;
  if (c.rope_scaling.attention_factor > 0.0) return c.rope_scaling.attention_factor;
  const double factor = c.rope_scaling.factor;
  return factor <= 1.0 ? 1.0 : 0.1 * std::log(factor) + 1.0;
}

RopeTable::RopeTable(const ModelConfig& config)
    : head_dim_(config.head_dim),
      pairing_(config.rope_pairing),
      inv_freq_(rope_inv_freq(config)),
      scale_(rope_attention_scale(config)),
      cos_(config.head_dim / 2),
      sin_(config.head_dim / 2) {}

void RopeTable::apply(float* x, int n_heads, int pos) const {
  const int pairs = head_dim_ / 2;
  // Angles in double: pos * inv_freq reaches 1e5 rad at long contexts, where fp32 loses ~1e-2 rad.
  for (int i = 0; i < pairs; ++i) {
    const double angle = pos * inv_freq_[i];
    cos_[i] = static_cast<float>(std::cos(angle) * scale_);
    sin_[i] = static_cast<float>(std::sin(angle) * scale_);
  }
  for (int h = 0; h < n_heads; ++h) {
    float* head = x + static_cast<size_t>(h) * head_dim_;
    for (int i = 0; i < pairs; ++i) {
      const int a = pairing_ == RopePairing::Half ? i : 2 * i;
      const int b = pairing_ == RopePairing::Half ? i + pairs : 2 * i + 1;
      const float x0 = head[a], x1 = head[b];
      head[a] = x0 * cos_[i] - x1 * sin_[i];
      head[b] = x0 * sin_[i] + x1 * cos_[i];
    }
  }
}

}  // namespace kvb
