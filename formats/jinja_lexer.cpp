#include "formats/jinja_lexer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "formats/jinja_text.hpp"
#include "formats/jinja_value.hpp"

namespace kvb::jinja {

namespace {

// \r\n and \r become \n; one trailing newline goes (Jinja2's keep_trailing_newline=False).
std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

int count_newlines(std::string_view text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

// Length of the Python whitespace (re's \s) starting at `at`.
size_t whitespace_length(std::string_view s, size_t at) {
  size_t end = at;
  while (end < s.size()) {
    size_t next = end;
    if (!is_py_space(next_code_point(s, next))) break;
    end = next;
  }
  return end - at;
}

bool all_whitespace(std::string_view text) {
  return !text.empty() && whitespace_length(text, 0) == text.size();
}

bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Python's unicode-escape decoding of a string literal's body (Jinja2 runs the body, with
// non-ASCII characters backslash-replaced, through it).
std::string decode_string(std::string_view body, int line) {
  std::string out;
  const std::u32string cps = decode_utf8(body);
  auto hex = [&](size_t at, int digits, char kind) {
    if (at + digits > cps.size()) throw TemplateError(fmt::format("truncated \\{} escape in a string", kind), line);
    char32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      const char32_t c = cps[at + i];
      if (c >= 0x80 || !std::isxdigit(static_cast<int>(c)))
        throw TemplateError(fmt::format("truncated \\{} escape in a string", kind), line);
      v = v * 16 + static_cast<char32_t>(std::isdigit(static_cast<int>(c)) ? c - '0' : std::tolower(static_cast<int>(c)) - 'a' + 10);
    }
    return v;
  };
  for (size_t i = 0; i < cps.size(); ++i) {
    if (cps[i] != '\\' || i + 1 == cps.size()) {
      append_utf8(out, cps[i]);
      continue;
    }
    const char32_t e = cps[++i];
    switch (e) {
      case '\n': break;  // line continuation
      case '\\': case '\'': case '"': out.push_back(static_cast<char>(e)); break;
      case 'a': out.push_back('\a'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'v': out.push_back('\v'); break;
      case 'x': append_utf8(out, hex(i + 1, 2, 'x')); i += 2; break;
      case 'u':
      case 'U': {
        const int digits = e == 'u' ? 4 : 8;
        const char32_t cp = hex(i + 1, digits, static_cast<char>(e));
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
          throw TemplateError(fmt::format("the escape \\{}{:0{}x} is not a character UTF-8 can hold",
                                          static_cast<char>(e), static_cast<unsigned>(cp), digits), line);
        append_utf8(out, cp);
        i += digits;
        break;
      }
      case 'N': throw TemplateError("\\N{...} escapes in strings are not supported", line);
      default:
        if (e >= '0' && e <= '7') {
          char32_t v = e - '0';
          for (int k = 0; k < 2 && i + 1 < cps.size() && cps[i + 1] >= '0' && cps[i + 1] <= '7'; ++k)
            v = v * 8 + (cps[++i] - '0');
          append_utf8(out, v);
        } else if (e >= 0x80) {
          // Python sees "\\" followed by the backslash-replaced character: a backslash, then the
          // replacement's text.
          out.push_back('\\');
          out += e < 0x100 ? fmt::format("x{:02x}", static_cast<unsigned>(e))
                 : e < 0x10000 ? fmt::format("u{:04x}", static_cast<unsigned>(e))
                               : fmt::format("U{:08x}", static_cast<unsigned>(e));
        } else {
          out.push_back('\\');  // unknown escapes stay as written
          out.push_back(static_cast<char>(e));
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string source) : s_(std::move(source)) {}

  std::vector<Token> run() {
    while (pos_ < s_.size()) {
      const size_t start = next_tag_start();
      if (start == std::string::npos) {
        emit_text(s_.substr(pos_), line_);
        break;
      }
      tag(start);
    }
    tokens_.push_back(Token{TokenKind::End, {}, 0, 0, line_});
    return std::move(tokens_);
  }

 private:
  size_t next_tag_start() const {
    for (size_t at = s_.find('{', pos_); at != std::string::npos; at = s_.find('{', at + 1))
      if (at + 1 < s_.size() && (s_[at + 1] == '{' || s_[at + 1] == '%' || s_[at + 1] == '#')) return at;
    return std::string::npos;
  }

  void emit_text(std::string text, int line) {
    if (!text.empty()) tokens_.push_back(Token{TokenKind::Text, std::move(text), 0, 0, line});
  }

  // The text before a tag, with the tag's whitespace control applied (Jinja2's OptionalLStrip).
  std::string strip_before(std::string text, char sign, bool is_output) const {
    if (sign == '-') return py_strip(text, std::nullopt, false, true);
    if (sign == '+' || is_output) return text;
    const size_t line_begin = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    if ((line_begin > 0 || line_starting_) && all_whitespace(std::string_view(text).substr(line_begin)))
      text.resize(line_begin);
    return text;
  }

  bool starts(size_t at, std::string_view what) const { return s_.compare(at, what.size(), what) == 0; }

  // Consumes the end of a block or comment tag at `at` if there is one: `+X`, `-X` and the
  // whitespace after it, or `X` and one newline (trim_blocks).
  std::optional<size_t> block_like_end(size_t at, std::string_view closer) const {
    if (s_[at] == '+' && starts(at + 1, closer)) return at + 1 + closer.size();
    if (s_[at] == '-' && starts(at + 1, closer)) {
      const size_t end = at + 1 + closer.size();
      return end + whitespace_length(s_, end);
    }
    if (starts(at, closer)) {
      const size_t end = at + closer.size();
      return end < s_.size() && s_[end] == '\n' ? end + 1 : end;
    }
    return std::nullopt;
  }

  void finish_tag(size_t end) {
    line_ += count_newlines(std::string_view(s_).substr(pos_, end - pos_));
    line_starting_ = end > 0 && s_[end - 1] == '\n';
    pos_ = end;
  }

  // After `{%` and its sign: `raw` and the tag's end, if this is {% raw %}.
  std::optional<size_t> raw_begin_end(size_t at) const {
    at += whitespace_length(s_, at);
    if (!starts(at, "raw")) return std::nullopt;
    at += 3;
    at += whitespace_length(s_, at);
    if (starts(at, "-%}")) return at + 3 + whitespace_length(s_, at + 3);
    if (starts(at, "%}")) return at + 2;
    return std::nullopt;
  }

  void tag(size_t start) {
    const char kind = s_[start + 1];
    size_t body = start + 2;
    const char sign = body < s_.size() && (s_[body] == '-' || s_[body] == '+') ? s_[body] : 0;
    if (sign) ++body;
    emit_text(strip_before(s_.substr(pos_, start - pos_), sign, kind == '{'), line_);
    line_ += count_newlines(std::string_view(s_).substr(pos_, start - pos_));
    pos_ = start;
    const int tag_line = line_;
    if (kind == '#') {
      for (size_t at = body; at < s_.size(); ++at)
        if (auto end = block_like_end(at, "#}")) return finish_tag(*end);
      throw TemplateError("missing end of comment tag '#}'", tag_line);
    }
    if (kind == '%') {
      if (auto end = raw_begin_end(body)) return raw(*end, tag_line);
    }
    tokens_.push_back(Token{kind == '{' ? TokenKind::OutputBegin : TokenKind::BlockBegin, {}, 0, 0, tag_line});
    expression_tokens(body, kind == '{' ? "}}" : "%}", tag_line);
  }

  void raw(size_t body, int tag_line) {
    finish_tag(body);
    for (size_t at = s_.find("{%", body); at != std::string::npos; at = s_.find("{%", at + 1)) {
      size_t p = at + 2;
      const char sign = p < s_.size() && (s_[p] == '-' || s_[p] == '+') ? s_[p] : 0;
      if (sign) ++p;
      p += whitespace_length(s_, p);
      if (!starts(p, "endraw")) continue;
      p += 6;
      p += whitespace_length(s_, p);
      if (p >= s_.size()) break;
      const auto end = block_like_end(p, "%}");
      if (!end) continue;
      emit_text(strip_before(s_.substr(body, at - body), sign, false), line_);
      return finish_tag(*end);
    }
    throw TemplateError("missing {% endraw %} for the {% raw %}", tag_line);
  }

  void expression_tokens(size_t at, std::string_view closer, int tag_line) {
    const bool block = closer == "%}";
    std::vector<char> open;  // expected closing brackets
    int line = tag_line;
    while (true) {
      if (at >= s_.size())
        throw TemplateError(fmt::format("'{}' tag opened on line {} is never closed", block ? "{%" : "{{", tag_line),
                            tag_line);
      if (open.empty()) {
        std::optional<size_t> end;
        if (block) {
          end = block_like_end(at, "%}");
        } else if (starts(at, "-}}")) {
          end = at + 3 + whitespace_length(s_, at + 3);
        } else if (starts(at, "}}")) {
          end = at + 2;
        }
        if (end) {
          tokens_.push_back(Token{block ? TokenKind::BlockEnd : TokenKind::OutputEnd, {}, 0, 0, line});
          return finish_tag(*end);
        }
      }
      if (const size_t ws = whitespace_length(s_, at)) {
        line += count_newlines(std::string_view(s_).substr(at, ws));
        at += ws;
      } else if (is_digit(s_[at])) {
        at = number(at, line);
      } else if (is_name_start(s_[at])) {
        size_t end = at;
        while (end < s_.size() && is_name_char(s_[end])) ++end;
        tokens_.push_back(Token{TokenKind::Name, s_.substr(at, end - at), 0, 0, line});
        at = end;
      } else if (s_[at] == '\'' || s_[at] == '"') {
        at = string(at, line);
      } else {
        at = op(at, line, open);
      }
    }
  }

  // `(\d+_)*\d+`: digits with single underscores between them.
  size_t digits_end(size_t at) const {
    while (at < s_.size() && is_digit(s_[at])) {
      ++at;
      if (at + 1 < s_.size() && s_[at] == '_' && is_digit(s_[at + 1])) ++at;
    }
    return at;
  }

  size_t number(size_t at, int line) {
    if (s_[at] == '0' && at + 1 < s_.size() && s_[at + 1] != 0 && std::strchr("xXoObB", s_[at + 1]))
      throw TemplateError("hexadecimal, octal and binary literals are not supported", line);
    size_t end = digits_end(at);
    bool is_float = false;
    if (end + 1 < s_.size() && s_[end] == '.' && is_digit(s_[end + 1])) {
      end = digits_end(end + 1);
      is_float = true;
    }
    if (end < s_.size() && (s_[end] == 'e' || s_[end] == 'E')) {
      size_t e = end + 1;
      if (e < s_.size() && (s_[e] == '+' || s_[e] == '-')) ++e;
      if (e < s_.size() && is_digit(s_[e])) {
        end = digits_end(e);
        is_float = true;
      }
    }
    std::string text;
    for (size_t i = at; i < end; ++i)
      if (s_[i] != '_') text.push_back(s_[i]);
    Token t{is_float ? TokenKind::Float : TokenKind::Integer, text, 0, 0, line};
    if (is_float) {
      t.number = std::strtod(text.c_str(), nullptr);
    } else {
      if (text.size() > 1 && text[0] == '0' && text.find_first_not_of('0') != std::string::npos)
        throw TemplateError(fmt::format("integer literal '{}' has a leading zero", text), line);
      const auto r = std::from_chars(text.data(), text.data() + text.size(), t.integer);
      if (r.ec != std::errc()) throw TemplateError(fmt::format("integer literal {} is beyond 64 bits", text), line);
    }
    tokens_.push_back(std::move(t));
    return end;
  }

  size_t string(size_t at, int& line) {
    const char quote = s_[at];
    size_t end = at + 1;
    while (end < s_.size() && s_[end] != quote) end += s_[end] == '\\' ? 2 : 1;
    if (end >= s_.size()) throw TemplateError("unterminated string literal", line);
    const std::string_view body = std::string_view(s_).substr(at + 1, end - at - 1);
    tokens_.push_back(Token{TokenKind::String, decode_string(body, line), 0, 0, line});
    line += count_newlines(body);
    return end + 1;
  }

  size_t op(size_t at, int line, std::vector<char>& open) {
    static constexpr std::array<std::string_view, 6> kTwo = {"//", "**", "==", "!=", ">=", "<="};
    for (std::string_view two : kTwo)
      if (starts(at, two)) {
        tokens_.push_back(Token{TokenKind::Operator, std::string(two), 0, 0, line});
        return at + 2;
      }
    const char c = s_[at];
    if (c == 0 || !std::strchr("+-/*%~[](){}><=.:|,;", c)) {
      size_t next = at;
      next_code_point(s_, next);
      throw TemplateError(fmt::format("unexpected character '{}' in a tag", s_.substr(at, next - at)), line);
    }
    if (c == '(') open.push_back(')');
    if (c == '[') open.push_back(']');
    if (c == '{') open.push_back('}');
    if (c == ')' || c == ']' || c == '}') {
      if (open.empty()) throw TemplateError(fmt::format("unexpected '{}'", c), line);
      if (open.back() != c) throw TemplateError(fmt::format("unexpected '{}', expected '{}'", c, open.back()), line);
      open.pop_back();
    }
    tokens_.push_back(Token{TokenKind::Operator, std::string(1, c), 0, 0, line});
    return at + 1;
  }

  std::string s_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(normalize_newlines(source)).run(); }

}  // namespace kvb::jinja
