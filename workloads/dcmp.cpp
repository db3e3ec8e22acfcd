// DCMP container decoding: header check, streaming gunzip (zlib), MessagePack guard, decode.
#include "workloads/dcmp.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "util/errors.hpp"

namespace kvb::workloads {
namespace {

// A corrupt or hostile stream must not exhaust memory. The largest real trace (shared/data, the
// R1 sparse-regress trace) inflates to 2.9 MB holding 524,146 MessagePack values; the limits are
// about 20x and 8x that. Decoded, a value costs nlohmann ~16-48 bytes, so 4 Mi values stay
// under ~200 MB however small each is on disk (a 261 KB gzip of 256 Mi one-byte ints otherwise
// asks for 4 GB and more).
constexpr size_t kMaxInflated = size_t(64) << 20;

uint64_t read_be(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

std::string gunzip(const std::string& path, std::string_view compressed) {
  z_stream zs{};
  // 16 + MAX_WBITS: expect a gzip header and trailer (and check the trailer's CRC and length).
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) fail_runtime("{}: zlib inflateInit2 failed", path);

  std::string out;
  // Inflate straight into the output string, growing it geometrically: linear time overall.
  out.resize(std::max<size_t>(compressed.size() * 4, 1 << 16));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  size_t in_left = compressed.size();
  size_t produced = 0;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (produced == out.size()) {
      if (out.size() >= kMaxInflated) {
        inflateEnd(&zs);
        fail_input("{}: gzip stream inflates to more than {} bytes (the limit; docs/reliability.md)", path,
                   kMaxInflated);
      }
      out.resize(std::min(out.size() * 2, kMaxInflated));
    }
    // zlib counts in uInt (32 bits): feed and drain at most 1 GiB per call.
    uInt in_chunk = static_cast<uInt>(std::min<size_t>(in_left, 1u << 30));
    uInt out_chunk = static_cast<uInt>(std::min<size_t>(out.size() - produced, 1u << 30));
    zs.avail_in = in_chunk;
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs.avail_out = out_chunk;
    rc = inflate(&zs, Z_NO_FLUSH);
    in_left -= in_chunk - zs.avail_in;
    produced += out_chunk - zs.avail_out;
    if (rc == Z_STREAM_END) break;
    if (rc == Z_BUF_ERROR && in_left == 0) {  // no more input and no end of stream
      inflateEnd(&zs);
      fail_input("{}: truncated gzip stream (ends after {} inflated bytes)", path, produced);
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      std::string why = zs.msg ? zs.msg : "error " + std::to_string(rc);
      inflateEnd(&zs);
      fail_input("{}: corrupt gzip stream: {}", path, why);
    }
    if (in_left == 0 && zs.avail_out != 0) {  // all input consumed, room left, yet no end
      inflateEnd(&zs);
      fail_input("{}: truncated gzip stream (ends after {} inflated bytes)", path, produced);
    }
  }
  inflateEnd(&zs);
  out.resize(produced);
  return out;
}

std::string check_msgpack(std::string_view data, size_t max_depth, uint64_t max_values) {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  const size_t size = data.size();
  size_t pos = 0;
  // Values still to read at each open nesting level; the outermost level holds one value.
  std::vector<uint64_t> pending{1};
  uint64_t values = 0;
  while (!pending.empty()) {
    if (pending.back() == 0) {
      pending.pop_back();
      continue;
    }
    --pending.back();
    if (++values > max_values) return fmt::format("MessagePack holds more than {} values (the limit)", max_values);
    if (pos >= size) return "MessagePack data ends early";
    const uint8_t tag = p[pos++];
    uint64_t skip = 0;      // payload bytes after the tag and its length field
    uint64_t children = 0;  // nested values that follow
    size_t len_bytes = 0;   // size of a big-endian length field after the tag
    if (tag <= 0x7f || tag >= 0xe0 || tag == 0xc0 || tag == 0xc2 || tag == 0xc3) {
      // fixint, nil, bool: the tag is the whole value
    } else if (tag <= 0x8f) {
      children = 2 * uint64_t(tag & 0x0f);
    } else if (tag <= 0x9f) {
      children = tag & 0x0f;
    } else if (tag <= 0xbf) {
      skip = tag & 0x1f;
    } else {
      switch (tag) {
        case 0xc4: case 0xd9: len_bytes = 1; break;  // bin8, str8
        case 0xc5: case 0xda: len_bytes = 2; break;  // bin16, str16
        case 0xc6: case 0xdb: len_bytes = 4; break;  // bin32, str32
        case 0xc7: len_bytes = 1; skip = 1; break;   // ext8 (+ type byte)
        case 0xc8: len_bytes = 2; skip = 1; break;   // ext16
        case 0xc9: len_bytes = 4; skip = 1; break;   // ext32
        case 0xca: skip = 4; break;                  // float32
        case 0xcb: skip = 8; break;                  // float64
        case 0xcc: case 0xd0: skip = 1; break;       // uint8, int8
        case 0xcd: case 0xd1: skip = 2; break;
        case 0xce: case 0xd2: skip = 4; break;
        case 0xcf: case 0xd3: skip = 8; break;
        case 0xd4: skip = 2; break;                  // fixext1..16 (+ type byte)
        case 0xd5: skip = 3; break;
        case 0xd6: skip = 5; break;
        case 0xd7: skip = 9; break;
        case 0xd8: skip = 17; break;
        case 0xdc: case 0xdd: case 0xde: case 0xdf: {  // array16/32, map16/32
          size_t n = (tag == 0xdc || tag == 0xde) ? 2 : 4;
          if (size - pos < n) return "MessagePack data ends early";
          children = read_be(p + pos, n) * ((tag >= 0xde) ? 2 : 1);
          pos += n;
          break;
        }
        default:
          return fmt::format("invalid MessagePack type byte 0x{:02x} at offset {}", tag, pos - 1);
      }
    }
    if (len_bytes) {
      if (size - pos < len_bytes) return "MessagePack data ends early";
      skip += read_be(p + pos, len_bytes);
      pos += len_bytes;
    }
    if (skip > size - pos) return "MessagePack data ends early";
    pos += skip;
    if (children) {
      // Each value takes at least one byte: a count beyond the bytes left is corrupt.
      if (children > size - pos) return "MessagePack container claims more values than the data holds";
      if (pending.size() >= max_depth) return fmt::format("MessagePack nested deeper than {} levels", max_depth);
      pending.push_back(children);
    }
  }
  if (pos != size) return fmt::format("{} unexpected bytes after the MessagePack value", size - pos);
  return {};
}

nlohmann::json decode_dcmp(const std::string& path, std::string_view bytes) {
  if (bytes.size() < 6 || !bytes.starts_with("DCMP")) {
    fail_input("{}: not a DCMP trace container (expected the bytes \"DCMP\" at the start)", path);
  }
  if (bytes[4] != 0x01) {
    fail_input("{}: unsupported DCMP version {} (expected 1)", path, static_cast<unsigned char>(bytes[4]));
  }
  std::string inflated;
  std::string_view msgpack;
  if (bytes[5] == 'N') {
    msgpack = bytes.substr(6);
  } else if (bytes[5] == 'G') {
    inflated = gunzip(path, bytes.substr(6));
    msgpack = inflated;
  } else {
    fail_input("{}: unknown DCMP compression byte 0x{:02x} (expected 'N' or 'G')", path,
               static_cast<unsigned char>(bytes[5]));
  }
  if (std::string problem = check_msgpack(msgpack, kMaxMsgpackDepth, kMaxMsgpackValues); !problem.empty()) {
    fail_input("{}: corrupt trace: {}", path, problem);
  }
  try {
    return nlohmann::json::from_msgpack(msgpack.begin(), msgpack.end());
  } catch (const nlohmann::json::exception& e) {
    fail_input("{}: corrupt trace: cannot decode MessagePack ({})", path, e.what());
  }
}

}  // namespace kvb::workloads
