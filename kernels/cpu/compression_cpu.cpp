// CPU reference of the compression kernels and ops (kernels/cpu/compression_cpu.hpp). Dot products
// go through the vectorised cpu::matmul (fp32, 8-lane accumulators); sums over a whole cache
// accumulate in double. These run once per compression event, not per token.
#include "kernels/cpu/compression_cpu.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "kernels/compression_math.hpp"
#include "kernels/ops.hpp"
#include "util/errors.hpp"

namespace kvb::cpu {

void tri_scores(float* out, const float* keys, int n, int head_dim, bool interleaved, const float* u, int n_u,
                const float* e) {
  const int pairs = head_dim / 2;
  // The trig term: the best of the n_u effective queries' dot products with each key.
  std::vector<float> dots(n);
  std::fill(out, out + n, n_u > 0 ? -std::numeric_limits<float>::infinity() : 0.0f);
  for (int q = 0; q < n_u; ++q) {
    cpu::matmul(dots.data(), u + size_t(q) * head_dim, keys, 1, head_dim, n);
    for (int j = 0; j < n; ++j) out[j] = std::max(out[j], dots[j]);
  }
  for (int j = 0; j < n; ++j) {
    const float* k = keys + size_t(j) * head_dim;
    double norm = 0;
    for (int f = 0; f < pairs; ++f) {
      const float re = interleaved ? k[2 * f] : k[f];
      const float im = interleaved ? k[2 * f + 1] : k[f + pairs];
      norm += double(e[f]) * std::sqrt(double(re) * re + double(im) * im);
    }
    out[j] = static_cast<float>(out[j] + norm);
  }
}

void zscore(float* x, int n) {
  if (n <= 0) return;
  double mean = 0;
  for (int i = 0; i < n; ++i) mean += x[i];
  mean /= n;
  double var = 0;
  for (int i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  const double std = std::max(std::sqrt(var / n), 1e-6);  // population std, clamped as the HF path does
  for (int i = 0; i < n; ++i) x[i] = static_cast<float>((x[i] - mean) / std);
}

void window_attention(float* out, const float* queries, int window, int group, const float* keys, int n,
                      int head_dim) {
  std::fill(out, out + n, 0.0f);
  if (n <= 0 || window <= 0) return;
  const double scale = 1.0 / std::sqrt(double(head_dim));
  std::vector<double> logits(n);
  std::vector<float> dots(n);
  for (int w = 0; w < window; ++w) {
    std::fill(logits.begin(), logits.end(), -std::numeric_limits<double>::infinity());
    for (int g = 0; g < group; ++g) {  // GQA: the group's heads reduced by max before softmax
      cpu::matmul(dots.data(), queries + (size_t(w) * group + g) * head_dim, keys, 1, head_dim, n);
      for (int j = 0; j < n; ++j) logits[j] = std::max(logits[j], dots[j] * scale);
    }
    const double max = *std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (double& l : logits) sum += (l = std::exp(l - max));
    for (int j = 0; j < n; ++j) out[j] += static_cast<float>(logits[j] / sum / window);
  }
}

void max_pool(float* out, const float* in, int n, int radius) {
  for (int j = 0; j < n; ++j) {
    const int lo = std::max(0, j - radius), hi = std::min(n - 1, j + radius);
    out[j] = *std::max_element(in + lo, in + hi + 1);
  }
}

void key_redundancy(float* out, const float* keys, int n, int head_dim, float threshold) {
  if (n <= 0) return;
  std::vector<double> inv_norm(n);
  for (int i = 0; i < n; ++i) {
    const float* k = keys + size_t(i) * head_dim;
    double ss = 0;
    for (int d = 0; d < head_dim; ++d) ss += double(k[d]) * k[d];
    inv_norm[i] = 1.0 / (std::sqrt(ss) + 1e-8);
  }
  // Column sums of the similarity matrix, built row by row: row i contributes its similarities
  // except the diagonal and its latest near-duplicate (which R-KV thereby protects).
  std::vector<double> column(n, 0.0), row(n);
  std::vector<float> dots(n);
  for (int i = 0; i < n; ++i) {
    cpu::matmul(dots.data(), keys + size_t(i) * head_dim, keys, 1, head_dim, n);
    int latest = 0;  // as in R-KV: the retained index is 0 when no key is similar
    for (int j = 0; j < n; ++j) {
      row[j] = j == i ? 0.0 : dots[j] * inv_norm[i] * inv_norm[j];
      if (row[j] > threshold) latest = j;
    }
    row[latest] = 0;
    for (int j = 0; j < n; ++j) column[j] += row[j];
  }
  double max = -std::numeric_limits<double>::infinity();
  for (double& c : column) max = std::max(max, c /= n);
  double sum = 0;
  for (double& c : column) sum += (c = std::exp(c - max));
  for (int j = 0; j < n; ++j) out[j] = static_cast<float>(column[j] / sum);
}

void top_k(const float* score, int n, int k, std::vector<int>& out) {
  k = std::clamp(k, 0, n);
  out.resize(n);
  std::iota(out.begin(), out.end(), 0);
  std::partial_sort(out.begin(), out.begin() + k, out.end(),
                    [&](int a, int b) { return score[a] != score[b] ? score[a] > score[b] : a < b; });
  out.resize(k);
}

void slots_by_position(const int32_t* pos, int len, std::vector<int>& order) {
  order.resize(len);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return pos[a] < pos[b]; });
}

