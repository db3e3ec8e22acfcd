#include "formats/jinja_value.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "formats/jinja_text.hpp"

namespace kvb::jinja {

namespace {

[[noreturn]] void too_deep() {
  throw TemplateError(fmt::format("values nested more than {} deep", kMaxNesting));
}

uint32_t depth_of(const std::vector<Value>& items) {
  uint32_t deepest = 0;
  for (const Value& v : items) deepest = std::max(deepest, v.depth());
  if (deepest + 1 > kMaxNesting) too_deep();
  return deepest + 1;
}

const Value* find_entry(const std::vector<std::pair<std::string, Value>>& entries,
                        std::string_view key) {
  for (const auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

}  // namespace

const Value* Dict::find(std::string_view key) const { return find_entry(entries, key); }
const Value* Namespace::find(std::string_view key) const { return find_entry(attrs, key); }

void Namespace::set(const std::string& key, Value value) {
  for (auto& [k, v] : attrs)
    if (k == key) {
      v = std::move(value);
      return;
    }
  attrs.emplace_back(key, std::move(value));
}

Value Value::sequence(std::vector<Value> items, SeqKind kind) {
  auto seq = std::make_shared<Sequence>();
  seq->kind = kind;
  seq->depth = depth_of(items);
  seq->items = std::move(items);
  return Value(std::shared_ptr<const Sequence>(std::move(seq)));
}

Value Value::dict(std::vector<std::pair<std::string, Value>> entries) {
  auto d = std::make_shared<Dict>();
  uint32_t deepest = 0;
  for (const auto& entry : entries) deepest = std::max(deepest, entry.second.depth());
  if (deepest + 1 > kMaxNesting) too_deep();
  d->depth = deepest + 1;
  d->entries = std::move(entries);
  return Value(std::shared_ptr<const Dict>(std::move(d)));
}

double Value::as_double() const { return is_float() ? std::get<double>(data_) : static_cast<double>(as_int()); }

uint32_t Value::depth() const {
  if (is_sequence()) return seq().depth;
  if (is_dict()) return dict().depth;
  return 0;
}

std::string Value::type_name() const {
  if (is_undefined()) return "Undefined";
  if (is_none()) return "NoneType";
  if (is_bool()) return "bool";
  if (is_int()) return "int";
  if (is_float()) return "float";
  if (is_string()) return markup() ? "Markup" : "str";
  if (is_dict()) return "dict";
  if (is_namespace()) return "Namespace";
  if (is_callable()) return fn().type_name();
  if (is_loop()) return "LoopContext";
  switch (seq().kind) {
    case SeqKind::List: return "list";
    case SeqKind::Tuple: return "tuple";
    case SeqKind::Range: return "range";
    case SeqKind::Generator: return "generator";
    case SeqKind::DictItems: return "dict_items";
    case SeqKind::DictKeys: return "dict_keys";
    case SeqKind::DictValues: return "dict_values";
  }
  return "object";
}

std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  const std::string type = v.type_name();
  if (type == "Undefined" || type == "LoopContext" || type == "Macro") return "jinja2.runtime." + type + " object";
  if (type == "Namespace") return "jinja2.utils.Namespace object";
  if (type == "Markup") return "markupsafe.Markup object";
  return type + " object";
}

namespace {

Value convert(const nlohmann::ordered_json& json, uint32_t depth) {
  if (depth > kMaxNesting) too_deep();
  switch (json.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::none();
    case nlohmann::ordered_json::value_t::boolean: return Value::boolean(json.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value::integer(json.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const auto u = json.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw TemplateError(fmt::format("context integer {} is beyond 64 bits", u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value::number(json.get<double>());
    case nlohmann::ordered_json::value_t::string: {
      const auto& s = json.get_ref<const std::string&>();
      if (!valid_utf8(s)) throw TemplateError("a context string is not valid UTF-8");
      return Value::string(s);
    }
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(convert(item, depth + 1));
      return Value::sequence(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      std::vector<std::pair<std::string, Value>> entries;
      entries.reserve(json.size());
      for (const auto& [key, item] : json.items()) {
        if (!valid_utf8(key)) throw TemplateError("a context key is not valid UTF-8");
        entries.emplace_back(key, convert(item, depth + 1));
      }
      return Value::dict(std::move(entries));
    }
    default: throw TemplateError("the context holds a binary value, which templates cannot use");
  }
}

}  // namespace

Value from_json(const nlohmann::ordered_json& json) { return convert(json, 1); }

std::vector<std::optional<Value>> bind_args(std::string_view what, CallArgs args,
                                            std::initializer_list<std::string_view> params,
                                            size_t required) {
  std::vector<std::optional<Value>> bound(params.size());
  if (args.positional.size() > params.size())
    throw TemplateError(fmt::format("{} takes at most {} argument(s) ({} given)", what, params.size(),
                                    args.positional.size()));
  for (size_t i = 0; i < args.positional.size(); ++i) bound[i] = std::move(args.positional[i]);
  for (auto& [key, value] : args.keyword) {
    const auto it = std::find(params.begin(), params.end(), key);
    if (it == params.end()) throw TemplateError(fmt::format("{} got an unexpected keyword argument '{}'", what, key));
    auto& slot = bound[static_cast<size_t>(it - params.begin())];
    if (slot) throw TemplateError(fmt::format("{} got multiple values for argument '{}'", what, key));
    slot = std::move(value);
  }
  for (size_t i = 0; i < required; ++i)
    if (!bound[i])
      throw TemplateError(fmt::format("{} is missing the argument '{}'", what, *(params.begin() + i)));
  return bound;
}

bool truthy(const Value& v) {
  struct Visitor {
    bool operator()(const Undefined&) const { return false; }
    bool operator()(std::nullptr_t) const { return false; }
    bool operator()(bool b) const { return b; }
    bool operator()(int64_t i) const { return i != 0; }
    bool operator()(double d) const { return d != 0.0; }
    bool operator()(const Str& s) const { return !s.text.empty(); }
    bool operator()(const std::shared_ptr<const Sequence>& s) const {
      return s->kind == SeqKind::Generator || !s->items.empty();
    }
    bool operator()(const std::shared_ptr<const Dict>& d) const { return !d->entries.empty(); }
    bool operator()(const std::shared_ptr<Namespace>&) const { return true; }
    bool operator()(const std::shared_ptr<const Callable>&) const { return true; }
    bool operator()(const std::shared_ptr<const LoopInfo>&) const { return true; }
  };
  return std::visit(Visitor{}, v.data());
}

namespace {

std::string repr_at(const Value& v, uint32_t depth);

[[noreturn]] void no_text(const Value& v) {
  throw TemplateError(fmt::format("a {} has no reproducible text (Python shows its address)", v.type_name()));
}

std::string join_repr(const std::vector<Value>& items, uint32_t depth) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    out += repr_at(items[i], depth + 1);
  }
  return out;
}

std::string entries_repr(const std::vector<std::pair<std::string, Value>>& entries, uint32_t depth) {
  std::string out = "{";
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i) out += ", ";
    out += py_repr(entries[i].first) + ": " + repr_at(entries[i].second, depth + 1);
  }
  return out + "}";
}

std::string repr_at(const Value& v, uint32_t depth) {
  if (depth > kMaxNesting) too_deep();
  if (v.is_undefined()) return "Undefined";
  if (v.is_none()) return "None";
  if (v.is_bool()) return v.as_bool() ? "True" : "False";
  if (v.is_int()) return std::to_string(v.as_int());
  if (v.is_float()) return py_float_repr(v.as_double());
  if (v.is_string()) return v.markup() ? "Markup(" + py_repr(v.str()) + ")" : py_repr(v.str());
  if (v.is_dict()) return entries_repr(v.dict().entries, depth);
  if (v.is_namespace()) return "<Namespace " + entries_repr(v.ns()->attrs, depth) + ">";
  if (!v.is_sequence()) no_text(v);
  const Sequence& s = v.seq();
  switch (s.kind) {
    case SeqKind::List: return "[" + join_repr(s.items, depth) + "]";
    case SeqKind::Tuple:
      return "(" + join_repr(s.items, depth) + (s.items.size() == 1 ? ",)" : ")");
    case SeqKind::DictItems: return "dict_items([" + join_repr(s.items, depth) + "])";
    case SeqKind::DictKeys: return "dict_keys([" + join_repr(s.items, depth) + "])";
    case SeqKind::DictValues: return "dict_values([" + join_repr(s.items, depth) + "])";
    case SeqKind::Range:
    case SeqKind::Generator: no_text(v);
  }
  no_text(v);
}

}  // namespace

std::string to_repr(const Value& v) { return repr_at(v, 1); }

std::string to_str(const Value& v) {
  if (v.is_undefined()) return "";
  if (v.is_string()) return v.str();
  return to_repr(v);
}

namespace {

bool equal_at(const Value& a, const Value& b, uint32_t depth);

bool items_equal(const std::vector<Value>& a, const std::vector<Value>& b, uint32_t depth) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!equal_at(a[i], b[i], depth + 1)) return false;
  return true;
}

// Set-like views (keys, items) compare as sets.
bool same_members(const std::vector<Value>& a, const std::vector<Value>& b, uint32_t depth) {
  if (a.size() != b.size()) return false;
  return std::all_of(a.begin(), a.end(), [&](const Value& x) {
    return std::any_of(b.begin(), b.end(), [&](const Value& y) { return equal_at(x, y, depth + 1); });
  });
}

bool equal_at(const Value& a, const Value& b, uint32_t depth) {
  if (depth > kMaxNesting) too_deep();
  if (a.is_undefined() || b.is_undefined()) return a.is_undefined() && b.is_undefined();
  if (a.is_none() || b.is_none()) return a.is_none() && b.is_none();
  if (a.is_number() && b.is_number()) {
    if (!a.is_float() && !b.is_float()) return a.as_int() == b.as_int();
    return a.as_double() == b.as_double();
  }
  if (a.is_string() && b.is_string()) return a.str() == b.str();
  if (a.is_dict() && b.is_dict()) {
    const auto& x = a.dict().entries;
    const Dict& y = b.dict();
    if (x.size() != y.entries.size()) return false;
    return std::all_of(x.begin(), x.end(), [&](const auto& entry) {
      const Value* other = y.find(entry.first);
      return other && equal_at(entry.second, *other, depth + 1);
    });
  }
  if (a.is_sequence() && b.is_sequence()) {
    const Sequence& x = a.seq();
    const Sequence& y = b.seq();
    if (&x == &y) return true;
    if (x.kind != y.kind) return false;
    switch (x.kind) {
      case SeqKind::List:
      case SeqKind::Tuple:
      case SeqKind::Range: return items_equal(x.items, y.items, depth);
      case SeqKind::DictKeys:
      case SeqKind::DictItems: return same_members(x.items, y.items, depth);
      case SeqKind::Generator:
      case SeqKind::DictValues: return false;  // identity only
    }
  }
  if (a.is_namespace() && b.is_namespace()) return a.ns() == b.ns();
  if (a.is_callable() && b.is_callable()) return &a.fn() == &b.fn();
  if (a.is_loop() && b.is_loop()) return &a.loop() == &b.loop();
  return false;
}

enum class Order { Less, Equal, Greater, Unordered };

Order order_at(const Value& a, const Value& b, std::string_view op, uint32_t depth) {
  if (depth > kMaxNesting) too_deep();
  if (a.is_number() && b.is_number()) {
    if (!a.is_float() && !b.is_float()) {
      const int64_t x = a.as_int(), y = b.as_int();
      return x < y ? Order::Less : x > y ? Order::Greater : Order::Equal;
    }
    const double x = a.as_double(), y = b.as_double();
    if (std::isnan(x) || std::isnan(y)) return Order::Unordered;
    return x < y ? Order::Less : x > y ? Order::Greater : Order::Equal;
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.str().compare(b.str());  // UTF-8 byte order is code point order
    return c < 0 ? Order::Less : c > 0 ? Order::Greater : Order::Equal;
  }
  const bool lists = a.is_sequence(SeqKind::List) && b.is_sequence(SeqKind::List);
  const bool tuples = a.is_sequence(SeqKind::Tuple) && b.is_sequence(SeqKind::Tuple);
  if (lists || tuples) {
    const auto& x = a.seq().items;
    const auto& y = b.seq().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (!equal_at(x[i], y[i], depth + 1)) return order_at(x[i], y[i], op, depth + 1);
    return x.size() < y.size() ? Order::Less : x.size() > y.size() ? Order::Greater : Order::Equal;
  }
  throw TemplateError(fmt::format("'{}' not supported between instances of '{}' and '{}'", op,
                                  a.type_name(), b.type_name()));
}

}  // namespace

