// Hugging Face model folders: config.json, weights in safetensors (model.safetensors, or shards
// listed in model.safetensors.index.json) and, when present, tokenizer.json.
//
// Semantics follow transformers' modeling_llama / modeling_qwen2 / modeling_qwen3 and
// modeling_rope_utils: RoPE pairs (i, i + head_dim/2), GQA by repeating each kv head for
// consecutive query heads, tensors stored [out, in].
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "engine/model.hpp"
#include "engine/safetensors_file.hpp"
#include "util/json_fields.hpp"
#include "engine/tokenizers/byte_bpe_tokenizer.hpp"
#include "engine/tokenizers/ids_only_tokenizer.hpp"
#include "util/errors.hpp"
#include "util/mapped_file.hpp"

namespace kvb {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// ---------------------------------------------------------------------------------------------
// JSON helpers. `where` is the file (and, for nested objects, the object) named in messages.
// A key whose value is null counts as absent: HF configs write "rope_scaling": null and the like.

// Integers that land in ModelConfig's int fields; ModelConfig::validate checks the real bounds.
int as_int(const json& v, const std::string& where, std::string_view key) {
  const int64_t x = as_int64(v, where, key);
  if (x < std::numeric_limits<int>::min() || x > std::numeric_limits<int>::max())
    fail_input("{}: {} = {} is out of range", where, key, x);
  return static_cast<int>(x);
}

int required_int(const json& obj, std::string_view key, const std::string& where) {
  const json* v = find_key(obj, key);
  if (!v) fail_input("{}: missing required key \"{}\"", where, key);
  return as_int(*v, where, key);
}

int optional_int(const json& obj, std::string_view key, int fallback, const std::string& where) {
  const json* v = find_key(obj, key);
  return v ? as_int(*v, where, key) : fallback;
}

double as_number(const json& v, const std::string& where, std::string_view key) {
  if (!v.is_number()) fail_input("{}: {} must be a number, got {}", where, key, v.dump());
  return v.get<double>();
}

double optional_number(const json& obj, std::string_view key, double fallback, const std::string& where) {
  const json* v = find_key(obj, key);
  return v ? as_number(*v, where, key) : fallback;
}

double required_number(const json& obj, std::string_view key, const std::string& where) {
  const json* v = find_key(obj, key);
  if (!v) fail_input("{}: missing required key \"{}\"", where, key);
  return as_number(*v, where, key);
}

bool optional_bool(const json& obj, std::string_view key, bool fallback, const std::string& where) {
  const json* v = find_key(obj, key);
  if (!v) return fallback;
  if (!v->is_boolean()) fail_input("{}: {} must be true or false, got {}", where, key, v->dump());
  return v->get<bool>();
}

// bos/eos ids: an integer, null, or (generation configs, some model configs) a list whose first
// entry is the main one.
int token_id(const json& obj, std::string_view key, const std::string& where) {
  const json* v = find_key(obj, key);
  if (!v) return -1;
  if (v->is_array()) {
    if (v->empty()) return -1;
    return as_int((*v)[0], where, key);
  }
  return as_int(*v, where, key);
}

// ---------------------------------------------------------------------------------------------
// generation_config.json: sampling defaults and stop tokens. Unknown keys are ignored (the file
// carries many that do not concern decoding); a known key with a wrong type or range is an error.

GenerationDefaults read_generation_config(const std::string& path, int vocab_size) {
  const json g = read_json_file(path);
  if (!g.is_object()) fail_input("{}: expected a JSON object", path);
  GenerationDefaults d;
  d.source = path;
  auto number = [&](std::string_view key, double lo, double hi) -> std::optional<float> {
    const json* v = find_key(g, key);
    if (!v) return std::nullopt;
    const double x = as_number(*v, path, key);
    if (!(x >= lo && x <= hi)) fail_input("{}: {} must be in [{}, {}], got {}", path, key, lo, hi, v->dump());
    return static_cast<float>(x);
  };
  d.temperature = number("temperature", 0.0, 100.0);
  d.top_p = number("top_p", 0.0, 1.0);
  d.min_p = number("min_p", 0.0, 1.0);
  if (const json* v = find_key(g, "top_k")) {
    const int k = as_int(*v, path, "top_k");
    if (k < 0) fail_input("{}: top_k must be at least 0, got {}", path, k);
    d.top_k = k;
  }
  if (find_key(g, "do_sample")) d.do_sample = optional_bool(g, "do_sample", false, path);
  if (const json* v = find_key(g, "eos_token_id")) {
    const json list = v->is_array() ? *v : json::array({*v});
    for (const json& id : list) {
      const int t = as_int(id, path, "eos_token_id");
      if (t < 0 || t >= vocab_size) fail_input("{}: eos_token_id {} is outside the vocabulary of {}", path, t, vocab_size);
      d.eos_ids.push_back(t);
    }
  }
  return d;
}

// ---------------------------------------------------------------------------------------------
// config.json

Arch read_arch(const json& cfg, const std::string& where) {
  std::string name;
  if (const json* archs = find_key(cfg, "architectures")) {
    if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string())
      fail_input("{}: \"architectures\" must be a non-empty list of names, got {}", where, archs->dump());
    name = (*archs)[0].get<std::string>();
  } else if (const json* type = find_key(cfg, "model_type"); type && type->is_string()) {
    // Some exporters leave architectures out; model_type names the same family.
    const std::string t = type->get<std::string>();
    if (t == "llama") return Arch::Llama;
    if (t == "qwen2") return Arch::Qwen2;
    if (t == "qwen3") return Arch::Qwen3;
    fail_input("{}: model_type \"{}\" is not supported (supported: llama, qwen2, qwen3)", where, t);
  } else {
    fail_input("{}: missing required key \"architectures\"", where);
  }
  if (name == "LlamaForCausalLM") return Arch::Llama;
  if (name == "Qwen2ForCausalLM") return Arch::Qwen2;
  if (name == "Qwen3ForCausalLM") return Arch::Qwen3;
  fail_input("{}: architecture \"{}\" is not supported (supported: LlamaForCausalLM, Qwen2ForCausalLM, "
             "Qwen3ForCausalLM)",
             where, name);
}

