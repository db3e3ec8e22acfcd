#include "util/json_fields.hpp"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "util/errors.hpp"

namespace kvb {

using nlohmann::json;

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_input("{}: cannot open", path);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    std::string msg = e.what();
    for (char& c : msg)
      if (c == '\n') c = ' ';
    fail_input("{}: not valid JSON: {}", path, msg);
  }
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
      fail_input("{}: {} = {} is too large", where, key, v.dump());
    return v.get<int64_t>();
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return static_cast<int64_t>(d);
  }
  fail_input("{}: {} must be an integer, got {}", where, key, v.dump());
}

}  // namespace kvb