void compact_slots(const KvStorage<float>& c, size_t head, std::span<const int> keep, std::vector<uint8_t>& flags) {
  const KvGeometry& g = c.geometry;
  const int len = c.host_lengths[head];
  const int new_len = static_cast<int>(keep.size());
  flags.assign(static_cast<size_t>(len), 0);
  for (int idx : keep) {
    if (idx < 0 || idx >= len || flags[idx])
      fail_runtime("KV compaction: slot {} is out of range [0, {}) or listed twice", idx, len);
    flags[idx] = 1;
  }
  const size_t first = head * g.capacity;
  float* k = c.keys + first * g.head_dim;
  float* v = c.values + first * g.head_dim;
  int32_t* p = c.positions + first;
  float* score = c.slot_scores ? c.slot_scores + first : nullptr;
  const size_t row = sizeof(float) * g.head_dim;
  // Pair the holes below new_len with the kept slots at or above it, both in ascending order.
  int hole = 0;
  for (int src = new_len; src < len; ++src) {
    if (!flags[src]) continue;
    while (flags[hole]) ++hole;  // a hole exists: kept slots above new_len equal holes below it
    std::memcpy(k + size_t(hole) * g.head_dim, k + size_t(src) * g.head_dim, row);
    std::memcpy(v + size_t(hole) * g.head_dim, v + size_t(src) * g.head_dim, row);
    p[hole] = p[src];
    if (score) score[hole] = score[src];
    flags[hole] = 1;
  }
  c.host_lengths[head] = new_len;
}

void rotate_key(float* key, int head_dim, std::span<const double> inv_freq, bool interleaved, int64_t shift) {
  const int pairs = head_dim / 2;
  for (int f = 0; f < pairs; ++f) {
    const double angle = double(shift) * inv_freq[f];
    const double c = std::cos(angle), s = std::sin(angle);
    float& re = key[interleaved ? 2 * f : f];
    float& im = key[interleaved ? 2 * f + 1 : f + pairs];
    const double r = re, i = im;
    re = static_cast<float>(r * c - i * s);
    im = static_cast<float>(r * s + i * c);
  }
}

}  // namespace kvb::cpu

namespace kvb {

namespace {

// An event on the host, one group after another through the kernels above. Scores are kept per
// group in the event's view; `order` (oldest first) and `rank` (its inverse) exist with ranks.
class CpuCompressionOps final : public CompressionOps {
 public:
  explicit CpuCompressionOps(const KvStorage<float>& cache) : c_(cache) {}

  const KvGeometry& geometry() const override { return c_.geometry; }
  int length(int layer, int seq, int kv_head) const override {
    return c_.host_lengths[c_.geometry.head(layer, seq, kv_head)];
  }
  int max_segments() const override { return std::numeric_limits<int>::max(); }

  void begin(const CompressionEvent& event) override {
    e_ = &event;
    const int groups = event.groups();
    score_.resize(groups);
    order_.resize(groups);
    rank_.resize(groups);
    kept_.resize(groups);
    for (int g = 0; g < groups; ++g) {
      const int len = event.length[g];
      if (length(first(g)) != len) fail_runtime("compression event: group {} holds {} slots, planned {}", g, length(first(g)), len);
      score_[g].assign(len, -std::numeric_limits<float>::infinity());
      if (!event.ranks) continue;
      cpu::slots_by_position(positions(first(g)), len, order_[g]);
      rank_[g].resize(len);
      for (int i = 0; i < len; ++i) rank_[g][order_[g][i]] = i;
    }
  }

