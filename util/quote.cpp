#include "util/quote.hpp"

#include <fmt/format.h>

namespace kvb {

namespace {

// Where to cut `text` to at most `max_bytes` without splitting a UTF-8 sequence.
size_t cut_point(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text.size();
  size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // a continuation byte
  return cut;
}

// Appends `text` with control bytes escaped; `quote` also escapes '"' and '\\'.
void append_escaped(std::string& out, std::string_view text, bool quote) {
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (quote && (c == '"' || c == '\\')) (out += '\\') += ch;
    else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += ch;
  }
}

}  // namespace

std::string quote(std::string_view text, size_t max_bytes) {
  const size_t cut = cut_point(text, max_bytes);
  std::string out = "\"";
  append_escaped(out, text.substr(0, cut), true);
  out += '"';
  if (cut < text.size()) out += fmt::format("... ({} bytes)", text.size());
  return out;
}

std::string one_line(std::string_view message, size_t max_bytes) {
  const size_t cut = cut_point(message, max_bytes);
  std::string out;
  append_escaped(out, message.substr(0, cut), false);
  if (cut < message.size()) out += fmt::format("... ({} bytes)", message.size());
  return out;
}

}  // namespace kvb
