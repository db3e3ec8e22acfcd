// The CUDA decode backend: CudaTransformer over bf16 caches carved from the engine's pool, the
// method's policy running on the device, and replay statistics reduced on the device. Each policy
// makes the CPU policy's decisions (engine/methods/) from the same inputs: the host plans from
// slot positions and lengths, the device scores, selects the top slots and compacts; only slot
// positions (and H2O's slot scores) and the chosen indices cross to the host during a compression
// event. H2O's accumulated attention and a replay's retained attention mass come from the
// forward's AttentionTap.
#include "engine/decode_backend.hpp"
#include "util/errors.hpp"

#ifdef KVBENCH_HAVE_CUDA

#include <cmath>
#include <optional>

#include "engine/cuda_transformer.hpp"
#include "engine/methods/h2o_policy.hpp"
#include "engine/methods/streaming_policy.hpp"
#include "engine/methods/triattention_policy.hpp"
#include "engine/methods/window_policy.hpp"
#include "kernels/cuda/compression_cuda.hpp"
#include "kernels/cuda/ops_cuda.hpp"
#include "profiler/trace.hpp"

namespace kvb {

namespace {

// A KV-cache method on the device; compress() has KvPolicy::after_forward's contract.
class CudaPolicy {
 public:
  explicit CudaPolicy(CudaTransformer& engine, const PolicyConfig& config) : engine_(engine), config_(config) {}
  virtual ~CudaPolicy() = default;
  virtual void begin_sequence(int /*seq*/) {}
  virtual int64_t compress(CudaKvCache& cache, int seq, const SequenceProgress& progress) = 0;

 protected:
  // Keeps exactly the slots `keep` (host indices) of (layer, seq, kv_head); returns the evicted count.
  int64_t keep_slots(CudaKvCache& cache, int layer, int seq, int kv_head, const std::vector<int>& keep) {
    profiler::Range range("compact");
    const int len = cache.length(layer, seq, kv_head);
    upload(engine_.scratch().keep, keep);
    cache.compact(layer, seq, kv_head, engine_.scratch().keep, static_cast<int>(keep.size()));
    return len - static_cast<int>(keep.size());
  }
  static void upload(int32_t* device, const std::vector<int>& host) {
    static_assert(sizeof(int) == sizeof(int32_t));
    if (!host.empty()) cuda::copy_to_device_bytes(device, host.data(), sizeof(int32_t) * host.size());
  }
  // The device top-k of `score` (n values), indices copied to the host.
  void top_k(const float* score, int n, int k, std::vector<int>& out) {
    profiler::Range range("select");
    if (n > 16384) fail_runtime("CUDA top-k over {} slots: the device kernel handles at most 16384", n);
    k = std::min(k, n);
    cuda::top_k(engine_.scratch().top, score, n, k);
    out.resize(k);
    if (k > 0) cuda::copy_to_host_bytes(out.data(), engine_.scratch().top, sizeof(int32_t) * k);
  }

  CudaTransformer& engine_;
  const PolicyConfig config_;
  std::vector<int32_t> positions_;  // scratch: slot positions of the (layer, KV head) at hand
  std::vector<int> keep_;           // scratch: the slots to keep
};

class CudaFullPolicy : public CudaPolicy {
 public:
  using CudaPolicy::CudaPolicy;
  int64_t compress(CudaKvCache&, int, const SequenceProgress&) override { return 0; }
};

// SlackPolicy's trigger: each (layer, KV head) reaching budget + divide_length is cut back to the
// slots select() chooses, on the host, from the slots' positions (and scores).
class CudaSlackPolicy : public CudaPolicy {
 public:
  using CudaPolicy::CudaPolicy;
  int64_t compress(CudaKvCache& cache, int seq, const SequenceProgress&) override {
    int64_t evicted = 0;
    for (int l = 0; l < cache.n_layers(); ++l)
      for (int h = 0; h < cache.n_kv_heads(); ++h) {
        const int len = cache.length(l, seq, h);
        if (len < config_.budget + config_.divide_length) continue;
        {
          profiler::Range range("select");
          cache.download_positions(l, seq, h, positions_);
          select(cache, l, seq, h, keep_);
        }
        evicted += keep_slots(cache, l, seq, h, keep_);
      }
    return evicted;
  }

