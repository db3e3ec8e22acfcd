// synthetic:<preset>[,seed=N] — real model shapes with seeded random weights and no file, for
// throughput, memory and profiling runs anywhere. Every result made with one says "synthetic".
#include <cmath>
#include <map>

#include <fmt/ranges.h>

#include "engine/model.hpp"
#include "engine/tokenizers/byte_tokenizer.hpp"
#include "kernels/cpu/parallel.hpp"
#include "util/errors.hpp"

namespace kvb {

// Exported (engine/model.hpp) so that code needing only a preset's shapes, such as checking
// calibration statistics against a model, does not have to generate its weights.
ModelConfig synthetic_preset_config(const std::string& name) {
  ModelConfig c;
  c.rope_pairing = RopePairing::Half;
  c.norm_eps = 1e-6f;
  if (name == "tiny") {  // small enough that a whole default run takes well under a second
    c.arch = Arch::Llama;
    c.n_layers = 4; c.dim = 64; c.n_heads = 8; c.n_kv_heads = 4; c.head_dim = 8; c.ffn_dim = 176;
    c.vocab_size = 320; c.max_seq_len = 2048; c.rope_theta = 10000.0; c.norm_eps = 1e-5f;
  } else if (name == "qwen3-0.6b") {
    c.arch = Arch::Qwen3; c.qk_norm = true; c.tied_embeddings = true;
    c.n_layers = 28; c.dim = 1024; c.n_heads = 16; c.n_kv_heads = 8; c.head_dim = 128; c.ffn_dim = 3072;
    c.vocab_size = 151936; c.max_seq_len = 40960; c.rope_theta = 1e6;
  } else if (name == "qwen3-8b") {
    c.arch = Arch::Qwen3; c.qk_norm = true;
    c.n_layers = 36; c.dim = 4096; c.n_heads = 32; c.n_kv_heads = 8; c.head_dim = 128; c.ffn_dim = 12288;
    c.vocab_size = 151936; c.max_seq_len = 40960; c.rope_theta = 1e6;
  } else if (name == "llama3-8b") {  // also DeepSeek-R1-Distill-Llama-8B's shapes
    c.arch = Arch::Llama; c.norm_eps = 1e-5f;
    c.n_layers = 32; c.dim = 4096; c.n_heads = 32; c.n_kv_heads = 8; c.head_dim = 128; c.ffn_dim = 14336;
    c.vocab_size = 128256; c.max_seq_len = 131072; c.rope_theta = 500000.0;
    c.rope_scaling.type = RopeScalingType::Llama3;
    c.rope_scaling.factor = 8.0; c.rope_scaling.low_freq_factor = 1.0; c.rope_scaling.high_freq_factor = 4.0;
    c.rope_scaling.original_max_position = 8192;
  } else if (name == "qwen2-7b") {  // DeepSeek-R1-Distill-Qwen-7B's shapes
    c.arch = Arch::Qwen2; c.qkv_bias = true;
    c.n_layers = 28; c.dim = 3584; c.n_heads = 28; c.n_kv_heads = 4; c.head_dim = 128; c.ffn_dim = 18944;
    c.vocab_size = 152064; c.max_seq_len = 131072; c.rope_theta = 10000.0;
  } else {
    fail_input("--model synthetic:{}: unknown preset; available: tiny, qwen3-0.6b, qwen3-8b, llama3-8b, qwen2-7b", name);
  }
  c.bos_id = 256;
  c.eos_id = 257;
  return c;
}

namespace {

// Counter-based generator: value i of a tensor depends only on (seed, tensor id, i), so weights
// are identical whatever the thread count.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

Tensor random_tensor(std::vector<int64_t> shape, uint64_t seed, uint64_t tensor_id, float scale, float offset) {
  Tensor t;
  t.shape = std::move(shape);
  int64_t n = 1;
  for (int64_t s : t.shape) n *= s;
  t.data.resize(n);
  const uint64_t key = mix(seed * 0x100000001b3ull + tensor_id);
  constexpr int64_t kChunk = 1 << 16;
  const int chunks = static_cast<int>((n + kChunk - 1) / kChunk);
  cpu::parallel_for(chunks, chunks > 16, [&](int c) {
    for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) {
      // Uniform in [-1, 1) scaled to unit variance (sqrt 3).
      const double u = (mix(key ^ static_cast<uint64_t>(i)) >> 11) * 0x1.0p-53 * 2.0 - 1.0;
      t.data[i] = offset + scale * static_cast<float>(u * 1.7320508075688772);
    }
  });
  return t;
}

}  // namespace

Model load_synthetic(const std::string& spec, const LoadOptions& options) {
  std::string rest = spec.substr(std::string("synthetic:").size());
  std::string preset = rest.substr(0, rest.find(','));
  uint64_t seed = 0;
  for (size_t at = rest.find(','); at != std::string::npos;) {
    const size_t next = rest.find(',', at + 1);
    const std::string opt = rest.substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1);
    if (opt.rfind("seed=", 0) != 0) fail_input("--model {}: unknown option '{}' (expected seed=N)", spec, opt);
    try {
      size_t used = 0;
      seed = std::stoull(opt.substr(5), &used);
      if (used != opt.size() - 5) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      fail_input("--model {}: seed must be a non-negative integer", spec);
    }
    at = next;
  }
  ModelConfig c = synthetic_preset_config(preset);
  c.validate(spec);
  if (options.config_only) return config_only_model(c, spec, "synthetic");
  ensure_memory_fits(c, options, "--model " + spec);

  const int64_t d = c.dim, q = c.q_dim(), kv = c.kv_dim(), f = c.ffn_dim, v = c.vocab_size;
  uint64_t id = 0;
  auto matrix = [&](int64_t out, int64_t in) { return random_tensor({out, in}, seed, id++, 1.0f / std::sqrt(float(in)), 0.0f); };
  auto norm = [&](int64_t n) { return random_tensor({n}, seed, id++, 0.05f, 1.0f); };
  auto bias = [&](int64_t n) { return random_tensor({n}, seed, id++, 0.02f, 0.0f); };
  Model m;
  m.config = c;
  m.weights.token_embedding = random_tensor({v, d}, seed, id++, 1.0f, 0.0f);
  m.weights.final_norm = norm(d);
  if (!c.tied_embeddings) m.weights.classifier = matrix(v, d);
  m.weights.layers.resize(c.n_layers);
  for (LayerWeights& l : m.weights.layers) {
    l.attn_norm = norm(d);
    l.wq = matrix(q, d);
    l.wk = matrix(kv, d);
    l.wv = matrix(kv, d);
    l.wo = matrix(d, q);
    if (c.qkv_bias) {
      l.bq = bias(q);
      l.bk = bias(kv);
      l.bv = bias(kv);
    }
    if (c.qk_norm) {
      l.q_norm = norm(c.head_dim);
      l.k_norm = norm(c.head_dim);
    }
    l.ffn_norm = norm(d);
    l.w_gate = matrix(f, d);
    l.w_up = matrix(f, d);
    l.w_down = matrix(d, f);
  }
  m.tokenizer = std::make_unique<ByteTokenizer>(c.vocab_size);
  m.info.source = spec;
  m.info.format = "synthetic";
  m.info.name = fmt::format("synthetic:{},seed={}", preset, seed);
  m.info.synthetic = true;
  m.info.stored_dtype = "F32 (generated)";
  return m;
}

}  // namespace kvb
