// The CUDA decode backend: CudaTransformer over bf16 caches carved from the engine's pool, the
// method (engine/methods/kv_method.hpp, the same object the CPU backend runs) over the CUDA
// compression ops, and replay statistics reduced on the device. Each forward records what the
// method's traits ask (H2O's slot attention, SnapKV/R-KV's query window); the reference forward
// of a replay measures the retained attention mass against the method's cache.
#include "engine/decode_backend.hpp"
#include "util/errors.hpp"

#ifdef KVBENCH_HAVE_CUDA

#include <cmath>
#include <optional>

#include "engine/cuda_transformer.hpp"
#include "kernels/cuda/compression_cuda.hpp"
#include "kernels/cuda/ops_cuda.hpp"

namespace kvb {

namespace {

class CudaDecodeBackend : public DecodeBackend {
 public:
  CudaDecodeBackend(CudaTransformer& engine, const PolicyConfig& config)
      : engine_(engine),
        vocab_(engine.config().vocab_size),
        method_(make_method(config, engine.config())),
        extras_(cache_extras(config)),
        host_row_(vocab_) {
    record_.window_queries = method_->traits().query_window;
    record_.slot_attention = method_->traits().slot_scores;
  }

  void begin_batch(int n_seqs, int capacity, int reference_capacity) override {
    ops_.reset();
    cache_.reset();
    reference_.reset();
    cache_.emplace(engine_.make_cache(n_seqs, capacity, 0, extras_));
    ops_ = make_cuda_compression_ops(cache_->storage(), engine_.compression_scratch(), engine_.shape().compression);
    if (reference_capacity > 0)
      reference_.emplace(engine_.make_cache(n_seqs, reference_capacity,
                                            cuda_cache_bytes(engine_.config(), n_seqs, capacity, extras_)));
  }
  void begin_sequence(int seq) override {
    cache_->clear_sequence(seq);
    if (reference_) reference_->clear_sequence(seq);
    method_->begin_sequence(seq);
  }

  void forward(std::span<const BatchToken> batch) override {
    rows_ = engine_.forward(batch, *cache_, engine_.method_logits(), record_);
  }
  void reference_forward(std::span<const BatchToken> batch) override {
    ForwardRecording<CudaKvCache> record;
    record.retained_mass_of = &*cache_;
    engine_.forward(batch, *reference_, engine_.reference_logits(), record);
  }
  void compress(std::span<const RowProgress> rows, std::span<int64_t> evicted, std::vector<KeptEvent>* kept) override {
    method_->compress(*ops_, rows, evicted, kept);
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
  double take_retained_mass(int seq) override { return reference_ ? engine_.take_retained_mass(seq) : std::nan(""); }

  uint64_t sequence_bytes(int seq) const override { return cache_->sequence_bytes(seq); }
  uint64_t bytes_per_slot() const override { return cache_->bytes_per_slot(); }
  uint64_t capacity_bytes() const override { return cache_->capacity_bytes(); }
  uint64_t peak_bytes() const override { return cache_->peak_bytes(); }

 private:
  CudaTransformer& engine_;
  int vocab_;
  std::unique_ptr<KvMethod> method_;
  KvCacheExtras extras_;
  ForwardRecording<CudaKvCache> record_;  // what the method's forward records
  std::optional<CudaKvCache> cache_, reference_;
  std::unique_ptr<CompressionOps> ops_;
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
