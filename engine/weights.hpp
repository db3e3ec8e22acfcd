#pragma once
// Model weights on the host as the CPU backend computes from them, and the one place where tensors
// read from any file format are checked against the config. Matrices keep the file's storage type
// (F32, BF16, F16, Q8_0: kernels/dtype.hpp), so a bf16 checkpoint costs 2 bytes per weight in
// memory as on disk; vectors (norms, biases) are always converted to fp32. Every value is finite.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/model_config.hpp"
#include "kernels/dtype.hpp"
#include "kernels/ops.hpp"

namespace kvb {

// Allocates without zeroing: a tensor's bytes are always written right after (gigabytes of them).
template <class T>
struct UninitializedAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = UninitializedAllocator<U>;
  };
  UninitializedAllocator() = default;
  template <class U>
  UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

struct Tensor {
  std::vector<int64_t> shape;  // row-major, outermost first; matrices are [out, in]
  DType dtype = DType::F32;
  std::vector<uint8_t, UninitializedAllocator<uint8_t>> bytes;  // storage_bytes(dtype, numel())

  bool empty() const { return bytes.empty(); }
  int64_t numel() const;
  // The values of an F32 tensor (every vector; the matrices of an fp32 file); RuntimeFailure for
  // any other type.
  const float* f32() const;
  float* f32();
  // A 2-D tensor as the matmul reads it.
  cpu::WeightMatrix matrix() const;
};

// An F32 tensor holding `values` (shape's product elements).
Tensor f32_tensor(std::vector<int64_t> shape, std::span<const float> values);
// `values` stored as `dtype` (rounded or quantised: kernels/dtype.hpp).
Tensor stored_tensor(std::vector<int64_t> shape, std::span<const float> values, DType dtype);
// Every element as fp32 (exact for F32/F16/BF16 and Q8_0's d * q).
std::vector<float> to_f32(const Tensor& t);

struct LayerWeights {
  Tensor attn_norm;                // [dim]
  Tensor wq, wk, wv, wo;           // [q_dim, dim], [kv_dim, dim], [kv_dim, dim], [dim, q_dim]
  Tensor bq, bk, bv;               // qkv bias (Qwen2), else empty
  Tensor q_norm, k_norm;           // [head_dim] (Qwen3), else empty
  Tensor ffn_norm;                 // [dim]
  Tensor w_gate, w_up, w_down;     // [ffn, dim], [ffn, dim], [dim, ffn]

  // Every tensor of the layer, present or not.
  std::array<const Tensor*, 14> all() const {
    return {&attn_norm, &wq, &wk, &wv, &wo, &bq, &bk, &bv, &q_norm, &k_norm, &ffn_norm, &w_gate, &w_up, &w_down};
  }
};

struct ModelWeights {
  Tensor token_embedding;  // [vocab, dim]
  std::vector<LayerWeights> layers;
  Tensor final_norm;       // [dim]
  Tensor classifier;       // [vocab, dim]; empty when tied to the embedding

  const Tensor& lm_head() const { return classifier.empty() ? token_embedding : classifier; }
  uint64_t bytes() const;  // as held: stored bytes of the matrices, 4 per element of the vectors
  // The storage types of the matrices, e.g. "bf16" or "f32+q8_0" (lower case, in DType order).
  std::string matrix_dtypes() const;
};

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

// Every weight a config needs, with its shape, in a fixed order (model-level first, then layers).
struct WeightSlot {
  Role role;
  int layer;  // -1 for the model-level roles
  std::vector<int64_t> shape;
};
std::vector<WeightSlot> weight_slots(const ModelConfig& config);
Tensor& weight_of(ModelWeights& w, Role role, int layer);
const Tensor& weight_of(const ModelWeights& w, Role role, int layer);

// Bytes the weights of `config` take once loaded when each is stored as dtype_of(role, layer)
// (matrices at their stored size, vectors as fp32): the memory estimate before loading.
uint64_t held_weight_bytes(const ModelConfig& config, const std::function<DType(Role, int)>& dtype_of);
// The same for the tensors of a file, by their stored types (a tensor the file lacks counts as
// fp32: assembly refuses it later). Reads no weight.
uint64_t held_file_weight_bytes(const ModelConfig& config, const TensorLookup& lookup);

// Checks that a stored tensor holds exactly `shape`, that its bytes match, that Q8_0 blocks do not
// straddle rows and that every value is finite; InputError("<source>: tensor <name> ...") if not.
void check_tensor(const RawTensor& raw, const std::vector<int64_t>& shape, const std::string& source);

// Every tensor the config needs, checked, in weight_slots order, still where the file holds it
// (valid during the call only): must be present, else InputError("<source>: missing tensor ...").
// A classifier is looked up only when config.tied_embeddings is not set.
using WeightVisitor = std::function<void(const WeightSlot& slot, const RawTensor& raw)>;
void visit_weights(const ModelConfig& config, const TensorLookup& lookup, const std::string& source,
                   const WeightVisitor& visit);

// The weights held on the host: visit_weights, each tensor copied by load_tensor.
ModelWeights assemble_weights(const ModelConfig& config, const TensorLookup& lookup,
                              const std::string& source);

// A stored tensor as the engine holds it (1-D: fp32; 2-D: its stored type), after check_tensor.
Tensor load_tensor(const RawTensor& raw, const std::vector<int64_t>& shape, const std::string& source);

}  // namespace kvb
