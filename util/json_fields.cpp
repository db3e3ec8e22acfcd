#include "util/json_fields.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "util/errors.hpp"
#include "util/quote.hpp"

namespace kvb {

using nlohmann::json;

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_input("{}: cannot open", path);
  std::error_code ec;
  if (const auto bytes = std::filesystem::file_size(path, ec); !ec && bytes > kMaxJsonFileBytes)
    fail_input("{}: {} bytes of JSON is more than the {} kvbench reads (docs/reliability.md)", path, bytes,
               kMaxJsonFileBytes);
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_json(ss.view(), path);
}

size_t json_too_deep_at(std::string_view text, size_t max_depth) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return std::string_view::npos;
}

void check_json_depth(std::string_view text, const std::string& where) {
  if (const size_t at = json_too_deep_at(text); at != std::string_view::npos)
    fail_input("{}: JSON nested deeper than {} levels (at byte {})", where, kMaxJsonDepth, at);
}

json parse_json(std::string_view text, const std::string& where) {
  check_json_depth(text, where);
  // JSON has no raw NUL (strings escape it as \u0000); nlohmann would end the text there and
  // accept whatever garbage follows.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos)
    fail_input("{}: not valid JSON: a NUL byte at byte {}", where, nul);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    std::string msg = e.what();  // nlohmann quotes the offending text: keep the message one line
    for (char& c : msg)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    if (msg.size() > 200) msg = msg.substr(0, 200) + "...";
    fail_input("{}: not valid JSON: {}", where, msg);
  }
}

json parse_json_or_discarded(std::string_view text) {
  if (json_too_deep_at(text) != std::string_view::npos || text.find('\0') != std::string_view::npos)
    return json(json::value_t::discarded);
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

std::string describe(const json& v) {
  if (v.is_number() || v.is_boolean() || v.is_null()) return v.dump();
  if (v.is_string()) return quote(v.get_ref<const std::string&>());
  if (v.is_array()) return fmt::format("an array of {} elements", v.size());
  if (v.is_object()) return fmt::format("an object of {} keys", v.size());
  return std::string("a ") + v.type_name();
}

const json* find_key(const json& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

const json* find_path(const json& obj, std::string_view path) {
  const json* at = &obj;
  while (true) {
    const size_t slash = path.find('/');
    if (!at->is_object()) return nullptr;
    at = find_key(*at, path.substr(0, slash));
    if (!at || slash == std::string_view::npos) return at;
    path.remove_prefix(slash + 1);
  }
}

int64_t as_int64(const json& v, const std::string& where, std::string_view key) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      fail_input("{}: {} = {} is too large", where, key, describe(v));
    return v.get<int64_t>();
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return static_cast<int64_t>(d);
  }
  fail_input("{}: {} must be an integer, got {}", where, key, describe(v));
}

}  // namespace kvb
