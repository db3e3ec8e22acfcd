#pragma once
// How many sequences of a method fit on a GPU at once: the device memory model of the CUDA backend
// (bf16 weights and KV cache, int32 slot positions, fp32 activations), shared by `kvbench
// capacity` and `--batch auto`. Peak KV per sequence comes from cache_capacity, the rule the engine
// sizes its caches with, so the plan and the engine cannot disagree.
#include <cstdint>
#include <string>

#include "engine/methods/kv_policy.hpp"
#include "engine/model_config.hpp"

namespace kvb {

struct DeviceMemoryModel {
  uint64_t device_bytes = 0;        // the GPU's memory (or --gpu-memory)
  double usable_fraction = 0.90;    // share kvbench may take (the rest: CUDA context, other processes)
  int prefill_chunk = 512;          // prompt tokens per forward (sizes the shared activation scratch)
};

struct CapacityPlan {
  int64_t slots_per_head = 0;          // KV slots per (layer, KV head) at the method's peak
  uint64_t kv_bytes_per_sequence = 0;  // at that peak
  uint64_t activation_bytes_per_sequence = 0;
  uint64_t weight_bytes = 0;           // bf16
  uint64_t shared_bytes = 0;           // prefill scratch + cuBLASLt workspace, once per process
  uint64_t usable_bytes = 0;
  int64_t max_sequences = 0;           // 0 when even one does not fit
};

// Bytes of one KV slot of one (layer, KV head) on the device: bf16 key and value + int32 position
// (+ an fp32 accumulated-attention score for H2O).
uint64_t device_bytes_per_slot(const ModelConfig& config, const PolicyConfig& policy);

// The plan for sequences of `context` tokens (prompt_tokens of them prompt) under `policy`.
// InputError for impossible inputs (context < 1, prompt > context, a policy check_policy refuses).
CapacityPlan plan_capacity(const ModelConfig& config, const PolicyConfig& policy, int64_t context,
                           int64_t prompt_tokens, const DeviceMemoryModel& memory);

}  // namespace kvb