// The attention-scale multiplier of YaRN when the config gives none, as transformers derives it:
// 0.1 * mscale * ln(factor) + 1, and exactly 1 when the factor does not stretch the context.
double yarn_mscale(double factor, double mscale) {
  return factor <= 1.0 ? 1.0 : 0.1 * mscale * std::log(factor) + 1.0;
}

// rope_scaling (transformers <= 4.x) or rope_parameters (newer): which frequency scaling and its
// parameters. `max_positions` is max_position_embeddings, YaRN's fallback context length.
RopeScaling read_rope_scaling(const json& rs, int64_t max_positions, const std::string& file) {
  const std::string where = file + ": rope_scaling";
  if (!rs.is_object()) fail_input("{} must be an object or null, got {}", where, rs.dump());
  std::string type;
  if (const json* t = find_key(rs, "rope_type")) type = t->is_string() ? t->get<std::string>() : t->dump();
  else if (const json* t2 = find_key(rs, "type")) type = t2->is_string() ? t2->get<std::string>() : t2->dump();
  else fail_input("{} has no \"rope_type\" (or \"type\")", where);

  RopeScaling s;
  if (type == "default") return s;
  if (type == "linear") {
    s.type = RopeScalingType::Linear;
    s.factor = required_number(rs, "factor", where);
    return s;
  }
  if (type == "llama3") {
    s.type = RopeScalingType::Llama3;
    s.factor = required_number(rs, "factor", where);
    s.low_freq_factor = required_number(rs, "low_freq_factor", where);
    s.high_freq_factor = required_number(rs, "high_freq_factor", where);
    s.original_max_position = required_int(rs, "original_max_position_embeddings", where);
    if (!(s.high_freq_factor > s.low_freq_factor))
      fail_input("{}: high_freq_factor ({}) must be greater than low_freq_factor ({})", where,
                 s.high_freq_factor, s.low_freq_factor);
    return s;
  }
  if (type == "yarn") {
    s.type = RopeScalingType::Yarn;
    s.factor = required_number(rs, "factor", where);
    // transformers: `rope_scaling.get("original_max_position_embeddings") or max_position_embeddings`.
    s.original_max_position = max_positions;
    if (const json* v = find_key(rs, "original_max_position_embeddings")) {
      const int64_t orig = as_int64(*v, where, "original_max_position_embeddings");
      if (orig != 0) s.original_max_position = orig;
    }
    // `get("beta_fast") or 32`: absent, null and 0 all mean the default.
    if (double b = optional_number(rs, "beta_fast", 0.0, where); b != 0.0) s.beta_fast = b;
    if (double b = optional_number(rs, "beta_slow", 0.0, where); b != 0.0) s.beta_slow = b;
    if (!optional_bool(rs, "truncate", true, where))
      fail_input("{}: yarn with \"truncate\": false is not supported", where);
    // Resolve the attention factor here so the engine never has to guess: explicit value, else
    // the DeepSeek-style ratio of two mscales, else the paper's default.
    if (const json* af = find_key(rs, "attention_factor")) {
      s.attention_factor = as_number(*af, where, "attention_factor");
      if (!(s.attention_factor > 0.0)) fail_input("{}: attention_factor must be > 0", where);
    } else {
      const double mscale = optional_number(rs, "mscale", 0.0, where);
      const double mscale_all_dim = optional_number(rs, "mscale_all_dim", 0.0, where);
      if (mscale != 0.0 && mscale_all_dim != 0.0)
        s.attention_factor = yarn_mscale(s.factor, mscale) / yarn_mscale(s.factor, mscale_all_dim);
      else
        s.attention_factor = yarn_mscale(s.factor, 1.0);
    }
    return s;
  }
  fail_input("{}: rope scaling type \"{}\" is not supported (supported: default, linear, llama3, yarn)", file, type);
}

