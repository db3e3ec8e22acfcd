#pragma once
// Reads a torch.save file (zip archive: <archive>/data.pkl + <archive>/data/<key> storages)
// without PyTorch, for data files made of dicts, lists, strings, numbers and float32 tensors,
// such as TriAttention's calibration statistics.
//
// data.pkl is run through a deliberately small pickle interpreter: only the opcodes such files
// use, and only three globals (torch._utils._rebuild_tensor_v2, torch.FloatStorage,
// collections.OrderedDict). Nothing is ever imported or called, so a hostile file can at worst be
// refused. Objects live in one arena addressed by index, so shared and even cyclic references
// cost nothing and no destructor recursion depends on the input.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/methods/zip_reader.hpp"

namespace kvb::pt {

enum class Kind : uint8_t { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Storage, Tensor };
const char* to_string(Kind k);

struct Object {
  Kind kind = Kind::None;
  int64_t i = 0;                // Bool, Int; Storage: element count
  double f = 0.0;               // Float
  std::string s;                // Str; Global: "module.name"; Storage: its key in the archive
  std::vector<uint32_t> items;  // Tuple, List: elements; Dict: key, value, key, value, ...
  std::string_view bytes;       // Storage: its raw little-endian bytes (owned by the archive)
  uint32_t storage = 0;         // Tensor: the Storage object
  int64_t offset = 0;           // Tensor: first element within the storage
  std::vector<int64_t> shape;   // Tensor (always contiguous; checked when built)

  int64_t numel() const;  // Tensor
};

class TorchFile {
 public:
  explicit TorchFile(const std::string& path);  // throws InputError("<path>: ...")

  const std::string& path() const { return archive_.path(); }
  const Object& root() const { return objects_[root_]; }
  const Object& object(uint32_t id) const { return objects_.at(id); }

  // The value under string key `key` of a dict; nullptr when absent or `dict` is no dict.
  const Object* find(const Object& dict, std::string_view key) const;
  // A float32 tensor's elements in row-major order.
  std::vector<float> values(const Object& tensor) const;

 private:
  friend class Unpickler;
  ZipArchive archive_;
  std::string prefix_;  // "<archive>/"
  std::vector<Object> objects_;
  uint32_t root_ = 0;
};

}  // namespace kvb::pt