  void tri_scores(const TriEventScoring& sc) override {
    const KvGeometry& geo = c_.geometry;
    const int hd = geo.head_dim;
    for (int g = 0; g < e_->groups(); ++g) {
      const int len = e_->length[g];
      const size_t row = size_t(std::lower_bound(sc.times.begin(), sc.times.end(), e_->processed[g]) - sc.times.begin());
      const int n_seg = e_->group_begin[g + 1] - e_->group_begin[g];
      // The candidates (unpinned slots) are the same in every segment of the group.
      candidates_.clear();
      for (int j = 0; j < len; ++j)
        if (!pinned(g, j)) candidates_.push_back(j);
      const int n = static_cast<int>(candidates_.size());
      agg_.assign(n, sc.reduce == GroupReduce::Mean ? 0.0f : -std::numeric_limits<float>::infinity());
      for (int si = e_->group_begin[g]; si < e_->group_begin[g + 1]; ++si) {
        const Segment& s = e_->segments[si];
        const size_t head = geo.head(s.layer, s.seq, s.kv_head);
        const int32_t* pos = c_.positions + head * geo.capacity;
        const float* keys = c_.keys + head * geo.capacity * hd;
        keys_.resize(size_t(n) * hd);
        for (int c = 0; c < n; ++c) std::memcpy(keys_.data() + size_t(c) * hd, keys + size_t(candidates_[c]) * hd, sizeof(float) * hd);
        best_.assign(n, -std::numeric_limits<float>::infinity());
        raw_.resize(n);
        for (int h = s.kv_head * geo.group; h < (s.kv_head + 1) * geo.group; ++h) {
          const float* coeff = sc.coefficients.data() + ((row * geo.n_layers + s.layer) * sc.n_heads + h) * sc.stride;
          cpu::tri_scores(raw_.data(), keys_.data(), n, hd, sc.interleaved, coeff, sc.n_u, coeff + sc.stride - hd / 2);
          cpu::zscore(raw_.data(), n);
          // Noise keyed by (seed, event, head, position): every sequence draws the same stream, as
          // the HF path re-seeds its generator per generation, whatever the batch or order.
          const uint64_t head_key = uint64_t(s.layer) * sc.n_heads + h;
          for (int c = 0; c < n; ++c) {
            const float u = hashed_uniform(sc.seed, e_->noise_event[g], (head_key << 32) | uint32_t(pos[candidates_[c]]));
            best_[c] = std::max(best_[c], tie_break(raw_[c], u));
          }
        }
        for (int c = 0; c < n; ++c)
          agg_[c] = sc.reduce == GroupReduce::Mean ? agg_[c] + best_[c] / n_seg : std::max(agg_[c], best_[c]);
      }
      for (int c = 0; c < n; ++c) score_[g][candidates_[c]] = agg_[c];
    }
  }

  void window_scores(const WindowEventScoring& sc) override {
    const KvGeometry& geo = c_.geometry;
    const int hd = geo.head_dim, w = sc.window, group = geo.group;
    if (w > geo.window) fail_runtime("SnapKV window of {} queries, the cache keeps {}", w, geo.window);
    for (int g = 0; g < e_->groups(); ++g) {
      const Segment& s = e_->segments[e_->group_begin[g]];
      const size_t head = geo.head(s.layer, s.seq, s.kv_head);
      const int n = e_->length[g], older = n - w;
      const std::vector<int>& order = order_[g];
      keys_.resize(size_t(n) * hd);
      for (int i = 0; i < n; ++i)
        std::memcpy(keys_.data() + size_t(i) * hd, c_.keys + (head * geo.capacity + order[i]) * hd, sizeof(float) * hd);
      // The window's queries, oldest first: ring slot (processed - w + i) % window.
      const float* ring = c_.window_queries + geo.window_offset(s.seq, s.layer, s.kv_head);
      queries_.resize(size_t(w) * group * hd);
      for (int i = 0; i < w; ++i) {
        const int slot = (e_->processed[g] - w + i) % geo.window;
        std::memcpy(queries_.data() + size_t(i) * group * hd, ring + size_t(slot) * group * hd, sizeof(float) * group * hd);
      }
      raw_.resize(older);
      best_.resize(older);
      cpu::window_attention(raw_.data(), queries_.data(), w, group, keys_.data(), older, hd);
      cpu::max_pool(best_.data(), raw_.data(), older, sc.pool_radius);
      if (sc.redundancy) {
        agg_.resize(n);
        cpu::key_redundancy(agg_.data(), keys_.data(), n, hd, sc.threshold);
        for (int i = 0; i < older; ++i) best_[i] = rkv_mix(sc.lambda, best_[i], agg_[i]);
      }
      std::copy(best_.begin(), best_.end(), score_[g].begin());
    }
  }

  void slot_scores() override {
    if (!c_.slot_scores) fail_runtime("slot scores asked of a cache kept without them");
    for (int g = 0; g < e_->groups(); ++g) {
      const float* s = c_.slot_scores + head_of(first(g)) * c_.geometry.capacity;
      std::copy(s, s + e_->length[g], score_[g].begin());
    }
  }

