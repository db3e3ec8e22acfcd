#pragma once
// Memory sizes as users write them: "80GiB", "80 GB", "81920MiB", "1.5TiB", or plain bytes.
#include <cstdint>
#include <string>

namespace kvb {

// Binary (KiB, MiB, GiB, TiB) and decimal (KB, MB, GB, TB) units, case-insensitive, optional space.
// InputError naming `flag` for anything else, zero or negative.
uint64_t parse_byte_size(const std::string& text, const std::string& flag);

// "1.50 MiB" style sizes (binary units).
std::string human_bytes(double bytes);

}  // namespace kvb
