#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "engine/bundled_models.hpp"
#include "engine/model.hpp"
#include "profiler/host_info.hpp"
#include "util/errors.hpp"
#include "util/file_digest.hpp"

namespace kvb {

namespace fs = std::filesystem;

void ensure_memory_fits(const ModelConfig& config, const LoadOptions& options, const std::string& source,
                        uint64_t weight_bytes) {
  const uint64_t kv_bytes = uint64_t(std::max<int64_t>(options.kv_slots, 0)) * config.n_layers * config.kv_dim() * 2 * sizeof(float);
  const uint64_t need = weight_bytes + kv_bytes;
  const uint64_t have = options.available_bytes ? options.available_bytes : host_available_memory_bytes();
  if (have > 0 && need > have) {
    fail_input("{}: needs about {:.2f} GiB ({:.2f} GiB of weights as stored + {:.2f} GiB KV cache) "
               "but only {:.2f} GiB of memory is available",
               source, need / double(1ull << 30), weight_bytes / double(1ull << 30), kv_bytes / double(1ull << 30),
               have / double(1ull << 30));
  }
}

ModelWeights take_weights(const ModelConfig& config, const TensorLookup& lookup, const LoadOptions& options,
                          const std::string& source) {
  if (options.stream_weights) {
    visit_weights(config, lookup, source, *options.stream_weights);
    return {};
  }
  ensure_memory_fits(config, options, source, held_file_weight_bytes(config, lookup));
  return assemble_weights(config, lookup, source);
}

bool is_stop_token(const Model& m, int token) {
  if (token == m.config.eos_id || (token == m.config.bos_id && token >= 0)) return true;
  return std::find(m.generation.eos_ids.begin(), m.generation.eos_ids.end(), token) != m.generation.eos_ids.end();
}

Model config_only_model(const ModelConfig& config, const std::string& source, const std::string& format) {
  Model m;
  m.config = config;
  m.info.source = source;
  m.info.format = format;
  m.info.name = source;
  m.info.synthetic = format == "synthetic";
  return m;
}

ModelFile describe_file(const std::string& path, const LoadOptions& options) {
  ModelFile f;
  f.path = path;
  std::error_code ec;
  f.bytes = fs::file_size(path, ec);
  if (options.hash_files) {
    const auto start = std::chrono::steady_clock::now();
    const FileDigest digest = file_sha256(path);
    f.sha256 = digest.sha256;
    f.hash_cached = digest.from_cache;
    f.hash_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return f;
}

Model load_model(const std::string& spec, const LoadOptions& options) {
  if (spec.rfind("synthetic:", 0) == 0) return load_synthetic(spec, options);
  if (spec.rfind("builtin:", 0) == 0) return load_hf_dir(resolve_model_spec(spec), options);
  std::error_code ec;
  if (!fs::exists(spec, ec)) fail_input("--model {}: no such file or directory", spec);
  if (fs::is_directory(spec, ec)) return load_hf_dir(spec, options);
  char magic[4] = {};
  {
    std::ifstream in(spec, std::ios::binary);
    in.read(magic, 4);
  }
  if (std::string_view(magic, 4) == "GGUF") return load_gguf(spec, options);
  if (spec.size() >= 5 && spec.substr(spec.size() - 5) == ".gguf")
    fail_input("{}: not a GGUF file (magic is not 'GGUF')", spec);
  return load_llama2c(spec, options);
}

}  // namespace kvb
