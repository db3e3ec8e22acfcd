// GGUF (versions 2 and 3): a header, typed key/value metadata, tensor infos, then an aligned data
// section. The file is memory-mapped; metadata values are located in one validating pass and
// decoded on demand, so even a 150k-token vocabulary costs nothing until it is used.
//
// Every length and count in the file is checked against the bytes that remain before anything is
// allocated or looped over, so a corrupt file ends in an InputError, never in a huge allocation,
// a hang or a crash.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numbers>
#include <optional>
#include <unordered_map>

#include <fmt/ranges.h>

#include "engine/model.hpp"
#include "engine/tokenizers/byte_bpe_tokenizer.hpp"
#include "engine/tokenizers/spm_tokenizer.hpp"
#include "util/errors.hpp"
#include "util/mapped_file.hpp"
#include "util/quote.hpp"

namespace kvb {

namespace fs = std::filesystem;

namespace {

// Metadata value types (GGUF spec numbering).
enum ValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
constexpr uint32_t kValueTypeCount = 13;

const char* value_type_name(uint32_t t) {
  static const char* const names[kValueTypeCount] = {"uint8", "int8",   "uint16", "int16", "uint32",
                                                     "int32", "float32", "bool",   "string", "array",
                                                     "uint64", "int64",  "float64"};
  return t < kValueTypeCount ? names[t] : "unknown";
}

// Bytes of a scalar value; 0 for strings and arrays.
uint64_t scalar_size(uint32_t t) {
  switch (t) {
    case kU8: case kI8: case kBool: return 1;
    case kU16: case kI16: return 2;
    case kU32: case kI32: case kF32: return 4;
    case kU64: case kI64: case kF64: return 8;
    default: return 0;
  }
}

// The fewest bytes one value of type `t` can occupy: bounds array counts before looping.
uint64_t min_value_size(uint32_t t) {
  if (t == kString) return 8;       // the length
  if (t == kArray) return 4 + 8;    // element type + count
  return scalar_size(t);
}

bool is_integer(uint32_t t) {
  return t == kU8 || t == kI8 || t == kU16 || t == kI16 || t == kU32 || t == kI32 || t == kU64 || t == kI64;
}

// ggml tensor types, for naming the ones kvbench cannot read.
const char* ggml_type_name(uint32_t t) {
  switch (t) {
    case 0: return "F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 6: return "Q5_0";
    case 7: return "Q5_1";
    case 8: return "Q8_0";
    case 9: return "Q8_1";
    case 10: return "Q2_K";
    case 11: return "Q3_K";
    case 12: return "Q4_K";
    case 13: return "Q5_K";
    case 14: return "Q6_K";
    case 15: return "Q8_K";
    case 24: return "I8";
    case 25: return "I16";
    case 26: return "I32";
    case 27: return "I64";
    case 28: return "F64";
    case 30: return "BF16";
    default: return "unsupported";
  }
}

std::optional<DType> to_dtype(uint32_t ggml_type) {
  switch (ggml_type) {
    case 0: return DType::F32;
    case 1: return DType::F16;
    case 8: return DType::Q8_0;
    case 30: return DType::BF16;
    default: return std::nullopt;
  }
}

constexpr int kMaxArrayNesting = 8;  // deeper nesting would only serve to exhaust the stack
constexpr uint32_t kMaxDims = 4;     // GGML_MAX_DIMS

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> ne;  // GGUF order: ne[0] varies fastest
  uint32_t ggml_type = 0;
  DType dtype = DType::F32;
  uint64_t offset = 0;  // from the start of the data section
  uint64_t bytes = 0;
};

class GgufFile {
 public:
  explicit GgufFile(const std::string& path) : path_(path), file_(path) { parse(); }

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }

  const TensorInfo* find_tensor(const std::string& name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
  }

  // The tensor as stored, with GGUF's fastest-first dims reversed to our row-major shape.
  RawTensor raw(const TensorInfo& t) const {
    RawTensor r;
    r.name = t.name;
    r.dtype = t.dtype;
    for (auto it = t.ne.rbegin(); it != t.ne.rend(); ++it) r.shape.push_back(static_cast<int64_t>(*it));
    r.bytes = t.bytes;
    r.data = file_.range(data_start_ + t.offset, t.bytes, t.name);
    return r;
  }

