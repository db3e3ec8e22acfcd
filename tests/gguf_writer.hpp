#pragma once
// A small GGUF writer for tests: arbitrary metadata (every value type, nested arrays) and tensors
// stored as F32, F16, BF16 or Q8_0, so tests can build tiny models and corrupt them on purpose.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kvb::test {

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};

// ggml tensor types the writer can quantise to.
constexpr uint32_t kGgmlF32 = 0;
constexpr uint32_t kGgmlF16 = 1;
constexpr uint32_t kGgmlQ8_0 = 8;
constexpr uint32_t kGgmlBF16 = 30;

struct GgufValue {
  GgufType type = GgufType::U8;
  std::vector<uint8_t> scalar;  // little-endian bytes of a scalar
  std::string str;
  GgufType elem_type = GgufType::U8;  // arrays
  std::vector<GgufValue> items;

  static GgufValue u8(uint8_t v);
  static GgufValue i8(int8_t v);
  static GgufValue u16(uint16_t v);
  static GgufValue i16(int16_t v);
  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue i64(int64_t v);
  static GgufValue f32(float v);
  static GgufValue f64(double v);
  static GgufValue boolean(bool v);
  static GgufValue string(std::string v);
  static GgufValue array(GgufType elem_type, std::vector<GgufValue> items);
  static GgufValue strings(const std::vector<std::string>& v);
  static GgufValue f32s(const std::vector<float>& v);
  static GgufValue i32s(const std::vector<int32_t>& v);
};

class GgufWriter {
 public:
  struct TensorEntry {
    std::string name;
    std::vector<uint64_t> ne;  // GGUF order: ne[0] varies fastest
    uint32_t ggml_type = kGgmlF32;
    std::vector<uint8_t> data;
    std::optional<uint64_t> offset;  // overrides the computed data offset (for corrupt files)
  };

  uint32_t version = 3;
  uint32_t alignment = 32;  // layout only; call set("general.alignment", ...) to record another

  // Adds or replaces a metadata entry (entries keep their first insertion order).
  void set(const std::string& key, GgufValue value);
  void remove(const std::string& key);

  // A tensor given as raw stored bytes with GGUF dims.
  void add_raw_tensor(std::string name, std::vector<uint64_t> ne, uint32_t ggml_type, std::vector<uint8_t> data);
  // A tensor given in our row-major shape (outermost first), stored as `ggml_type`.
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, const std::vector<float>& values,
                  uint32_t ggml_type = kGgmlF32);
  // The tensor `name` written anew (removed, then added last).
  void replace_tensor(const std::string& name, const std::vector<int64_t>& shape, const std::vector<float>& values,
                      uint32_t ggml_type = kGgmlF32);
  TensorEntry& tensor(const std::string& name);  // throws std::out_of_range when absent
  void remove_tensor(const std::string& name);

  std::vector<uint8_t> serialize() const;
  // Byte offset of the data section in serialize()'s output.
  uint64_t data_start() const;
  void write(const std::filesystem::path& path) const;

 private:
  std::vector<std::pair<std::string, GgufValue>> meta_;
  std::vector<TensorEntry> tensors_;
};

// Encodings used by the writer (round to nearest even).
uint16_t to_f16(float f);
uint16_t to_bf16(float f);
// Stored bytes of `values` as F32, F16, BF16 or Q8_0 (count a multiple of 32).
std::vector<uint8_t> encode_tensor(const std::vector<float>& values, uint32_t ggml_type);

void write_bytes(const std::filesystem::path& path, const std::vector<uint8_t>& bytes);

// ---- a tiny model: the loader tests' and the fuzz seeds' ----------------------------------

struct TinySpec {
  std::string arch = "llama";
  int dim = 32, ffn = 64, layers = 2, heads = 4, kv_heads = 2;
  int head_dim = 0;  // 0: dim / heads and no key_length key
  bool tied = false;
};

// A small SentencePiece vocabulary: "ab a" encodes to {"▁ab", "▁a"} through three merges.
inline const std::vector<std::string> kSpmTokens = {"<unk>", "<s>", "</s>", "\u2581", "a", "b",
                                             "\u2581a", "ab", "\u2581ab", "<0x0A>"};
inline const std::vector<float> kSpmScores = {0, 0, 0, 0, 0, 0, -1, -2, -3, 0};
inline const std::vector<int32_t> kSpmTypes = {2, 3, 3, 1, 1, 1, 1, 1, 1, 6};

// Multiples of 1/32 in [-0.5, 0.5]: exact in every storage type but Q8_0.
std::vector<float> pattern(int64_t n, int seed);
int64_t numel(const std::vector<int64_t>& shape);

// A complete GGUF model of `s` with the vocabulary above; tensors written in order with pattern
// seeds 1, 2, 3, ...
GgufWriter tiny_writer(const TinySpec& s);

}  // namespace kvb::test
