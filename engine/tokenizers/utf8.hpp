#pragma once
// UTF-8 decoding for tokenizers that split text by Unicode class (the byte-level BPE
// pre-tokenizers, WordLevel's whitespace split). Never fails: invalid input (bad lead byte,
// missing continuation, overlong form, surrogate, above U+10FFFF) yields a one-byte U+FFFD of
// class Other, so arbitrary bytes still split somewhere sensible and pass through unchanged.
#include <cstddef>
#include <string_view>

#include "engine/tokenizers/unicode_tables.hpp"

namespace kvb {

struct CodePoint {
  char32_t cp;
  unsigned len;  // bytes
  UnicodeClass cls;
};

// The code point that starts at byte `i` of `s` (i < s.size()).
CodePoint decode_code_point(std::string_view s, size_t i);

}  // namespace kvb