 protected:
  virtual void select(const CudaKvCache& cache, int layer, int seq, int kv_head, std::vector<int>& keep) = 0;
};

// StreamingLLM: sinks and the recent window, chosen from positions alone.
class CudaStreamingPolicy : public CudaSlackPolicy {
 public:
  using CudaSlackPolicy::CudaSlackPolicy;

 private:
  void select(const CudaKvCache&, int, int, int, std::vector<int>& keep) override {
    streaming_keep(positions_.data(), static_cast<int>(positions_.size()), config_.sink_tokens, config_.budget, order_,
                   keep);
  }
  std::vector<int> order_;
};

// H2O: the recent half and the heaviest accumulated attention, from the slot scores the forward
// accumulates on the device (AttentionTap).
class CudaH2oPolicy : public CudaSlackPolicy {
 public:
  using CudaSlackPolicy::CudaSlackPolicy;

 private:
  void select(const CudaKvCache& cache, int layer, int seq, int kv_head, std::vector<int>& keep) override {
    scores_.resize(positions_.size());
    cuda::copy_to_host_bytes(scores_.data(), cache.slot_scores(layer, seq, kv_head), sizeof(float) * scores_.size());
    keep = H2oPolicy::keep_set(positions_.data(), scores_.data(), static_cast<int>(positions_.size()), config_.budget);
  }
  std::vector<float> scores_;
};

// TriAttentionPolicy on the device: per (layer, KV head) the candidates' keys are gathered, each
// query head scores them (tri_scores), z-scores them, and tri_group_combine folds the group
// maximum with tie-break noise into the selection's aggregate; top-k picks the survivors.
class CudaTriAttentionPolicy : public CudaPolicy {
 public:
  CudaTriAttentionPolicy(CudaTransformer& engine, const PolicyConfig& config)
      : CudaPolicy(engine, config), scorer_(engine.config(), config.tri.scoring) {
    const ModelConfig& c = engine.config();
    stride_ = size_t(scorer_.max_queries()) * c.head_dim + c.head_dim / 2;
    if (size_t(c.n_layers) * c.n_heads * stride_ > engine.scratch().coefficient_floats)
      fail_input("--tri-offset-max {}: too many offsets for the CUDA backend's scoring workspace",
                 config.tri.scoring.offset_max);
    coefficients_.resize(size_t(c.n_layers) * c.n_heads * stride_);
  }
  void begin_sequence(int seq) override {
    if (static_cast<int>(events_.size()) <= seq) events_.resize(seq + 1);
    events_[seq] = 0;
  }

  int64_t compress(CudaKvCache& cache, int seq, const SequenceProgress& progress) override {
    if (progress.prefill) return 0;  // never at prefill (spec 3.1)
    if (cache.length(0, seq, 0) < config_.budget + config_.divide_length) return 0;
    if (static_cast<int>(events_.size()) <= seq) events_.resize(seq + 1, 0);
    const uint64_t event = events_[seq]++;
    upload_coefficients(progress.processed);
    const int layers = cache.n_layers(), kv_heads = cache.n_kv_heads();
    float* agg = engine_.scratch().total;
    int64_t evicted = 0;
    auto keep_everywhere = [&](int first_layer, int last_layer, int first_head, int last_head) {
      for (int l = first_layer; l < last_layer; ++l)
        for (int g = first_head; g < last_head; ++g) {
          if (cache.length(l, seq, g) != cache.length(first_layer, seq, first_head))
            fail_runtime("triattention: layer {} kv-head {} holds a different number of slots than layer {} kv-head {}; "
                         "a shared selection needs identical layouts", l, g, first_layer, first_head);
          evicted += keep_slots(cache, l, seq, g, keep_);
        }
    };
    switch (config_.tri.selection) {
      case TriSelection::PerLayerHead:
        for (int l = 0; l < layers; ++l)
          for (int g = 0; g < kv_heads; ++g) {
            split(cache, l, seq, g, progress);
            group_scores(cache, l, seq, g, event, agg, cuda::kTriAssign);
            choose(agg);
            keep_everywhere(l, l + 1, g, g + 1);
          }
        break;
      case TriSelection::PerHead:
        for (int g = 0; g < kv_heads; ++g) {
          split(cache, 0, seq, g, progress);
          cuda::fill_bytes(agg, 0, sizeof(float) * candidates_.size());
          for (int l = 0; l < layers; ++l) group_scores(cache, l, seq, g, event, agg, cuda::kTriAddDivided);
          choose(agg);
          keep_everywhere(0, layers, g, g + 1);
        }
        break;
      case TriSelection::Global:
        split(cache, 0, seq, 0, progress);
        for (int l = 0; l < layers; ++l)
          for (int g = 0; g < kv_heads; ++g)
            group_scores(cache, l, seq, g, event, agg, l == 0 && g == 0 ? cuda::kTriAssign : cuda::kTriMax);
        choose(agg);
        keep_everywhere(0, layers, 0, kv_heads);
        break;
    }
    return evicted;
  }

