#pragma once
// The DCMP container of the recorded DeepSeek-R1 traces (shared/data/SOURCES.md section 8):
//   bytes 0-3 "DCMP", byte 4 version 0x01, byte 5 'N' (raw MessagePack follows) or 'G' (a gzip
//   stream follows, whose content is the MessagePack); then exactly one MessagePack value.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace kvb::workloads {

// Decodes the container into JSON. Throws InputError naming `path` when the header is wrong,
// the gzip stream is truncated or corrupt, or the MessagePack is malformed.
nlohmann::json decode_dcmp(const std::string& path, std::string_view bytes);

// Inflates a whole gzip stream. Throws InputError naming `path` on truncated or corrupt data.
std::string gunzip(const std::string& path, std::string_view compressed);

// decode_dcmp's limits (why: dcmp.cpp, docs/reliability.md): inflated bytes are capped in gunzip.
inline constexpr size_t kMaxMsgpackDepth = 64;
inline constexpr uint64_t kMaxMsgpackValues = uint64_t(1) << 22;

// Checks that `data` holds exactly one well-formed MessagePack value nested at most `max_depth`
// deep and counting at most `max_values` values (containers included), without recursion;
// returns an empty string when it does, else what is wrong.
// nlohmann's MessagePack reader recurses once per nesting level and trusts declared lengths,
// so a corrupt file could otherwise overflow the stack.
std::string check_msgpack(std::string_view data, size_t max_depth, uint64_t max_values);

}  // namespace kvb::workloads