struct HfConfig {
  ModelConfig config;
  bool attention_bias = false;  // o_proj may carry a bias too (checked against the weights)
  std::string name_or_path;
};

HfConfig read_config(const std::string& path) {
  const json cfg = read_json_file(path);
  if (!cfg.is_object()) fail_input("{}: expected a JSON object at the top level", path);
  HfConfig out;
  ModelConfig& c = out.config;
  c.arch = read_arch(cfg, path);
  c.rope_pairing = RopePairing::Half;
  c.dim = required_int(cfg, "hidden_size", path);
  c.ffn_dim = required_int(cfg, "intermediate_size", path);
  c.n_layers = required_int(cfg, "num_hidden_layers", path);
  c.n_heads = required_int(cfg, "num_attention_heads", path);
  c.n_kv_heads = optional_int(cfg, "num_key_value_heads", c.n_heads, path);
  c.vocab_size = required_int(cfg, "vocab_size", path);
  if (c.n_heads <= 0) fail_input("{}: num_attention_heads = {} must be > 0", path, c.n_heads);
  if (find_key(cfg, "head_dim")) {
    c.head_dim = required_int(cfg, "head_dim", path);
  } else if (c.arch == Arch::Qwen3) {
    c.head_dim = 128;  // Qwen3Config's default; real Qwen3 configs always state it
  } else {
    if (c.dim % c.n_heads != 0)
      fail_input("{}: hidden_size {} is not a multiple of num_attention_heads {} and no head_dim is given", path,
                 c.dim, c.n_heads);
    c.head_dim = c.dim / c.n_heads;
  }
  // Defaults are those of LlamaConfig / Qwen2Config / Qwen3Config.
  c.norm_eps = static_cast<float>(optional_number(cfg, "rms_norm_eps", 1e-6, path));
  c.max_seq_len = optional_int(cfg, "max_position_embeddings", c.arch == Arch::Llama ? 2048 : 32768, path);
  c.tied_embeddings = optional_bool(cfg, "tie_word_embeddings", false, path);
  c.bos_id = token_id(cfg, "bos_token_id", path);
  c.eos_id = token_id(cfg, "eos_token_id", path);

  // rope_theta sits at the top level, or (newer transformers) inside rope_parameters together
  // with the scaling.
  const json* rope_params = find_key(cfg, "rope_parameters");
  if (rope_params && !rope_params->is_object())
    fail_input("{}: rope_parameters must be an object, got {}", path, rope_params->dump());
  if (find_key(cfg, "rope_theta")) c.rope_theta = required_number(cfg, "rope_theta", path);
  else if (rope_params && find_key(*rope_params, "rope_theta"))
    c.rope_theta = required_number(*rope_params, "rope_theta", path + ": rope_parameters");
  else c.rope_theta = 10000.0;
  if (const json* rs = find_key(cfg, "rope_scaling")) c.rope_scaling = read_rope_scaling(*rs, c.max_seq_len, path);
  else if (rope_params) c.rope_scaling = read_rope_scaling(*rope_params, c.max_seq_len, path);

  // Qwen2 always has q/k/v biases; Llama and Qwen3 have them (and an o_proj bias) when
  // attention_bias is set.
  out.attention_bias = optional_bool(cfg, "attention_bias", false, path);
  c.qkv_bias = c.arch == Arch::Qwen2 || out.attention_bias;
  c.qk_norm = c.arch == Arch::Qwen3;

  // Refuse what the engine would silently compute differently.
  if (const json* act = find_key(cfg, "hidden_act"); act && *act != "silu")
    fail_input("{}: hidden_act {} is not supported (only silu)", path, act->dump());
  if (optional_bool(cfg, "mlp_bias", false, path)) fail_input("{}: mlp_bias = true is not supported", path);
  if (optional_bool(cfg, "use_sliding_window", false, path))
    fail_input("{}: use_sliding_window = true is not supported (kvbench attends to the whole context)", path);
  if (double p = optional_number(cfg, "partial_rotary_factor", 1.0, path); p != 1.0)
    fail_input("{}: partial_rotary_factor = {} is not supported (only 1)", path, p);
  if (const json* n = find_key(cfg, "_name_or_path"); n && n->is_string()) out.name_or_path = n->get<std::string>();
  c.validate(path);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Weights: safetensors files (engine/safetensors_file.hpp), one or sharded.

std::optional<DType> supported_dtype(const std::string& dtype) {
  if (dtype == "F32") return DType::F32;
  if (dtype == "F16") return DType::F16;
  if (dtype == "BF16") return DType::BF16;
  return std::nullopt;
}

// Every tensor of the folder by name, whether in one file or in shards.
class WeightFiles {
 public:
  explicit WeightFiles(const fs::path& dir) {
    const fs::path single = dir / "model.safetensors";
    const fs::path index = dir / "model.safetensors.index.json";
    std::error_code ec;
    if (fs::exists(single, ec)) {
      source_ = single.string();
      open(single.string());
      return;
    }
    if (!fs::exists(index, ec)) {
      const bool has_bin =
          fs::exists(dir / "pytorch_model.bin", ec) || fs::exists(dir / "pytorch_model.bin.index.json", ec);
      fail_input("{}: no model.safetensors or model.safetensors.index.json{}", dir.string(),
                 has_bin ? " (pytorch_model.bin is not supported; convert the weights to safetensors)" : "");
    }
    source_ = index.string();
    index_path_ = index.string();
    const json j = read_json_file(index_path_);
    if (!j.is_object()) fail_input("{}: expected a JSON object at the top level", index_path_);
    const json* map = find_key(j, "weight_map");
    if (!map || !map->is_object()) fail_input("{}: missing \"weight_map\" object", index_path_);
    for (const auto& [name, shard] : map->items()) {
      if (!shard.is_string()) fail_input("{}: weight_map[\"{}\"] must be a file name", index_path_, name);
      const std::string file = shard.get<std::string>();
      // A shard name must stay inside the folder.
      if (file.empty() || fs::path(file).is_absolute() || file.find("..") != std::string::npos)
        fail_input("{}: weight_map[\"{}\"] names \"{}\", which is not a file in the model folder", index_path_, name,
                   file);
      weight_map_[name] = file;
      if (!shards_.count(file)) {
        const fs::path p = dir / file;
        if (!fs::is_regular_file(p, ec))
          fail_input("{}: shard {} (named in weight_map for {}) is missing from the folder", index_path_, file,
                     name);
        open(p.string(), file);
      }
    }
  }

  // The file named in messages about weights in general: model.safetensors or the index.
  const std::string& source() const { return source_; }
  // Paths of the files read, in a stable order (the index first when sharded).
  std::vector<std::string> paths() const {
    std::vector<std::string> out;
    if (!index_path_.empty()) out.push_back(index_path_);
    for (const auto& [key, f] : shards_) out.push_back(f->path());
    return out;
  }

  // The tensor `name` with the file holding it, or nullptr when the folder does not have it.
  // Throws when the index points at a shard that lacks it.
  std::pair<const SafetensorsTensor*, const SafetensorsFile*> find(const std::string& name) const {
    if (index_path_.empty()) {
      const SafetensorsFile& f = *shards_.begin()->second;
      return {f.find(name), &f};
    }
    auto it = weight_map_.find(name);
    if (it == weight_map_.end()) return {nullptr, nullptr};
    const SafetensorsFile& f = *shards_.at(it->second);
    const SafetensorsTensor* e = f.find(name);
    if (!e)
      fail_input("{}: {} lists tensor {} in this shard, but the shard does not hold it", f.path(), index_path_, name);
    return {e, &f};
  }

 private:
  void open(const std::string& path, const std::string& key = "") {
    shards_.emplace(key.empty() ? path : key, std::make_unique<SafetensorsFile>(path));
  }

  std::string source_;
  std::string index_path_;
  std::map<std::string, std::string> weight_map_;
  std::map<std::string, std::unique_ptr<SafetensorsFile>> shards_;  // by file name as in the index
};

// Hugging Face's name for each weight.
std::string hf_tensor_name(Role role, int layer) {
  auto in_layer = [&](const char* suffix) { return fmt::format("model.layers.{}.{}", layer, suffix); };
  switch (role) {
    case Role::TokenEmbedding: return "model.embed_tokens.weight";
    case Role::FinalNorm: return "model.norm.weight";
    case Role::Classifier: return "lm_head.weight";
    case Role::AttnNorm: return in_layer("input_layernorm.weight");
    case Role::Wq: return in_layer("self_attn.q_proj.weight");
    case Role::Wk: return in_layer("self_attn.k_proj.weight");
    case Role::Wv: return in_layer("self_attn.v_proj.weight");
    case Role::Wo: return in_layer("self_attn.o_proj.weight");
    case Role::Bq: return in_layer("self_attn.q_proj.bias");
    case Role::Bk: return in_layer("self_attn.k_proj.bias");
    case Role::Bv: return in_layer("self_attn.v_proj.bias");
    case Role::QNorm: return in_layer("self_attn.q_norm.weight");
    case Role::KNorm: return in_layer("self_attn.k_norm.weight");
    case Role::FfnNorm: return in_layer("post_attention_layernorm.weight");
    case Role::WGate: return in_layer("mlp.gate_proj.weight");
    case Role::WUp: return in_layer("mlp.up_proj.weight");
    case Role::WDown: return in_layer("mlp.down_proj.weight");
  }
  return "?";
}

// A short name for the result file: the Hub id for a Hub cache snapshot
// (.../models--Org--Name/snapshots/<hash>), else the folder's name, else config's _name_or_path.
std::string model_name(const fs::path& dir, const std::string& name_or_path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(dir), ec);
  if (ec) p = dir;
  if (p.filename().empty()) p = p.parent_path();
  const fs::path parent = p.parent_path();
  if (parent.filename() == "snapshots") {
    const std::string repo = parent.parent_path().filename().string();
    if (repo.rfind("models--", 0) == 0) {
      std::string id = repo.substr(8);
      if (auto pos = id.find("--"); pos != std::string::npos) id.replace(pos, 2, "/");
      return id;
    }
  }
  if (!p.filename().empty()) return p.filename().string();
  return name_or_path.empty() ? "hf" : name_or_path;
}

