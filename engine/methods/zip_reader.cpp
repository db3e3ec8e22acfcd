#include "engine/methods/zip_reader.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "util/errors.hpp"
#include "util/quote.hpp"

namespace kvb {

namespace {

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint64_t kEndSize = 22;
constexpr uint64_t kCentralHeaderSize = 46;
constexpr uint64_t kLocalHeaderSize = 30;
// Everything read from one archive, inflated or mapped in place, counts against one budget, so a
// small hostile archive (a "zip bomb", or many entries that each inflate to the per-entry size)
// cannot ask for unbounded memory. The official TriAttention statistics files hold 1.3 MB; a
// 235B-parameter model's would hold about 12 MB (docs/reliability.md).
constexpr uint64_t kMaxArchiveBytesRead = uint64_t(256) << 20;

template <typename T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // the project targets little-endian hosts only
  return v;
}

}  // namespace

ZipArchive::ZipArchive(const std::string& path) : file_(path) { read_central_directory(); }

void ZipArchive::read_central_directory() {
  const std::string& p = file_.path();
  const uint64_t size = file_.size();
  if (size < kEndSize) fail_input("{}: {} bytes is too short for a zip archive; truncated or not a torch.save file", p, size);

  // The end-of-central-directory record sits at the very end, followed only by a comment of
  // up to 65535 bytes: scan backwards for its signature.
  const uint8_t* d = file_.data();
  uint64_t end_pos = UINT64_MAX;
  const uint64_t lowest = size >= kEndSize + 65535 ? size - kEndSize - 65535 : 0;
  for (uint64_t pos = size - kEndSize + 1; pos-- > lowest;) {
    if (load_le<uint32_t>(d + pos) == kEndSig &&
        pos + kEndSize + load_le<uint16_t>(d + pos + 20) <= size) {
      end_pos = pos;
      break;
    }
  }
  if (end_pos == UINT64_MAX)
    fail_input("{}: no zip end-of-central-directory record; truncated or not a torch.save file", p);

  const uint8_t* e = d + end_pos;
  if (load_le<uint16_t>(e + 4) != 0 || load_le<uint16_t>(e + 6) != 0)
    fail_input("{}: multi-part zip archives are not supported", p);
  uint64_t count = load_le<uint16_t>(e + 10);
  uint64_t cd_size = load_le<uint32_t>(e + 12);
  uint64_t cd_offset = load_le<uint32_t>(e + 16);

  // Zip64: the 32/16-bit fields saturate and the real values live in the zip64 record, found
  // through the locator just before the end record.
  if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    if (end_pos < 20 || load_le<uint32_t>(d + end_pos - 20) != kZip64LocatorSig)
      fail_input("{}: zip end record needs a zip64 record, but there is no zip64 locator; corrupt", p);
    const uint64_t z64_pos = load_le<uint64_t>(d + end_pos - 20 + 8);
    const uint8_t* z = file_.range(z64_pos, 56, "zip64 end-of-central-directory record");
    if (load_le<uint32_t>(z) != kZip64EndSig) fail_input("{}: zip64 locator points at a bad record; corrupt", p);
    count = load_le<uint64_t>(z + 32);
    cd_size = load_le<uint64_t>(z + 40);
    cd_offset = load_le<uint64_t>(z + 48);
  }
  if (cd_offset > size || cd_size > size - cd_offset)
    fail_input("{}: zip central directory (bytes {}..{}) lies past the end of the file ({} bytes); truncated or corrupt",
               p, cd_offset, cd_offset + cd_size, size);
  // Every header is at least 46 bytes, which bounds the count before anything is allocated.
  if (count > cd_size / kCentralHeaderSize)
    fail_input("{}: zip central directory claims {} entries in {} bytes; corrupt", p, count, cd_size);

  entries_.reserve(count);
  crc_checked_.assign(count, false);
  uint64_t pos = cd_offset;
  const uint64_t cd_end = cd_offset + cd_size;
  for (uint64_t i = 0; i < count; ++i) {
    if (cd_end - pos < kCentralHeaderSize) fail_input("{}: zip central directory entry {} is cut short; corrupt", p, i);
    const uint8_t* h = d + pos;
    if (load_le<uint32_t>(h) != kCentralHeaderSig)
      fail_input("{}: zip central directory entry {} has a bad signature; corrupt", p, i);
    Entry entry;
    const uint16_t flags = load_le<uint16_t>(h + 8);
    entry.method = load_le<uint16_t>(h + 10);
    entry.crc32 = load_le<uint32_t>(h + 16);
    entry.compressed_size = load_le<uint32_t>(h + 20);
    entry.size = load_le<uint32_t>(h + 24);
    const uint64_t name_len = load_le<uint16_t>(h + 28);
    const uint64_t extra_len = load_le<uint16_t>(h + 30);
    const uint64_t comment_len = load_le<uint16_t>(h + 32);
    entry.local_header_offset = load_le<uint32_t>(h + 42);
    if (cd_end - pos - kCentralHeaderSize < name_len + extra_len + comment_len)
      fail_input("{}: zip central directory entry {} runs past the directory; corrupt", p, i);
    entry.name.assign(reinterpret_cast<const char*>(h + kCentralHeaderSize), name_len);
    if (flags & 1) fail_input("{}: zip entry {} is encrypted", p, quote(entry.name));
    if (entry.method != 0 && entry.method != 8)
      fail_input("{}: zip entry {} uses compression method {} (only stored and deflate are supported)", p,
                 quote(entry.name), entry.method);

    // Zip64 extended information: the fields that saturated, in this fixed order.
    const uint8_t* x = h + kCentralHeaderSize + name_len;
    for (uint64_t xp = 0; xp + 4 <= extra_len;) {
      const uint16_t id = load_le<uint16_t>(x + xp);
      const uint64_t len = load_le<uint16_t>(x + xp + 2);
      if (xp + 4 + len > extra_len) fail_input("{}: zip entry {} has a malformed extra field; corrupt", p, quote(entry.name));
      if (id == 0x0001) {
        uint64_t at = xp + 4;
        auto take = [&](uint64_t& field) {
          if (at + 8 > xp + 4 + len) fail_input("{}: zip entry {} has a short zip64 field; corrupt", p, quote(entry.name));
          field = load_le<uint64_t>(x + at);
          at += 8;
        };
        if (entry.size == 0xFFFFFFFF) take(entry.size);
        if (entry.compressed_size == 0xFFFFFFFF) take(entry.compressed_size);
        if (entry.local_header_offset == 0xFFFFFFFF) take(entry.local_header_offset);
      }
      xp += 4 + len;
    }
    if (entry.method == 0 && entry.size != entry.compressed_size)
      fail_input("{}: stored zip entry {} has size {} but compressed size {}; corrupt", p, quote(entry.name), entry.size,
                 entry.compressed_size);
    if (!by_name_.emplace(entry.name, entries_.size()).second)
      fail_input("{}: zip entry {} appears twice", p, quote(entry.name));
    entries_.push_back(std::move(entry));
    pos += kCentralHeaderSize + name_len + extra_len + comment_len;
  }
}