 private:
  // Every query head's effective queries and norm weights at t, uploaded in one copy.
  void upload_coefficients(int64_t t) {
    const ModelConfig& c = engine_.config();
    const int hd = c.head_dim;
    for (int l = 0; l < c.n_layers; ++l)
      for (int h = 0; h < c.n_heads; ++h) {
        float* at = coefficients_.data() + (size_t(l) * c.n_heads + h) * stride_;
        n_u_ = scorer_.coefficients(config_.stats->at(l, h), t, at, at + stride_ - hd / 2);
      }
    cuda::copy_to_device_bytes(engine_.scratch().coefficients, coefficients_.data(), sizeof(float) * coefficients_.size());
  }
  // Pinned slots and candidates of (layer, seq, kv_head); the candidates' indices and positions
  // go to the device.
  void split(const CudaKvCache& cache, int layer, int seq, int kv_head, const SequenceProgress& progress) {
    cache.download_positions(layer, seq, kv_head, positions_);
    split_pinned_slots(positions_.data(), static_cast<int>(positions_.size()),
                       config_.tri.protect_prompt ? progress.prompt_tokens : 0, progress.processed - config_.tri.window,
                       pinned_, candidates_);
    candidate_positions_.resize(candidates_.size());
    for (size_t c = 0; c < candidates_.size(); ++c) candidate_positions_[c] = positions_[candidates_[c]];
    upload(engine_.scratch().index, candidates_);
    upload(engine_.scratch().index_positions, candidate_positions_);
  }
  void group_scores(const CudaKvCache& cache, int layer, int seq, int kv_head, uint64_t event, float* agg, int mode) {
    profiler::Range range("score");
    const ModelConfig& c = engine_.config();
    const int n = static_cast<int>(candidates_.size()), hd = c.head_dim, group = c.group_size();
    CudaCompressionScratch& s = engine_.scratch();
    cuda::gather_rows(s.keys, cache.keys(layer, seq, kv_head), s.index, n, hd);
    for (int j = 0; j < group; ++j) {
      const int h = kv_head * group + j;
      const float* coeff = s.coefficients + (size_t(layer) * c.n_heads + h) * stride_;
      float* raw = s.raw + size_t(j) * n;
      cuda::tri_scores(raw, s.keys, n, hd, scorer_.interleaved(), coeff, n_u_, coeff + stride_ - hd / 2);
      cuda::zscore(raw, n);
    }
    cuda::tri_group_combine(agg, s.raw, group, n, s.index_positions, config_.tri.seed, event,
                            uint64_t(layer) * c.n_heads + uint64_t(kv_head) * group, mode, float(c.n_layers));
  }
  // pinned_ plus the best candidates, budget slots in all, into keep_.
  void choose(const float* agg) {
    top_k(agg, static_cast<int>(candidates_.size()), config_.budget - static_cast<int>(pinned_.size()), top_);
    keep_ = pinned_;
    for (int c : top_) keep_.push_back(candidates_[c]);
  }

  TriScorer scorer_;
  size_t stride_ = 0;  // floats per head in coefficients_: max_queries x head_dim, then head_dim / 2
  int n_u_ = 0;
  std::vector<float> coefficients_;
  std::vector<uint64_t> events_;
  std::vector<int> pinned_, candidates_, candidate_positions_, top_;
};

// WindowPolicy (SnapKV, R-KV) on the device, from the engine's query window.
class CudaWindowPolicy : public CudaPolicy {
 public:
  CudaWindowPolicy(CudaTransformer& engine, const PolicyConfig& config)
      : CudaPolicy(engine, config), redundancy_(config.method == "rkv") {}