  bool has(const std::string& key) const { return meta_.count(key) != 0; }

  std::optional<std::string> get_string(const std::string& key) const {
    auto v = find(key, kString);
    if (!v) return std::nullopt;
    ByteReader r(file_, v->offset);
    return read_string(r, key);
  }

  // Any integer type, widened to int64.
  std::optional<int64_t> get_int(const std::string& key) const {
    auto it = meta_.find(key);
    if (it == meta_.end()) return std::nullopt;
    if (!is_integer(it->second.type)) type_error(key, it->second.type, "an integer");
    ByteReader r(file_, it->second.offset);
    return read_int(r, it->second.type, key);
  }

  // float32/float64; integers are accepted too (some writers store e.g. freq_base as uint32).
  std::optional<double> get_float(const std::string& key) const {
    auto it = meta_.find(key);
    if (it == meta_.end()) return std::nullopt;
    const uint32_t t = it->second.type;
    ByteReader r(file_, it->second.offset);
    if (t == kF32) return r.read<float>(key);
    if (t == kF64) return r.read<double>(key);
    if (is_integer(t)) return static_cast<double>(read_int(r, t, key));
    type_error(key, t, "a number");
  }

  std::optional<bool> get_bool(const std::string& key) const {
    auto v = find(key, kBool);
    if (!v) return std::nullopt;
    ByteReader r(file_, v->offset);
    return r.read<uint8_t>(key) != 0;
  }

  std::optional<std::vector<std::string>> get_string_array(const std::string& key) const {
    auto a = open_array(key);
    if (!a) return std::nullopt;
    if (a->elem_type != kString) array_type_error(key, a->elem_type, "strings");
    std::vector<std::string> out;
    ByteReader r(file_, a->first);
    // No reserve: the count was bounded by the file size, but a string object is larger than
    // its 8-byte length prefix; grow with what is actually read.
    for (uint64_t i = 0; i < a->count; ++i) out.push_back(read_string(r, key));
    return out;
  }

  std::optional<std::vector<float>> get_float_array(const std::string& key) const {
    auto a = open_array(key);
    if (!a) return std::nullopt;
    if (a->elem_type != kF32 && a->elem_type != kF64) array_type_error(key, a->elem_type, "floats");
    std::vector<float> out(a->count);  // count * size was checked against the file when parsing
    ByteReader r(file_, a->first);
    for (float& f : out) f = a->elem_type == kF32 ? r.read<float>(key) : static_cast<float>(r.read<double>(key));
    return out;
  }

  std::optional<std::vector<int64_t>> get_int_array(const std::string& key) const {
    auto a = open_array(key);
    if (!a) return std::nullopt;
    if (!is_integer(a->elem_type)) array_type_error(key, a->elem_type, "integers");
    std::vector<int64_t> out(a->count);
    ByteReader r(file_, a->first);
    for (int64_t& v : out) v = read_int(r, a->elem_type, key);
    return out;
  }

 private:
  struct Meta {
    uint32_t type;
    uint64_t offset;  // where the value's bytes start (after its type)
  };
  struct Array {
    uint32_t elem_type;
    uint64_t count;
    uint64_t first;  // offset of the first element
  };

  uint64_t remaining(const ByteReader& r) const { return r.pos() <= file_.size() ? file_.size() - r.pos() : 0; }

  std::string read_string(ByteReader& r, std::string_view what) const {
    const uint64_t at = r.pos();
    const uint64_t len = r.read<uint64_t>(what);
    if (len > remaining(r))
      fail_input("{}: {} at byte {} claims a string of {} bytes but only {} bytes remain; truncated or corrupt",
                 path_, what, at, len, remaining(r));
    return r.read_bytes(len, what);
  }

