// synthetic:<preset>[,seed=N][,dtype=bf16|f16|f32|q8_0] — real model shapes with seeded random
// weights and no file, for throughput, memory and profiling runs anywhere. Matrices are stored as
// dtype (default bf16, as real checkpoints ship); every result made with one says "synthetic".
#include <algorithm>
#include <cmath>
#include <utility>

#include <fmt/ranges.h>

#include "engine/model.hpp"
#include "engine/tokenizers/byte_tokenizer.hpp"
#include "util/counter_hash.hpp"
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

std::vector<SyntheticTensor> synthetic_tensor_plan(const ModelConfig& c, uint64_t seed) {
  const int64_t d = c.dim, q = c.q_dim(), kv = c.kv_dim(), f = c.ffn_dim, v = c.vocab_size;
  std::vector<SyntheticTensor> plan;
  uint64_t id = 0;  // the order below fixes every tensor's key: keep it
  auto add = [&](Role role, int layer, std::vector<int64_t> shape, float scale, float offset) {
    plan.push_back(SyntheticTensor{role, layer, std::move(shape), splitmix64(seed * 0x100000001b3ull + id++), scale, offset});
  };
  auto matrix = [&](Role role, int layer, int64_t out, int64_t in) { add(role, layer, {out, in}, 1.0f / std::sqrt(float(in)), 0.0f); };
  auto norm = [&](Role role, int layer, int64_t n) { add(role, layer, {n}, 0.05f, 1.0f); };
  auto bias = [&](Role role, int layer, int64_t n) { add(role, layer, {n}, 0.02f, 0.0f); };
  add(Role::TokenEmbedding, -1, {v, d}, 1.0f, 0.0f);
  norm(Role::FinalNorm, -1, d);
  if (!c.tied_embeddings) matrix(Role::Classifier, -1, v, d);
  for (int l = 0; l < c.n_layers; ++l) {
    norm(Role::AttnNorm, l, d);
    matrix(Role::Wq, l, q, d);
    matrix(Role::Wk, l, kv, d);
    matrix(Role::Wv, l, kv, d);
    matrix(Role::Wo, l, d, q);
    if (c.qkv_bias) {
      bias(Role::Bq, l, q);
      bias(Role::Bk, l, kv);
      bias(Role::Bv, l, kv);
    }
    if (c.qk_norm) {
      norm(Role::QNorm, l, c.head_dim);
      norm(Role::KNorm, l, c.head_dim);
    }
    norm(Role::FfnNorm, l, d);
    matrix(Role::WGate, l, f, d);
    matrix(Role::WUp, l, f, d);
    matrix(Role::WDown, l, d, f);
  }
  return plan;
}

namespace {

// Element i depends only on (seed, tensor, i), so weights are identical whatever the thread count
// or device (util/counter_hash.hpp). Matrices are stored as `dtype` (rounded from fp32), vectors
// stay fp32, as in a checkpoint.
Tensor generate_tensor(const SyntheticTensor& spec, DType dtype) {
  Tensor t;
  t.shape = spec.shape;
  t.dtype = t.shape.size() == 2 ? dtype : DType::F32;
  const int64_t n = t.numel();
  t.bytes.resize(storage_bytes(t.dtype, uint64_t(n)));
  constexpr int64_t kChunk = 1 << 16;  // a multiple of Q8_0's block, so chunks start at blocks
  const int chunks = static_cast<int>((n + kChunk - 1) / kChunk);
  cpu::parallel_for(chunks, chunks > 16, [&](int c) {
    thread_local std::vector<float> values(kChunk);
    const int64_t begin = c * kChunk, end = std::min(n, begin + kChunk);
    for (int64_t i = begin; i < end; ++i)
      values[i - begin] = synthetic_value(spec.key, static_cast<uint64_t>(i), spec.scale, spec.offset);
    quantize(t.bytes.data() + storage_bytes(t.dtype, uint64_t(begin)), t.dtype, values.data(), uint64_t(end - begin));
  });
  return t;
}

DType parse_synthetic_dtype(const std::string& value, const std::string& spec) {
  for (DType d : {DType::BF16, DType::F16, DType::F32, DType::Q8_0})
    if (value == lower_name(d)) return d;
  fail_input("--model {}: dtype must be bf16, f16, f32 or q8_0, not '{}'", spec, value);
}

}  // namespace

Model load_synthetic(const std::string& spec, const LoadOptions& options) {
  std::string rest = spec.substr(std::string("synthetic:").size());
  std::string preset = rest.substr(0, rest.find(','));
  uint64_t seed = 0;
  DType dtype = DType::BF16;  // as the real checkpoints ship
  for (size_t at = rest.find(','); at != std::string::npos;) {
    const size_t next = rest.find(',', at + 1);
    const std::string opt = rest.substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1);
    if (opt.rfind("dtype=", 0) == 0) {
      dtype = parse_synthetic_dtype(opt.substr(6), spec);
      at = next;
      continue;
    }
    if (opt.rfind("seed=", 0) != 0)
      fail_input("--model {}: unknown option '{}' (expected seed=N or dtype=bf16|f16|f32|q8_0)", spec, opt);
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
  if (dtype == DType::Q8_0)
    for (auto [what, n] : {std::pair{"dim", c.dim}, {"q_dim", c.q_dim()}, {"ffn_dim", c.ffn_dim}})
      if (n % kQ8BlockElems != 0)
        fail_input("--model {}: Q8_0 stores rows in blocks of 32, and the preset's {} is {}", spec, what, n);
  if (options.stream_weights)
    fail_runtime("--model {}: a synthetic model has no file to stream (the CUDA engine generates it)", spec);
  Model m;
  if (options.config_only || options.skip_weights) {
    m = config_only_model(c, spec, "synthetic");
  } else {
    ensure_memory_fits(c, options, "--model " + spec, held_weight_bytes(c, [&](Role, int) { return dtype; }));
    m.config = c;
    m.weights.layers.resize(c.n_layers);
    for (const SyntheticTensor& t : synthetic_tensor_plan(c, seed)) weight_of(m.weights, t.role, t.layer) = generate_tensor(t, dtype);
    m.info.stored_dtype = fmt::format("{} (generated)", to_string(dtype));
  }
  // The byte tokenizer costs nothing, so even a config-only synthetic model can encode prompts
  // (the CUDA backend generates the weights on the device from info.synthetic_seed).
  m.tokenizer = std::make_unique<ByteTokenizer>(c.vocab_size);
  m.info.source = spec;
  m.info.format = "synthetic";
  m.info.name = fmt::format("synthetic:{},seed={},dtype={}", preset, seed, lower_name(dtype));
  m.info.synthetic = true;
  m.info.synthetic_seed = seed;
  return m;
}

}  // namespace kvb
