#include "engine/capacity.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>

#include "util/errors.hpp"

namespace kvb {

namespace {

constexpr uint64_t kGemmWorkspaceBytes = 32ull << 20;  // cuBLASLt workspace

// fp32 activations of one token through a forward: hidden state and its norm, q/k/v, attention
// output, the two MLP branches, and the bf16 copy a matmul input is rounded into.
uint64_t activation_bytes_per_token(const ModelConfig& c) {
  const uint64_t floats = 2ull * c.dim + 2ull * c.q_dim() + 2ull * c.kv_dim() + 2ull * c.ffn_dim;
  return floats * 4 + uint64_t(std::max(c.dim, c.ffn_dim)) * 2;
}

// One row of fp32 logits: every decoding sequence has one; a prefill chunk only for its last token.
uint64_t logits_bytes(const ModelConfig& c) { return uint64_t(c.vocab_size) * 4; }

// What the CUDA engine (engine/cuda_transformer) keeps per sequence row besides its KV slots and
// activations: a second logits row (a replay's reference), SnapKV/R-KV's ring of the last
// observation-window post-RoPE queries of every layer, and the retained-mass sum.
uint64_t engine_row_bytes(const ModelConfig& c, const PolicyConfig& policy) {
  const bool window = policy.method == "snapkv" || policy.method == "rkv";
  const uint64_t ring = window ? uint64_t(c.n_layers) * c.q_dim() * policy.observation_window * 4 : 0;
  return logits_bytes(c) + ring + 4;
}

}  // namespace

uint64_t device_bytes_per_slot(const ModelConfig& c, const PolicyConfig& policy) {
  return uint64_t(c.head_dim) * 2 * 2 + 4 + (policy.method == "h2o" ? 4 : 0);
}

CapacityPlan plan_capacity(const ModelConfig& c, const PolicyConfig& policy, int64_t context, int64_t prompt_tokens,
                           const DeviceMemoryModel& memory) {
  if (context < 1) fail_input("--context {}: must be at least 1 token", context);
  if (prompt_tokens < 0 || prompt_tokens > context)
    fail_input("--prompt-tokens {}: must be between 0 and the context ({})", prompt_tokens, context);
  if (!(memory.usable_fraction > 0 && memory.usable_fraction <= 1))
    fail_input("--memory-fraction {}: must be in (0, 1]", memory.usable_fraction);
  // Memory does not depend on TriAttention's statistics: check everything else.
  PolicyConfig checked = policy;
  if (!checked.stats) checked.stats = std::make_shared<const QueryStats>();
  check_policy(checked);
  CapacityPlan plan;
  plan.slots_per_head = cache_capacity(policy, static_cast<int>(std::min<int64_t>(prompt_tokens, INT32_MAX)),
                                       static_cast<int>(std::min<int64_t>(context, INT32_MAX)));
  plan.kv_bytes_per_sequence =
      uint64_t(plan.slots_per_head) * c.n_layers * c.n_kv_heads * device_bytes_per_slot(c, policy);
  plan.activation_bytes_per_sequence = activation_bytes_per_token(c) + logits_bytes(c) + engine_row_bytes(c, policy);
  plan.weight_bytes = uint64_t(c.parameter_count()) * 2;
  plan.shared_bytes = uint64_t(memory.prefill_chunk) * activation_bytes_per_token(c) + logits_bytes(c) + kGemmWorkspaceBytes;
  plan.usable_bytes = static_cast<uint64_t>(double(memory.device_bytes) * memory.usable_fraction);
  const uint64_t fixed = plan.weight_bytes + plan.shared_bytes;
  const uint64_t per_sequence = plan.kv_bytes_per_sequence + plan.activation_bytes_per_sequence;
  plan.max_sequences = plan.usable_bytes > fixed ? int64_t((plan.usable_bytes - fixed) / per_sequence) : 0;
  return plan;
}

}  // namespace kvb