  int64_t compress(CudaKvCache& cache, int seq, const SequenceProgress& progress) override {
    if (!window_compression_due(progress, config_.divide_length)) return 0;
    const ModelConfig& c = engine_.config();
    const int hd = c.head_dim, window = config_.observation_window;
    CudaCompressionScratch& s = engine_.scratch();
    int64_t evicted = 0;
    for (int l = 0; l < cache.n_layers(); ++l)
      for (int g = 0; g < cache.n_kv_heads(); ++g) {
        const int n = cache.length(l, seq, g), older = n - window;
        if (n <= config_.budget) continue;
        // Keys in position order: the newest `window` are the window's own tokens.
        std::optional<profiler::Range> range(std::in_place, "score");
        cache.download_positions(l, seq, g, positions_);
        slots_by_position(positions_.data(), n, order_);
        upload(s.index, order_);
        cuda::gather_rows(s.keys, cache.keys(l, seq, g), s.index, n, hd);
        cuda::window_attention(s.score, engine_.window_queries(seq, l, g), window, c.group_size(), s.keys, older, hd);
        cuda::max_pool(s.aux, s.score, older, config_.pool_radius);
        const float* score = s.aux;
        if (redundancy_) {
          cuda::key_redundancy(s.total, s.keys, n, hd, config_.rkv_threshold);
          cuda::weighted_difference(s.score, s.aux, s.total, config_.rkv_lambda, older);
          score = s.score;
        }
        range.reset();
        top_k(score, older, config_.budget - window, top_);
        keep_.clear();
        for (int i : top_) keep_.push_back(order_[i]);
        keep_.insert(keep_.end(), order_.begin() + older, order_.end());
        evicted += keep_slots(cache, l, seq, g, keep_);
      }
    return evicted;
  }

 private:
  bool redundancy_;
  std::vector<int> order_, top_;
};

std::unique_ptr<CudaPolicy> make_cuda_policy(CudaTransformer& engine, const PolicyConfig& config) {
  check_policy(config);
  if (config.method == "full") return std::make_unique<CudaFullPolicy>(engine, config);
  if (config.method == "streaming") return std::make_unique<CudaStreamingPolicy>(engine, config);
  if (config.method == "h2o") return std::make_unique<CudaH2oPolicy>(engine, config);
  if (config.method == "snapkv" || config.method == "rkv") {
    if (engine.shape().query_window < config.observation_window)
      fail_runtime("CUDA engine: sized for a query window of {}, {} needs {}", engine.shape().query_window,
                   config.method, config.observation_window);
    return std::make_unique<CudaWindowPolicy>(engine, config);
  }
  check_stats_match_model(*config.stats, engine.config(), config.stats->source_path);
  return std::make_unique<CudaTriAttentionPolicy>(engine, config);
}

class CudaDecodeBackend : public DecodeBackend {
 public:
  CudaDecodeBackend(CudaTransformer& engine, const PolicyConfig& config)
      : engine_(engine),
        vocab_(engine.config().vocab_size),
        policy_(make_cuda_policy(engine, config)),
        record_queries_(config.method == "snapkv" || config.method == "rkv"),
        slot_scores_(config.method == "h2o"),
        host_row_(vocab_) {}

  void begin_batch(int n_seqs, int capacity, int reference_capacity) override {
    cache_.reset();
    reference_.reset();
    cache_.emplace(engine_.make_cache(n_seqs, capacity, 0, slot_scores_));
    if (reference_capacity > 0)
      reference_.emplace(engine_.make_cache(n_seqs, reference_capacity,
                                            cuda_cache_bytes(engine_.config(), n_seqs, capacity, slot_scores_)));
    retained_sum_.assign(n_seqs, 0.0);
    retained_count_.assign(n_seqs, 0);
    cuda::fill_bytes(engine_.retained_mass_sums(), 0, sizeof(float) * n_seqs);
  }
  void begin_sequence(int seq) override { policy_->begin_sequence(seq); }