  int64_t read_int(ByteReader& r, uint32_t t, std::string_view what) const {
    switch (t) {
      case kU8: return r.read<uint8_t>(what);
      case kI8: return r.read<int8_t>(what);
      case kU16: return r.read<uint16_t>(what);
      case kI16: return r.read<int16_t>(what);
      case kU32: return r.read<uint32_t>(what);
      case kI32: return r.read<int32_t>(what);
      case kI64: return r.read<int64_t>(what);
      case kU64: {
        const uint64_t v = r.read<uint64_t>(what);
        if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
          fail_input("{}: metadata {} = {} is out of range", path_, what, v);
        return static_cast<int64_t>(v);
      }
      default: type_error(std::string(what), t, "an integer");
    }
  }

  [[noreturn]] void type_error(const std::string& key, uint32_t got, const char* want) const {
    fail_input("{}: metadata key {} has type {}, expected {}", path_, key, value_type_name(got), want);
  }
  [[noreturn]] void array_type_error(const std::string& key, uint32_t got, const char* want) const {
    fail_input("{}: metadata key {} is an array of {}, expected {}", path_, key, value_type_name(got), want);
  }

  std::optional<Meta> find(const std::string& key, uint32_t want) const {
    auto it = meta_.find(key);
    if (it == meta_.end()) return std::nullopt;
    if (it->second.type != want) type_error(key, it->second.type, value_type_name(want));
    return it->second;
  }

  std::optional<Array> open_array(const std::string& key) const {
    auto v = find(key, kArray);
    if (!v) return std::nullopt;
    ByteReader r(file_, v->offset);
    Array a;
    a.elem_type = r.read<uint32_t>(key);
    a.count = r.read<uint64_t>(key);
    a.first = r.pos();
    return a;
  }

  // Steps over one value, checking that it lies inside the file.
  void skip_value(ByteReader& r, uint32_t type, int depth, const std::string& key) const {
    if (type == kString) {
      const uint64_t at = r.pos();
      const uint64_t len = r.read<uint64_t>(key);
      if (len > remaining(r))
        fail_input("{}: metadata {}: string at byte {} claims {} bytes but only {} bytes remain; truncated or "
                   "corrupt",
                   path_, key, at, len, remaining(r));
      r.seek(r.pos() + len);
    } else if (type == kArray) {
      if (depth >= kMaxArrayNesting)
        fail_input("{}: metadata {}: arrays nested deeper than {} levels", path_, key, kMaxArrayNesting);
      const uint64_t at = r.pos();
      const uint32_t elem = r.read<uint32_t>(key);
      if (elem >= kValueTypeCount)
        fail_input("{}: metadata {}: array of unknown value type {}", path_, key, elem);
      const uint64_t count = r.read<uint64_t>(key);
      if (count > remaining(r) / min_value_size(elem))
        fail_input("{}: metadata {}: array at byte {} claims {} elements of {} but only {} bytes remain; "
                   "truncated or corrupt",
                   path_, key, at, count, value_type_name(elem), remaining(r));
      if (const uint64_t size = scalar_size(elem)) {
        r.seek(r.pos() + count * size);  // fits: checked just above
      } else {
        for (uint64_t i = 0; i < count; ++i) skip_value(r, elem, depth + 1, key);
      }
    } else {
      const uint64_t size = scalar_size(type);
      if (size == 0) fail_input("{}: metadata {}: unknown value type {}", path_, key, type);
      file_.range(r.pos(), size, key);
      r.seek(r.pos() + size);
    }
  }