// The weights of a folder's safetensors (one file or an index of shards), checked against the
// config; the dtypes met and the files read are reported back.
ModelWeights read_weights(const fs::path& dir, const HfConfig& hf, const LoadOptions& options,
                          std::set<DType>& dtypes_seen, std::vector<std::string>& paths) {
  const ModelConfig& c = hf.config;
  const WeightFiles weights(dir);
  TensorLookup lookup = [&](Role role, int layer) -> std::optional<RawTensor> {
    const std::string name = hf_tensor_name(role, layer);
    auto [entry, file] = weights.find(name);
    if (!entry) fail_input("{}: missing tensor {}", weights.source(), name);
    const std::optional<DType> dtype = supported_dtype(entry->dtype);
    if (!dtype)
      fail_input("{}: tensor {} has dtype {}; kvbench reads F32, F16 and BF16", file->path(), name, entry->dtype);
    dtypes_seen.insert(*dtype);
    RawTensor t;
    // Name the shard in messages about this tensor, since `source` is the index then.
    t.name = file->path() == weights.source() ? name : fmt::format("{} (in {})", name, file->path());
    t.dtype = *dtype;
    t.shape = entry->shape;
    t.data = entry->data;
    t.bytes = entry->bytes;
    return t;
  };

  ModelWeights w = take_weights(c, lookup, options, weights.source());

  // With attention_bias, transformers gives o_proj a bias as well; the engine has no slot for
  // it, so accept it only when it is all zeros (as some exports write it).
  if (hf.attention_bias) {
    for (int l = 0; l < c.n_layers; ++l) {
      const std::string name = fmt::format("model.layers.{}.self_attn.o_proj.bias", l);
      auto [entry, file] = weights.find(name);
      if (!entry) continue;
      const std::optional<DType> dtype = supported_dtype(entry->dtype);
      if (!dtype)
        fail_input("{}: tensor {} has dtype {}; kvbench reads F32, F16 and BF16", file->path(), name, entry->dtype);
      RawTensor t{name, *dtype, entry->shape, entry->data, entry->bytes};
      const Tensor bias = load_tensor(t, {c.dim}, file->path());
      if (std::any_of(bias.f32(), bias.f32() + c.dim, [](float x) { return x != 0.0f; }))
        fail_input("{}: tensor {} (an attention output bias) is not supported", file->path(), name);
    }
  }

  paths = weights.paths();
  return w;
}

