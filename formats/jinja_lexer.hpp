#pragma once
// Splits a chat template into text and tag tokens the way Jinja2's lexer does with Hugging Face's
// settings: trim_blocks (one newline after a block or comment tag is dropped), lstrip_blocks
// (spaces and tabs before a block or comment tag at the start of a line are dropped), the `-`
// and `+` whitespace controls, {# comments #} dropped, {% raw %} bodies kept as text, newlines
// normalised to \n and one trailing newline removed (keep_trailing_newline=False).
//
// Accepts: valid UTF-8 source. Inside tags: names, decimal integer and float literals (with
// `_` separators), '...' and "..." strings with Python's escapes (\N{...} is refused), and
// Jinja's operators.
// Errors: TemplateError with the line (unterminated tags, comments, raw blocks and strings,
// unexpected characters, unbalanced brackets).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kvb::jinja {

enum class TokenKind {
  Text,         // template text outside tags (whitespace control already applied)
  OutputBegin,  // {{
  OutputEnd,    // }}
  BlockBegin,   // {%
  BlockEnd,     // %}
  Name,
  String,   // text: the decoded value
  Integer,  // integer
  Float,    // number
  Operator,
  End,  // end of the template
};

struct Token {
  TokenKind kind = TokenKind::End;
  std::string text;
  int64_t integer = 0;
  double number = 0;
  int line = 1;
};

std::vector<Token> tokenize(std::string_view source);

}  // namespace kvb::jinja