bool equal(const Value& a, const Value& b) { return equal_at(a, b, 1); }

bool compare(const Value& a, std::string_view op, const Value& b) {
  const Order o = order_at(a, b, op, 1);
  if (o == Order::Unordered) return false;
  if (op == "<") return o == Order::Less;
  if (op == "<=") return o != Order::Greater;
  if (op == ">") return o == Order::Greater;
  return o != Order::Less;  // ">="
}

size_t py_len(const Value& v) {
  if (v.is_undefined()) return 0;
  if (v.is_string()) return code_point_count(v.str());
  if (v.is_dict()) return v.dict().entries.size();
  if (v.is_loop()) return v.loop().items->items.size();
  if (v.is_sequence() && v.seq().kind != SeqKind::Generator) return v.seq().items.size();
  throw TemplateError(fmt::format("object of type '{}' has no len()", v.type_name()));
}

std::vector<Value> iterate(const Value& v) {
  if (v.is_undefined()) return {};
  if (v.is_string()) {
    std::vector<Value> chars;
    const std::string& s = v.str();
    const std::vector<size_t> at = code_point_offsets(s);
    chars.reserve(at.size());
    for (size_t i = 0; i + 1 < at.size(); ++i) chars.push_back(Value::string(s.substr(at[i], at[i + 1] - at[i])));
    return chars;
  }
  if (v.is_dict()) {
    std::vector<Value> keys;
    keys.reserve(v.dict().entries.size());
    for (const auto& entry : v.dict().entries) keys.push_back(Value::string(entry.first));
    return keys;
  }
  if (v.is_sequence()) {
    const Sequence& s = v.seq();
    if (s.kind != SeqKind::Generator) return s.items;
    std::vector<Value> rest(s.items.begin() + static_cast<std::ptrdiff_t>(s.taken), s.items.end());
    s.taken = s.items.size();
    return rest;
  }
  throw TemplateError(fmt::format("'{}' object is not iterable", v.type_name()));
}

