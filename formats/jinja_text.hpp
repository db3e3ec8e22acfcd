#pragma once
// Python `str` semantics over UTF-8 text, for the chat-template renderer (jinja_*.cpp).
//
// Accepts: valid UTF-8 (checked with valid_utf8 wherever text enters the renderer: the template
// source and the context's strings). Positions, lengths and slices count code points, as Python's
// str does. Whitespace is Python's str.isspace() set. Case mapping covers ASCII letters only;
// the callers refuse text with other letters instead of mapping them differently from Python.
// Errors: TemplateError (jinja_value.hpp) for what Python raises (an empty separator).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvb::jinja {

bool valid_utf8(std::string_view text);

// Decodes valid UTF-8 into code points, and encodes one code point.
std::u32string decode_utf8(std::string_view text);
void append_utf8(std::string& out, char32_t cp);
// The code point at byte `at` of valid UTF-8; advances `at` past it.
char32_t next_code_point(std::string_view text, size_t& at);

// Byte offset of every code point, plus text.size() at the end.
std::vector<size_t> code_point_offsets(std::string_view text);
size_t code_point_count(std::string_view text);

// Python str.isspace() for one code point.
bool is_py_space(char32_t cp);

// str.strip / lstrip / rstrip: `chars` absent strips whitespace, present strips those code points.
std::string py_strip(std::string_view text, const std::optional<std::string>& chars, bool left,
                     bool right);

// str.split / str.rsplit: `sep` absent splits on whitespace runs; maxsplit < 0 means no limit.
std::vector<std::string> py_split(std::string_view text, const std::optional<std::string>& sep,
                                  int64_t maxsplit, bool from_right);

// str.replace with count < 0 meaning every occurrence (an empty `from` inserts between code points).
std::string py_replace(std::string_view text, std::string_view from, std::string_view to,
                       int64_t count);

// str.count and str.find (code-point index, or -1) over the whole string.
int64_t py_count(std::string_view text, std::string_view sub);
int64_t py_find(std::string_view text, std::string_view sub);

// True when the text has no letters outside ASCII, so ASCII case mapping equals Python's.
bool case_mapping_is_ascii(std::string_view text);
std::string ascii_upper(std::string_view text);
std::string ascii_lower(std::string_view text);

// repr() of a str: quotes chosen and characters escaped as CPython does.
std::string py_repr(std::string_view text);

// repr() / str() of a float (the shortest text that reads back to the same double).
std::string py_float_repr(double value);

}  // namespace kvb::jinja
