#pragma once
// Model weights in fp32 on the host (the CPU backend's format), and the one place where tensors
// read from any file format are checked against the config and converted.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/model_config.hpp"

namespace kvb {

struct Tensor {
  std::vector<int64_t> shape;  // row-major, outermost first; matrices are [out, in]
  std::vector<float> data;

  bool empty() const { return data.empty(); }
  int64_t numel() const { return static_cast<int64_t>(data.size()); }
  const float* ptr() const { return data.data(); }
};

struct LayerWeights {
  Tensor attn_norm;                // [dim]
  Tensor wq, wk, wv, wo;           // [q_dim, dim], [kv_dim, dim], [kv_dim, dim], [dim, q_dim]
  Tensor bq, bk, bv;               // qkv bias (Qwen2), else empty
  Tensor q_norm, k_norm;           // [head_dim] (Qwen3), else empty
  Tensor ffn_norm;                 // [dim]
  Tensor w_gate, w_up, w_down;     // [ffn, dim], [ffn, dim], [dim, ffn]
};

struct ModelWeights {
  Tensor token_embedding;  // [vocab, dim]
  std::vector<LayerWeights> layers;
  Tensor final_norm;       // [dim]
  Tensor classifier;       // [vocab, dim]; empty when tied to the embedding

  const Tensor& lm_head() const { return classifier.empty() ? token_embedding : classifier; }
  uint64_t bytes() const;
};

// Storage types found in model files.
enum class DType { F32, F16, BF16, Q8_0 };
const char* to_string(DType t);
// Bytes for `count` elements (Q8_0: count must be a multiple of 32).
uint64_t storage_bytes(DType t, uint64_t count);

// A tensor as stored in a file: not yet checked or converted.
struct RawTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // row-major, outermost first
  const uint8_t* data = nullptr;
  uint64_t bytes = 0;
};

// What each weight is, independent of file naming.
enum class Role {
  TokenEmbedding, FinalNorm, Classifier,
  AttnNorm, Wq, Wk, Wv, Wo, Bq, Bk, Bv, QNorm, KNorm, FfnNorm, WGate, WUp, WDown,
};
const char* to_string(Role r);

// Looks a weight up in a file; layer is -1 for the model-level roles. Returns nullopt when the
// file does not hold it.
using TensorLookup = std::function<std::optional<RawTensor>(Role role, int layer)>;

// Builds fp32 weights from a file's tensors: every tensor the config needs must be present with
// the exact shape, else InputError("<source>: tensor <name> ..."). A classifier is optional only
// when config.tied_embeddings is set.
ModelWeights assemble_weights(const ModelConfig& config, const TensorLookup& lookup,
                              const std::string& source);

// Converts a stored tensor to fp32 after checking it holds exactly `shape`.
Tensor convert_to_f32(const RawTensor& raw, const std::vector<int64_t>& shape, const std::string& source);

float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t b);

}  // namespace kvb