// With skip_weights: the weight files and the types of the tensors the config needs, from the
// safetensors headers alone (the result names and hashes them; a GPU run streams them later). A
// folder without weights (a tokenizer and config only, for `kvbench prompt`) lists none.
void list_weights(const fs::path& dir, const ModelConfig& c, std::set<DType>& dtypes_seen, std::vector<std::string>& paths) {
  std::error_code ec;
  if (!fs::is_regular_file(dir / "model.safetensors", ec) && !fs::is_regular_file(dir / "model.safetensors.index.json", ec))
    return;
  const WeightFiles weights(dir);
  for (const WeightSlot& s : weight_slots(c))
    if (const SafetensorsTensor* entry = weights.find(hf_tensor_name(s.role, s.layer)).first)
      if (const std::optional<DType> dtype = supported_dtype(entry->dtype)) dtypes_seen.insert(*dtype);
  paths = weights.paths();
}

}  // namespace

Model load_hf_dir(const std::string& dir_arg, const LoadOptions& options) {
  const fs::path dir(dir_arg);
  const std::string config_path = (dir / "config.json").string();
  std::error_code ec;
  if (!fs::is_regular_file(config_path, ec))
    fail_input("{}: no config.json; not a Hugging Face model folder", dir_arg);
  const HfConfig hf = read_config(config_path);
  const ModelConfig& c = hf.config;
  if (options.config_only) return config_only_model(c, dir_arg, "hf");
  Model m;
  m.config = c;
  std::set<DType> dtypes_seen;
  std::vector<std::string> weight_paths;
  if (!options.skip_weights) m.weights = read_weights(dir, hf, options, dtypes_seen, weight_paths);
  else list_weights(dir, c, dtypes_seen, weight_paths);
  if (options.stream_weights) return m;

  const fs::path tokenizer_json = dir / "tokenizer.json";
  const bool has_tokenizer = fs::is_regular_file(tokenizer_json, ec);
  if (has_tokenizer) {
    m.tokenizer = load_hf_tokenizer(tokenizer_json.string());
    // Real models pad the embedding table past the tokenizer (Qwen: 151936 rows for ~151.7K
    // tokens); the other way round, encoded ids would index past the table.
    if (m.tokenizer->vocab_size() > c.vocab_size)
      fail_input("{}: the tokenizer has {} tokens but config.json's vocab_size is {}", tokenizer_json.string(),
                 m.tokenizer->vocab_size(), c.vocab_size);
  } else {
    m.tokenizer = std::make_unique<IdsOnlyTokenizer>(dir_arg, c.vocab_size, c.bos_id, c.eos_id);
  }

  const fs::path generation_config = dir / "generation_config.json";
  if (fs::is_regular_file(generation_config, ec)) {
    m.generation = read_generation_config(generation_config.string(), c.vocab_size);
    m.info.files.push_back(describe_file(generation_config.string(), options));
  }

  m.info.source = dir_arg;
  m.info.format = "hf";
  m.info.name = model_name(dir, hf.name_or_path);
  std::vector<std::string> dtype_names;
  for (DType t : dtypes_seen) dtype_names.push_back(to_string(t));
  m.info.stored_dtype = fmt::format("{}", fmt::join(dtype_names, "+"));
  m.info.files.push_back(describe_file(config_path, options));
  for (const std::string& p : weight_paths) m.info.files.push_back(describe_file(p, options));
  if (has_tokenizer) m.info.files.push_back(describe_file(tokenizer_json.string(), options));
  // What the prompt is rendered with is part of the model's identity.
  m.chat_template = read_hf_chat_template(dir);
  for (const char* name : {"tokenizer_config.json", "chat_template.jinja"})
    if (fs::is_regular_file(dir / name, ec)) m.info.files.push_back(describe_file((dir / name).string(), options));
  return m;
}

}  // namespace kvb