namespace {

void json_string(std::string& out, std::string_view text, bool ensure_ascii) {
  out.push_back('"');
  for (const char32_t cp : decode_utf8(text)) {
    switch (cp) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (cp < 0x20 || (ensure_ascii && cp > 0x7E)) {
      auto unit = [&out](unsigned u) { out += fmt::format("\\u{:04x}", u); };
      if (cp >= 0x10000) {
        const char32_t v = cp - 0x10000;
        unit(0xD800 + (v >> 10));
        unit(0xDC00 + (v & 0x3FF));
      } else {
        unit(cp);
      }
      continue;
    }
    append_utf8(out, cp);
  }
  out.push_back('"');
}

struct JsonWriter {
  const JsonStyle& style;
  std::string item_sep, key_sep;
  std::string out;

  void newline(uint32_t level) {
    out.push_back('\n');
    for (uint32_t i = 0; i < level; ++i) out += *style.indent;
  }

  void write(const Value& v, uint32_t level) {
    if (level > kMaxNesting) too_deep();
    if (v.is_none()) {
      out += "null";
    } else if (v.is_bool()) {
      out += v.as_bool() ? "true" : "false";
    } else if (v.is_int()) {
      out += std::to_string(v.as_int());
    } else if (v.is_float()) {
      const double d = v.as_double();
      out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d < 0 ? "-Infinity" : "Infinity") : py_float_repr(d);
    } else if (v.is_string()) {
      json_string(out, v.str(), style.ensure_ascii);
    } else if (v.is_sequence(SeqKind::List) || v.is_sequence(SeqKind::Tuple)) {
      const auto& items = v.seq().items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out.push_back('[');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        if (style.indent) newline(level + 1);
        write(items[i], level + 1);
      }
      if (style.indent) newline(level);
      out.push_back(']');
    } else if (v.is_dict()) {
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& entry : v.dict().entries) entries.push_back(&entry);
      if (entries.empty()) {
        out += "{}";
        return;
      }
      if (style.sort_keys)
        std::stable_sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
      out.push_back('{');
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i) out += item_sep;
        if (style.indent) newline(level + 1);
        json_string(out, entries[i]->first, style.ensure_ascii);
        out += key_sep;
        write(entries[i]->second, level + 1);
      }
      if (style.indent) newline(level);
      out.push_back('}');
    } else {
      throw TemplateError(fmt::format("Object of type {} is not JSON serializable", v.type_name()));
    }
  }
};

}  // namespace

std::string to_json(const Value& v, const JsonStyle& style) {
  JsonWriter w{style, style.indent ? "," : ", ", ": ", {}};
  if (style.separators) std::tie(w.item_sep, w.key_sep) = *style.separators;
  w.write(v, 0);
  return std::move(w.out);
}

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace kvb::jinja
