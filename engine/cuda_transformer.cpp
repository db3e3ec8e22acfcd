#include "engine/cuda_transformer.hpp"

#ifdef KVBENCH_HAVE_CUDA

#include <algorithm>

#include "engine/rope.hpp"
#include "kernels/cuda/ops_cuda.hpp"
#include "util/errors.hpp"

namespace kvb {

CudaTransformer::CudaTransformer(const Model& model, int max_batch_tokens, int n_sequences, int capacity)
    : model_(model),
      cfg_(model.config),
      max_tokens_(max_batch_tokens),
      n_seqs_(n_sequences),
      capacity_(capacity),
      layers_(model.config.n_layers),
      host_lengths_(size_t(model.config.n_layers) * n_sequences * model.config.n_kv_heads, 0),
      host_ids_(size_t(3) * max_batch_tokens) {
  layout();  // planning pass: counts bytes
  arena_.allocate("the CUDA backend's weights, KV cache and workspace");
  layout();
  upload_weights();
  for (const Layer& l : layers_) cuda::fill_bytes(l.lengths, 0, sizeof(int32_t) * n_seqs_ * cfg_.n_kv_heads);
}

void CudaTransformer::layout() {
  const size_t dim = cfg_.dim, qd = cfg_.q_dim(), kvd = cfg_.kv_dim(), hd = cfg_.head_dim, ffn = cfg_.ffn_dim;
  const size_t vocab = cfg_.vocab_size, t = max_tokens_;
  const ModelWeights& w = model_.weights;
  embedding_ = arena_.take<bf16>(vocab * dim);
  lm_head_ = w.classifier.empty() ? embedding_ : arena_.take<bf16>(vocab * dim);
  final_norm_ = arena_.take<float>(dim);
  inv_freq_ = arena_.take<double>(hd / 2);
  const size_t slots = size_t(n_seqs_) * cfg_.n_kv_heads * capacity_;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const LayerWeights& lw = w.layers[i];
    Layer& l = layers_[i];
    l.wq = arena_.take<bf16>(qd * dim);
    l.wk = arena_.take<bf16>(kvd * dim);
    l.wv = arena_.take<bf16>(kvd * dim);
    l.wo = arena_.take<bf16>(dim * qd);
    l.w_gate = arena_.take<bf16>(ffn * dim);
    l.w_up = arena_.take<bf16>(ffn * dim);
    l.w_down = arena_.take<bf16>(dim * ffn);
    l.attn_norm = arena_.take<float>(dim);
    l.ffn_norm = arena_.take<float>(dim);
    l.bq = lw.bq.empty() ? nullptr : arena_.take<float>(qd);
    l.bk = lw.bk.empty() ? nullptr : arena_.take<float>(kvd);
    l.bv = lw.bv.empty() ? nullptr : arena_.take<float>(kvd);
    l.q_norm = lw.q_norm.empty() ? nullptr : arena_.take<float>(hd);
    l.k_norm = lw.k_norm.empty() ? nullptr : arena_.take<float>(hd);
    l.keys = arena_.take<bf16>(slots * hd);
    l.values = arena_.take<bf16>(slots * hd);
    l.positions = arena_.take<int32_t>(slots);
    l.lengths = arena_.take<int32_t>(size_t(n_seqs_) * cfg_.n_kv_heads);
  }
  x_ = arena_.take<float>(t * dim);
  xb_ = arena_.take<float>(t * std::max(dim, qd));
  q_ = arena_.take<float>(t * qd);
  k_ = arena_.take<float>(t * kvd);
  v_ = arena_.take<float>(t * kvd);
  att_ = arena_.take<float>(t * qd);
  hb_ = arena_.take<float>(t * ffn);
  hb2_ = arena_.take<float>(t * ffn);
  logits_ = arena_.take<float>(t * vocab);
  gemm_in_ = arena_.take<bf16>(t * std::max({dim, qd, ffn}));
  attention_ws_ = arena_.take<float>(cuda::attention_workspace_floats(max_tokens_, cfg_.n_heads, cfg_.head_dim, capacity_));
  tokens_ = arena_.take<int32_t>(t);
  seqs_ = arena_.take<int32_t>(t);
  pos_ = arena_.take<int32_t>(t);
}