  void forward(std::span<const BatchToken> batch) override {
    AttentionTap tap;
    tap.accumulate_slot_scores = slot_scores_;
    rows_ = engine_.forward(batch, *cache_, engine_.method_logits(), record_queries_, tap);
  }
  // With the retained attention mass: the reference's attention weight on the positions the
  // method's cache holds, summed on the device and collected per sequence after each forward.
  void reference_forward(std::span<const BatchToken> batch, std::span<const int>) override {
    AttentionTap tap;
    tap.held_by = &*cache_;
    engine_.forward(batch, *reference_, engine_.reference_logits(), false, tap);
    const int n = cache_->n_sequences();
    sums_.resize(n);
    cuda::copy_to_host_bytes(sums_.data(), engine_.retained_mass_sums(), sizeof(float) * n);
    cuda::fill_bytes(engine_.retained_mass_sums(), 0, sizeof(float) * n);
    const ModelConfig& c = engine_.config();
    for (int s = 0; s < n; ++s) retained_sum_[s] += sums_[s];
    for (const BatchToken& t : batch) retained_count_[t.seq] += int64_t(c.n_layers) * c.n_heads;
  }
  int64_t compress(int seq, const SequenceProgress& progress) override {
    const int64_t evicted = policy_->compress(*cache_, seq, progress);
    if (evicted > 0) cuda::synchronize("compression");  // the policy's time is measured on the host
    return evicted;
  }

  const float* host_logits(int row) override {
    cuda::copy_to_host_bytes(host_row_.data(), engine_.method_logits() + size_t(row) * vocab_, sizeof(float) * vocab_);
    return host_row_.data();
  }
  void fidelity(std::span<const int> targets, std::vector<StepFidelity>& out) override {
    static_assert(sizeof(int) == sizeof(int32_t));
    cuda::copy_to_device_bytes(engine_.small_ids(), targets.data(), sizeof(int32_t) * rows_);
    auto* stats = static_cast<cuda::LogitStats*>(engine_.small_results());
    cuda::logits_stats(stats, engine_.method_logits(), reference_ ? engine_.reference_logits() : nullptr,
                       engine_.small_ids(), rows_, vocab_);
    host_stats_.resize(rows_);
    cuda::copy_to_host_bytes(host_stats_.data(), stats, sizeof(cuda::LogitStats) * rows_);
    out.resize(rows_);
    for (int r = 0; r < rows_; ++r) {
      const cuda::LogitStats& s = host_stats_[r];
      out[r] = StepFidelity{s.kl, s.full_logprob, s.method_logprob, s.full_argmax, s.method_argmax};
    }
  }
  double take_retained_mass(int seq) override {
    const double mean = retained_count_[seq] > 0 ? retained_sum_[seq] / double(retained_count_[seq]) : std::nan("");
    retained_sum_[seq] = 0;
    retained_count_[seq] = 0;
    return mean;
  }

  uint64_t sequence_bytes(int seq) const override { return cache_->sequence_bytes(seq); }
  uint64_t bytes_per_slot() const override { return cache_->bytes_per_slot(); }
  uint64_t capacity_bytes() const override { return cache_->capacity_bytes(); }
  uint64_t peak_bytes() const override { return cache_->peak_bytes(); }

 private:
  CudaTransformer& engine_;
  int vocab_;
  std::unique_ptr<CudaPolicy> policy_;
  bool record_queries_, slot_scores_;
  std::optional<CudaKvCache> cache_, reference_;
  std::vector<double> retained_sum_;    // per sequence row, since its last take
  std::vector<int64_t> retained_count_;  // (token, layer, query head) rows summed
  std::vector<float> sums_;
  int rows_ = 0;
  std::vector<float> host_row_;
  std::vector<cuda::LogitStats> host_stats_;
};

}  // namespace

std::unique_ptr<DecodeBackend> make_cuda_backend(CudaTransformer& engine, const PolicyConfig& policy) {
  return std::make_unique<CudaDecodeBackend>(engine, policy);
}

}  // namespace kvb

#else

namespace kvb {

std::unique_ptr<DecodeBackend> make_cuda_backend(CudaTransformer&, const PolicyConfig&) {
  fail_runtime("this kvbench was built without the CUDA backend");
}

}  // namespace kvb

#endif  // KVBENCH_HAVE_CUDA