  void parse() {
    ByteReader r(file_);
    const std::string magic = r.read_bytes(4, "GGUF magic");
    if (magic != "GGUF") fail_input("{}: not a GGUF file (magic is not 'GGUF')", path_);
    const uint32_t version = r.read<uint32_t>("GGUF version");
    if (version == 1)
      fail_input("{}: GGUF version 1 is not supported (it predates 64-bit lengths); re-convert the model to "
                 "GGUF v3",
                 path_);
    if (version != 2 && version != 3) {
      const uint32_t swapped = __builtin_bswap32(version);
      if (swapped >= 1 && swapped <= 3) fail_input("{}: big-endian GGUF files are not supported", path_);
      fail_input("{}: unsupported GGUF version {} (kvbench reads versions 2 and 3)", path_, version);
    }
    const uint64_t n_tensors = r.read<uint64_t>("GGUF tensor count");
    const uint64_t n_kv = r.read<uint64_t>("GGUF metadata count");

    // A key/value pair takes at least a key length, a type and a one-byte value.
    if (n_kv > remaining(r) / (8 + 4 + 1))
      fail_input("{}: header claims {} metadata entries, more than the file can hold; truncated or corrupt", path_,
                 n_kv);
    for (uint64_t i = 0; i < n_kv; ++i) {
      std::string key = read_string(r, "metadata key");
      const uint32_t type = r.read<uint32_t>(key);
      if (type >= kValueTypeCount) fail_input("{}: metadata {} has unknown value type {}", path_, key, type);
      const uint64_t at = r.pos();
      skip_value(r, type, 0, key);
      if (!meta_.emplace(key, Meta{type, at}).second) fail_input("{}: metadata key {} appears twice", path_, key);
    }

    uint64_t alignment = 32;
    if (auto a = get_int("general.alignment")) {
      if (*a <= 0 || *a > (1 << 30) || !std::has_single_bit(static_cast<uint64_t>(*a)))
        fail_input("{}: general.alignment = {} is not a power of two", path_, *a);
      alignment = static_cast<uint64_t>(*a);
    }

    // A tensor info takes at least a name length, n_dims, one dim, a type and an offset.
    if (n_tensors > remaining(r) / (8 + 4 + 8 + 4 + 8))
      fail_input("{}: header claims {} tensors, more than the file can hold; truncated or corrupt", path_,
                 n_tensors);
    tensors_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) {
      TensorInfo t;
      t.name = read_string(r, "tensor name");
      const uint32_t n_dims = r.read<uint32_t>(t.name);
      if (n_dims == 0 || n_dims > kMaxDims)
        fail_input("{}: tensor {} has {} dimensions (1 to {} supported)", path_, t.name, n_dims, kMaxDims);
      for (uint32_t d = 0; d < n_dims; ++d) t.ne.push_back(r.read<uint64_t>(t.name));
      t.ggml_type = r.read<uint32_t>(t.name);
      t.offset = r.read<uint64_t>(t.name);
      if (!tensor_index_.emplace(t.name, tensors_.size()).second)
        fail_input("{}: tensor {} appears twice", path_, t.name);
      tensors_.push_back(std::move(t));
    }

    data_start_ = (r.pos() + alignment - 1) / alignment * alignment;
    if (data_start_ > file_.size())
      fail_input("{}: data section starts at byte {}, past the end of the file ({} bytes); truncated", path_,
                 data_start_, file_.size());
    const uint64_t data_size = file_.size() - data_start_;
    for (TensorInfo& t : tensors_) check_tensor(t, alignment, data_size);
  }

  // Resolves the storage type and size of a tensor and checks that its data lies in the file.
  void check_tensor(TensorInfo& t, uint64_t alignment, uint64_t data_size) const {
    auto dtype = to_dtype(t.ggml_type);
    if (!dtype)
      fail_input("{}: tensor {} has ggml type {} ({}); kvbench reads F32, F16, BF16 and Q8_0", path_, t.name,
                 t.ggml_type, ggml_type_name(t.ggml_type));
    t.dtype = *dtype;
    // Every element takes at least one byte in the supported types, so a tensor can never hold
    // more elements than the file has bytes; this also keeps the product from overflowing.
    uint64_t count = 1;
    for (uint64_t n : t.ne) {
      if (n == 0 || n > file_.size() / count)
        fail_input("{}: tensor {} has dims [{}], more elements than the file could hold", path_, t.name,
                   fmt::join(t.ne, ", "));
      count *= n;
    }
    if (t.dtype == DType::Q8_0 && t.ne[0] % 32 != 0)
      fail_input("{}: tensor {} is Q8_0 but its rows hold {} values, not a multiple of the 32-value block", path_,
                 t.name, t.ne[0]);
    t.bytes = storage_bytes(t.dtype, count);
    if (t.offset % alignment != 0)
      fail_input("{}: tensor {} data offset {} is not a multiple of the alignment {}", path_, t.name, t.offset,
                 alignment);
    if (t.offset > data_size || t.bytes > data_size - t.offset)
      fail_input("{}: tensor {} data (offset {}, {} bytes) lies past the end of the file ({} bytes of tensor "
                 "data); truncated or corrupt",
                 path_, t.name, t.offset, t.bytes, data_size);
  }

  std::string path_;
  MappedFile file_;
  std::unordered_map<std::string, Meta> meta_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
  uint64_t data_start_ = 0;
};

