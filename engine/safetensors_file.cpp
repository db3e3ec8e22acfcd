#include "engine/safetensors_file.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/errors.hpp"
#include "util/json_fields.hpp"

namespace kvb {

using nlohmann::json;

namespace {

// Element sizes of the dtypes the format defines (sub-byte ones left out). Used to check that a
// tensor's byte range matches its shape even for tensors kvbench never reads.
int dtype_size(const std::string& dtype) {
  static const std::map<std::string, int> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
      {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},   {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
      {"F8_E8M0", 1}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

}  // namespace

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

SafetensorsFile::SafetensorsFile(const std::string& path, const std::string& kind) : file_(path) {
  const std::string& p = file_.path();
  if (file_.size() < 8) fail_input("{}: {} bytes is too short for a {}", p, file_.size(), kind);
  ByteReader r(file_);
  const uint64_t n = r.read<uint64_t>("safetensors header length");
  if (n > file_.size() - 8)
    fail_input("{}: safetensors header length {} runs past the end of the file ({} bytes); truncated or not a {}", p,
               n, file_.size(), kind);
  // The format's own limit (the reference implementation refuses larger headers): a real header
  // is a few hundred KB, even for a shard of thousands of tensors.
  constexpr uint64_t kMaxHeaderBytes = 100'000'000;
  if (n > kMaxHeaderBytes)
    fail_input("{}: safetensors header length {} is over the format's limit of {} bytes; corrupt or not a {}", p, n,
               kMaxHeaderBytes, kind);
  const std::string text = r.read_bytes(n, "safetensors header");
  const json header = parse_json(text, p + ": safetensors header");
  if (!header.is_object()) fail_input("{}: safetensors header is not a JSON object", p);
  const uint64_t data_start = 8 + n;
  const uint64_t data_size = file_.size() - data_start;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) fail_input("{}: __metadata__ is not an object", p);
      for (const auto& [k, v] : info.items()) {
        if (!v.is_string()) fail_input("{}: __metadata__ value {} is not a string", p, k);
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = fmt::format("{}: tensor {}", p, name);
    if (!info.is_object()) fail_input("{}: header entry is not an object", where);
    SafetensorsTensor e;
    const json* dtype = find_key(info, "dtype");
    if (!dtype || !dtype->is_string()) fail_input("{}: missing or non-string dtype", where);
    e.dtype = dtype->get<std::string>();
    const json* shape = find_key(info, "shape");
    if (!shape || !shape->is_array()) fail_input("{}: missing or non-list shape", where);
    uint64_t numel = 1;
    for (const json& d : *shape) {
      const int64_t s = as_int64(d, where, "shape");
      if (s < 0) fail_input("{}: negative dimension {} in shape", where, s);
      // Bound the product so a corrupt header cannot overflow it.
      if (s != 0 && numel > (uint64_t(1) << 50) / uint64_t(s))
        fail_input("{}: shape {} is absurdly large", where, shape->dump());
      numel *= uint64_t(s);
      e.shape.push_back(s);
    }
    const json* offsets = find_key(info, "data_offsets");
    if (!offsets || !offsets->is_array() || offsets->size() != 2)
      fail_input("{}: data_offsets must be a list [begin, end]", where);
    const int64_t begin = as_int64((*offsets)[0], where, "data_offsets");
    const int64_t end = as_int64((*offsets)[1], where, "data_offsets");
    if (begin < 0 || end < begin) fail_input("{}: data_offsets [{}, {}] are not an increasing range", where, begin, end);
    if (uint64_t(end) > data_size)
      fail_input("{}: data_offsets [{}, {}] run past the end of the data ({} bytes); truncated or corrupt", where,
                 begin, end, data_size);
    e.bytes = uint64_t(end - begin);
    if (const int size = dtype_size(e.dtype); size > 0 && e.bytes != numel * uint64_t(size))
      fail_input("{}: data_offsets [{}, {}] hold {} bytes, but {} x {} needs {}", where, begin, end, e.bytes, numel,
                 e.dtype, numel * uint64_t(size));
    e.data = file_.data() + data_start + uint64_t(begin);
    tensors_.emplace(name, std::move(e));
  }
}

}  // namespace kvb
