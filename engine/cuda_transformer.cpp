#include "engine/cuda_transformer.hpp"

#ifdef KVBENCH_HAVE_CUDA

#include <algorithm>
#include <chrono>
#include <set>
#include <cmath>
#include <optional>

#include "engine/rope.hpp"
#include "engine/weight_stream.hpp"
#include "kernels/cuda/compression_cuda.hpp"
#include "kernels/cuda/ops_cuda.hpp"
#include "profiler/trace.hpp"
#include "util/errors.hpp"

namespace kvb {

uint64_t CudaKvCache::sequence_bytes(int seq) const {
  uint64_t slots = 0;
  for (int l = 0; l < n_layers(); ++l)
    for (int h = 0; h < n_kv_heads(); ++h) slots += length(l, seq, h);
  return slots * bytes_per_slot();
}

void CudaKvCache::clear_sequence(int seq) {
  const KvGeometry& g = s_.geometry;
  const size_t row_slots = size_t(g.n_kv_heads) * g.capacity;
  for (int l = 0; l < g.n_layers; ++l) {
    cuda::fill_bytes(lengths(l) + size_t(seq) * g.n_kv_heads, 0, sizeof(int32_t) * g.n_kv_heads);
    if (float* scores = slot_scores(l)) cuda::fill_bytes(scores + size_t(seq) * row_slots, 0, sizeof(float) * row_slots);
    for (int h = 0; h < g.n_kv_heads; ++h) lengths_[g.head(l, seq, h)] = 0;
  }
}

void CudaKvCache::reserve_slot(int seq) {
  for (int l = 0; l < n_layers(); ++l)
    for (int h = 0; h < n_kv_heads(); ++h) {
      int32_t& len = lengths_[s_.geometry.head(l, seq, h)];
      if (len >= capacity()) fail_runtime("KV cache full: sequence row {} holds {} slots", seq, capacity());
      ++len;
    }
}

void CudaKvCache::note_peak() {
  uint64_t live = 0;
  for (int32_t len : lengths_) live += uint64_t(len);
  peak_slots_ = std::max(peak_slots_, live);
}

bool CudaTransformer::tied(const Model& model) {
  // A loaded model's classifier is what its file holds; a generated one follows the config.
  return model.weights.layers.empty() ? model.config.tied_embeddings : model.weights.classifier.empty();
}

CudaTransformer::CudaTransformer(const Model& model, const CudaEngineShape& shape)
    : model_(model), cfg_(model.config), shape_(shape), host_ids_(size_t(3) * shape.max_batch_tokens) {
  static_assert(sizeof(cuda::LogitStats) == kLogitStatsBytes);
  if (shape_.max_batch_tokens < shape_.max_sequences)
    fail_runtime("CUDA engine: {} tokens per forward cannot feed {} sequences", shape_.max_batch_tokens, shape_.max_sequences);
  arena_.allocate(cuda_engine_bytes(cfg_, tied(model_), shape_), "the CUDA backend's weights, KV caches and workspace");
  DeviceCarver carver(arena_.base());
  lay_out_cuda_engine(carver, cfg_, tied(model_), shape_, layout_);
  const auto started = std::chrono::steady_clock::now();
  if (!model_.weights.layers.empty()) upload_weights();
  else if (model_.info.synthetic) generate_synthetic_weights();
  else stream_weights();
  weight_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const std::vector<double> inv_freq = rope_inv_freq(cfg_);
  cuda::copy_to_device_bytes(layout_.inv_freq, inv_freq.data(), inv_freq.size() * sizeof(double));
  retained_sum_.assign(shape_.max_sequences, 0.0);
  retained_count_.assign(shape_.max_sequences, 0);
  cuda::fill_bytes(layout_.retained_mass, 0, sizeof(float) * shape_.max_sequences);
  cuda::synchronize("weight upload");
}

void* CudaTransformer::device_weight(Role role, int layer) const {
  const CudaLayerWeights* l = layer >= 0 ? &layout_.layers.at(size_t(layer)) : nullptr;
  switch (role) {
    case Role::TokenEmbedding: return layout_.embedding;
    case Role::Classifier: return layout_.lm_head;
    case Role::FinalNorm: return layout_.final_norm;
    case Role::AttnNorm: return l->attn_norm;
    case Role::Wq: return l->wq;
    case Role::Wk: return l->wk;
    case Role::Wv: return l->wv;
    case Role::Wo: return l->wo;
    case Role::Bq: return l->bq;
    case Role::Bk: return l->bk;
    case Role::Bv: return l->bv;
    case Role::QNorm: return l->q_norm;
    case Role::KNorm: return l->k_norm;
    case Role::FfnNorm: return l->ffn_norm;
    case Role::WGate: return l->w_gate;
    case Role::WUp: return l->w_up;
    case Role::WDown: return l->w_down;
  }
  return nullptr;
}

namespace {

// Two pinned buffers for the weights on their way up: one is converted into while the other's
// copy runs. 16 MiB each: a 1 GiB tensor is 64 pieces, and the largest row kvbench meets (a
// 150K-entry vocabulary is rows of `dim`) fits many times.
constexpr size_t kStagingBytes = size_t(16) << 20;

struct PinnedStaging {
  uint8_t* p = static_cast<uint8_t*>(cuda::pinned_alloc_bytes(2 * kStagingBytes, "weight staging"));
  ~PinnedStaging() { cuda::pinned_free(p); }
  std::span<uint8_t> a() const { return {p, kStagingBytes}; }
  std::span<uint8_t> b() const { return {p + kStagingBytes, kStagingBytes}; }
};

std::string dtype_list(const std::set<DType>& seen) {
  std::string out;
  for (DType d : seen) out += (out.empty() ? "" : "+") + std::string(to_string(d));
  return out;
}

}  // namespace

void CudaTransformer::put_weight(const WeightSlot& slot, const RawTensor& raw, std::span<uint8_t> a, std::span<uint8_t> b) {
  uint8_t* dst = static_cast<uint8_t*>(device_weight(slot.role, slot.layer));
  if (!dst) fail_runtime("CUDA engine: no device slot for {} of layer {}", to_string(slot.role), slot.layer);
  stage_for_device(raw, slot.shape, a, b, [&](const uint8_t* piece, uint64_t offset, uint64_t bytes) {
    cuda::synchronize("weight upload");  // the other buffer's copy, which is refilled next
    cuda::copy_to_device_async(dst + offset, piece, bytes);
  });
}

void CudaTransformer::upload_weights() {
  const PinnedStaging staging;
  std::set<DType> seen;
  for (const WeightSlot& s : weight_slots(cfg_)) {
    const Tensor& t = weight_of(model_.weights, s.role, s.layer);
    const RawTensor raw{to_string(s.role), t.dtype, t.shape, t.bytes.data(), t.bytes.size()};
    put_weight(s, raw, staging.a(), staging.b());
    if (s.shape.size() == 2) seen.insert(t.dtype);
  }
  cuda::synchronize("weight upload");
  stored_dtypes_ = dtype_list(seen);
}

void CudaTransformer::stream_weights() {
  const PinnedStaging staging;
  std::set<DType> seen;
  const WeightVisitor put = [&](const WeightSlot& s, const RawTensor& raw) {
    put_weight(s, raw, staging.a(), staging.b());
    seen.insert(raw.dtype);
  };
  LoadOptions options;
  options.hash_files = false;
  options.stream_weights = &put;
  load_model(model_.info.source, options);
  cuda::synchronize("weight streaming");
  stored_dtypes_ = dtype_list(seen);
}

void CudaTransformer::generate_synthetic_weights() {
  for (const SyntheticTensor& t : synthetic_tensor_plan(cfg_, model_.info.synthetic_seed)) {
    int64_t n = 1;
    for (int64_t s : t.shape) n *= s;
    void* dst = device_weight(t.role, t.layer);
    if (t.shape.size() == 2) cuda::synthetic_fill(static_cast<bf16*>(dst), n, t.key, t.scale, t.offset);
    else cuda::synthetic_fill(static_cast<float*>(dst), n, t.key, t.scale, t.offset);
  }
  cuda::synchronize("synthetic weights");
  stored_dtypes_ = "BF16 (generated on the device)";
}

CudaKvCache CudaTransformer::make_cache(int n_seqs, int capacity, uint64_t pool_offset, const KvCacheExtras& extras) {
  if (n_seqs > shape_.max_sequences || capacity > shape_.max_capacity ||
      pool_offset + cuda_cache_bytes(cfg_, n_seqs, capacity, extras) > shape_.kv_pool_bytes)
    fail_runtime("CUDA engine: a cache of {} sequences x {} slots does not fit what the engine was sized for "
                 "({} sequences, {} slots, {} pool bytes)",
                 n_seqs, capacity, shape_.max_sequences, shape_.max_capacity, shape_.kv_pool_bytes);
  CudaKvCache c;
  DeviceCarver carver(layout_.kv_pool + pool_offset);
  lay_out_cuda_cache(carver, cfg_, n_seqs, capacity, extras, c.s_);
  const KvGeometry& g = c.s_.geometry;
  c.lengths_.assign(g.heads(), 0);
  cuda::fill_bytes(c.s_.lengths, 0, sizeof(int32_t) * g.heads());
  if (c.s_.slot_scores) cuda::fill_bytes(c.s_.slot_scores, 0, sizeof(float) * g.slots());
  if (c.s_.window_queries) cuda::fill_bytes(c.s_.window_queries, 0, sizeof(float) * g.window_floats());
  return c;
}

int CudaTransformer::list_recorded_tokens(std::span<const BatchToken> batch, int window) {
  // A token is recorded when it is among the last `window` positions its sequence reaches in
  // this batch; an earlier one would share a ring slot with a later one.
  latest_pos_.assign(shape_.max_sequences, -1);
  for (const BatchToken& t : batch) latest_pos_[t.seq] = std::max(latest_pos_[t.seq], t.pos);
  host_recorded_.clear();
  for (size_t i = 0; i < batch.size(); ++i)
    if (batch[i].pos > latest_pos_[batch[i].seq] - window) host_recorded_.push_back(static_cast<int32_t>(i));
  cuda::copy_to_device_bytes(layout_.recorded, host_recorded_.data(), sizeof(int32_t) * host_recorded_.size());
  return static_cast<int>(host_recorded_.size());
}

double CudaTransformer::take_retained_mass(int seq) {
  if (seq >= static_cast<int>(retained_count_.size()) || retained_count_[seq] == 0) return std::nan("");
  const double mean = retained_sum_[seq] / double(retained_count_[seq]);
  retained_sum_[seq] = 0;
  retained_count_[seq] = 0;
  return mean;
}

int CudaTransformer::forward(std::span<const BatchToken> batch, CudaKvCache& cache, float* logits,
                             const ForwardRecording<CudaKvCache>& record) {
  const int n = static_cast<int>(batch.size());
  if (n == 0) return 0;
  const int max_tokens = shape_.max_batch_tokens;
  const CudaEngineLayout& w = layout_;
  if (n > max_tokens) fail_runtime("CUDA forward: batch of {} tokens exceeds the {} the engine was sized for", n, max_tokens);
  const int window = cache.geometry().window;
  if (record.window_queries && window == 0) fail_runtime("CUDA forward: window queries recorded into a cache without a window");
  if (record.slot_attention && !cache.slot_scores(0))
    fail_runtime("CUDA forward: slot attention recorded into a cache made without slot scores");
  const CudaKvCache* held_by = record.retained_mass_of;
  if (held_by && (held_by->n_sequences() != cache.n_sequences() || held_by->capacity() > shape_.max_capacity))
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
  cache.note_peak();
  const int n_recorded = record.window_queries ? list_recorded_tokens(batch, window) : 0;
  cuda::copy_to_device_bytes(w.tokens, host_ids_.data(), sizeof(int32_t) * n);
  cuda::copy_to_device_bytes(w.seqs, host_ids_.data() + max_tokens, sizeof(int32_t) * n);
  cuda::copy_to_device_bytes(w.pos, host_ids_.data() + 2 * size_t(max_tokens), sizeof(int32_t) * n);

  const bool interleaved = cfg_.rope_pairing == RopePairing::Interleaved;
  const float rope_scale = static_cast<float>(rope_attention_scale(cfg_));
  const int cap = cache.capacity();
  cuda::embedding(w.x, w.embedding, w.tokens, n, dim);
  for (int li = 0; li < cfg_.n_layers; ++li) {
    const CudaLayerWeights& l = w.layers[li];
    // Attention block. Ranges mark where kernels are launched (NVTX, and CUPTI's attribution).
    std::optional<profiler::Range> range(std::in_place, "attention");
    cuda::rmsnorm(w.xb, w.x, l.attn_norm, n, dim, cfg_.norm_eps);
    cuda::matmul(w.q, w.xb, l.wq, n, dim, qd, w.gemm_in);
    cuda::matmul(w.k, w.xb, l.wk, n, dim, kvd, w.gemm_in);
    cuda::matmul(w.v, w.xb, l.wv, n, dim, kvd, w.gemm_in);
    if (l.bq) {
      cuda::add_bias(w.q, l.bq, n, qd);
      cuda::add_bias(w.k, l.bk, n, kvd);
      cuda::add_bias(w.v, l.bv, n, kvd);
    }
    if (l.q_norm) {  // Qwen3: per-head RMSNorm before RoPE
      cuda::rmsnorm(w.q, w.q, l.q_norm, n * cfg_.n_heads, hd, cfg_.norm_eps);
      cuda::rmsnorm(w.k, w.k, l.k_norm, n * cfg_.n_kv_heads, hd, cfg_.norm_eps);
    }
    if (record.queries) {
      host_queries_.resize(size_t(n) * qd);
      cuda::copy_to_host_bytes(host_queries_.data(), w.q, sizeof(float) * host_queries_.size());
      for (int i = 0; i < n; ++i)
        record.queries->on_query(li, batch[i].seq, batch[i].pos, host_queries_.data() + size_t(i) * qd);
    }
    cuda::rope(w.q, w.pos, n, cfg_.n_heads, hd, w.inv_freq, rope_scale, interleaved);
    cuda::rope(w.k, w.pos, n, cfg_.n_kv_heads, hd, w.inv_freq, rope_scale, interleaved);
    if (record.window_queries)
      cuda::store_window_queries(cache.window_queries(), w.q, w.recorded, n_recorded, w.seqs, w.pos, cfg_.n_heads,
                                 cfg_.group_size(), hd, window, li, cfg_.n_layers);
    cuda::append_kv(cache.keys(li), cache.values(li), cache.positions(li), cache.lengths(li), w.k, w.v, w.seqs, w.pos, n,
                    cfg_.n_kv_heads, hd, cap);
    cuda::attention(w.att, w.q, cache.keys(li), cache.values(li), cache.positions(li), cache.lengths(li), w.seqs, w.pos, n,
                    cfg_.n_heads, cfg_.n_kv_heads, hd, cap, w.attention_ws);
    if (record.slot_attention || held_by) {
      const uint32_t* held = nullptr;
      if (held_by) {
        cuda::mark_held_positions(w.held_bits, held_by->positions(li), held_by->lengths(li),
                                  held_by->n_sequences() * cfg_.n_kv_heads, held_by->capacity(), w.held_words);
        held = w.held_bits;
      }
      cuda::slot_attention(w.q, cache.keys(li), cache.positions(li), cache.lengths(li), w.seqs, w.pos, n, cfg_.n_heads,
                           cfg_.n_kv_heads, hd, cap, record.slot_attention ? cache.slot_scores(li) : nullptr, held,
                           w.held_words, w.retained_mass);
    }
    cuda::matmul(w.xb, w.att, l.wo, n, qd, dim, w.gemm_in);
    cuda::add_bias(w.x, w.xb, 1, n * dim);  // residual: x += attention output
    // Feed-forward block (SwiGLU).
    range.emplace("mlp");
    cuda::rmsnorm(w.xb, w.x, l.ffn_norm, n, dim, cfg_.norm_eps);
    cuda::matmul(w.hb, w.xb, l.w_gate, n, dim, ffn, w.gemm_in);
    cuda::matmul(w.hb2, w.xb, l.w_up, n, dim, ffn, w.gemm_in);
    cuda::swiglu(w.hb, w.hb2, int64_t(n) * ffn);
    cuda::matmul(w.xb, w.hb, l.w_down, n, ffn, dim, w.gemm_in);
    cuda::add_bias(w.x, w.xb, 1, n * dim);
  }
  // Final norm and classifier for the rows whose logits are wanted: all of them, or (a prefill
  // chunk) single rows.
  profiler::Range range("logits");
  int rows = 0;
  for (int i = 0; i < n; ++i) {
    if (!all && !batch[i].want_logits) continue;
    const int count = all ? n : 1;
    cuda::rmsnorm(w.xb, w.x + size_t(i) * dim, w.final_norm, count, dim, cfg_.norm_eps);
    cuda::matmul(logits + size_t(rows) * vocab, w.xb, w.lm_head, count, dim, vocab, w.gemm_in);
    rows += count;
    if (all) break;
  }
  cuda::synchronize("forward");
  if (held_by) {
    // The retained mass of this forward, per sequence: summed on the device, averaged on the host.
    const int seqs = cache.n_sequences();
    host_mass_.resize(seqs);
    cuda::copy_to_host_bytes(host_mass_.data(), w.retained_mass, sizeof(float) * seqs);
    cuda::fill_bytes(w.retained_mass, 0, sizeof(float) * seqs);
    for (int s = 0; s < seqs; ++s) retained_sum_[s] += host_mass_[s];
    for (const BatchToken& t : batch) retained_count_[t.seq] += int64_t(cfg_.n_layers) * cfg_.n_heads;
  }
  return rows;
}

}  // namespace kvb

#endif  // KVBENCH_HAVE_CUDA
