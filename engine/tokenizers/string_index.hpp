#pragma once
// A map from token text to id that looks up std::string_view keys without building a std::string
// (heterogeneous lookup), for tokenizers that look up every piece of a text.
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace kvb {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringIndex = std::unordered_map<std::string, int, StringHash, std::equal_to<>>;

}  // namespace kvb