// ---- config --------------------------------------------------------------------------------

int64_t require_int(const GgufFile& g, const std::string& key) {
  auto v = g.get_int(key);
  if (!v) fail_input("{}: metadata key {} is missing", g.path(), key);
  return *v;
}

// Narrows a count read from the file; ModelConfig::validate checks the tighter ranges.
int to_int(const GgufFile& g, const std::string& key, int64_t v) {
  if (v < 0 || v > std::numeric_limits<int32_t>::max())
    fail_input("{}: metadata {} = {} is out of range", g.path(), key, v);
  return static_cast<int>(v);
}

// Token ids: absent or negative (llama.cpp writes -1 as 0xFFFFFFFF) mean "none".
int token_id(const GgufFile& g, const std::string& key) {
  auto v = g.get_int(key);
  if (!v || *v < 0 || *v == 0xFFFFFFFFll) return -1;
  return to_int(g, key, *v);
}

// Llama 3.x GGUFs carry their rope scaling as a tensor of per-pair frequency divisors
// (rope_freqs.weight) rather than as metadata. Recover the llama3 parameters from it (Meta's
// published low/high frequency factors and original context) and check that they reproduce
// every divisor, so that a file scaled some other way is refused instead of run wrongly.
void infer_llama3_scaling(const GgufFile& g, const TensorInfo& t, ModelConfig& c, const std::string& prefix) {
  const int pairs = c.head_dim / 2;
  const RawTensor raw = g.raw(t);
  if (raw.dtype != DType::F32 || raw.shape != std::vector<int64_t>{pairs})
    fail_input("{}: tensor rope_freqs.weight should be F32 [{}], the pairs of head_dim {}", g.path(), pairs,
               c.head_dim);
  std::vector<float> divisor(pairs);
  std::memcpy(divisor.data(), raw.data, pairs * sizeof(float));
  const double factor = *std::max_element(divisor.begin(), divisor.end());
  if (!(factor >= 1.0 && factor < 1e6))
    fail_input("{}: rope_freqs.weight holds divisor {}; not a llama3 rope scaling", g.path(), factor);
  RopeScaling s;
  s.type = RopeScalingType::Llama3;
  s.factor = factor;
  s.low_freq_factor = 1.0;
  s.high_freq_factor = 4.0;
  s.original_max_position = g.get_int(prefix + "rope.scaling.original_context_length").value_or(8192);
  const double low_wavelen = s.original_max_position / s.low_freq_factor;
  const double high_wavelen = s.original_max_position / s.high_freq_factor;
  for (int i = 0; i < pairs; ++i) {
    const double inv_freq = std::pow(c.rope_theta, -2.0 * i / c.head_dim);
    const double wavelen = 2.0 * std::numbers::pi / inv_freq;
    double expected = 1.0;
    if (wavelen > low_wavelen) {
      expected = factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth = (s.original_max_position / wavelen - s.low_freq_factor) /
                            (s.high_freq_factor - s.low_freq_factor);
      expected = 1.0 / ((1.0 - smooth) / factor + smooth);
    }
    if (!(std::abs(divisor[i] - expected) <= 1e-3 * expected))  // also refuses NaN
      fail_input("{}: rope_freqs.weight[{}] = {} does not match llama3 rope scaling (factor {}, expected {}); "
                 "this rope scaling is not supported",
                 g.path(), i, divisor[i], factor, expected);
  }
  if (factor != 1.0) c.rope_scaling = s;  // all ones: no scaling at all
}

