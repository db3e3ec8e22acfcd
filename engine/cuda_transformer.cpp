#include "engine/cuda_transformer.hpp"

#ifdef KVBENCH_HAVE_CUDA

#include <algorithm>
#include <optional>

#include "engine/rope.hpp"
#include "kernels/cuda/compression_cuda.hpp"
#include "kernels/cuda/ops_cuda.hpp"
#include "profiler/trace.hpp"
#include "util/errors.hpp"

namespace kvb {

uint64_t cuda_cache_bytes(const ModelConfig& c, int n_seqs, int capacity, bool slot_scores) {
  auto aligned = [](uint64_t bytes) { return (bytes + cuda::DeviceArena::kAlign - 1) / cuda::DeviceArena::kAlign * cuda::DeviceArena::kAlign; };
  const uint64_t slots = uint64_t(n_seqs) * c.n_kv_heads * capacity;
  const uint64_t per_layer = 2 * aligned(slots * c.head_dim * sizeof(bf16)) + aligned(slots * sizeof(int32_t)) +
                             aligned(uint64_t(n_seqs) * c.n_kv_heads * sizeof(int32_t)) +
                             (slot_scores ? aligned(slots * sizeof(float)) : 0);
  return per_layer * c.n_layers;
}

void CudaKvCache::download_positions(int l, int seq, int kv_head, std::vector<int32_t>& out) const {
  out.resize(length(l, seq, kv_head));
  if (!out.empty()) cuda::copy_to_host_bytes(out.data(), positions(l, seq, kv_head), sizeof(int32_t) * out.size());
}

void CudaKvCache::compact(int l, int seq, int kv_head, const int32_t* keep, int k) {
  int32_t& len = lengths_[index(l, seq, kv_head)];
  if (k < 0 || k > len) fail_runtime("CUDA compact: keeping {} of {} slots", k, len);
  float* scores = slot_scores(l, seq, kv_head);
  cuda::compact(keys(l, seq, kv_head), values(l, seq, kv_head), positions(l, seq, kv_head),
                layers_[l].lengths + size_t(seq) * n_kv_heads_ + kv_head, keep, k, len, head_dim_, scores);
  if (scores && len > k) cuda::fill_bytes(scores + k, 0, sizeof(float) * (len - k));  // new slots start at 0
  live_slots_ -= len - k;
  len = k;
}

uint64_t CudaKvCache::sequence_bytes(int seq) const {
  uint64_t slots = 0;
  for (int l = 0; l < n_layers(); ++l)
    for (int h = 0; h < n_kv_heads_; ++h) slots += length(l, seq, h);
  return slots * bytes_per_slot();
}

void CudaKvCache::reserve_slot(int seq) {
  for (int l = 0; l < n_layers(); ++l)
    for (int h = 0; h < n_kv_heads_; ++h) {
      int32_t& len = lengths_[index(l, seq, h)];
      if (len >= capacity_) fail_runtime("KV cache full: sequence row {} holds {} slots", seq, capacity_);
      ++len;
    }
  live_slots_ += uint64_t(n_layers()) * n_kv_heads_;
}

void CudaKvCache::note_live_slots() { peak_slots_ = std::max(peak_slots_, live_slots_); }

CudaTransformer::CudaTransformer(const Model& model, const CudaEngineShape& shape)
    : model_(model),
      cfg_(model.config),
      shape_(shape),
      layers_(model.config.n_layers),
      host_ids_(size_t(3) * shape.max_batch_tokens) {
  if (model_.weights.layers.empty() && !model_.info.synthetic)
    fail_runtime("CUDA engine: {} was loaded without weights", model_.info.source);
  if (shape_.max_batch_tokens < shape_.max_sequences)
    fail_runtime("CUDA engine: {} tokens per forward cannot feed {} sequences", shape_.max_batch_tokens, shape_.max_sequences);
  layout();  // planning pass: counts bytes
  arena_.allocate("the CUDA backend's weights, KV caches and workspace");
  layout();
  if (model_.weights.layers.empty()) generate_synthetic_weights();
  else upload_weights();
  const std::vector<double> inv_freq = rope_inv_freq(cfg_);
  cuda::copy_to_device_bytes(inv_freq_, inv_freq.data(), inv_freq.size() * sizeof(double));
  cuda::synchronize("weight upload");
}

CudaTransformer::CudaTransformer(const Model& model, const CudaEngineShape& shape, PlanOnly)
    : model_(model), cfg_(model.config), shape_(shape), layers_(model.config.n_layers) {
  layout();
}

uint64_t CudaTransformer::bytes_needed(const Model& model, const CudaEngineShape& shape) {
  return CudaTransformer(model, shape, PlanOnly{}).device_bytes();
}

void CudaTransformer::layout() {
  const size_t dim = cfg_.dim, qd = cfg_.q_dim(), kvd = cfg_.kv_dim(), hd = cfg_.head_dim, ffn = cfg_.ffn_dim;
  const size_t vocab = cfg_.vocab_size, t = shape_.max_batch_tokens, rows = shape_.max_sequences;
  embedding_ = arena_.take<bf16>(vocab * dim);
  // A loaded model's classifier is what its file holds; a generated one follows the config.
  const bool tied = model_.weights.layers.empty() ? cfg_.tied_embeddings : model_.weights.classifier.empty();
  lm_head_ = tied ? embedding_ : arena_.take<bf16>(vocab * dim);
  final_norm_ = arena_.take<float>(dim);
  inv_freq_ = arena_.take<double>(hd / 2);
  for (Layer& l : layers_) {
    l.wq = arena_.take<bf16>(qd * dim);
    l.wk = arena_.take<bf16>(kvd * dim);
    l.wv = arena_.take<bf16>(kvd * dim);
    l.wo = arena_.take<bf16>(dim * qd);
    l.w_gate = arena_.take<bf16>(ffn * dim);
    l.w_up = arena_.take<bf16>(ffn * dim);
    l.w_down = arena_.take<bf16>(dim * ffn);
    l.attn_norm = arena_.take<float>(dim);
    l.ffn_norm = arena_.take<float>(dim);
    l.bq = cfg_.qkv_bias ? arena_.take<float>(qd) : nullptr;
    l.bk = cfg_.qkv_bias ? arena_.take<float>(kvd) : nullptr;
    l.bv = cfg_.qkv_bias ? arena_.take<float>(kvd) : nullptr;
    l.q_norm = cfg_.qk_norm ? arena_.take<float>(hd) : nullptr;
    l.k_norm = cfg_.qk_norm ? arena_.take<float>(hd) : nullptr;
  }
  if (!arena_.allocated()) weight_bytes_ = arena_.planned_bytes();  // everything so far is weights
  kv_pool_ = arena_.take<uint8_t>(shape_.kv_pool_bytes);
  logits_[0] = arena_.take<float>(rows * vocab);
  logits_[1] = arena_.take<float>(rows * vocab);
  query_ring_ = shape_.query_window > 0 ? arena_.take<float>(rows * cfg_.n_layers * qd * shape_.query_window) : nullptr;
  held_words_ = (shape_.max_capacity + 31) / 32;
  held_bits_ = arena_.take<uint32_t>(rows * cfg_.n_kv_heads * held_words_);
  retained_mass_ = arena_.take<float>(rows);
  const size_t cap = shape_.max_capacity;
  scratch_.keys = arena_.take<bf16>(cap * hd);
  scratch_.score = arena_.take<float>(cap);
  scratch_.aux = arena_.take<float>(cap);
  scratch_.total = arena_.take<float>(cap);
  scratch_.raw = arena_.take<float>(size_t(cfg_.group_size()) * cap);
  scratch_.index = arena_.take<int32_t>(cap);
  scratch_.keep = arena_.take<int32_t>(cap);
  scratch_.top = arena_.take<int32_t>(cap);
  scratch_.index_positions = arena_.take<int32_t>(cap);
  // TriAttention: up to one effective query per offset (max aggregation, <= 63 offsets) and the
  // norm weights, for every query head of every layer.
  scratch_.coefficient_floats = size_t(cfg_.n_layers) * cfg_.n_heads * (64 * hd + hd / 2);
  scratch_.coefficients = arena_.take<float>(scratch_.coefficient_floats);
  small_ids_ = arena_.take<int32_t>(rows);
  small_results_ = arena_.take<cuda::LogitStats>(rows);
  x_ = arena_.take<float>(t * dim);
  xb_ = arena_.take<float>(t * std::max(dim, qd));
  q_ = arena_.take<float>(t * qd);
  k_ = arena_.take<float>(t * kvd);
  v_ = arena_.take<float>(t * kvd);
  att_ = arena_.take<float>(t * qd);
  hb_ = arena_.take<float>(t * ffn);
  hb2_ = arena_.take<float>(t * ffn);
  gemm_in_ = arena_.take<bf16>(t * std::max({dim, qd, ffn}));
  attention_ws_ = arena_.take<float>(cuda::attention_workspace_floats(shape_.max_batch_tokens, cfg_.n_heads, cfg_.head_dim,
                                                                      shape_.max_capacity));
  tokens_ = arena_.take<int32_t>(t);
  seqs_ = arena_.take<int32_t>(t);
  pos_ = arena_.take<int32_t>(t);
  recorded_ = arena_.take<int32_t>(t);
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
  if (lm_head_ != embedding_) matrix(lm_head_, w.classifier);
  vector(final_norm_, w.final_norm);
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
}

void CudaTransformer::generate_synthetic_weights() {
  for (const SyntheticTensor& t : synthetic_tensor_plan(cfg_, model_.info.synthetic_seed)) {
    int64_t n = 1;
    for (int64_t s : t.shape) n *= s;
    auto fill = [&](auto* dst) { cuda::synthetic_fill(dst, n, t.key, t.scale, t.offset); };
    Layer* l = t.layer >= 0 ? &layers_[t.layer] : nullptr;
    switch (t.role) {
      case Role::TokenEmbedding: fill(embedding_); break;
      case Role::Classifier: fill(lm_head_); break;
      case Role::FinalNorm: fill(final_norm_); break;
      case Role::AttnNorm: fill(l->attn_norm); break;
      case Role::Wq: fill(l->wq); break;
      case Role::Wk: fill(l->wk); break;
      case Role::Wv: fill(l->wv); break;
      case Role::Wo: fill(l->wo); break;
      case Role::Bq: fill(l->bq); break;
      case Role::Bk: fill(l->bk); break;
      case Role::Bv: fill(l->bv); break;
      case Role::QNorm: fill(l->q_norm); break;
      case Role::KNorm: fill(l->k_norm); break;
      case Role::FfnNorm: fill(l->ffn_norm); break;
      case Role::WGate: fill(l->w_gate); break;
      case Role::WUp: fill(l->w_up); break;
      case Role::WDown: fill(l->w_down); break;
    }
  }
}

CudaKvCache CudaTransformer::make_cache(int n_seqs, int capacity, uint64_t pool_offset, bool slot_scores) {
  if (n_seqs > shape_.max_sequences || capacity > shape_.max_capacity ||
      pool_offset + cuda_cache_bytes(cfg_, n_seqs, capacity, slot_scores) > shape_.kv_pool_bytes)
    fail_runtime("CUDA engine: a cache of {} sequences x {} slots does not fit what the engine was sized for "
                 "({} sequences, {} slots, {} pool bytes)",
                 n_seqs, capacity, shape_.max_sequences, shape_.max_capacity, shape_.kv_pool_bytes);
  CudaKvCache c;
  c.n_seqs_ = n_seqs;
  c.n_kv_heads_ = cfg_.n_kv_heads;
  c.head_dim_ = cfg_.head_dim;
  c.capacity_ = capacity;
  c.lengths_.assign(size_t(cfg_.n_layers) * n_seqs * cfg_.n_kv_heads, 0);
  const uint64_t slots = uint64_t(n_seqs) * cfg_.n_kv_heads * capacity;
  uint8_t* at = kv_pool_ + pool_offset;
  auto take = [&](uint64_t bytes) {
    uint8_t* p = at;
    at += (bytes + cuda::DeviceArena::kAlign - 1) / cuda::DeviceArena::kAlign * cuda::DeviceArena::kAlign;
    return p;
  };
  c.layers_.resize(cfg_.n_layers);
  for (CudaKvCache::Layer& l : c.layers_) {
    l.keys = reinterpret_cast<bf16*>(take(slots * cfg_.head_dim * sizeof(bf16)));
    l.values = reinterpret_cast<bf16*>(take(slots * cfg_.head_dim * sizeof(bf16)));
    l.positions = reinterpret_cast<int32_t*>(take(slots * sizeof(int32_t)));
    l.lengths = reinterpret_cast<int32_t*>(take(uint64_t(n_seqs) * cfg_.n_kv_heads * sizeof(int32_t)));
    cuda::fill_bytes(l.lengths, 0, sizeof(int32_t) * n_seqs * cfg_.n_kv_heads);
    if (slot_scores) {
      l.scores = reinterpret_cast<float*>(take(slots * sizeof(float)));
      cuda::fill_bytes(l.scores, 0, sizeof(float) * slots);
    }
  }
  return c;
}

int CudaTransformer::list_recorded_tokens(std::span<const BatchToken> batch) {
  // A token is recorded when it is among the last `window` positions its sequence reaches in
  // this batch; an earlier one would share a ring slot with a later one.
  latest_pos_.assign(shape_.max_sequences, -1);
  for (const BatchToken& t : batch) latest_pos_[t.seq] = std::max(latest_pos_[t.seq], t.pos);
  host_recorded_.clear();
  for (size_t i = 0; i < batch.size(); ++i)
    if (batch[i].pos > latest_pos_[batch[i].seq] - shape_.query_window) host_recorded_.push_back(static_cast<int32_t>(i));
  cuda::copy_to_device_bytes(recorded_, host_recorded_.data(), sizeof(int32_t) * host_recorded_.size());
  return static_cast<int>(host_recorded_.size());
}

const float* CudaTransformer::window_queries(int seq, int layer, int kv_head) const {
  const size_t block = (size_t(seq) * cfg_.n_layers + layer) * cfg_.n_kv_heads + kv_head;
  return query_ring_ + block * shape_.query_window * cfg_.group_size() * cfg_.head_dim;
}

int CudaTransformer::forward(std::span<const BatchToken> batch, CudaKvCache& cache, float* logits, bool record_queries,
                             const AttentionTap& tap) {
  const int n = static_cast<int>(batch.size());
  if (n == 0) return 0;
  const int max_tokens = shape_.max_batch_tokens;
  if (n > max_tokens) fail_runtime("CUDA forward: batch of {} tokens exceeds the {} the engine was sized for", n, max_tokens);
  if (record_queries && !query_ring_) fail_runtime("CUDA forward: queries recorded but the engine has no query window");
  if (tap.accumulate_slot_scores && !cache.layer(0).scores)
    fail_runtime("CUDA forward: slot scores accumulated into a cache made without them");
  if (tap.held_by && (tap.held_by->n_sequences() != cache.n_sequences() || tap.held_by->capacity() > shape_.max_capacity))
    fail_runtime("CUDA forward: retained mass measured against a cache of another shape");
  const bool all = std::all_of(batch.begin(), batch.end(), [](const BatchToken& t) { return t.want_logits; });
  const int wanted = all ? n : static_cast<int>(std::count_if(batch.begin(), batch.end(), [](const BatchToken& t) { return t.want_logits; }));
  if (wanted > shape_.max_sequences)
    fail_runtime("CUDA forward: {} rows of logits exceed the {} the engine was sized for", wanted, shape_.max_sequences);
  const int dim = cfg_.dim, qd = cfg_.q_dim(), kvd = cfg_.kv_dim(), hd = cfg_.head_dim, ffn = cfg_.ffn_dim;
  const int vocab = cfg_.vocab_size;
  for (int i = 0; i < n; ++i) {
    const BatchToken& t = batch[i];
    if (t.token < 0 || t.token >= vocab) fail_input("token id {} is outside the model's vocabulary of {}", t.token, vocab);
    if (t.seq < 0 || t.seq >= cache.n_sequences())
      fail_runtime("CUDA forward: sequence row {} outside the {} allocated", t.seq, cache.n_sequences());
    cache.reserve_slot(t.seq);
    host_ids_[i] = t.token;
    host_ids_[size_t(max_tokens) + i] = t.seq;
    host_ids_[size_t(2) * max_tokens + i] = t.pos;
  }
  cache.note_live_slots();
  const int n_recorded = record_queries ? list_recorded_tokens(batch) : 0;
  cuda::copy_to_device_bytes(tokens_, host_ids_.data(), sizeof(int32_t) * n);
  cuda::copy_to_device_bytes(seqs_, host_ids_.data() + max_tokens, sizeof(int32_t) * n);
  cuda::copy_to_device_bytes(pos_, host_ids_.data() + 2 * size_t(max_tokens), sizeof(int32_t) * n);

  const bool interleaved = cfg_.rope_pairing == RopePairing::Interleaved;
  const float rope_scale = static_cast<float>(rope_attention_scale(cfg_));
  cuda::embedding(x_, embedding_, tokens_, n, dim);
  for (int li = 0; li < cfg_.n_layers; ++li) {
    const Layer& l = layers_[li];
    const CudaKvCache::Layer& kv = cache.layer(li);
    // Attention block. Ranges mark where kernels are launched (NVTX, and CUPTI's attribution).
    std::optional<profiler::Range> range(std::in_place, "attention");
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
    if (tap.queries) {
      host_queries_.resize(size_t(n) * qd);
      cuda::copy_to_host_bytes(host_queries_.data(), q_, sizeof(float) * host_queries_.size());
      for (int i = 0; i < n; ++i)
        tap.queries->on_query(li, batch[i].seq, batch[i].pos, host_queries_.data() + size_t(i) * qd, nullptr);
    }
    cuda::rope(q_, pos_, n, cfg_.n_heads, hd, inv_freq_, rope_scale, interleaved);
    cuda::rope(k_, pos_, n, cfg_.n_kv_heads, hd, inv_freq_, rope_scale, interleaved);
    if (record_queries)
      cuda::store_window_queries(query_ring_, q_, recorded_, n_recorded, seqs_, pos_, cfg_.n_heads, cfg_.group_size(), hd,
                                 shape_.query_window, li, cfg_.n_layers);
    const int cap = cache.capacity();
    cuda::append_kv(kv.keys, kv.values, kv.positions, kv.lengths, k_, v_, seqs_, pos_, n, cfg_.n_kv_heads, hd, cap);
    cuda::attention(att_, q_, kv.keys, kv.values, kv.positions, kv.lengths, seqs_, pos_, n, cfg_.n_heads, cfg_.n_kv_heads,
                    hd, cap, attention_ws_);
    if (tap.accumulate_slot_scores || tap.held_by) {
      const uint32_t* held = nullptr;
      if (tap.held_by) {
        const CudaKvCache::Layer& m = tap.held_by->layer(li);
        cuda::mark_held_positions(held_bits_, m.positions, m.lengths, tap.held_by->n_sequences() * cfg_.n_kv_heads,
                                  tap.held_by->capacity(), held_words_);
        held = held_bits_;
      }
      cuda::slot_attention(q_, kv.keys, kv.positions, kv.lengths, seqs_, pos_, n, cfg_.n_heads, cfg_.n_kv_heads, hd, cap,
                           tap.accumulate_slot_scores ? kv.scores : nullptr, held, held_words_, retained_mass_);
    }
    cuda::matmul(xb_, att_, l.wo, n, qd, dim, gemm_in_);
    cuda::add_bias(x_, xb_, 1, n * dim);  // residual: x += attention output
    // Feed-forward block (SwiGLU).
    range.emplace("mlp");
    cuda::rmsnorm(xb_, x_, l.ffn_norm, n, dim, cfg_.norm_eps);
    cuda::matmul(hb_, xb_, l.w_gate, n, dim, ffn, gemm_in_);
    cuda::matmul(hb2_, xb_, l.w_up, n, dim, ffn, gemm_in_);
    cuda::swiglu(hb_, hb2_, int64_t(n) * ffn);
    cuda::matmul(xb_, hb_, l.w_down, n, ffn, dim, gemm_in_);
    cuda::add_bias(x_, xb_, 1, n * dim);
  }
  // Final norm and classifier for the rows whose logits are wanted: all of them, or (a prefill
  // chunk) single rows.
  profiler::Range range("logits");
  int rows = 0;
  for (int i = 0; i < n; ++i) {
    if (!all && !batch[i].want_logits) continue;
    const int count = all ? n : 1;
    cuda::rmsnorm(xb_, x_ + size_t(i) * dim, final_norm_, count, dim, cfg_.norm_eps);
    cuda::matmul(logits + size_t(rows) * vocab, xb_, lm_head_, count, dim, vocab, gemm_in_);
    rows += count;
    if (all) break;
  }
  cuda::synchronize("forward");
  return rows;
}

}  // namespace kvb

#endif  // KVBENCH_HAVE_CUDA
