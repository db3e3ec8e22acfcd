#include "tests/gguf_writer.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace kvb::test {

namespace {

template <typename T>
GgufValue make_scalar(GgufType type, T v) {
  GgufValue out;
  out.type = type;
  out.scalar.resize(sizeof(T));
  std::memcpy(out.scalar.data(), &v, sizeof(T));  // the test hosts are little-endian, like GGUF
  return out;
}

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

// A value without its type tag (the tag precedes it in a key/value pair, not in an array).
void put_value(std::vector<uint8_t>& out, const GgufValue& v) {
  switch (v.type) {
    case GgufType::String: put_string(out, v.str); break;
    case GgufType::Array:
      put<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
      put<uint64_t>(out, v.items.size());
      for (const GgufValue& item : v.items) put_value(out, item);
      break;
    default: out.insert(out.end(), v.scalar.begin(), v.scalar.end());
  }
}

uint64_t align_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

}  // namespace

GgufValue GgufValue::u8(uint8_t v) { return make_scalar(GgufType::U8, v); }
GgufValue GgufValue::i8(int8_t v) { return make_scalar(GgufType::I8, v); }
GgufValue GgufValue::u16(uint16_t v) { return make_scalar(GgufType::U16, v); }
GgufValue GgufValue::i16(int16_t v) { return make_scalar(GgufType::I16, v); }
GgufValue GgufValue::u32(uint32_t v) { return make_scalar(GgufType::U32, v); }
GgufValue GgufValue::i32(int32_t v) { return make_scalar(GgufType::I32, v); }
GgufValue GgufValue::u64(uint64_t v) { return make_scalar(GgufType::U64, v); }
GgufValue GgufValue::i64(int64_t v) { return make_scalar(GgufType::I64, v); }
GgufValue GgufValue::f32(float v) { return make_scalar(GgufType::F32, v); }
GgufValue GgufValue::f64(double v) { return make_scalar(GgufType::F64, v); }
GgufValue GgufValue::boolean(bool v) { return make_scalar(GgufType::Bool, static_cast<uint8_t>(v)); }

GgufValue GgufValue::string(std::string v) {
  GgufValue out;
  out.type = GgufType::String;
  out.str = std::move(v);
  return out;
}

GgufValue GgufValue::array(GgufType elem_type, std::vector<GgufValue> items) {
  GgufValue out;
  out.type = GgufType::Array;
  out.elem_type = elem_type;
  out.items = std::move(items);
  return out;
}

GgufValue GgufValue::strings(const std::vector<std::string>& v) {
  std::vector<GgufValue> items;
  for (const std::string& s : v) items.push_back(string(s));
  return array(GgufType::String, std::move(items));
}

GgufValue GgufValue::f32s(const std::vector<float>& v) {
  std::vector<GgufValue> items;
  for (float f : v) items.push_back(f32(f));
  return array(GgufType::F32, std::move(items));
}

GgufValue GgufValue::i32s(const std::vector<int32_t>& v) {
  std::vector<GgufValue> items;
  for (int32_t i : v) items.push_back(i32(i));
  return array(GgufType::I32, std::move(items));
}

uint16_t to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) return sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u);  // inf, nan
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // rounds to a value above 65504: inf
  if (abs < 0x38800000u) {
    // Below 2^-14: a half subnormal, a multiple of 2^-24 (scaling by a power of two is exact).
    float a;
    std::memcpy(&a, &abs, 4);
    return sign | static_cast<uint16_t>(std::nearbyint(a * 16777216.0f));
  }
  const uint32_t mant = abs & 0x7fffffu;
  const uint32_t exp = (abs >> 23) - 127 + 15;
  uint32_t h = (exp << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry correctly bumps the exponent
  return sign | static_cast<uint16_t>(h);
}

uint16_t to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet nan
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

std::vector<uint8_t> encode_tensor(const std::vector<float>& values, uint32_t ggml_type) {
  std::vector<uint8_t> out;
  switch (ggml_type) {
    case kGgmlF32:
      for (float v : values) put(out, v);
      break;
    case kGgmlF16:
      for (float v : values) put(out, to_f16(v));
      break;
    case kGgmlBF16:
      for (float v : values) put(out, to_bf16(v));
      break;
    case kGgmlQ8_0:
      if (values.size() % 32 != 0) throw std::invalid_argument("Q8_0 needs a multiple of 32 values");
      for (size_t b = 0; b < values.size(); b += 32) {
        float amax = 0.0f;
        for (size_t i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(values[b + i]));
        const float d = amax / 127.0f;
        put(out, to_f16(d));
        for (size_t i = 0; i < 32; ++i) {
          const float q = d == 0.0f ? 0.0f : std::nearbyint(values[b + i] / d);
          put(out, static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f)));
        }
      }
      break;
    default: throw std::invalid_argument("encode_tensor: unsupported ggml type");
  }
  return out;
}