  void check_shared_layout() override {
    for (int g = 0; g < e_->groups(); ++g) {
      const Segment& ref = e_->segments[e_->group_begin[g]];
      for (int si = e_->group_begin[g] + 1; si < e_->group_begin[g + 1]; ++si) {
        const Segment& s = e_->segments[si];
        if (length(s) != e_->length[g] ||
            std::memcmp(positions(s), positions(ref), sizeof(int32_t) * e_->length[g]) != 0)
          fail_runtime("triattention: the slots of layer {} kv-head {} differ from layer {} kv-head {}; a shared "
                       "selection needs identical layouts",
                       s.layer, s.kv_head, ref.layer, ref.kv_head);
      }
    }
  }

  void read_scores(std::vector<float>& out) override {
    for (const std::vector<float>& s : score_) out.insert(out.end(), s.begin(), s.end());
  }

  void select() override {
    for (int g = 0; g < e_->groups(); ++g) {
      std::vector<float>& score = score_[g];
      const int len = e_->length[g];
      for (int i = 0; i < len; ++i)
        if (pinned(g, e_->view == SlotView::Slots ? i : order_[g][i])) score[i] = std::numeric_limits<float>::infinity();
      cpu::top_k(score.data(), len, e_->keep[g], kept_[g]);
      if (e_->view == SlotView::Positions)
        for (int& i : kept_[g]) i = order_[g][i];
    }
  }

  void compact() override {
    for (int g = 0; g < e_->groups(); ++g)
      for (int si = e_->group_begin[g]; si < e_->group_begin[g + 1]; ++si)
        cpu::compact_slots(c_, head_of(e_->segments[si]), kept_[g], flags_);
  }

  void read_positions(std::vector<int32_t>& out) override {
    for (const Segment& s : e_->segments) {
      const int32_t* p = positions(s);
      out.insert(out.end(), p, p + length(s));
    }
  }

  void shift_sinks(int sinks, std::span<const int32_t> shift, std::span<const uint8_t> capture,
                   std::span<const double> inv_freq, bool interleaved) override {
    const KvGeometry& geo = c_.geometry;
    const int hd = geo.head_dim;
    if (!c_.sink_keys || sinks > geo.sinks) fail_runtime("shift_sinks: {} sinks, the cache keeps {} originals", sinks, geo.sinks);
    for (int g = 0; g < e_->groups(); ++g)
      for (int si = e_->group_begin[g]; si < e_->group_begin[g + 1]; ++si) {
        const size_t head = head_of(e_->segments[si]);
        float* keys = c_.keys + head * geo.capacity * hd;
        float* original = c_.sink_keys + head * geo.sinks * hd;
        if (capture[g]) std::memcpy(original, keys, sizeof(float) * sinks * hd);
        for (int j = 0; j < sinks; ++j) {
          std::memcpy(keys + size_t(j) * hd, original + size_t(j) * hd, sizeof(float) * hd);
          cpu::rotate_key(keys + size_t(j) * hd, hd, inv_freq, interleaved, shift[g]);
        }
      }
  }

  void finish() override { e_ = nullptr; }

 private:
  const Segment& first(int g) const { return e_->segments[e_->group_begin[g]]; }
  size_t head_of(const Segment& s) const { return c_.geometry.head(s.layer, s.seq, s.kv_head); }
  int length(const Segment& s) const { return c_.host_lengths[head_of(s)]; }
  const int32_t* positions(const Segment& s) const { return c_.positions + head_of(s) * c_.geometry.capacity; }
  // Whether slot j of group g is pinned (its first segment's position and rank).
  bool pinned(int g, int j) const {
    const PinRule& r = e_->pins[g];
    const int32_t p = positions(first(g))[j];
    if (p < r.below || p >= r.from) return true;
    if (r.oldest == 0 && r.newest == 0) return false;
    const int rank = rank_[g][j];
    return rank < r.oldest || rank >= e_->length[g] - r.newest;
  }

  KvStorage<float> c_;
  const CompressionEvent* e_ = nullptr;
  std::vector<std::vector<float>> score_;  // per group, in the event's view
  std::vector<std::vector<int>> order_, rank_, kept_;
  std::vector<float> keys_, raw_, best_, agg_, queries_;
  std::vector<int> candidates_;
  std::vector<uint8_t> flags_;
};

}  // namespace

std::unique_ptr<CompressionOps> make_cpu_compression_ops(const KvStorage<float>& cache) {
  return std::make_unique<CpuCompressionOps>(cache);
}

}  // namespace kvb
