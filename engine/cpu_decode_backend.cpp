// The CPU decode backend: the Transformer over KvCaches in host memory (fp32 slots, values at --kv-dtype), the method over the
// CPU compression ops, and retained attention mass measured on the reference forward.
#include <cmath>
#include <optional>

#include "engine/decode_backend.hpp"
#include "engine/kv_cache.hpp"
#include "kernels/cpu/compression_cpu.hpp"

namespace kvb {

namespace {

class CpuDecodeBackend : public DecodeBackend {
 public:
  CpuDecodeBackend(const Model& model, const PolicyConfig& config, int max_batch_tokens, DType kv_dtype)
      : config_(model.config),
        kv_dtype_(kv_dtype),
        method_(make_method(config, model.config)),
        tf_(model, max_batch_tokens),
        logits_(size_t(max_batch_tokens) * config_.vocab_size) {
    record_.window_queries = method_->traits().query_window;
    record_.slot_attention = method_->traits().slot_scores;
  }

  void begin_batch(int n_seqs, int capacity, int reference_capacity) override {
    KvCacheExtras extras = cache_extras(method_->config());
    extras.value_dtype = kv_dtype_;
    cache_.emplace(config_, n_seqs, capacity, extras);
    ops_ = make_cpu_compression_ops(cache_->storage());
    reference_.reset();
    if (reference_capacity > 0) {
      KvCacheExtras plain;
      plain.value_dtype = kv_dtype_;
      reference_.emplace(config_, n_seqs, reference_capacity, plain);
      ref_logits_.resize(logits_.size());
    }
  }
  void begin_sequence(int seq) override {
    cache_->clear_sequence(seq);
    if (reference_) reference_->clear_sequence(seq);
    method_->begin_sequence(seq);
  }

  void forward(std::span<const BatchToken> batch) override {
    tf_.forward(batch, *cache_, logits_.data(), record_);
    rows_ = 0;
    for (const BatchToken& t : batch) rows_ += t.want_logits;
  }
  void reference_forward(std::span<const BatchToken> batch) override {
    ForwardRecording<KvCache> record;
    record.retained_mass_of = &*cache_;
    tf_.forward(batch, *reference_, ref_logits_.data(), record);
  }
  void compress(std::span<const RowProgress> rows, std::span<int64_t> evicted, std::vector<KeptEvent>* kept) override {
    method_->compress(*ops_, rows, evicted, kept);
  }

  const float* host_logits(int row) override { return logits_.data() + size_t(row) * config_.vocab_size; }
  void fidelity(std::span<const int> targets, std::vector<StepFidelity>& out) override {
    const int vocab = config_.vocab_size;
    out.resize(rows_);
    for (int r = 0; r < rows_; ++r) {
      const float* method = logits_.data() + size_t(r) * vocab;
      out[r] = compare_logits(reference_ ? ref_logits_.data() + size_t(r) * vocab : method, method, vocab, targets[r]);
    }
  }
  double take_retained_mass(int seq) override { return reference_ ? tf_.take_retained_mass(seq) : std::nan(""); }

  uint64_t sequence_bytes(int seq) const override { return cache_->sequence_bytes(seq); }
  uint64_t bytes_per_slot() const override { return cache_->bytes_per_slot(); }
  uint64_t capacity_bytes() const override { return cache_->capacity_bytes(); }
  uint64_t peak_bytes() const override { return cache_->peak_bytes(); }

 private:
  const ModelConfig& config_;
  DType kv_dtype_;
  std::unique_ptr<KvMethod> method_;
  ForwardRecording<KvCache> record_;  // what the method's forward records
  Transformer tf_;
  std::optional<KvCache> cache_, reference_;
  std::unique_ptr<CompressionOps> ops_;
  std::vector<float> logits_, ref_logits_;
  int rows_ = 0;
};

}  // namespace

std::unique_ptr<DecodeBackend> make_cpu_backend(const Model& model, const PolicyConfig& policy, int max_batch_tokens,
                                                DType kv_dtype) {
  return std::make_unique<CpuDecodeBackend>(model, policy, max_batch_tokens, kv_dtype);
}

}  // namespace kvb
