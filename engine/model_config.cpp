#include "engine/model_config.hpp"

#include <cmath>
#include <utility>

#include "util/errors.hpp"

namespace kvb {

const char* to_string(Arch a) {
  switch (a) {
    case Arch::Llama: return "llama";
    case Arch::Qwen2: return "qwen2";
    case Arch::Qwen3: return "qwen3";
  }
  return "?";
}

const char* to_string(RopePairing p) { return p == RopePairing::Half ? "half" : "interleaved"; }

const char* to_string(RopeScalingType t) {
  switch (t) {
    case RopeScalingType::None: return "none";
    case RopeScalingType::Linear: return "linear";
    case RopeScalingType::Llama3: return "llama3";
    case RopeScalingType::Yarn: return "yarn";
  }
  return "?";
}

void ModelConfig::validate(const std::string& source) const {
  // Upper bounds keep a corrupt header from turning into an unbounded allocation.
  auto check = [&](const char* name, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi) fail_input("{}: {} = {} is out of range [{}, {}]", source, name, v, lo, hi);
  };
  check("n_layers", n_layers, 1, 1024);
  check("hidden size", dim, 1, 1 << 16);
  check("attention heads", n_heads, 1, 1024);
  check("kv heads", n_kv_heads, 1, 1024);
  check("head_dim", head_dim, 2, 1024);
  check("ffn size", ffn_dim, 1, 1 << 18);
  check("vocab size", vocab_size, 1, 1 << 22);
  check("context length", max_seq_len, 1, 1 << 24);
  if (n_heads % n_kv_heads != 0)
    fail_input("{}: attention heads ({}) is not a multiple of kv heads ({})", source, n_heads, n_kv_heads);
  if (head_dim % 2 != 0) fail_input("{}: head_dim {} is odd; RoPE needs pairs", source, head_dim);
  if (!(norm_eps > 0.0f && norm_eps < 1.0f)) fail_input("{}: norm eps {} is out of range", source, norm_eps);
  // Every real number of the config finite: +inf passes "> 1" and would turn every rotation
  // (and so every logit) into NaN.
  if (!(rope_theta > 1.0 && std::isfinite(rope_theta)))
    fail_input("{}: rope theta {} must be finite and > 1", source, rope_theta);
  const RopeScaling& r = rope_scaling;
  for (const auto& [name, v] : {std::pair{"factor", r.factor}, {"low_freq_factor", r.low_freq_factor},
                                {"high_freq_factor", r.high_freq_factor}, {"beta_fast", r.beta_fast},
                                {"beta_slow", r.beta_slow}, {"attention_factor", r.attention_factor}})
    if (!std::isfinite(v)) fail_input("{}: rope scaling {} {} must be finite", source, name, v);
  if (rope_scaling.type != RopeScalingType::None && !(rope_scaling.factor > 0.0))
    fail_input("{}: rope scaling factor {} must be > 0", source, rope_scaling.factor);
  if ((rope_scaling.type == RopeScalingType::Llama3 || rope_scaling.type == RopeScalingType::Yarn) &&
      rope_scaling.original_max_position <= 0)
    fail_input("{}: rope scaling {} needs original_max_position_embeddings > 0", source,
               to_string(rope_scaling.type));
  if (bos_id >= vocab_size || eos_id >= vocab_size)
    fail_input("{}: bos/eos id ({}/{}) outside the vocabulary ({})", source, bos_id, eos_id, vocab_size);
}

int64_t ModelConfig::parameter_count() const {
  const int64_t d = dim, q = q_dim(), kv = kv_dim(), f = ffn_dim, v = vocab_size;
  int64_t per_layer = d * q + 2 * d * kv + q * d + 3 * d * f + 2 * d;
  if (qkv_bias) per_layer += q + 2 * kv;
  if (qk_norm) per_layer += 2 * head_dim;
  int64_t total = per_layer * n_layers + v * d + d;
  if (!tied_embeddings) total += v * d;
  return total;
}

}  // namespace kvb
