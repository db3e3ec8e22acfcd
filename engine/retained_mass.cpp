#include "engine/retained_mass.hpp"

#include <algorithm>
#include <limits>

namespace kvb {

void RetainedMass::snapshot(const KvCache& method, std::span<const int> rows) {
  n_kv_heads_ = method.n_kv_heads();
  for (int seq : rows) {
    if (static_cast<int>(rows_.size()) <= seq) rows_.resize(seq + 1);
    Row& r = rows_[seq];
    r.span = 0;
    for (int l = 0; l < method.n_layers(); ++l)
      for (int h = 0; h < n_kv_heads_; ++h) {
        const int32_t* pos = method.positions(l, seq, h);
        for (int j = 0; j < method.length(l, seq, h); ++j) r.span = std::max(r.span, pos[j] + 1);
      }
    r.held.assign(size_t(method.n_layers()) * n_kv_heads_ * r.span, 0);
    for (int l = 0; l < method.n_layers(); ++l)
      for (int h = 0; h < n_kv_heads_; ++h) {
        uint8_t* held = r.held.data() + (size_t(l) * n_kv_heads_ + h) * r.span;
        const int32_t* pos = method.positions(l, seq, h);
        for (int j = 0; j < method.length(l, seq, h); ++j) held[pos[j]] = 1;
      }
  }
}

void RetainedMass::add(int layer, int seq, int kv_head, const float* probs, const int32_t* pos, int len) {
  Row& r = rows_[seq];
  const uint8_t* held = r.held.data() + (size_t(layer) * n_kv_heads_ + kv_head) * r.span;
  double mass = 0;
  for (int j = 0; j < len; ++j)
    if (pos[j] < r.span && held[pos[j]]) mass += probs[j];
  r.sum += mass;
  ++r.count;
}

double RetainedMass::take(int seq) {
  if (seq >= static_cast<int>(rows_.size())) return std::numeric_limits<double>::quiet_NaN();
  Row& r = rows_[seq];
  const double mean = r.count > 0 ? r.sum / r.count : std::numeric_limits<double>::quiet_NaN();
  r.sum = 0;
  r.count = 0;
  return mean;
}

}  // namespace kvb