const ZipArchive::Entry* ZipArchive::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &entries_[it->second];
}

std::string_view ZipArchive::read(const Entry& entry) const {
  const std::string& p = file_.path();
  const size_t index = static_cast<size_t>(&entry - entries_.data());
  if (index >= entries_.size()) fail_input("{}: zip entry does not belong to this archive", p);
  if (auto it = inflated_.find(index); it != inflated_.end()) return *it->second;

  // The local header repeats the name and may carry a different extra field (torch pads it to
  // align the data); sizes and CRC come from the central directory, since torch writes them
  // after the data (flag bit 3) and leaves the local ones zero.
  if (entry.size > kMaxArchiveBytesRead - bytes_read_)
    fail_input("{}: reading zip entry {} ({} bytes) passes the {} bytes kvbench reads from one archive "
               "(docs/reliability.md)", p, quote(entry.name), entry.size, kMaxArchiveBytesRead);
  bytes_read_ += entry.size;
  const std::string what = "zip entry " + quote(entry.name);
  const uint8_t* h = file_.range(entry.local_header_offset, kLocalHeaderSize, what + " local header");
  if (load_le<uint32_t>(h) != kLocalHeaderSig)
    fail_input("{}: zip entry {} local header has a bad signature; corrupt", p, quote(entry.name));
  const uint64_t data_offset =
      entry.local_header_offset + kLocalHeaderSize + load_le<uint16_t>(h + 26) + load_le<uint16_t>(h + 28);
  const uint8_t* data = file_.range(data_offset, entry.compressed_size, what + " data");

  std::string_view bytes;
  if (entry.method == 0) {
    bytes = std::string_view(reinterpret_cast<const char*>(data), entry.size);
  } else {
    auto out = std::make_unique<std::string>(entry.size, '\0');
    z_stream zs{};
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) fail_runtime("{}: zlib inflateInit2 failed", p);
    // zlib counts in uInt: feed and drain in chunks so entries over 4 GiB would also work.
    uint64_t in_left = entry.compressed_size, out_left = entry.size;
    zs.next_in = const_cast<Bytef*>(data);
    zs.next_out = reinterpret_cast<Bytef*>(out->data());
    int rc = Z_OK;
    while (rc == Z_OK) {
      if (zs.avail_in == 0) {
        zs.avail_in = static_cast<uInt>(std::min<uint64_t>(in_left, 1u << 30));
        in_left -= zs.avail_in;
      }
      if (zs.avail_out == 0) {
        zs.avail_out = static_cast<uInt>(std::min<uint64_t>(out_left, 1u << 30));
        out_left -= zs.avail_out;
      }
      const uInt before_in = zs.avail_in, before_out = zs.avail_out;
      rc = inflate(&zs, Z_NO_FLUSH);
      // No progress with input left means the stream wants more output than declared.
      if (rc == Z_BUF_ERROR || (rc == Z_OK && zs.avail_in == before_in && zs.avail_out == before_out)) break;
    }
    const bool complete = rc == Z_STREAM_END && zs.avail_out == 0 && out_left == 0;
    inflateEnd(&zs);
    if (!complete)
      fail_input("{}: zip entry {} does not inflate to its declared {} bytes; corrupt", p, quote(entry.name), entry.size);
    bytes = *out;
    inflated_.emplace(index, std::move(out));
  }
  if (!crc_checked_[index]) {
    const uint32_t crc = static_cast<uint32_t>(
        crc32_z(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<z_size_t>(bytes.size())));
    if (crc != entry.crc32)
      fail_input("{}: zip entry {} fails its CRC-32 check (stored {:08x}, computed {:08x}); corrupt", p, quote(entry.name),
                 entry.crc32, crc);
    crc_checked_[index] = true;
  }
  return bytes;
}

}  // namespace kvb
