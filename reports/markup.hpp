#pragma once
// Escaping text for HTML, SVG, XML and CSV output.
#include <string>

namespace kvb {

inline std::string markup_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += ch;
    }
  }
  return out;
}

// A CSV field in double quotes, quotes inside doubled (ids and names come from user files).
inline std::string csv_quote(std::string s) {
  for (size_t at = 0; (at = s.find('"', at)) != std::string::npos; at += 2) s.insert(at, "\"");
  return "\"" + s + "\"";
}

}  // namespace kvb
