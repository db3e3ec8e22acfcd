#pragma once
// The shape and numerics of a decoder-only transformer, read from a model file and validated
// before any weight is touched.
#include <cstdint>
#include <string>

namespace kvb {

enum class Arch { Llama, Qwen2, Qwen3 };

// How the head dimension is split into RoPE rotation pairs.
//   Interleaved: pairs (2i, 2i+1)  -- llama2.c, GGUF llama (weights permuted at conversion)
//   Half:        pairs (i, i+d/2)  -- Hugging Face Llama/Qwen, GGUF qwen2/qwen3 (NeoX style)
enum class RopePairing { Interleaved, Half };

enum class RopeScalingType { None, Linear, Llama3, Yarn };

struct RopeScaling {
  RopeScalingType type = RopeScalingType::None;
  double factor = 1.0;
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // llama3 and yarn
  int64_t original_max_position = 0;
  // yarn
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double attention_factor = 0.0;  // 0 = derive mscale from factor (0.1 ln(factor) + 1)
};

struct ModelConfig {
  Arch arch = Arch::Llama;
  int n_layers = 0;
  int dim = 0;        // hidden size
  int n_heads = 0;    // query heads
  int n_kv_heads = 0;
  int head_dim = 0;
  int ffn_dim = 0;
  int vocab_size = 0;
  int max_seq_len = 0;  // context length the model was configured for
  float norm_eps = 1e-5f;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  RopePairing rope_pairing = RopePairing::Half;
  bool qkv_bias = false;        // Qwen2
  bool qk_norm = false;         // Qwen3: RMSNorm over each head of q and k before RoPE
  bool tied_embeddings = false; // classifier shares the token embedding
  int bos_id = -1;
  int eos_id = -1;

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  int group_size() const { return n_heads / n_kv_heads; }

  // Throws InputError("<source>: ...") when the numbers are inconsistent or out of range.
  void validate(const std::string& source) const;
  int64_t parameter_count() const;
};

const char* to_string(Arch a);
const char* to_string(RopePairing p);
const char* to_string(RopeScalingType t);

}  // namespace kvb
