#pragma once
// The CUDA engine's device memory, laid out by one set of functions: the engine
// (engine/cuda_transformer.cpp) allocates with them, `--batch auto` (run/gpu_session.cpp) and
// `kvbench capacity` (run/capacity.cpp) count with them, so a plan and the engine cannot disagree.
// Counting needs no GPU (kernels/device_carver.hpp).
//
// The engine's arena, in order: weights (bf16 matrices, fp32 norms and biases, the RoPE table),
// the KV pool, two logits buffers, the retained-mass bitmap and sums, the step's host staging,
// the forward's fp32 workspace, the attention split workspace, the batch's token ids, and the
// compression scratch (kernels/compression_scratch.hpp). A batch's caches are carved from the pool
// by lay_out_cuda_cache (kernels/kv_storage.hpp's layout, bf16).
#include <cstdint>
#include <vector>

#include "engine/kv_cache.hpp"
#include "engine/methods/method.hpp"
#include "engine/model_config.hpp"
#include "kernels/bf16.hpp"
#include "kernels/compression_scratch.hpp"
#include "kernels/device_carver.hpp"
#include "kernels/kv_storage.hpp"

namespace kvb {

// What the engine is sized for, decided before anything is allocated.
struct CudaEngineShape {
  int max_batch_tokens = 512;  // tokens in one forward (a prefill chunk or a decode batch)
  int max_sequences = 1;       // sequences in one batch (rows of logits per forward)
  int max_capacity = 1;        // slots per (layer, sequence, kv-head) of any cache
  uint64_t kv_pool_bytes = 0;  // the caches of one batch together (the method's and the reference's)
  CompressionShape compression;
};

struct CudaLayerWeights {
  bf16 *wq = nullptr, *wk = nullptr, *wv = nullptr, *wo = nullptr;
  bf16 *w_gate = nullptr, *w_up = nullptr, *w_down = nullptr;
  float *attn_norm = nullptr, *ffn_norm = nullptr, *bq = nullptr, *bk = nullptr, *bv = nullptr;
  float *q_norm = nullptr, *k_norm = nullptr;
};

// Every piece of the arena (null while counting).
struct CudaEngineLayout {
  // Weights.
  std::vector<CudaLayerWeights> layers;
  bf16 *embedding = nullptr, *lm_head = nullptr;  // lm_head == embedding when tied
  float* final_norm = nullptr;
  double* inv_freq = nullptr;
  size_t weight_bytes = 0;
  // Everything else.
  uint8_t* kv_pool = nullptr;
  float* logits[2] = {nullptr, nullptr};  // the method's, the reference's: [max_sequences][vocab]
  uint32_t* held_bits = nullptr;          // one layer's held positions, [max_sequences][n_kv_heads][held_words]
  int held_words = 0;
  float* retained_mass = nullptr;         // [max_sequences]
  int32_t* small_ids = nullptr;           // [max_sequences]
  void* small_results = nullptr;          // [max_sequences] logits statistics
  float *x = nullptr, *xb = nullptr, *q = nullptr, *k = nullptr, *v = nullptr, *att = nullptr;
  float *hb = nullptr, *hb2 = nullptr, *attention_ws = nullptr;
  bf16* gemm_in = nullptr;
  int32_t *tokens = nullptr, *seqs = nullptr, *pos = nullptr, *recorded = nullptr;
  CompressionScratch compression;
  size_t total_bytes = 0;
};

// Bytes of one row of logits statistics (kernels/cuda/ops_cuda.hpp LogitStats).
inline constexpr size_t kLogitStatsBytes = 20;

// Lays the engine out over `carver` (tied: the classifier is the embedding).
void lay_out_cuda_engine(DeviceCarver& carver, const ModelConfig& config, bool tied, const CudaEngineShape& shape,
                         CudaEngineLayout& out);
// Device bytes of such an engine.
uint64_t cuda_engine_bytes(const ModelConfig& config, bool tied, const CudaEngineShape& shape);

// A cache of n_seqs x capacity slots with `extras` (the method's slot scores and query window).
void lay_out_cuda_cache(DeviceCarver& carver, const ModelConfig& config, int n_seqs, int capacity,
                        const KvCacheExtras& extras, KvStorage<bf16>& out);
uint64_t cuda_cache_bytes(const ModelConfig& config, int n_seqs, int capacity, const KvCacheExtras& extras = {});

// The compression scratch an engine needs to run `policies` on batches of up to `max_sequences`
// sequences of up to `capacity` slots.
CompressionShape compression_shape(const ModelConfig& config, const std::vector<PolicyConfig>& policies,
                                   int max_sequences, int capacity);

}  // namespace kvb