void GgufWriter::set(const std::string& key, GgufValue value) {
  for (auto& [k, v] : meta_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  meta_.emplace_back(key, std::move(value));
}

void GgufWriter::remove(const std::string& key) {
  std::erase_if(meta_, [&](const auto& kv) { return kv.first == key; });
}

void GgufWriter::add_raw_tensor(std::string name, std::vector<uint64_t> ne, uint32_t ggml_type,
                                std::vector<uint8_t> data) {
  tensors_.push_back({std::move(name), std::move(ne), ggml_type, std::move(data), std::nullopt});
}

void GgufWriter::replace_tensor(const std::string& name, const std::vector<int64_t>& shape,
                                const std::vector<float>& values, uint32_t ggml_type) {
  remove_tensor(name);
  add_tensor(name, shape, values, ggml_type);
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape,
                            const std::vector<float>& values, uint32_t ggml_type) {
  std::vector<uint64_t> ne(shape.rbegin(), shape.rend());
  add_raw_tensor(name, std::move(ne), ggml_type, encode_tensor(values, ggml_type));
}

GgufWriter::TensorEntry& GgufWriter::tensor(const std::string& name) {
  for (TensorEntry& t : tensors_)
    if (t.name == name) return t;
  throw std::out_of_range("no tensor " + name);
}

void GgufWriter::remove_tensor(const std::string& name) {
  std::erase_if(tensors_, [&](const TensorEntry& t) { return t.name == name; });
}

std::vector<uint8_t> GgufWriter::serialize() const {
  std::vector<uint8_t> out(4);
  std::memcpy(out.data(), "GGUF", 4);
  put<uint32_t>(out, version);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, meta_.size());
  for (const auto& [key, value] : meta_) {
    put_string(out, key);
    put<uint32_t>(out, static_cast<uint32_t>(value.type));
    put_value(out, value);
  }
  std::vector<uint64_t> offsets;
  uint64_t next = 0;
  for (const TensorEntry& t : tensors_) {
    offsets.push_back(next);
    next = align_up(next + t.data.size(), alignment);
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.ne.size()));
    for (uint64_t n : t.ne) put<uint64_t>(out, n);
    put<uint32_t>(out, t.ggml_type);
    put<uint64_t>(out, t.offset.value_or(offsets.back()));
  }
  out.resize(align_up(out.size(), alignment), 0);
  const uint64_t start = out.size();
  for (size_t i = 0; i < tensors_.size(); ++i) {
    out.resize(start + offsets[i], 0);
    out.insert(out.end(), tensors_[i].data.begin(), tensors_[i].data.end());
  }
  return out;
}

uint64_t GgufWriter::data_start() const {
  uint64_t n = 4 + 4 + 8 + 8;
  std::vector<uint8_t> scratch;
  for (const auto& [key, value] : meta_) {
    scratch.clear();
    put_value(scratch, value);
    n += 8 + key.size() + 4 + scratch.size();
  }
  for (const TensorEntry& t : tensors_) n += 8 + t.name.size() + 4 + 8 * t.ne.size() + 4 + 8;
  return align_up(n, alignment);
}

void GgufWriter::write(const std::filesystem::path& path) const { write_bytes(path, serialize()); }

void write_bytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path.string());
}

std::vector<float> pattern(int64_t n, int seed) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>((i * 7 + seed * 13) % 33 - 16) / 32.0f;
  return v;
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

GgufWriter tiny_writer(const TinySpec& s) {
  GgufWriter w;
  const std::string a = s.arch + ".";
  const int hd = s.head_dim ? s.head_dim : s.dim / s.heads;
  const int64_t d = s.dim, q = int64_t(s.heads) * hd, kv = int64_t(s.kv_heads) * hd, f = s.ffn;
  const int64_t v = static_cast<int64_t>(kSpmTokens.size());
  w.set("general.architecture", GgufValue::string(s.arch));
  w.set("general.name", GgufValue::string("tiny-" + s.arch));
  w.set(a + "context_length", GgufValue::u32(128));
  w.set(a + "embedding_length", GgufValue::u32(s.dim));
  w.set(a + "feed_forward_length", GgufValue::u32(s.ffn));
  w.set(a + "block_count", GgufValue::u32(s.layers));
  w.set(a + "attention.head_count", GgufValue::u32(s.heads));
  w.set(a + "attention.head_count_kv", GgufValue::u32(s.kv_heads));
  if (s.head_dim) w.set(a + "attention.key_length", GgufValue::u32(s.head_dim));
  w.set(a + "attention.layer_norm_rms_epsilon", GgufValue::f32(1e-6f));
  w.set(a + "rope.freq_base", GgufValue::f32(1000000.0f));
  w.set("tokenizer.ggml.model", GgufValue::string("llama"));
  w.set("tokenizer.ggml.tokens", GgufValue::strings(kSpmTokens));
  w.set("tokenizer.ggml.scores", GgufValue::f32s(kSpmScores));
  w.set("tokenizer.ggml.token_type", GgufValue::i32s(kSpmTypes));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(1));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(2));

  int seed = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    w.add_tensor(name, shape, pattern(numel(shape), ++seed));
  };
  add("token_embd.weight", {v, d});
  add("output_norm.weight", {d});
  if (!s.tied) add("output.weight", {v, d});
  for (int l = 0; l < s.layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    add(b + "attn_norm.weight", {d});
    add(b + "attn_q.weight", {q, d});
    add(b + "attn_k.weight", {kv, d});
    add(b + "attn_v.weight", {kv, d});
    add(b + "attn_output.weight", {d, q});
    if (s.arch == "qwen2") {
      add(b + "attn_q.bias", {q});
      add(b + "attn_k.bias", {kv});
      add(b + "attn_v.bias", {kv});
    }
    if (s.arch == "qwen3") {
      add(b + "attn_q_norm.weight", {hd});
      add(b + "attn_k_norm.weight", {hd});
    }
    add(b + "ffn_norm.weight", {d});
    add(b + "ffn_gate.weight", {f, d});
    add(b + "ffn_up.weight", {f, d});
    add(b + "ffn_down.weight", {d, f});
  }
  return w;
}

}  // namespace kvb::test
