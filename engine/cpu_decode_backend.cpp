// The CPU decode backend: the Transformer over fp32 KvCaches in host memory, the method's policy
// with its attention observer, and retained attention mass measured on the reference forward.
#include <cmath>
#include <optional>

#include "engine/decode_backend.hpp"
#include "engine/kv_cache.hpp"
#include "engine/retained_mass.hpp"

namespace kvb {

namespace {

class CpuDecodeBackend : public DecodeBackend {
 public:
  CpuDecodeBackend(const Model& model, const PolicyConfig& config, int max_batch_tokens)
      : config_(model.config),
        policy_(make_policy(config, model.config)),
        tf_(model, max_batch_tokens),
        logits_(size_t(max_batch_tokens) * config_.vocab_size) {
    tf_.set_attention_observer(policy_->observer());
  }

  void begin_batch(int n_seqs, int capacity, int reference_capacity) override {
    cache_.emplace(config_, n_seqs, capacity);
    reference_.reset();
    if (reference_capacity > 0) {
      reference_.emplace(config_, n_seqs, reference_capacity);
      ref_logits_.resize(logits_.size());
    }
  }
  void begin_sequence(int seq) override { policy_->begin_sequence(seq); }

  void forward(std::span<const BatchToken> batch) override {
    tf_.forward(batch, *cache_, logits_.data());
    rows_ = 0;
    for (const BatchToken& t : batch) rows_ += t.want_logits;
  }
  void reference_forward(std::span<const BatchToken> batch, std::span<const int> rows) override {
    retained_.snapshot(*cache_, rows);
    tf_.set_attention_observer(&retained_);
    tf_.forward(batch, *reference_, ref_logits_.data());
    tf_.set_attention_observer(policy_->observer());
  }
  int64_t compress(int seq, const SequenceProgress& progress) override {
    return policy_->after_forward(*cache_, seq, progress);
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
  double take_retained_mass(int seq) override { return reference_ ? retained_.take(seq) : std::nan(""); }

  uint64_t sequence_bytes(int seq) const override { return cache_->sequence_bytes(seq); }
  uint64_t bytes_per_slot() const override { return cache_->bytes_per_slot(); }
  uint64_t capacity_bytes() const override { return cache_->capacity_bytes(); }
  uint64_t peak_bytes() const override { return cache_->peak_bytes(); }

 private:
  const ModelConfig& config_;
  std::unique_ptr<KvPolicy> policy_;
  Transformer tf_;
  std::optional<KvCache> cache_, reference_;
  std::vector<float> logits_, ref_logits_;
  int rows_ = 0;
  RetainedMass retained_;
};

}  // namespace

std::unique_ptr<DecodeBackend> make_cpu_backend(const Model& model, const PolicyConfig& policy, int max_batch_tokens) {
  return std::make_unique<CpuDecodeBackend>(model, policy, max_batch_tokens);
}

}  // namespace kvb
