#include "engine/methods/tri_scoring.hpp"

#include <algorithm>
#include <cmath>

#include "engine/rope.hpp"
#include "kernels/cpu/compression_cpu.hpp"

namespace kvb {

TriScorer::TriScorer(const ModelConfig& config, const TriScoringOptions& options)
    : head_dim_(config.head_dim),
      interleaved_(config.rope_pairing == RopePairing::Interleaved),
      omega_(rope_inv_freq(config)),
      scale_(rope_attention_scale(config)),
      options_(options) {
  for (int64_t d = 1; d <= options.offset_max; d *= 2) offsets_.push_back(d);
  const size_t pairs = omega_.size();
  mean_re_.assign(pairs, 0.0);
  mean_im_.assign(pairs, 0.0);
  offset_cos_.resize(offsets_.size() * pairs);
  offset_sin_.resize(offsets_.size() * pairs);
  for (size_t f = 0; f < pairs; ++f) {
    for (size_t q = 0; q < offsets_.size(); ++q) {
      const double c = std::cos(double(offsets_[q]) * omega_[f]), s = std::sin(double(offsets_[q]) * omega_[f]);
      offset_cos_[q * pairs + f] = c;
      offset_sin_[q * pairs + f] = s;
      mean_re_[f] += c;
      mean_im_[f] += s;
    }
    mean_re_[f] /= double(offsets_.size());
    mean_im_[f] /= double(offsets_.size());
  }
}

TriScorer::Phase TriScorer::phase(int64_t t) const {
  Phase p;
  p.cos.resize(omega_.size());
  p.sin.resize(omega_.size());
  for (size_t f = 0; f < omega_.size(); ++f) {
    p.cos[f] = std::cos(double(t) * omega_[f]);
    p.sin[f] = std::sin(double(t) * omega_[f]);
  }
  return p;
}

int TriScorer::max_queries() const {
  return options_.aggregation == TriAggregation::Mean ? 1 : static_cast<int>(offsets_.size());
}

int TriScorer::effective_queries(const HeadStats& head, const Phase& phase, float* u) const {
  const int pairs = head_dim_ / 2;
  // A post-RoPE key pair is s * kappa_f * e^{i p omega_f}, so the HF path's logit of a query at
  // the centre qbar placed at t + delta, weighted by s^2, is Re(s qbar e^{i (t+delta) omega} conj(key)):
  // the key's position drops out.
  auto put = [&](float* row, int f, double re, double im) {
    row[interleaved_ ? 2 * f : f] = static_cast<float>(re);
    row[interleaved_ ? 2 * f + 1 : f + pairs] = static_cast<float>(im);
  };
  int n_u = 0;
  if (!options_.disable_trig) {
    n_u = max_queries();
    std::fill_n(u, size_t(n_u) * head_dim_, 0.0f);
    for (int f = 0; f < pairs; ++f) {
      const double qr = scale_ * head.q_mean_real[f], qi = scale_ * head.q_mean_imag[f];
      const double c = phase.cos[f], s = phase.sin[f];
      const double ar = qr * c - qi * s, ai = qr * s + qi * c;  // s qbar e^{i t omega}
      if (options_.aggregation == TriAggregation::Mean) {
        put(u, f, ar * mean_re_[f] - ai * mean_im_[f], ar * mean_im_[f] + ai * mean_re_[f]);
      } else {
        for (int q = 0; q < n_u; ++q) {
          const double dc = offset_cos_[q * pairs + f], ds = offset_sin_[q * pairs + f];
          put(u + size_t(q) * head_dim_, f, ar * dc - ai * ds, ar * ds + ai * dc);
        }
      }
    }
  }
  return n_u;
}

void TriScorer::norm_weights(const HeadStats& head, float* e) const {
  // The norm term s^2 c_f |kappa_f| is s c_f |key pair|.
  for (int f = 0; f < head_dim_ / 2; ++f) {
    const double centre = std::hypot(double(head.q_mean_real[f]), double(head.q_mean_imag[f]));
    const double c = options_.disable_mlr ? head.q_abs_mean[f] : head.q_abs_mean[f] - centre;
    e[f] = static_cast<float>(scale_ * c);
  }
}

void TriScorer::score(const HeadStats& head, int64_t t, const float* keys, int n, float* out) const {
  u_.resize(size_t(max_queries()) * head_dim_);
  e_.resize(head_dim_ / 2);
  const int n_u = effective_queries(head, phase(t), u_.data());
  norm_weights(head, e_.data());
  cpu::tri_scores(out, keys, n, head_dim_, interleaved_, u_.data(), n_u, e_.data());
}

}  // namespace kvb
