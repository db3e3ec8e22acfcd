#pragma once
// Internal to workloads/: small scanning helpers for answer text, shared by the graders
// (math_answer.cpp, math_normalize.cpp, math_compare.cpp, dfs_answer.cpp). ASCII only: bytes of
// other characters are never letters, digits or spaces here.
#include <string>
#include <string_view>

namespace kvb::workloads::text {

constexpr size_t npos = std::string::npos;

inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

inline std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  }
  return out;
}

inline bool starts_with_at(std::string_view s, size_t i, std::string_view what) {
  return i <= s.size() && s.substr(i).starts_with(what);
}

// Position just past the '}' that closes the group opening at s[open] == '{', or npos when it
// never closes. A backslash escapes the next character, so \{ and \} (set braces) do not count.
inline size_t group_end(std::string_view s, size_t open) {
  size_t depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\') {
      ++i;
    } else if (c == '{') {
      ++depth;
    } else if (c == '}' && depth > 0 && --depth == 0) {
      return i + 1;
    }
  }
  return npos;
}

}  // namespace kvb::workloads::text
