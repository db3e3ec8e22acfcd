#include "engine/weights.hpp"

#include <cstring>
#include <utility>

#include <fmt/ranges.h>

#include "kernels/bf16.hpp"
#include "util/errors.hpp"

namespace kvb {

const char* to_string(Role r) {
  switch (r) {
    case Role::TokenEmbedding: return "token embedding";
    case Role::FinalNorm: return "final norm";
    case Role::Classifier: return "classifier";
    case Role::AttnNorm: return "attention norm";
    case Role::Wq: return "wq";
    case Role::Wk: return "wk";
    case Role::Wv: return "wv";
    case Role::Wo: return "wo";
    case Role::Bq: return "q bias";
    case Role::Bk: return "k bias";
    case Role::Bv: return "v bias";
    case Role::QNorm: return "q norm";
    case Role::KNorm: return "k norm";
    case Role::FfnNorm: return "ffn norm";
    case Role::WGate: return "ffn gate";
    case Role::WUp: return "ffn up";
    case Role::WDown: return "ffn down";
  }
  return "?";
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return shape.empty() ? 0 : n;
}

const float* Tensor::f32() const {
  if (dtype != DType::F32) fail_runtime("tensor [{}] is {}, not F32", fmt::join(shape, ", "), to_string(dtype));
  return reinterpret_cast<const float*>(bytes.data());
}

float* Tensor::f32() { return const_cast<float*>(std::as_const(*this).f32()); }

cpu::WeightMatrix Tensor::matrix() const {
  if (shape.size() != 2) fail_runtime("tensor [{}] is not a matrix", fmt::join(shape, ", "));
  return cpu::WeightMatrix{dtype, bytes.data(), static_cast<int>(shape[0]), static_cast<int>(shape[1])};
}

Tensor stored_tensor(std::vector<int64_t> shape, std::span<const float> values, DType dtype) {
  Tensor t;
  t.shape = std::move(shape);
  t.dtype = dtype;
  if (static_cast<uint64_t>(t.numel()) != values.size())
    fail_runtime("tensor [{}] given {} values", fmt::join(t.shape, ", "), values.size());
  t.bytes.resize(storage_bytes(dtype, values.size()));
  quantize(t.bytes.data(), dtype, values.data(), values.size());
  return t;
}

Tensor f32_tensor(std::vector<int64_t> shape, std::span<const float> values) {
  return stored_tensor(std::move(shape), values, DType::F32);
}

std::vector<float> to_f32(const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  dequantize(out.data(), t.dtype, t.bytes.data(), out.size());
  return out;
}

uint64_t ModelWeights::bytes() const {
  uint64_t n = token_embedding.bytes.size() + final_norm.bytes.size() + classifier.bytes.size();
  for (const auto& l : layers)
    for (const Tensor* t : l.all()) n += t->bytes.size();
  return n;
}

std::string ModelWeights::matrix_dtypes() const {
  bool used[4] = {};
  auto note = [&](const Tensor& t) {
    if (!t.empty() && t.shape.size() == 2) used[static_cast<int>(t.dtype)] = true;
  };
  note(token_embedding);
  note(classifier);
  for (const auto& l : layers)
    for (const Tensor* t : l.all()) note(*t);
  std::string out;
  for (DType d : {DType::F32, DType::F16, DType::BF16, DType::Q8_0}) {
    if (!used[static_cast<int>(d)]) continue;
    out += (out.empty() ? "" : "+") + std::string(lower_name(d));
  }
  return out;
}

namespace {

// Index of the first non-finite element of `count` stored as `dtype`, or count when all are
// finite. One pass of bit tests over the stored bytes (for Q8_0 only the scales can be).
uint64_t first_non_finite(DType dtype, const uint8_t* p, uint64_t count) {
  switch (dtype) {
    case DType::F32: {
      bool finite = true;
      for (uint64_t i = 0; i < count; ++i) {
        uint32_t u;
        std::memcpy(&u, p + 4 * i, 4);
        finite &= (u & 0x7f800000u) != 0x7f800000u;
      }
      if (finite) return count;
      for (uint64_t i = 0; i < count; ++i) {
        uint32_t u;
        std::memcpy(&u, p + 4 * i, 4);
        if ((u & 0x7f800000u) == 0x7f800000u) return i;
      }
      return count;
    }
    case DType::F16:
    case DType::BF16: {
      const uint16_t mask = dtype == DType::F16 ? 0x7c00u : 0x7f80u;
      bool finite = true;
      for (uint64_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        finite &= (h & mask) != mask;
      }
      if (finite) return count;
      for (uint64_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        if ((h & mask) == mask) return i;
      }
      return count;
    }
    case DType::Q8_0:
      for (uint64_t b = 0; b < count / kQ8BlockElems; ++b) {
        uint16_t h;
        std::memcpy(&h, p + b * kQ8BlockBytes, 2);
        if ((h & 0x7c00u) == 0x7c00u) return b * kQ8BlockElems;
      }
      return count;
  }
  return count;
}

}  // namespace

void check_tensor(const RawTensor& raw, const std::vector<int64_t>& shape, const std::string& source) {
  if (raw.shape != shape)
    fail_input("{}: tensor {} has shape [{}], the config needs [{}]", source, raw.name,
               fmt::join(raw.shape, ", "), fmt::join(shape, ", "));
  uint64_t count = 1;
  for (int64_t s : shape) count *= static_cast<uint64_t>(s);
  if (raw.dtype == DType::Q8_0 && count % kQ8BlockElems != 0)
    fail_input("{}: tensor {} is Q8_0 but holds {} elements, not a multiple of 32", source, raw.name, count);
  if (raw.dtype == DType::Q8_0 && shape.size() == 2 && shape[1] % kQ8BlockElems != 0)
    fail_input("{}: tensor {} is Q8_0 with rows of {} elements: its blocks of 32 would straddle rows", source,
               raw.name, shape[1]);
  if (raw.bytes != storage_bytes(raw.dtype, count))
    fail_input("{}: tensor {} holds {} bytes, {} x {} needs {}", source, raw.name, raw.bytes, count,
               to_string(raw.dtype), storage_bytes(raw.dtype, count));
  // A benchmark must not publish numbers computed from NaN or Inf weights (a corrupt or
  // overflowed export).
  if (const uint64_t at = first_non_finite(raw.dtype, raw.data, count); at < count) {
    float v = 0;
    if (raw.dtype == DType::Q8_0) {
      uint16_t h;
      std::memcpy(&h, raw.data + at / kQ8BlockElems * kQ8BlockBytes, 2);
      v = f16_to_f32(h);
    } else {
      dequantize(&v, raw.dtype, raw.data + storage_bytes(raw.dtype, at), 1);
    }
    fail_input("{}: tensor {} holds a non-finite value ({}) at element {}", source, raw.name, v, at);
  }
}

namespace {

// A checked tensor copied to the host: 1-D as fp32, 2-D in its stored type.
Tensor hold_tensor(const RawTensor& raw, const std::vector<int64_t>& shape) {
  uint64_t count = 1;
  for (int64_t s : shape) count *= static_cast<uint64_t>(s);
  Tensor t;
  t.shape = shape;
  t.dtype = shape.size() == 2 ? raw.dtype : DType::F32;
  t.bytes.resize(storage_bytes(t.dtype, count));
  if (t.dtype == raw.dtype)
    std::memcpy(t.bytes.data(), raw.data, raw.bytes);
  else
    dequantize(reinterpret_cast<float*>(t.bytes.data()), raw.dtype, raw.data, count);
  return t;
}

}  // namespace

Tensor load_tensor(const RawTensor& raw, const std::vector<int64_t>& shape, const std::string& source) {
  check_tensor(raw, shape, source);
  return hold_tensor(raw, shape);
}

std::vector<WeightSlot> weight_slots(const ModelConfig& c) {
  const int64_t d = c.dim, q = c.q_dim(), kv = c.kv_dim(), f = c.ffn_dim, v = c.vocab_size, hd = c.head_dim;
  std::vector<WeightSlot> slots = {{Role::TokenEmbedding, -1, {v, d}}, {Role::FinalNorm, -1, {d}}};
  if (!c.tied_embeddings) slots.push_back({Role::Classifier, -1, {v, d}});
  for (int i = 0; i < c.n_layers; ++i) {
    slots.push_back({Role::AttnNorm, i, {d}});
    slots.push_back({Role::Wq, i, {q, d}});
    slots.push_back({Role::Wk, i, {kv, d}});
    slots.push_back({Role::Wv, i, {kv, d}});
    slots.push_back({Role::Wo, i, {d, q}});
    if (c.qkv_bias) {
      slots.push_back({Role::Bq, i, {q}});
      slots.push_back({Role::Bk, i, {kv}});
      slots.push_back({Role::Bv, i, {kv}});
    }
    if (c.qk_norm) {
      slots.push_back({Role::QNorm, i, {hd}});
      slots.push_back({Role::KNorm, i, {hd}});
    }
    slots.push_back({Role::FfnNorm, i, {d}});
    slots.push_back({Role::WGate, i, {f, d}});
    slots.push_back({Role::WUp, i, {f, d}});
    slots.push_back({Role::WDown, i, {d, f}});
  }
  return slots;
}

Tensor& weight_of(ModelWeights& w, Role role, int layer) {
  switch (role) {
    case Role::TokenEmbedding: return w.token_embedding;
    case Role::FinalNorm: return w.final_norm;
    case Role::Classifier: return w.classifier;
    default: break;
  }
  LayerWeights& l = w.layers.at(static_cast<size_t>(layer));
  switch (role) {
    case Role::AttnNorm: return l.attn_norm;
    case Role::Wq: return l.wq;
    case Role::Wk: return l.wk;
    case Role::Wv: return l.wv;
    case Role::Wo: return l.wo;
    case Role::Bq: return l.bq;
    case Role::Bk: return l.bk;
    case Role::Bv: return l.bv;
    case Role::QNorm: return l.q_norm;
    case Role::KNorm: return l.k_norm;
    case Role::FfnNorm: return l.ffn_norm;
    case Role::WGate: return l.w_gate;
    case Role::WUp: return l.w_up;
    default: return l.w_down;
  }
}

const Tensor& weight_of(const ModelWeights& w, Role role, int layer) {
  return weight_of(const_cast<ModelWeights&>(w), role, layer);
}

uint64_t held_weight_bytes(const ModelConfig& config, const std::function<DType(Role, int)>& dtype_of) {
  uint64_t n = 0;
  for (const WeightSlot& s : weight_slots(config)) {
    uint64_t count = 1;
    for (int64_t d : s.shape) count *= static_cast<uint64_t>(d);
    n += storage_bytes(s.shape.size() == 2 ? dtype_of(s.role, s.layer) : DType::F32, count);
  }
  return n;
}

uint64_t held_file_weight_bytes(const ModelConfig& config, const TensorLookup& lookup) {
  return held_weight_bytes(config, [&](Role role, int layer) {
    const std::optional<RawTensor> raw = lookup(role, layer);
    return raw ? raw->dtype : DType::F32;
  });
}

void visit_weights(const ModelConfig& c, const TensorLookup& lookup, const std::string& source,
                   const WeightVisitor& visit) {
  for (const WeightSlot& s : weight_slots(c)) {
    std::optional<RawTensor> raw = lookup(s.role, s.layer);
    if (!raw) {
      if (s.layer >= 0) fail_input("{}: missing tensor for layer {} {}", source, s.layer, to_string(s.role));
      fail_input("{}: missing tensor for the {}", source, to_string(s.role));
    }
    check_tensor(*raw, s.shape, source);
    visit(s, *raw);
  }
}

ModelWeights assemble_weights(const ModelConfig& c, const TensorLookup& lookup, const std::string& source) {
  ModelWeights w;
  w.layers.resize(c.n_layers);
  visit_weights(c, lookup, source, [&](const WeightSlot& s, const RawTensor& raw) {
    weight_of(w, s.role, s.layer) = hold_tensor(raw, s.shape);
  });
  return w;
}

}  // namespace kvb
