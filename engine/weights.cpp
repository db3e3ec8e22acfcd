#include "engine/weights.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include <fmt/ranges.h>

#include "util/errors.hpp"

namespace kvb {

const char* to_string(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::Q8_0: return "Q8_0";
  }
  return "?";
}

uint64_t storage_bytes(DType t, uint64_t count) {
  switch (t) {
    case DType::F32: return count * 4;
    case DType::F16:
    case DType::BF16: return count * 2;
    case DType::Q8_0: return count / 32 * 34;  // fp16 scale + 32 int8 per block
  }
  return 0;
}

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

uint64_t ModelWeights::bytes() const {
  uint64_t n = token_embedding.data.size() + final_norm.data.size() + classifier.data.size();
  for (const auto& l : layers) {
    for (const Tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.bq, &l.bk, &l.bv, &l.q_norm,
                            &l.k_norm, &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down})
      n += t->data.size();
  }
  return n * sizeof(float);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ff;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_f32(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

Tensor convert_to_f32(const RawTensor& raw, const std::vector<int64_t>& shape, const std::string& source) {
  if (raw.shape != shape)
    fail_input("{}: tensor {} has shape [{}], the config needs [{}]", source, raw.name,
               fmt::join(raw.shape, ", "), fmt::join(shape, ", "));
  uint64_t count = 1;
  for (int64_t s : shape) count *= static_cast<uint64_t>(s);
  if (raw.dtype == DType::Q8_0 && count % 32 != 0)
    fail_input("{}: tensor {} is Q8_0 but holds {} elements, not a multiple of 32", source, raw.name, count);
  if (raw.bytes != storage_bytes(raw.dtype, count))
    fail_input("{}: tensor {} holds {} bytes, {} x {} needs {}", source, raw.name, raw.bytes, count,
               to_string(raw.dtype), storage_bytes(raw.dtype, count));
  Tensor t;
  t.shape = shape;
  t.data.resize(count);
  float* out = t.data.data();
  const uint8_t* p = raw.data;
  switch (raw.dtype) {
    case DType::F32:
      std::memcpy(out, p, count * 4);
      break;
    case DType::F16:
    case DType::BF16: {
      const bool is_bf16 = raw.dtype == DType::BF16;
      for (uint64_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = is_bf16 ? bf16_to_f32(h) : f16_to_f32(h);
      }
      break;
    }
    case DType::Q8_0:
      for (uint64_t b = 0; b < count / 32; ++b) {
        const uint8_t* block = p + b * 34;
        uint16_t h;
        std::memcpy(&h, block, 2);
        const float scale = f16_to_f32(h);
        for (int i = 0; i < 32; ++i) out[b * 32 + i] = scale * static_cast<int8_t>(block[2 + i]);
      }
      break;
  }
  // A benchmark must not publish numbers computed from NaN or Inf weights (a corrupt or
  // overflowed export): one pass over what was just written, the index only looked for on failure.
  bool finite = true;
  for (uint64_t i = 0; i < count; ++i) finite &= std::fabs(out[i]) <= std::numeric_limits<float>::max();
  if (!finite) {
    const uint64_t at = static_cast<uint64_t>(std::find_if(out, out + count, [](float v) { return !std::isfinite(v); }) - out);
    fail_input("{}: tensor {} holds a non-finite value ({}) at element {}", source, raw.name, out[at], at);
  }
  return t;
}

namespace {

Tensor require(const TensorLookup& lookup, Role role, int layer, const std::vector<int64_t>& shape,
               const std::string& source) {
  std::optional<RawTensor> raw = lookup(role, layer);
  if (!raw) {
    if (layer >= 0) fail_input("{}: missing tensor for layer {} {}", source, layer, to_string(role));
    fail_input("{}: missing tensor for the {}", source, to_string(role));
  }
  return convert_to_f32(*raw, shape, source);
}

}  // namespace

ModelWeights assemble_weights(const ModelConfig& c, const TensorLookup& lookup, const std::string& source) {
  const int64_t d = c.dim, q = c.q_dim(), kv = c.kv_dim(), f = c.ffn_dim, v = c.vocab_size, hd = c.head_dim;
  ModelWeights w;
  w.token_embedding = require(lookup, Role::TokenEmbedding, -1, {v, d}, source);
  w.final_norm = require(lookup, Role::FinalNorm, -1, {d}, source);
  if (!c.tied_embeddings) w.classifier = require(lookup, Role::Classifier, -1, {v, d}, source);
  w.layers.resize(c.n_layers);
  for (int i = 0; i < c.n_layers; ++i) {
    LayerWeights& l = w.layers[i];
    l.attn_norm = require(lookup, Role::AttnNorm, i, {d}, source);
    l.wq = require(lookup, Role::Wq, i, {q, d}, source);
    l.wk = require(lookup, Role::Wk, i, {kv, d}, source);
    l.wv = require(lookup, Role::Wv, i, {kv, d}, source);
    l.wo = require(lookup, Role::Wo, i, {d, q}, source);
    if (c.qkv_bias) {
      l.bq = require(lookup, Role::Bq, i, {q}, source);
      l.bk = require(lookup, Role::Bk, i, {kv}, source);
      l.bv = require(lookup, Role::Bv, i, {kv}, source);
    }
    if (c.qk_norm) {
      l.q_norm = require(lookup, Role::QNorm, i, {hd}, source);
      l.k_norm = require(lookup, Role::KNorm, i, {hd}, source);
    }
    l.ffn_norm = require(lookup, Role::FfnNorm, i, {d}, source);
    l.w_gate = require(lookup, Role::WGate, i, {f, d}, source);
    l.w_up = require(lookup, Role::WUp, i, {f, d}, source);
    l.w_down = require(lookup, Role::WDown, i, {d, f}, source);
  }
  return w;
}

}  // namespace kvb
