#pragma once
// Writes tiny Hugging Face model folders (config.json + safetensors, single or sharded) with
// seeded random weights, and hands back exactly the values it wrote so that an independent
// reference forward pass can run on them. Also small helpers to corrupt such folders.
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kvb::test {

struct HfTinySpec {
  std::string architecture = "LlamaForCausalLM";  // or Qwen2ForCausalLM, Qwen3ForCausalLM
  int hidden = 48;
  int layers = 3;
  int heads = 6;
  int kv_heads = 2;
  int head_dim = 0;  // 0: leave head_dim out of config.json (hidden / heads)
  int ffn = 40;
  int vocab = 97;
  int max_positions = 2048;
  double rope_theta = 10000.0;
  double rms_eps = 1e-5;
  nlohmann::json rope_scaling = nullptr;  // written as is ("rope_scaling": null when null)
  bool tied = false;
  bool attention_bias = false;            // Llama/Qwen3: q/k/v biases (o_proj bias written as zeros)
  std::string dtype = "F32";              // F32, BF16 or F16, for every tensor
  int shards = 1;                         // 1: model.safetensors; >1: index + this many shards
  uint64_t seed = 1;

  int effective_head_dim() const { return head_dim > 0 ? head_dim : hidden / heads; }
  bool qkv_bias() const { return architecture == "Qwen2ForCausalLM" || attention_bias; }
  bool qk_norm() const { return architecture == "Qwen3ForCausalLM"; }
};

struct HfTensorData {
  std::vector<int64_t> shape;
  std::vector<double> values;  // as stored (after rounding to the file's dtype)
};

// The weights of a written folder, keyed by Hugging Face tensor name.
struct HfTinyModel {
  HfTinySpec spec;
  std::map<std::string, HfTensorData> tensors;
  const HfTensorData& at(const std::string& name) const { return tensors.at(name); }
};

// Writes config.json and the weights into `dir` (created if needed).
HfTinyModel write_hf_model(const std::filesystem::path& dir, const HfTinySpec& spec);

// One tensor for write_safetensors: raw little-endian bytes in `dtype`.
struct SafetensorsEntry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};
void write_safetensors(const std::filesystem::path& path, const std::vector<SafetensorsEntry>& tensors);

// The JSON header of a safetensors file, and a rewrite that keeps the data section as is.
nlohmann::json read_safetensors_header(const std::filesystem::path& path);
void rewrite_safetensors_header(const std::filesystem::path& path, const nlohmann::json& header);

// Whole-file helpers for editing config.json and the like.
std::string read_text(const std::filesystem::path& path);
void write_text(const std::filesystem::path& path, const std::string& text);

// The writer's own fp16/bf16 codecs (not the engine's), round to nearest even.
uint16_t encode_f16(float x);
double decode_f16(uint16_t h);
uint16_t encode_bf16(float x);
double decode_bf16(uint16_t b);

}  // namespace kvb::test
