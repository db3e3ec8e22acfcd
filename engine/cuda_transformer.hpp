#pragma once
// The forward pass on an NVIDIA GPU: the CPU Transformer's computation (engine/transformer.hpp)
// with bf16 weights and KV cache on the device and fp32 activations, through the CUDA ops
// (kernels/cuda/ops_cuda.hpp). Weights, the KV cache of a fixed number of sequences and all
// workspace live in one arena allocated at construction; forward() allocates nothing. Built only
// with the CUDA backend (KVBENCH_HAVE_CUDA).
#include <cstdint>
#include <span>
#include <vector>

#include "engine/model.hpp"
#include "engine/transformer.hpp"
#include "kernels/cuda/device_arena.hpp"

namespace kvb {

class CudaTransformer {
 public:
  // Uploads the model's weights (rounded to bf16) and sizes a KV cache of `n_sequences` rows of
  // `capacity` slots per (layer, KV head) and workspace for `max_batch_tokens` tokens per forward.
  // RuntimeFailure (out of memory, naming what and the free memory) when it does not fit.
  CudaTransformer(const Model& model, int max_batch_tokens, int n_sequences, int capacity);

  // Transformer::forward's contract: appends every token's K/V to its sequence's cache rows and
  // writes vocab_size logits (host memory) per token with want_logits, in batch order.
  void forward(std::span<const BatchToken> batch, float* logits);

  // Forgets every slot of a sequence (its row can take a new sequence).
  void clear_sequence(int seq);
  // Slots held by (layer, seq, kv_head), mirrored on the host.
  int length(int layer, int seq, int kv_head) const;
  size_t device_bytes() const { return arena_.planned_bytes(); }

 private:
  struct Layer {
    bf16 *wq = nullptr, *wk = nullptr, *wv = nullptr, *wo = nullptr;
    bf16 *w_gate = nullptr, *w_up = nullptr, *w_down = nullptr;
    float *attn_norm = nullptr, *ffn_norm = nullptr, *bq = nullptr, *bk = nullptr, *bv = nullptr;
    float *q_norm = nullptr, *k_norm = nullptr;
    bf16 *keys = nullptr, *values = nullptr;  // [n_seqs][n_kv_heads][capacity][head_dim]
    int32_t *positions = nullptr, *lengths = nullptr;
  };
  // Takes every piece from the arena (run once to plan, once to hand out).
  void layout();
  void upload_weights();

  const Model& model_;
  const ModelConfig& cfg_;
  int max_tokens_, n_seqs_, capacity_;
  cuda::DeviceArena arena_;
  std::vector<Layer> layers_;
  bf16 *embedding_ = nullptr, *lm_head_ = nullptr;
  float* final_norm_ = nullptr;
  double* inv_freq_ = nullptr;
  // Workspace [max_tokens][...] and the batch's token, sequence and position ids.
  float *x_ = nullptr, *xb_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr, *att_ = nullptr;
  float *hb_ = nullptr, *hb2_ = nullptr, *logits_ = nullptr, *attention_ws_ = nullptr;
  bf16* gemm_in_ = nullptr;
  int32_t *tokens_ = nullptr, *seqs_ = nullptr, *pos_ = nullptr;
  std::vector<int32_t> host_lengths_;  // [layer][seq][kv_head]
  std::vector<int32_t> host_ids_;      // staging for tokens, seqs, positions
};

}  // namespace kvb