ModelConfig read_config(const GgufFile& g, int vocab_size) {
  const std::string& path = g.path();
  const auto arch = g.get_string("general.architecture");
  if (!arch) fail_input("{}: metadata key general.architecture is missing", path);
  ModelConfig c;
  if (*arch == "llama") {
    c.arch = Arch::Llama;
    c.rope_pairing = RopePairing::Interleaved;  // the converter permutes Q/K for adjacent pairs
  } else if (*arch == "qwen2") {
    c.arch = Arch::Qwen2;
    c.rope_pairing = RopePairing::Half;
    c.qkv_bias = true;
  } else if (*arch == "qwen3") {
    c.arch = Arch::Qwen3;
    c.rope_pairing = RopePairing::Half;
    c.qk_norm = true;
  } else {
    fail_input("{}: unsupported architecture {} (kvbench runs llama, qwen2 and qwen3)", path, quote(*arch));
  }
  const std::string p = *arch + ".";
  auto count = [&](const std::string& key) { return to_int(g, p + key, require_int(g, p + key)); };
  c.dim = count("embedding_length");
  c.ffn_dim = count("feed_forward_length");
  c.n_layers = count("block_count");
  c.n_heads = count("attention.head_count");
  c.n_kv_heads = g.has(p + "attention.head_count_kv") ? count("attention.head_count_kv") : c.n_heads;
  if (g.has(p + "attention.key_length")) {
    c.head_dim = count("attention.key_length");
  } else {
    if (c.n_heads <= 0 || c.dim % c.n_heads != 0)
      fail_input("{}: embedding_length {} is not a multiple of head_count {}", path, c.dim, c.n_heads);
    c.head_dim = c.dim / c.n_heads;
  }
  if (g.has(p + "attention.value_length") && count("attention.value_length") != c.head_dim)
    fail_input("{}: attention.value_length {} differs from key_length {}; not supported", path,
               count("attention.value_length"), c.head_dim);
  if (g.has(p + "rope.dimension_count") && count("rope.dimension_count") != c.head_dim)
    fail_input("{}: rope.dimension_count {} differs from head_dim {}; partial rotary embeddings are not supported",
               path, count("rope.dimension_count"), c.head_dim);
  c.max_seq_len = count("context_length");
  c.norm_eps = static_cast<float>(g.get_float(p + "attention.layer_norm_rms_epsilon").value_or(1e-5));
  c.rope_theta = g.get_float(p + "rope.freq_base").value_or(10000.0);
  c.vocab_size = vocab_size;
  c.tied_embeddings = g.find_tensor("output.weight") == nullptr;
  c.bos_id = token_id(g, "tokenizer.ggml.bos_token_id");
  c.eos_id = token_id(g, "tokenizer.ggml.eos_token_id");

  if (auto type = g.get_string(p + "rope.scaling.type"); type && *type != "none") {
    RopeScaling& s = c.rope_scaling;
    s.factor = g.get_float(p + "rope.scaling.factor").value_or(1.0);
    if (*type == "linear") {
      s.type = RopeScalingType::Linear;
    } else if (*type == "yarn") {
      s.type = RopeScalingType::Yarn;
      s.original_max_position = g.get_int(p + "rope.scaling.original_context_length").value_or(0);
      s.beta_fast = g.get_float(p + "rope.scaling.yarn_beta_fast").value_or(s.beta_fast);
      s.beta_slow = g.get_float(p + "rope.scaling.yarn_beta_slow").value_or(s.beta_slow);
    } else {
      fail_input("{}: unsupported rope scaling type {} (none, linear and yarn are supported)", path, quote(*type));
    }
  } else if (auto linear = g.get_float(p + "rope.scale_linear"); linear && *linear != 1.0) {
    c.rope_scaling.type = RopeScalingType::Linear;  // the older key for linear scaling
    c.rope_scaling.factor = *linear;
  }
  c.validate(path);
  if (c.arch == Arch::Llama && c.rope_scaling.type == RopeScalingType::None) {
    if (const TensorInfo* freqs = g.find_tensor("rope_freqs.weight")) infer_llama3_scaling(g, *freqs, c, p);
  }
  return c;
}