void CudaTransformer::upload_weights() {
  std::vector<bf16> staging;
  auto matrix = [&](bf16* dst, const Tensor& src) {
    staging.resize(src.data.size());
    std::transform(src.data.begin(), src.data.end(), staging.begin(), bf16_from_float);
    cuda::copy_to_device_bytes(dst, staging.data(), staging.size() * sizeof(bf16));
  };
  auto vector = [&](float* dst, const Tensor& src) {
    if (dst) cuda::copy_to_device_bytes(dst, src.data.data(), src.data.size() * sizeof(float));
  };
  const ModelWeights& w = model_.weights;
  matrix(embedding_, w.token_embedding);
  if (!w.classifier.empty()) matrix(lm_head_, w.classifier);
  vector(final_norm_, w.final_norm);
  const std::vector<double> inv_freq = rope_inv_freq(cfg_);
  cuda::copy_to_device_bytes(inv_freq_, inv_freq.data(), inv_freq.size() * sizeof(double));
  for (size_t i = 0; i < layers_.size(); ++i) {
    const LayerWeights& lw = w.layers[i];
    Layer& l = layers_[i];
    matrix(l.wq, lw.wq);
    matrix(l.wk, lw.wk);
    matrix(l.wv, lw.wv);
    matrix(l.wo, lw.wo);
    matrix(l.w_gate, lw.w_gate);
    matrix(l.w_up, lw.w_up);
    matrix(l.w_down, lw.w_down);
    vector(l.attn_norm, lw.attn_norm);
    vector(l.ffn_norm, lw.ffn_norm);
    vector(l.bq, lw.bq);
    vector(l.bk, lw.bk);
    vector(l.bv, lw.bv);
    vector(l.q_norm, lw.q_norm);
    vector(l.k_norm, lw.k_norm);
  }
  cuda::synchronize("weight upload");
}

int CudaTransformer::length(int layer, int seq, int kv_head) const {
  return host_lengths_[(size_t(layer) * n_seqs_ + seq) * cfg_.n_kv_heads + kv_head];
}

void CudaTransformer::clear_sequence(int seq) {
  for (size_t l = 0; l < layers_.size(); ++l) {
    cuda::fill_bytes(layers_[l].lengths + size_t(seq) * cfg_.n_kv_heads, 0, sizeof(int32_t) * cfg_.n_kv_heads);
    std::fill_n(host_lengths_.begin() + (l * n_seqs_ + seq) * cfg_.n_kv_heads, cfg_.n_kv_heads, 0);
  }
}

