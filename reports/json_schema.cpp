#include "reports/json_schema.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

#include "result_schema_text.hpp"
#include "util/json_fields.hpp"
#include "util/quote.hpp"

namespace kvb {

using nlohmann::json;

namespace {

const std::set<std::string> kChecked = {"type",     "properties", "required", "items",    "enum",
                                        "minimum",  "maximum",    "minItems", "maxItems", "maxProperties",
                                        "anyOf",    "additionalProperties",    "$ref"};
// Keywords that only describe or hold definitions: nothing to check.
const std::set<std::string> kAnnotations = {"$schema", "$id", "$defs", "$comment", "title", "description"};

// A key as a JSON pointer token (RFC 6901: "~" -> "~0", "/" -> "~1").
// Keys come from the document: the pointer is shown through one_line (escaped, bounded).
std::string pointer_token(const std::string& key) {
  std::string out;
  for (char c : key) out += c == '~' ? "~0" : c == '/' ? "~1" : std::string(1, c);
  return out;
}

std::string where(const std::string& pointer) { return pointer.empty() ? "(root)" : one_line(pointer, 200); }

bool has_type(const json& v, const std::string& type) {
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "string") return v.is_string();
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  if (type == "number") return v.is_number();
  if (type == "integer") {  // 2020-12: any number with a zero fractional part
    if (v.is_number_integer()) return true;
    return v.is_number_float() && std::isfinite(v.get<double>()) && v.get<double>() == std::floor(v.get<double>());
  }
  throw std::invalid_argument("unknown type in schema: " + type);
}

class Checker {
 public:
  explicit Checker(const json& root) : root_(root) {}

  std::string check(const json& v, const json& s, const std::string& at) const {
    if (s.is_boolean()) return s.get<bool>() ? "" : where(at) + ": no value is allowed here";
    for (const auto& [key, value] : s.items())
      if (!kChecked.count(key) && !kAnnotations.count(key)) throw std::invalid_argument("unsupported schema keyword: " + key);
    if (s.contains("$ref"))
      if (std::string e = check(v, resolve(s["$ref"].get<std::string>()), at); !e.empty()) return e;
    if (s.contains("type") && !type_matches(v, s["type"]))
      return where(at) + ": expected " + s["type"].dump() + ", found " + v.type_name();
    if (s.contains("enum") && std::find(s["enum"].begin(), s["enum"].end(), v) == s["enum"].end())
      return where(at) + ": " + describe(v) + " is not one of " + s["enum"].dump();
    if (s.contains("minimum") && v.is_number() && v.get<double>() < s["minimum"].get<double>())
      return where(at) + ": " + describe(v) + " is below the minimum " + s["minimum"].dump();
    if (s.contains("maximum") && v.is_number() && v.get<double>() > s["maximum"].get<double>())
      return where(at) + ": " + describe(v) + " is above the maximum " + s["maximum"].dump();
    if (s.contains("anyOf")) {
      std::string last;
      for (const json& alternative : s["anyOf"]) {
        last = check(v, alternative, at);
        if (last.empty()) break;
      }
      if (!last.empty()) return last;
    }
    if (v.is_array() && s.contains("minItems") && v.size() < s["minItems"].get<size_t>())
      return where(at) + ": " + describe(v) + ", at least " + s["minItems"].dump() + " expected";
    if (v.is_array() && s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>())
      return where(at) + ": " + describe(v) + ", at most " + s["maxItems"].dump() + " expected";
    if (v.is_object() && s.contains("maxProperties") && v.size() > s["maxProperties"].get<size_t>())
      return where(at) + ": " + describe(v) + ", at most " + s["maxProperties"].dump() + " expected";
    if (v.is_object()) return check_object(v, s, at);
    if (v.is_array() && s.contains("items"))
      for (size_t i = 0; i < v.size(); ++i)
        if (std::string e = check(v[i], s["items"], at + "/" + std::to_string(i)); !e.empty()) return e;
    return "";
  }

 private:
  static bool type_matches(const json& v, const json& type) {
    if (type.is_string()) return has_type(v, type.get<std::string>());
    return std::any_of(type.begin(), type.end(), [&](const json& t) { return has_type(v, t.get<std::string>()); });
  }

  std::string check_object(const json& v, const json& s, const std::string& at) const {
    for (const json& name : s.value("required", json::array()))
      if (!v.contains(name.get<std::string>())) return where(at) + ": missing required key " + quote(name.get<std::string>());
    const json properties = s.value("properties", json::object());
    for (const auto& [key, value] : v.items()) {
      const std::string here = at + "/" + pointer_token(key);
      std::string e;
      if (properties.contains(key)) e = check(value, properties[key], here);
      else if (s.contains("additionalProperties")) e = check(value, s["additionalProperties"], here);
      if (!e.empty()) return e;
    }
    return "";
  }

  // Only local definitions: "#/$defs/<name>".
  const json& resolve(const std::string& ref) const {
    const std::string prefix = "#/$defs/";
    const std::string name = ref.substr(std::min(ref.size(), prefix.size()));
    if (ref.rfind(prefix, 0) != 0 || !root_.contains("$defs") || !root_["$defs"].contains(name))
      throw std::invalid_argument("unresolvable $ref: " + ref);
    return root_["$defs"][name];
  }

  const json& root_;
};

}  // namespace

std::string schema_violation(const json& doc, const json& schema) { return Checker(schema).check(doc, schema, ""); }

const json& result_schema() {
  static const json schema = json::parse(kResultSchemaText);
  return schema;
}

}  // namespace kvb
