#include "run/capacity.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>

#include "kernels/matmul_workspace.hpp"
#include "util/errors.hpp"

namespace kvb {

CudaEngineShape engine_shape_for(const ModelConfig& c, const std::vector<PolicyConfig>& policies, int rows, int capacity,
                                 int prefill_chunk) {
  CudaEngineShape shape;
  shape.max_sequences = std::max(rows, 1);
  shape.max_batch_tokens = std::max(shape.max_sequences, prefill_chunk);
  shape.max_capacity = std::max(capacity, 1);
  shape.compression = compression_shape(c, policies, shape.max_sequences, shape.max_capacity);
  return shape;
}

uint64_t engine_fixed_bytes(const ModelConfig& c, bool tied, const CudaEngineShape& shape) {
  CudaEngineShape no_pool = shape;
  no_pool.kv_pool_bytes = 0;
  return cuda_engine_bytes(c, tied, no_pool) + kMatmulWorkspaceBytes;
}

CapacityPlan plan_capacity(const ModelConfig& c, const PolicyConfig& policy, int64_t context, int64_t prompt_tokens,
                           const DeviceMemoryModel& memory) {
  if (context < 1) fail_input("--context {}: must be at least 1 token", context);
  if (context > INT32_MAX) fail_input("--context {}: at most {} tokens", context, INT32_MAX);
  if (prompt_tokens < 0 || prompt_tokens > context)
    fail_input("--prompt-tokens {}: must be between 0 and the context ({})", prompt_tokens, context);
  if (!(memory.usable_fraction > 0 && memory.usable_fraction <= 1))
    fail_input("--memory-fraction {}: must be in (0, 1]", memory.usable_fraction);
  // Memory does not depend on TriAttention's statistics: check everything else.
  PolicyConfig checked = policy;
  if (!checked.stats) checked.stats = std::make_shared<const QueryStats>();
  check_policy(checked);
  CapacityPlan plan;
  const int capacity = cache_capacity(policy, static_cast<int>(prompt_tokens), static_cast<int>(context));
  const KvCacheExtras extras = cache_extras(policy);
  plan.slots_per_head = capacity;
  plan.kv_bytes_per_sequence = cuda_cache_bytes(c, 1, capacity, extras);
  plan.usable_bytes = static_cast<uint64_t>(double(memory.device_bytes) * memory.usable_fraction);
  const bool tied = c.tied_embeddings;
  auto needs = [&](int64_t n) {
    const int rows = static_cast<int>(std::max<int64_t>(n, 1));
    return engine_fixed_bytes(c, tied, engine_shape_for(c, {policy}, rows, capacity, memory.prefill_chunk)) +
           (n > 0 ? cuda_cache_bytes(c, rows, capacity, extras) : 0);
  };
  // The most sequences that fit: needs() grows with n; double, then bisect.
  int64_t lo = 0, hi = 1;
  while (hi < (int64_t(1) << 20) && needs(hi) <= plan.usable_bytes) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (needs(mid) <= plan.usable_bytes ? lo : hi) = mid;
  }
  plan.max_sequences = lo;
  DeviceCarver counter;
  CudaEngineLayout layout;
  lay_out_cuda_engine(counter, c, tied, engine_shape_for(c, {policy}, static_cast<int>(std::max<int64_t>(lo, 1)), capacity,
                                                         memory.prefill_chunk),
                      layout);
  plan.weight_bytes = layout.weight_bytes;
  plan.engine_bytes = layout.total_bytes - layout.weight_bytes + kMatmulWorkspaceBytes;
  return plan;
}

}  // namespace kvb
