#pragma once
// A read-only memory-mapped file with bounds-checked access, so that loaders can never read
// past the end of a truncated or corrupt file.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace kvb {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws InputError naming the path
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&&) = delete;

  const std::string& path() const { return path_; }
  size_t size() const { return size_; }
  const uint8_t* data() const { return data_; }

  // Pointer to [offset, offset + bytes); throws InputError ("<path>: <what> ... past the end")
  // when that range does not lie inside the file.
  const uint8_t* range(uint64_t offset, uint64_t bytes, std::string_view what) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Sequential little-endian reader over a mapped file, for headers.
class ByteReader {
 public:
  ByteReader(const MappedFile& file, uint64_t offset = 0) : file_(file), pos_(offset) {}
  template <typename T>
  T read(std::string_view what) {
    T value;
    std::memcpy(&value, file_.range(pos_, sizeof(T), what), sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  std::string read_bytes(uint64_t n, std::string_view what) {
    const uint8_t* p = file_.range(pos_, n, what);
    pos_ += n;
    return std::string(reinterpret_cast<const char*>(p), n);
  }
  uint64_t pos() const { return pos_; }
  void seek(uint64_t pos) { pos_ = pos; }
  const MappedFile& file() const { return file_; }

 private:
  const MappedFile& file_;
  uint64_t pos_;
};

}  // namespace kvb
