#include "engine/tokenizers/utf8.hpp"

namespace kvb {
namespace {

constexpr UnicodeClass ascii_class(unsigned char c) {
  if (c == ' ' || (c >= '\t' && c <= '\r')) return UnicodeClass::Space;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return UnicodeClass::Letter;
  if (c >= '0' && c <= '9') return UnicodeClass::Number;
  return UnicodeClass::Other;
}

}  // namespace

CodePoint decode_code_point(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return {c, 1, ascii_class(c)};
  constexpr CodePoint invalid{0xFFFD, 1, UnicodeClass::Other};
  unsigned len;
  char32_t cp, min;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return invalid;
  }
  if (s.size() - i < len) return invalid;
  for (unsigned k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return invalid;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return invalid;
  return {cp, len, unicode_class(cp)};
}

}  // namespace kvb