// ---- tokenizer -----------------------------------------------------------------------------

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

std::unique_ptr<Tokenizer> read_tokenizer(const GgufFile& g, std::vector<std::string> tokens,
                                          const ModelConfig& c) {
  const std::string& path = g.path();
  const std::string model = g.get_string("tokenizer.ggml.model").value_or("");
  const size_t n = tokens.size();
  std::vector<int64_t> types = g.get_int_array("tokenizer.ggml.token_type").value_or(std::vector<int64_t>{});
  if (!types.empty() && types.size() != n)
    fail_input("{}: tokenizer.ggml.token_type has {} entries for {} tokens", path, types.size(), n);

  if (model == "llama") {
    std::vector<float> scores = g.get_float_array("tokenizer.ggml.scores").value_or(std::vector<float>(n, 0.0f));
    if (scores.size() != n)
      fail_input("{}: tokenizer.ggml.scores has {} entries for {} tokens", path, scores.size(), n);
    using PT = SpmTokenizer::PieceType;
    std::vector<PT> piece_types(n, PT::Normal);
    for (size_t i = 0; i < n; ++i) {
      // SentencePiece writes spaces as U+2581; our SPM tokenizer works on plain spaces.
      tokens[i] = replace_all(std::move(tokens[i]), "\u2581", " ");
      if (types.empty()) {
        const std::string& t = tokens[i];
        if (t.size() == 6 && t.rfind("<0x", 0) == 0 && t[5] == '>') piece_types[i] = PT::Byte;
        continue;
      }
      switch (types[i]) {
        case 2: piece_types[i] = PT::Unknown; break;
        case 3: piece_types[i] = PT::Control; break;
        case 6: piece_types[i] = PT::Byte; break;
        default: piece_types[i] = PT::Normal;  // 1 normal, 4 user-defined, 5 unused
      }
    }
    return std::make_unique<SpmTokenizer>(std::move(tokens), std::move(scores), std::move(piece_types), c.bos_id,
                                          c.eos_id, "gguf-llama");
  }
  if (model == "gpt2") {
    ByteBpeSpec spec;
    spec.origin = path + ": embedded tokenizer";
    const auto merges = g.get_string_array("tokenizer.ggml.merges");
    if (!merges) fail_input("{}: tokenizer.ggml.merges is missing (needed by the gpt2 tokenizer)", path);
    spec.merges.reserve(merges->size());
    for (const std::string& m : *merges) {
      const size_t space = m.find(' ');
      if (space == std::string::npos) fail_input("{}: tokenizer merge {} has no space", path, quote(m));
      spec.merges.emplace_back(m.substr(0, space), m.substr(space + 1));
    }
    // Control tokens (chat markers, BOS/EOS) are hidden when decoding; user-defined ones (e.g.
    // Qwen's <think>) are content. Both are matched verbatim before BPE.
    for (size_t i = 0; i < types.size(); ++i) {
      if (types[i] == 3) spec.special_tokens.emplace_back(tokens[i], static_cast<int>(i));
      if (types[i] == 4) spec.added_tokens.emplace_back(tokens[i], static_cast<int>(i));
    }
    const std::string pre = g.get_string("tokenizer.ggml.pre").value_or("");
    if (pre == "qwen2" || pre == "deepseek-r1-qwen") {
      spec.pre_tokenizer = PreTokenizer::Qwen2;
    } else if (pre == "llama-bpe" || pre == "llama3") {
      spec.pre_tokenizer = PreTokenizer::Llama3;
      spec.ignore_merges = true;  // as Llama 3's tokenizer.json says
    } else {
      spec.pre_tokenizer = PreTokenizer::Gpt2;
    }
    spec.vocab = std::move(tokens);
    spec.bos_id = c.bos_id;
    spec.eos_id = c.eos_id;
    spec.add_bos = g.get_bool("tokenizer.ggml.add_bos_token").value_or(false);
    try {
      return make_byte_bpe_tokenizer(std::move(spec));
    } catch (const InputError& e) {
      fail_input("{}: embedded tokenizer: {}", path, e.what());  // its messages do not name the file
    }
  }
  if (model.empty()) fail_input("{}: no embedded tokenizer (tokenizer.ggml.model is missing)", path);
  fail_input("{}: unsupported tokenizer model {} (llama and gpt2 are supported)", path, quote(model));
}

}  // namespace

