#pragma once
// How many sequences of a method fit on a GPU at once, counted with the layout the CUDA engine
// allocates with (engine/cuda_layout.hpp: weights, workspace, compression scratch and the KV
// caches, byte for byte), so that `kvbench capacity`, `--batch auto` (run/gpu_session.cpp) and the
// engine cannot disagree. Needs no GPU.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/cuda_layout.hpp"
#include "engine/methods/method.hpp"
#include "engine/model_config.hpp"

namespace kvb {

struct DeviceMemoryModel {
  uint64_t device_bytes = 0;        // the GPU's memory (or --gpu-memory)
  double usable_fraction = 0.90;    // share kvbench may take (the rest: CUDA context, other processes)
  int prefill_chunk = 512;          // prompt tokens per forward (sizes the activation workspace)
};

struct CapacityPlan {
  int64_t slots_per_head = 0;          // KV slots per (layer, KV head) at the method's peak
  uint64_t kv_bytes_per_sequence = 0;  // one sequence's cache: keys, values, positions, lengths (+ the method's extras)
  uint64_t weight_bytes = 0;           // bf16 matrices, fp32 norms
  uint64_t engine_bytes = 0;           // everything else at max_sequences: workspace, logits, compression scratch, cuBLASLt
  uint64_t usable_bytes = 0;
  int64_t max_sequences = 0;           // 0 when even one does not fit
};

// The engine that runs `policies` on batches of up to `rows` sequences of up to `capacity` slots,
// `prefill_chunk` prompt tokens per forward, without its KV pool.
CudaEngineShape engine_shape_for(const ModelConfig& config, const std::vector<PolicyConfig>& policies, int rows,
                                 int capacity, int prefill_chunk);

// The device bytes besides the KV pool that such an engine takes: the arena's and cuBLASLt's.
uint64_t engine_fixed_bytes(const ModelConfig& config, bool tied, const CudaEngineShape& shape);

// The plan for sequences of `context` tokens (prompt_tokens of them prompt) decoded under
// `policy` on an engine of the model's own (tied = the config's tied_embeddings).
// InputError for impossible inputs (context < 1, prompt > context, a policy check_policy refuses).
CapacityPlan plan_capacity(const ModelConfig& config, const PolicyConfig& policy, int64_t context,
                           int64_t prompt_tokens, const DeviceMemoryModel& memory);

}  // namespace kvb
