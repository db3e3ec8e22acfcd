#include "tests/hf_model_writer.hpp"

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace kvb::test {

namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Half-precision codecs, written from the IEEE layouts (not shared with the engine, whose
// decoders these tests check).

uint16_t encode_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  // Round to nearest, ties to even, on the 16 bits that are dropped.
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

double decode_bf16(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

double decode_f16(uint16_t h) {
  const double sign = (h & 0x8000u) ? -1.0 : 1.0;
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  if (exp == 0) return sign * std::ldexp(mant, -24);                 // zero and subnormals
  if (exp == 31) return mant ? NAN : sign * INFINITY;
  return sign * std::ldexp(1024 + mant, exp - 25);                    // (1.mant) * 2^(exp-15)
}

uint16_t encode_f16(float x) {
  const uint16_t sign = std::signbit(x) ? 0x8000u : 0u;
  double a = std::fabs(static_cast<double>(x));
  if (a == 0.0) return sign;
  if (a >= 65520.0) return sign | 0x7c00u;  // rounds to infinity; the tests never get here
  int e;
  std::frexp(a, &e);            // a = m * 2^e, m in [0.5, 1): the leading bit is 2^(e-1)
  const int lead = e - 1;
  const int unit_exp = lead < -14 ? -24 : lead - 10;  // spacing of representable values there
  const double q = std::nearbyint(std::ldexp(a, -unit_exp));  // default rounding: ties to even
  a = std::ldexp(q, unit_exp);  // the rounded value (it may have carried into the next binade)
  if (a < std::ldexp(1.0, -14)) return sign | static_cast<uint16_t>(q);  // subnormal
  std::frexp(a, &e);
  const int exp_field = e - 1 + 15;
  const int mant = static_cast<int>(std::ldexp(a, -(e - 1 - 10))) - 1024;
  return sign | static_cast<uint16_t>(exp_field << 10) | static_cast<uint16_t>(mant);
}

// ---------------------------------------------------------------------------------------------

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

namespace {

void write_with_header(const fs::path& path, const json& header, const std::string& data) {
  std::string text = header.dump();
  // The format pads the header with spaces so the data starts 8-byte aligned.
  while ((8 + text.size()) % 8 != 0) text += ' ';
  const uint64_t n = text.size();
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  write_text(path, bytes + text + data);
}

}  // namespace

void write_safetensors(const fs::path& path, const std::vector<SafetensorsEntry>& tensors) {
  json header = json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const auto& t : tensors) {
    const uint64_t begin = data.size();
    data.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  write_with_header(path, header, data);
}

json read_safetensors_header(const fs::path& path) {
  const std::string text = read_text(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<uint8_t>(text[i])) << (8 * i);
  return json::parse(text.substr(8, n));
}

void rewrite_safetensors_header(const fs::path& path, const json& header) {
  const std::string text = read_text(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<uint8_t>(text[i])) << (8 * i);
  write_with_header(path, header, text.substr(8 + n));
}

namespace {

const char* torch_dtype_name(const std::string& dtype) {
  if (dtype == "BF16") return "bfloat16";
  if (dtype == "F16") return "float16";
  return "float32";
}

const char* model_type(const std::string& arch) {
  if (arch == "Qwen2ForCausalLM") return "qwen2";
  if (arch == "Qwen3ForCausalLM") return "qwen3";
  return "llama";
}

json make_config(const HfTinySpec& s) {
  json c;
  c["architectures"] = {s.architecture};
  c["model_type"] = model_type(s.architecture);
  c["hidden_size"] = s.hidden;
  c["intermediate_size"] = s.ffn;
  c["num_hidden_layers"] = s.layers;
  c["num_attention_heads"] = s.heads;
  c["num_key_value_heads"] = s.kv_heads;
  if (s.head_dim > 0) c["head_dim"] = s.head_dim;
  c["vocab_size"] = s.vocab;
  c["rms_norm_eps"] = s.rms_eps;
  c["rope_theta"] = s.rope_theta;
  c["max_position_embeddings"] = s.max_positions;
  c["tie_word_embeddings"] = s.tied;
  c["hidden_act"] = "silu";
  c["bos_token_id"] = 1;
  c["eos_token_id"] = {2, 3};  // a list, as Llama 3 configs write it
  c["torch_dtype"] = torch_dtype_name(s.dtype);
  c["rope_scaling"] = s.rope_scaling;
  if (s.architecture != "Qwen2ForCausalLM") c["attention_bias"] = s.attention_bias;
  c["_name_or_path"] = "kvbench/tiny-test";
  return c;
}

}  // namespace

HfTinyModel write_hf_model(const fs::path& dir, const HfTinySpec& s) {
  fs::create_directories(dir);
  write_text(dir / "config.json", make_config(s).dump(2));

  HfTinyModel model;
  model.spec = s;
  std::mt19937_64 rng(s.seed);
  std::vector<std::string> order;  // file order

  // Uniform(-a, a) with a = sqrt(3 / fan_in) keeps activations near unit variance, so attention
  // weights are neither uniform nor one-hot and logits are O(1).
  auto add = [&](const std::string& name, std::vector<int64_t> shape, double lo, double hi) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::uniform_real_distribution<double> dist(lo, hi);
    HfTensorData t;
    t.shape = std::move(shape);
    t.values.resize(n);
    for (double& v : t.values) v = dist(rng);
    model.tensors[name] = std::move(t);
    order.push_back(name);
  };
  auto add_matrix = [&](const std::string& name, int64_t out, int64_t in) {
    const double a = std::sqrt(3.0 / double(in));
    add(name, {out, in}, -a, a);
  };
  auto add_norm = [&](const std::string& name, int64_t n) { add(name, {n}, 0.7, 1.3); };

  const int64_t D = s.hidden, hd = s.effective_head_dim(), Q = int64_t(s.heads) * hd,
                KV = int64_t(s.kv_heads) * hd, F = s.ffn, V = s.vocab;
  add("model.embed_tokens.weight", {V, D}, -1.0, 1.0);
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add_norm(p + "input_layernorm.weight", D);
    add_matrix(p + "self_attn.q_proj.weight", Q, D);
    add_matrix(p + "self_attn.k_proj.weight", KV, D);
    add_matrix(p + "self_attn.v_proj.weight", KV, D);
    add_matrix(p + "self_attn.o_proj.weight", D, Q);
    if (s.qkv_bias()) {
      add(p + "self_attn.q_proj.bias", {Q}, -0.3, 0.3);
      add(p + "self_attn.k_proj.bias", {KV}, -0.3, 0.3);
      add(p + "self_attn.v_proj.bias", {KV}, -0.3, 0.3);
    }
    if (s.attention_bias) add(p + "self_attn.o_proj.bias", {D}, 0.0, 0.0);  // zeros, as the engine requires
    if (s.qk_norm()) {
      add_norm(p + "self_attn.q_norm.weight", hd);
      add_norm(p + "self_attn.k_norm.weight", hd);
    }
    add_norm(p + "post_attention_layernorm.weight", D);
    add_matrix(p + "mlp.gate_proj.weight", F, D);
    add_matrix(p + "mlp.up_proj.weight", F, D);
    add_matrix(p + "mlp.down_proj.weight", D, F);
  }
  add_norm("model.norm.weight", D);
  if (!s.tied) add_matrix("lm_head.weight", V, D);

  // Round to the stored dtype and keep the rounded values for the reference.
  std::vector<SafetensorsEntry> entries;
  for (const std::string& name : order) {
    HfTensorData& t = model.tensors[name];
    SafetensorsEntry e;
    e.name = name;
    e.dtype = s.dtype;
    e.shape = t.shape;
    for (double& v : t.values) {
      const float f = static_cast<float>(v);
      if (s.dtype == "F32") {
        uint8_t b[4];
        std::memcpy(b, &f, 4);
        e.bytes.insert(e.bytes.end(), b, b + 4);
        v = f;
      } else {
        const uint16_t h = s.dtype == "BF16" ? encode_bf16(f) : encode_f16(f);
        e.bytes.push_back(static_cast<uint8_t>(h & 0xff));
        e.bytes.push_back(static_cast<uint8_t>(h >> 8));
        v = s.dtype == "BF16" ? decode_bf16(h) : decode_f16(h);
      }
    }
    entries.push_back(std::move(e));
  }

  if (s.shards <= 1) {
    write_safetensors(dir / "model.safetensors", entries);
    return model;
  }
  // Round-robin over the shards so that every shard holds tensors of several layers.
  json weight_map = json::object();
  uint64_t total = 0;
  for (int k = 0; k < s.shards; ++k) {
    char file[64];
    std::snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", k + 1, s.shards);
    std::vector<SafetensorsEntry> part;
    for (size_t i = k; i < entries.size(); i += s.shards) {
      part.push_back(entries[i]);
      weight_map[entries[i].name] = file;
      total += entries[i].bytes.size();
    }
    write_safetensors(dir / file, part);
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_text(dir / "model.safetensors.index.json", index.dump(2));
  return model;
}

}  // namespace kvb::test
