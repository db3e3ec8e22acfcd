#pragma once
// A minimal read-only zip archive reader, enough for torch.save files: the central directory
// (with zip64 records when the 32-bit fields overflow), STORED entries read in place and DEFLATE
// entries inflated with zlib. Every offset and size is checked against the file, and every
// entry's CRC-32 is verified, so a truncated or corrupt archive is an InputError naming the
// file, never a crash or an out-of-bounds read. At most 256 MiB are read from one archive, all
// entries together (zip_reader.cpp says why).
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/mapped_file.hpp"

namespace kvb {

class ZipArchive {
 public:
  explicit ZipArchive(const std::string& path);  // reads the central directory; throws InputError

  struct Entry {
    std::string name;
    uint16_t method = 0;  // 0 stored, 8 deflate
    uint32_t crc32 = 0;
    uint64_t compressed_size = 0;
    uint64_t size = 0;  // uncompressed
    uint64_t local_header_offset = 0;
  };

  const std::string& path() const { return file_.path(); }
  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(std::string_view name) const;

  // The uncompressed bytes of an entry, valid for the archive's lifetime: a view into the mapped
  // file for stored entries, an inflated copy (made once) for deflated ones. The CRC is checked
  // on the first read.
  std::string_view read(const Entry& entry) const;

 private:
  void read_central_directory();

  MappedFile file_;
  std::vector<Entry> entries_;
  std::map<std::string, size_t, std::less<>> by_name_;
  mutable std::map<size_t, std::unique_ptr<std::string>> inflated_;  // entry index -> bytes
  mutable std::vector<bool> crc_checked_;
  mutable uint64_t bytes_read_ = 0;  // entries read so far (each once), against the archive's budget
};

}  // namespace kvb
