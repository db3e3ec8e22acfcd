// llama2.c checkpoints (legacy version 0): a header of 7 int32 followed by fp32 weights in a
// fixed order, the classifier shared with the embedding unless vocab_size is negative.
#include <filesystem>

#include "engine/model.hpp"
#include "engine/tokenizers/spm_tokenizer.hpp"
#include "util/errors.hpp"
#include "util/mapped_file.hpp"

namespace kvb {

namespace fs = std::filesystem;

namespace {

std::string find_tokenizer(const std::string& model_path, const LoadOptions& options) {
  if (!options.tokenizer_path.empty()) return options.tokenizer_path;
  const fs::path dir = fs::path(model_path).parent_path();
  for (const char* name : {"tokenizer.bin", "tok512.bin"}) {
    if (fs::exists(dir / name)) return (dir / name).string();
  }
  for (const auto& entry : fs::directory_iterator(dir.empty() ? fs::path(".") : dir)) {
    const std::string n = entry.path().filename().string();
    if (n.rfind("tok", 0) == 0 && entry.path().extension() == ".bin") return entry.path().string();
  }
  fail_input("{}: no llama2.c tokenizer (tokenizer.bin or tok*.bin) beside the model; pass --tokenizer FILE",
             model_path);
}

}  // namespace

Model load_llama2c(const std::string& path, const LoadOptions& options) {
  MappedFile file(path);
  ByteReader r(file);
  if (file.size() >= 4 && std::string_view(reinterpret_cast<const char*>(file.data()), 4) == "ak42")
    fail_input("{}: llama2.c checkpoint version 1/2 (magic 'ak42') is not supported; export the legacy "
               "(version 0) format or use GGUF",
               path);
  int32_t h[7];
  for (int32_t& v : h) v = r.read<int32_t>("llama2.c header");
  ModelConfig c;
  c.arch = Arch::Llama;
  c.dim = h[0];
  c.ffn_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.tied_embeddings = h[5] > 0;
  // Negated in 64 bits: -INT32_MIN does not fit an int (validate() then refuses the size).
  const int64_t vocab = h[5] < 0 ? -int64_t(h[5]) : h[5];
  if (vocab > (1 << 22)) fail_input("{}: vocab_size {} is out of range [1, {}]", path, h[5], 1 << 22);
  c.vocab_size = static_cast<int>(vocab);
  c.max_seq_len = h[6];
  c.head_dim = c.n_heads > 0 && c.dim % c.n_heads == 0 ? c.dim / c.n_heads : 0;
  if (c.n_heads <= 0 || c.dim % c.n_heads != 0)
    fail_input("{}: dim {} is not a multiple of n_heads {}; not a llama2.c checkpoint?", path, c.dim, c.n_heads);
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0;
  c.rope_pairing = RopePairing::Interleaved;
  c.bos_id = 1;
  c.eos_id = 2;
  c.validate(path);

  // Element counts of each block, in file order.
  const uint64_t L = c.n_layers, d = c.dim, q = c.q_dim(), kv = c.kv_dim(), f = c.ffn_dim, v = c.vocab_size;
  const uint64_t rope_table = uint64_t(c.max_seq_len) * c.head_dim / 2;
  const uint64_t counts[] = {v * d, L * d, L * q * d, L * kv * d, L * kv * d, L * d * q, L * d,
                             L * f * d, L * d * f, L * f * d, d, rope_table, rope_table};
  uint64_t offsets[14];
  offsets[0] = 28;
  for (int i = 0; i < 13; ++i) offsets[i + 1] = offsets[i] + counts[i] * 4;
  const uint64_t expected = offsets[13] + (c.tied_embeddings ? 0 : v * d * 4);
  if (file.size() != expected)
    fail_input("{}: file is {} bytes, but its header (dim {}, layers {}, vocab {}) implies {}; truncated or "
               "not a llama2.c checkpoint",
               path, file.size(), c.dim, c.n_layers, c.vocab_size, expected);
  if (options.config_only) return config_only_model(c, path, "llama2c");

  enum Block { kEmb, kRmsAtt, kWq, kWk, kWv, kWo, kRmsFfn, kW1, kW2, kW3, kRmsFinal };
  auto slice = [&](int block, int layer, std::vector<int64_t> shape, const char* name) {
    uint64_t n = 1;
    for (int64_t s : shape) n *= uint64_t(s);
    RawTensor t;
    t.name = layer >= 0 ? std::string(name) + "[" + std::to_string(layer) + "]" : name;
    t.shape = std::move(shape);
    t.bytes = n * 4;
    t.data = file.range(offsets[block] + uint64_t(std::max(layer, 0)) * t.bytes, t.bytes, t.name);
    return t;
  };
  const auto D = int64_t(d), Q = int64_t(q), KV = int64_t(kv), F = int64_t(f), V = int64_t(v);
  TensorLookup lookup = [&](Role role, int l) -> std::optional<RawTensor> {
    switch (role) {
      case Role::TokenEmbedding: return slice(kEmb, -1, {V, D}, "token_embedding_table");
      case Role::FinalNorm: return slice(kRmsFinal, -1, {D}, "rms_final_weight");
      case Role::Classifier: {
        RawTensor t;
        t.name = "wcls";
        t.shape = {V, D};
        t.bytes = v * d * 4;
        t.data = file.range(offsets[13], t.bytes, "wcls");
        return t;
      }
      case Role::AttnNorm: return slice(kRmsAtt, l, {D}, "rms_att_weight");
      case Role::Wq: return slice(kWq, l, {Q, D}, "wq");
      case Role::Wk: return slice(kWk, l, {KV, D}, "wk");
      case Role::Wv: return slice(kWv, l, {KV, D}, "wv");
      case Role::Wo: return slice(kWo, l, {D, Q}, "wo");
      case Role::FfnNorm: return slice(kRmsFfn, l, {D}, "rms_ffn_weight");
      case Role::WGate: return slice(kW1, l, {F, D}, "w1");
      case Role::WDown: return slice(kW2, l, {D, F}, "w2");
      case Role::WUp: return slice(kW3, l, {F, D}, "w3");
      default: return std::nullopt;
    }
  };

  Model m;
  m.config = c;
  if (!options.skip_weights) m.weights = take_weights(c, lookup, options, path);
  if (options.stream_weights) return m;
  const std::string tok_path = find_tokenizer(path, options);
  m.tokenizer = load_llama2c_tokenizer(tok_path, c.vocab_size);
  m.info.source = path;
  m.info.format = "llama2c";
  m.info.name = fs::path(path).stem().string();
  m.info.stored_dtype = "F32";
  m.info.files = {describe_file(path, options), describe_file(tok_path, options)};
  return m;
}

}  // namespace kvb
