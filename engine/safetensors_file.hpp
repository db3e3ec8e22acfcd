#pragma once
// safetensors: u64 little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then the
// data, offsets relative to its start. The file is memory-mapped; every header field is checked
// against the file before use. Model weights (HF folders) and kvbench's query-stats files use it.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "util/mapped_file.hpp"

namespace kvb {

struct SafetensorsTensor {
  std::string dtype;  // as written: "F32", "BF16", ...
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  uint64_t bytes = 0;
};

class SafetensorsFile {
 public:
  // `kind` names what the file should be in error messages ("safetensors file", "stats file").
  explicit SafetensorsFile(const std::string& path, const std::string& kind = "safetensors file");

  const std::string& path() const { return file_.path(); }
  const SafetensorsTensor* find(const std::string& name) const;
  const std::map<std::string, SafetensorsTensor>& tensors() const { return tensors_; }
  // __metadata__; every value must be a string.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  MappedFile file_;
  std::map<std::string, SafetensorsTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace kvb