Model load_gguf(const std::string& path, const LoadOptions& options) {
  const GgufFile g(path);

  // The vocabulary size is the token list's length; assemble_weights then checks the embedding.
  auto tokens = g.get_string_array("tokenizer.ggml.tokens");
  if (!tokens) fail_input("{}: no embedded tokenizer (tokenizer.ggml.tokens is missing)", path);
  const ModelConfig config =
      read_config(g, to_int(g, "tokenizer.ggml.tokens count", static_cast<int64_t>(tokens->size())));
  if (options.config_only) return config_only_model(config, path, "gguf");

  auto lookup = [&](Role role, int layer) -> std::optional<RawTensor> {
    std::string name;
    auto blk = [&](const char* suffix) { return "blk." + std::to_string(layer) + "." + suffix; };
    switch (role) {
      case Role::TokenEmbedding: name = "token_embd.weight"; break;
      case Role::FinalNorm: name = "output_norm.weight"; break;
      case Role::Classifier: name = "output.weight"; break;
      case Role::AttnNorm: name = blk("attn_norm.weight"); break;
      case Role::Wq: name = blk("attn_q.weight"); break;
      case Role::Wk: name = blk("attn_k.weight"); break;
      case Role::Wv: name = blk("attn_v.weight"); break;
      case Role::Wo: name = blk("attn_output.weight"); break;
      case Role::Bq: name = blk("attn_q.bias"); break;
      case Role::Bk: name = blk("attn_k.bias"); break;
      case Role::Bv: name = blk("attn_v.bias"); break;
      case Role::QNorm: name = blk("attn_q_norm.weight"); break;
      case Role::KNorm: name = blk("attn_k_norm.weight"); break;
      case Role::FfnNorm: name = blk("ffn_norm.weight"); break;
      case Role::WGate: name = blk("ffn_gate.weight"); break;
      case Role::WUp: name = blk("ffn_up.weight"); break;
      case Role::WDown: name = blk("ffn_down.weight"); break;
    }
    const TensorInfo* t = g.find_tensor(name);
    if (!t) return std::nullopt;
    return g.raw(*t);
  };

  Model m;
  m.config = config;
  if (!options.skip_weights) m.weights = take_weights(config, lookup, options, path);
  if (options.stream_weights) return m;
  // The chat template and the special-token texts it prints (from the vocabulary).
  if (const std::optional<std::string> chat = g.get_string("tokenizer.chat_template")) {
    m.chat_template.text = *chat;
    m.chat_template.origin = path + " (tokenizer.chat_template)";
    const std::pair<const char*, int> specials[] = {{"bos_token", config.bos_id}, {"eos_token", config.eos_id}};
    for (const auto& [name, id] : specials)
      if (id >= 0 && id < static_cast<int>(tokens->size())) m.chat_template.special_tokens[name] = (*tokens)[id];
  }
  m.tokenizer = read_tokenizer(g, std::move(*tokens), config);

  m.info.source = path;
  m.info.format = "gguf";
  m.info.name = g.get_string("general.name").value_or(fs::path(path).stem().string());
  std::vector<DType> dtypes;
  for (const TensorInfo& t : g.tensors())
    if (std::find(dtypes.begin(), dtypes.end(), t.dtype) == dtypes.end()) dtypes.push_back(t.dtype);
  std::sort(dtypes.begin(), dtypes.end());
  for (DType d : dtypes) m.info.stored_dtype += (m.info.stored_dtype.empty() ? "" : "+") + std::string(to_string(d));
  m.info.files = {describe_file(path, options)};
  return m;
}

}  // namespace kvb