void CudaTransformer::forward(std::span<const BatchToken> batch, float* logits) {
  const int n = static_cast<int>(batch.size());
  if (n == 0) return;
  if (n > max_tokens_) fail_runtime("CUDA forward: batch of {} tokens exceeds the {} the engine was sized for", n, max_tokens_);
  const int dim = cfg_.dim, qd = cfg_.q_dim(), kvd = cfg_.kv_dim(), hd = cfg_.head_dim, ffn = cfg_.ffn_dim;
  const int vocab = cfg_.vocab_size;
  for (int i = 0; i < n; ++i) {
    const BatchToken& t = batch[i];
    if (t.token < 0 || t.token >= vocab) fail_input("token id {} is outside the model's vocabulary of {}", t.token, vocab);
    if (t.seq < 0 || t.seq >= n_seqs_) fail_runtime("CUDA forward: sequence row {} outside the {} allocated", t.seq, n_seqs_);
    for (int h = 0; h < cfg_.n_kv_heads; ++h)
      for (int l = 0; l < cfg_.n_layers; ++l) {
        int32_t& len = host_lengths_[(size_t(l) * n_seqs_ + t.seq) * cfg_.n_kv_heads + h];
        if (len >= capacity_) fail_runtime("KV cache full: sequence row {} holds {} slots", t.seq, capacity_);
        ++len;
      }
    host_ids_[i] = t.token;
    host_ids_[size_t(max_tokens_) + i] = t.seq;
    host_ids_[size_t(2) * max_tokens_ + i] = t.pos;
  }
  // tokens_, seqs_ and pos_ are consecutive pieces of max_tokens_ ids each (256-byte aligned).
  cuda::copy_to_device_bytes(tokens_, host_ids_.data(), sizeof(int32_t) * n);
  cuda::copy_to_device_bytes(seqs_, host_ids_.data() + max_tokens_, sizeof(int32_t) * n);
  cuda::copy_to_device_bytes(pos_, host_ids_.data() + 2 * size_t(max_tokens_), sizeof(int32_t) * n);

  const bool interleaved = cfg_.rope_pairing == RopePairing::Interleaved;
  const float rope_scale = static_cast<float>(rope_attention_scale(cfg_));
  cuda::embedding(x_, embedding_, tokens_, n, dim);
  for (const Layer& l : layers_) {
    // Attention block.
    cuda::rmsnorm(xb_, x_, l.attn_norm, n, dim, cfg_.norm_eps);
    cuda::matmul(q_, xb_, l.wq, n, dim, qd, gemm_in_);
    cuda::matmul(k_, xb_, l.wk, n, dim, kvd, gemm_in_);
    cuda::matmul(v_, xb_, l.wv, n, dim, kvd, gemm_in_);
    if (l.bq) {
      cuda::add_bias(q_, l.bq, n, qd);
      cuda::add_bias(k_, l.bk, n, kvd);
      cuda::add_bias(v_, l.bv, n, kvd);
    }
    if (l.q_norm) {  // Qwen3: per-head RMSNorm before RoPE
      cuda::rmsnorm(q_, q_, l.q_norm, n * cfg_.n_heads, hd, cfg_.norm_eps);
      cuda::rmsnorm(k_, k_, l.k_norm, n * cfg_.n_kv_heads, hd, cfg_.norm_eps);
    }
    cuda::rope(q_, pos_, n, cfg_.n_heads, hd, inv_freq_, rope_scale, interleaved);
    cuda::rope(k_, pos_, n, cfg_.n_kv_heads, hd, inv_freq_, rope_scale, interleaved);
    cuda::append_kv(l.keys, l.values, l.positions, l.lengths, k_, v_, seqs_, pos_, n, cfg_.n_kv_heads, hd, capacity_);
    cuda::attention(att_, q_, l.keys, l.values, l.positions, l.lengths, seqs_, pos_, n, cfg_.n_heads, cfg_.n_kv_heads,
                    hd, capacity_, attention_ws_);
    cuda::matmul(xb_, att_, l.wo, n, qd, dim, gemm_in_);
    cuda::add_bias(x_, xb_, 1, n * dim);  // residual: x += attention output
    // Feed-forward block (SwiGLU).
    cuda::rmsnorm(xb_, x_, l.ffn_norm, n, dim, cfg_.norm_eps);
    cuda::matmul(hb_, xb_, l.w_gate, n, dim, ffn, gemm_in_);
    cuda::matmul(hb2_, xb_, l.w_up, n, dim, ffn, gemm_in_);
    cuda::swiglu(hb_, hb2_, int64_t(n) * ffn);
    cuda::matmul(xb_, hb_, l.w_down, n, ffn, dim, gemm_in_);
    cuda::add_bias(x_, xb_, 1, n * dim);
  }
  // Final norm and classifier for the rows whose logits are wanted: all of them, or (a prefill
  // chunk) single rows.
  const bool all = std::all_of(batch.begin(), batch.end(), [](const BatchToken& t) { return t.want_logits; });
  int rows = 0;
  for (int i = 0; i < n; ++i) {
    if (!all && !batch[i].want_logits) continue;
    const int count = all ? n : 1;
    cuda::rmsnorm(xb_, x_ + size_t(i) * dim, final_norm_, count, dim, cfg_.norm_eps);
    cuda::matmul(logits_ + size_t(rows) * vocab, xb_, lm_head_, count, dim, vocab, gemm_in_);
    rows += count;
    if (all) break;
  }
  if (rows > 0) cuda::copy_to_host_bytes(logits, logits_, sizeof(float) * size_t(rows) * vocab);
  cuda::synchronize("forward");
}

}  // namespace kvb

#endif  // KVBENCH_HAVE_CUDA
