#pragma once
// A loaded model: config, weights (in their stored types), tokenizer and where it came from.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/model_config.hpp"
#include "formats/chat_template_source.hpp"
#include "engine/tokenizer.hpp"
#include "engine/weights.hpp"

namespace kvb {

struct ModelFile {
  std::string path;
  uint64_t bytes = 0;
  std::string sha256;  // hex; empty when hashing was switched off
  double hash_seconds = 0;  // wall time spent on its sha256 (0 when not hashed)
  bool hash_cached = false;  // the sha256 came from the digest cache (file unchanged since hashed)
};

struct ModelInfo {
  std::string source;        // the --model argument as given
  std::string format;        // "llama2c", "gguf", "hf", "synthetic"
  std::string name;          // human name (file stem, general.name, preset)
  bool synthetic = false;
  uint64_t synthetic_seed = 0;  // synthetic models: the seed every weight is derived from
  std::string stored_dtype;  // dtype(s) in the file, e.g. "F32", "BF16", "F16+Q8_0"
  std::vector<ModelFile> files;
  // How loading went (set by run/benchmark.cpp): wall seconds from opening the files to the weights
  // being usable (on a GPU including device_seconds, putting them on the device), and the
  // process's peak resident memory by then. All 0 when not measured.
  struct LoadStats {
    double seconds = 0, device_seconds = 0;
    uint64_t host_peak_rss_bytes = 0;
  } load;
};

// How a model ships to be sampled (a Hugging Face folder's generation_config.json): each value
// absent where the file does not say; run/benchmark.cpp uses them unless flags override.
struct GenerationDefaults {
  std::optional<float> temperature, top_p, min_p;
  std::optional<int> top_k;
  std::optional<bool> do_sample;  // false: greedy
  std::vector<int> eos_ids;       // every stop token listed (besides the config's eos)
  std::string source;             // the file; empty when the model has none
};

struct Model {
  ModelConfig config;
  ModelWeights weights;
  std::unique_ptr<Tokenizer> tokenizer;
  ModelInfo info;
  GenerationDefaults generation;
  ChatTemplateSource chat_template;  // empty text when the model ships none
};

// Whether `token` ends a generation: the config's EOS, a stop token of the generation defaults,
// or BOS (a model that starts a new document has finished this one: llama2.c's TinyStories
// models end every story that way).
bool is_stop_token(const Model& model, int token);

struct LoadOptions {
  std::string tokenizer_path;  // llama2.c only: tokenizer file (default: tok*.bin / tokenizer.bin beside the model)
  bool hash_files = true;      // sha256 of every model file for the result's identity
  int64_t kv_slots = 0;        // KV-cache slots per (layer, kv-head) the run will hold, all sequences together
  uint64_t available_bytes = 0;  // 0 = read MemAvailable from /proc/meminfo
  bool config_only = false;      // validate the file and read its config; no weights, no tokenizer
  bool skip_weights = false;     // config, tokenizer, chat template and generation config only (kvbench prompt)
  // Weights only, none held: each checked tensor is passed, still in the file's mapping, to this
  // visitor (the CUDA engine streams them to the device); no tokenizer, no hashing, no memory
  // estimate. The returned model has the config and no weights.
  const WeightVisitor* stream_weights = nullptr;
};

// Loads `spec`: "synthetic:<preset>[,seed=N]", "builtin:<name>" (engine/bundled_models.hpp), a directory (Hugging Face config.json +
// safetensors), a .gguf file, or a llama2.c .bin checkpoint. Throws InputError on bad input,
// including when the estimated memory (weights as stored + KV cache) exceeds what is available.
Model load_model(const std::string& spec, const LoadOptions& options = {});

// Format loaders (engine/loaders/), dispatched by load_model.
Model load_llama2c(const std::string& path, const LoadOptions& options);
Model load_gguf(const std::string& path, const LoadOptions& options);
Model load_hf_dir(const std::string& dir, const LoadOptions& options);
Model load_synthetic(const std::string& spec, const LoadOptions& options);

// The config of a synthetic preset ("tiny", "qwen3-8b", ...) without generating weights;
// InputError for an unknown preset.
ModelConfig synthetic_preset_config(const std::string& preset);

// A synthetic model's weights, in the order that fixes each tensor's key: element i of a tensor
// is synthetic_value(key, i, scale, offset) (util/counter_hash.hpp), on the host or a device.
struct SyntheticTensor {
  Role role;
  int layer;  // -1 for model-level roles
  std::vector<int64_t> shape;
  uint64_t key;
  float scale, offset;
};
std::vector<SyntheticTensor> synthetic_tensor_plan(const ModelConfig& config, uint64_t seed);

// What a loader returns with options.config_only: the config and the model's identity.
Model config_only_model(const ModelConfig& config, const std::string& source, const std::string& format);

// Refuses (InputError naming `source`) when `weight_bytes` (held_weight_bytes: what the loaded
// weights will take, engine/weights.hpp) plus the fp32 KV cache of options.kv_slots exceed the
// available memory. Every loader calls it after reading the config and before loading any weight.
void ensure_memory_fits(const ModelConfig& config, const LoadOptions& options, const std::string& source,
                        uint64_t weight_bytes);

// What every file loader does with its tensors once the config is read: with options.stream_weights
// passes each to it (and returns no weights); else checks the memory estimate and returns them held.
// Not called with options.skip_weights.
ModelWeights take_weights(const ModelConfig& config, const TensorLookup& lookup, const LoadOptions& options,
                          const std::string& source);

// Path, size and (when options.hash_files) sha256 of a model file, for ModelInfo::files; large
// files' digests are remembered between runs (util/file_digest.hpp).
ModelFile describe_file(const std::string& path, const LoadOptions& options);

}  // namespace kvb
