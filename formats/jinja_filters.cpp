#include "formats/jinja_filters.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>

#include "formats/jinja_interpreter.hpp"
#include "formats/jinja_methods.hpp"
#include "formats/jinja_text.hpp"

namespace kvb::jinja {

namespace {

using FilterFn = Value (*)(Interpreter&, const Value&, CallArgs);
using TestFn = bool (*)(Interpreter&, const Value&, CallArgs);

std::string filter_what(std::string_view name) { return fmt::format("filter '{}'", name); }

// Jinja2's soft_str: a str (Markup included) as it is, anything else through str().
Value soft_str(const Value& v) { return v.is_string() ? v : Value::string(to_str(v)); }

std::string cased(const Value& v, std::string_view filter) {
  const std::string text = to_str(v);
  if (!case_mapping_is_ascii(text))
    throw TemplateError(fmt::format("filter '{}' of text with letters beyond ASCII is not supported", filter));
  return text;
}

Value same_markup(const Value& like, std::string text) { return Value::string(std::move(text), like.is_string() && like.markup()); }

// Jinja2's make_attrgetter: "a.b.0" looks up a, then b, then item 0, with environment.getitem;
// an Undefined part is replaced by `fallback` when there is one.
Value lookup_path(const Value& item, const Value& attribute, const Value* fallback = nullptr) {
  auto step = [&](const Value& from, const Value& key) {
    Value got = get_item(from, key);
    return fallback && got.is_undefined() ? *fallback : got;
  };
  if (!attribute.is_string()) return step(item, attribute);
  Value v = item;
  const std::string& path = attribute.str();
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool digits = !part.empty() && part.size() < 18 &&
                        std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    v = step(v, digits ? Value::integer(std::stoll(part)) : Value::string(part));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

Value ignore_case(const Value& v) {
  if (!v.is_string()) return v;
  if (!case_mapping_is_ascii(v.str()))
    throw TemplateError("sorting text with letters beyond ASCII without case is not supported");
  return Value::string(ascii_lower(v.str()));
}

Value generator(std::vector<Value> items) { return Value::sequence(std::move(items), SeqKind::Generator); }

// Python's int(text) in base 10: whitespace around, a sign, digits with single underscores.
std::optional<int64_t> parse_int(const std::string& raw) {
  const std::string text = py_strip(raw, std::nullopt, true, true);
  size_t i = text.size() && (text[0] == '+' || text[0] == '-') ? 1 : 0;
  std::string digits;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c >= '0' && c <= '9') digits.push_back(c);
    else if (c == '_' && !digits.empty() && i + 1 < text.size() && text[i + 1] >= '0' && text[i + 1] <= '9') continue;
    else return std::nullopt;
  }
  if (digits.empty()) return std::nullopt;
  errno = 0;
  const long long v = std::strtoll(((text[0] == '-' ? "-" : "") + digits).c_str(), nullptr, 10);
  if (errno == ERANGE) throw TemplateError(fmt::format("int() of '{}' is beyond 64 bits", raw));
  return v;
}

// Python's float(text): an optional sign, then inf, infinity or nan, or digits (single `_`
// between them) with an optional fraction and exponent; whitespace around.
std::optional<double> parse_float(const std::string& raw) {
  const std::string t = py_strip(raw, std::nullopt, true, true);
  size_t j = t.size() && (t[0] == '+' || t[0] == '-') ? 1 : 0;
  const std::string word = ascii_lower(t.substr(j));
  if (word == "inf" || word == "infinity" || word == "nan") return std::strtod(ascii_lower(t).c_str(), nullptr);
  std::string clean = t.substr(0, j);
  auto digits = [&]() {
    bool any = false;
    while (j < t.size()) {
      if (t[j] >= '0' && t[j] <= '9') {
        clean.push_back(t[j++]);
        any = true;
      } else if (t[j] == '_' && any && j + 1 < t.size() && t[j + 1] >= '0' && t[j + 1] <= '9') {
        ++j;
      } else {
        break;
      }
    }
    return any;
  };
  bool mantissa = digits();
  if (j < t.size() && t[j] == '.') {
    clean.push_back(t[j++]);
    mantissa = digits() || mantissa;
  }
  if (!mantissa) return std::nullopt;
  if (j < t.size() && (t[j] == 'e' || t[j] == 'E')) {
    clean.push_back(t[j++]);
    if (j < t.size() && (t[j] == '+' || t[j] == '-')) clean.push_back(t[j++]);
    if (!digits()) return std::nullopt;
  }
  if (j != t.size()) return std::nullopt;
  return std::strtod(clean.c_str(), nullptr);
}

// --- filters

Value f_abs(Interpreter&, const Value& v, CallArgs args) {
  bind_args(filter_what("abs"), std::move(args), {});
  if (v.is_float()) return Value::number(std::fabs(v.as_double()));
  if (v.is_int() || v.is_bool()) {
    if (v.as_int() == std::numeric_limits<int64_t>::min()) throw TemplateError("integer overflow in abs()");
    return Value::integer(std::llabs(v.as_int()));
  }
  throw TemplateError(fmt::format("bad operand type for abs(): '{}'", v.type_name()));
}

Value f_capitalize(Interpreter&, const Value& v, CallArgs args) {
  bind_args(filter_what("capitalize"), std::move(args), {});
  const std::string t = cased(v, "capitalize");
  return same_markup(v, t.empty() ? t : ascii_upper(t.substr(0, 1)) + ascii_lower(t.substr(1)));
}

Value f_length(Interpreter&, const Value& v, CallArgs args) {
  bind_args("filter 'length'", std::move(args), {});
  return Value::integer(static_cast<int64_t>(py_len(v)));
}

Value f_default(Interpreter&, const Value& v, CallArgs args) {
  auto a = bind_args(filter_what("default"), std::move(args), {"default_value", "boolean"});
  const bool boolean = a[1] && truthy(*a[1]);
  if (v.is_undefined() || (boolean && !truthy(v))) return a[0] ? *a[0] : Value::string("");
  return v;
}

void sort_values(Interpreter& interp, std::vector<Value>& items, const std::vector<Value>& keys, bool reverse) {
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  interp.charge(items.size() * 4);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return reverse ? compare(keys[b], "<", keys[a]) : compare(keys[a], "<", keys[b]);
  });
  std::vector<Value> sorted;
  sorted.reserve(items.size());
  for (size_t i : order) sorted.push_back(std::move(items[i]));
  items = std::move(sorted);
}

Value f_dictsort(Interpreter& interp, const Value& v, CallArgs args) {
  auto a = bind_args(filter_what("dictsort"), std::move(args), {"case_sensitive", "by", "reverse"});
  if (!v.is_dict()) throw TemplateError(fmt::format("'{}' object has no attribute 'items'", v.type_name()));
  const bool case_sensitive = a[0] && truthy(*a[0]);
  const std::string by = a[1] ? to_str(*a[1]) : "key";
  if (by != "key" && by != "value") throw TemplateError("You can only sort by either \"key\" or \"value\"");
  std::vector<Value> items, keys;
  for (const auto& [key, value] : v.dict().entries) {
    items.push_back(Value::sequence({Value::string(key), value}, SeqKind::Tuple));
    const Value& k = by == "key" ? items.back().seq().items[0] : value;
    keys.push_back(case_sensitive ? k : ignore_case(k));
  }
  sort_values(interp, items, keys, a[2] && truthy(*a[2]));
  return Value::sequence(std::move(items));
}

Value f_first(Interpreter&, const Value& v, CallArgs args) {
  bind_args(filter_what("first"), std::move(args), {});
  if (v.is_sequence(SeqKind::Generator)) {
    const Sequence& s = v.seq();
    if (s.taken < s.items.size()) return s.items[s.taken++];
  } else if (v.is_sequence() || v.is_string() || v.is_dict() || v.is_undefined()) {
    if (v.is_string() && !v.str().empty()) return get_item(v, Value::integer(0));
    if (v.is_dict() && !v.dict().entries.empty()) return Value::string(v.dict().entries.front().first);
    if (v.is_sequence() && !v.seq().items.empty()) return v.seq().items.front();
  } else {
    iterate(v);  // raises "not iterable"
  }
  return Value::undefined("No first item, sequence was empty.");
}

Value f_last(Interpreter&, const Value& v, CallArgs args) {
  bind_args(filter_what("last"), std::move(args), {});
  if (v.is_sequence(SeqKind::Generator)) throw TemplateError("'generator' object is not reversible");
  if (v.is_string() && !v.str().empty()) return get_item(v, Value::integer(-1));
  if (v.is_dict() && !v.dict().entries.empty()) return Value::string(v.dict().entries.back().first);
  if (v.is_sequence() && !v.seq().items.empty()) return v.seq().items.back();
  if (!v.is_string() && !v.is_dict() && !v.is_sequence() && !v.is_undefined())
    throw TemplateError(fmt::format("'{}' object is not reversible", v.type_name()));
  return Value::undefined("No last item, sequence was empty.");
}

Value f_float(Interpreter&, const Value& v, CallArgs args) {
  auto a = bind_args(filter_what("float"), std::move(args), {"default"});
  if (v.is_undefined()) throw TemplateError(v.undefined_hint());
  if (v.is_number()) return Value::number(v.as_double());
  if (v.is_string())
    if (auto d = parse_float(v.str())) return Value::number(*d);
  return a[0] ? *a[0] : Value::number(0.0);
}

Value f_int(Interpreter&, const Value& v, CallArgs args) {
  auto a = bind_args(filter_what("int"), std::move(args), {"default", "base"});
  if (a[1] && !(a[1]->is_int() && a[1]->as_int() == 10))
    throw TemplateError("filter 'int' with a base other than 10 is not supported");
  const Value fallback = a[0] ? *a[0] : Value::integer(0);
  if (v.is_undefined()) throw TemplateError(v.undefined_hint());
  if (v.is_int() || v.is_bool()) return Value::integer(v.as_int());
  // int(value), then int(float(value)) where that raised; only the second's failures give the
  // default (so a float infinity raises, the string "inf" gives the default).
  std::optional<double> d;
  if (v.is_float()) {
    d = v.as_double();
    if (std::isinf(*d)) throw TemplateError("cannot convert float infinity to integer");
  }
  if (v.is_string()) {
    if (auto i = parse_int(v.str())) return Value::integer(*i);
    d = parse_float(v.str());
  }
  if (!d || !std::isfinite(*d)) return fallback;
  if (std::fabs(*d) >= 9.2e18) throw TemplateError("int() of a float beyond 64 bits");
  return Value::integer(static_cast<int64_t>(std::trunc(*d)));
}

Value f_items(Interpreter&, const Value& v, CallArgs args) {
  bind_args(filter_what("items"), std::move(args), {});
  if (v.is_undefined()) return generator({});
  if (!v.is_dict()) throw TemplateError("Can only get item pairs from a mapping.");
  std::vector<Value> items;
  for (const auto& [key, value] : v.dict().entries)
    items.push_back(Value::sequence({Value::string(key), value}, SeqKind::Tuple));
  return generator(std::move(items));
}

Value f_join(Interpreter& interp, const Value& v, CallArgs args) {
  auto a = bind_args(filter_what("join"), std::move(args), {"d", "attribute"});
  const std::string sep = a[0] ? to_str(*a[0]) : "";
  std::string out;
  bool first = true;
  for (const Value& item : iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += to_str(a[1] && !a[1]->is_none() ? lookup_path(item, *a[1]) : item);
    interp.produced(out.size());
  }
  return Value::string(std::move(out));
}

Value f_list(Interpreter& interp, const Value& v, CallArgs args) {
  bind_args(filter_what("list"), std::move(args), {});
  std::vector<Value> items = iterate(v);
  interp.produced(items.size() * sizeof(Value));
  return Value::sequence(std::move(items));
}

Value f_lower(Interpreter&, const Value& v, CallArgs args) {
  bind_args(filter_what("lower"), std::move(args), {});
  return same_markup(v, ascii_lower(cased(v, "lower")));
}

Value f_upper(Interpreter&, const Value& v, CallArgs args) {
  bind_args(filter_what("upper"), std::move(args), {});
  return same_markup(v, ascii_upper(cased(v, "upper")));
}

// Jinja2's title: the first character of every word (after - whitespace ( { [ <) upper, the rest lower.
Value f_title(Interpreter&, const Value& v, CallArgs args) {
  bind_args(filter_what("title"), std::move(args), {});
  std::string out;
  bool word_start = true;
  for (const char32_t c : decode_utf8(cased(v, "title"))) {
    const bool separator = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_py_space(c);
    if (c >= 'a' && c <= 'z' && word_start) append_utf8(out, c - 'a' + 'A');
    else if (c >= 'A' && c <= 'Z' && !word_start) append_utf8(out, c - 'A' + 'a');
    else append_utf8(out, c);
    word_start = separator;
  }
  return same_markup(v, std::move(out));
}

Value f_map(Interpreter& interp, const Value& v, CallArgs args) {
  if (!truthy(v)) return generator({});
  std::vector<Value> out;
  if (args.positional.empty()) {
    std::optional<Value> attribute, fallback;
    for (auto& [key, value] : args.keyword) {
      if (key == "attribute") attribute = value;
      else if (key == "default") fallback = value;
      else throw TemplateError(fmt::format("Unexpected keyword argument '{}'", key));
    }
    if (!attribute) throw TemplateError("map requires a filter name or attribute=");
    for (const Value& item : iterate(v)) {
      interp.charge(1);
      const bool with_fallback = fallback && !fallback->is_none();
      out.push_back(lookup_path(item, *attribute, with_fallback ? &*fallback : nullptr));
    }
    return generator(std::move(out));
  }
  const std::string name = to_str(args.positional[0]);
  if (!is_filter(name)) throw TemplateError(fmt::format("filter '{}' is not supported", name));
  args.positional.erase(args.positional.begin());
  for (const Value& item : iterate(v)) out.push_back(apply_filter(interp, name, item, args));
  return generator(std::move(out));
}

// select / reject / selectattr / rejectattr.
Value select_or_reject(Interpreter& interp, const Value& v, CallArgs args, bool select, bool by_attribute) {
  if (!truthy(v)) return generator({});
  std::optional<Value> attribute;
  size_t next = 0;
  if (by_attribute) {
    if (args.positional.empty()) throw TemplateError("Missing parameter for attribute name");
    attribute = args.positional[next++];
  }
  std::optional<std::string> test;
  if (next < args.positional.size()) test = to_str(args.positional[next++]);
  if (test && !is_test(*test)) throw TemplateError(fmt::format("test '{}' is not supported", *test));
  CallArgs test_args{{args.positional.begin() + static_cast<std::ptrdiff_t>(next), args.positional.end()}, args.keyword};
  std::vector<Value> out;
  for (const Value& item : iterate(v)) {
    interp.charge(1);
    const Value subject = attribute ? lookup_path(item, *attribute) : item;
    const bool passed = test ? apply_test(interp, *test, subject, test_args) : truthy(subject);
    if (passed == select) out.push_back(item);
  }
  return generator(std::move(out));
}

Value f_select(Interpreter& i, const Value& v, CallArgs a) { return select_or_reject(i, v, std::move(a), true, false); }
Value f_reject(Interpreter& i, const Value& v, CallArgs a) { return select_or_reject(i, v, std::move(a), false, false); }
Value f_selectattr(Interpreter& i, const Value& v, CallArgs a) { return select_or_reject(i, v, std::move(a), true, true); }
Value f_rejectattr(Interpreter& i, const Value& v, CallArgs a) { return select_or_reject(i, v, std::move(a), false, true); }

Value f_replace(Interpreter& interp, const Value& v, CallArgs args) {
  auto a = bind_args(filter_what("replace"), std::move(args), {"old", "new", "count"}, 2);
  int64_t count = -1;
  if (a[2] && !a[2]->is_none()) {
    if (!a[2]->is_int() && !a[2]->is_bool()) throw TemplateError("filter 'replace': count must be an integer");
    count = a[2]->as_int();
  }
  std::string out = py_replace(to_str(v), to_str(*a[0]), to_str(*a[1]), count);
  interp.produced(out.size());
  return Value::string(std::move(out));
}

Value f_reverse(Interpreter&, const Value& v, CallArgs args) {
  bind_args(filter_what("reverse"), std::move(args), {});
  if (v.is_string()) {
    std::u32string cps = decode_utf8(v.str());
    std::reverse(cps.begin(), cps.end());
    std::string out;
    for (char32_t c : cps) append_utf8(out, c);
    return same_markup(v, std::move(out));
  }
  // reversed() where Python has it (an iterator), else a reversed list.
  std::vector<Value> items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::sequence(std::move(items), v.is_sequence(SeqKind::Generator) ? SeqKind::List : SeqKind::Generator);
}

Value f_round(Interpreter&, const Value& v, CallArgs args) {
  auto a = bind_args(filter_what("round"), std::move(args), {"precision", "method"});
  const int64_t precision = a[0] ? a[0]->as_int() : 0;
  const std::string method = a[1] ? to_str(*a[1]) : "common";
  if (method != "common" && method != "ceil" && method != "floor")
    throw TemplateError("method must be common, ceil or floor");
  if (!v.is_number()) throw TemplateError(fmt::format("type {} doesn't define __round__ method", v.type_name()));
  if (precision < 0 || precision > 300) throw TemplateError("filter 'round' with a precision outside 0..300 is not supported");
  if (method == "common") {
    if (!v.is_float()) return Value::integer(v.as_int());
    // Python rounds the exact binary value half to even, as printf does.
    char buf[400];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), v.as_double());
    return Value::number(std::strtod(buf, nullptr));
  }
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = v.as_double() * scale;
  return Value::number((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

Value f_safe(Interpreter&, const Value& v, CallArgs args) {
  bind_args(filter_what("safe"), std::move(args), {});
  return Value::string(to_str(v), true);
}

Value f_sort(Interpreter& interp, const Value& v, CallArgs args) {
  auto a = bind_args(filter_what("sort"), std::move(args), {"reverse", "case_sensitive", "attribute"});
  const bool reverse = a[0] && truthy(*a[0]);
  const bool case_sensitive = a[1] && truthy(*a[1]);
  std::vector<Value> items = iterate(v);
  std::vector<Value> keys;
  keys.reserve(items.size());
  for (const Value& item : items) {
    auto key_of = [&](const Value& x) { return case_sensitive ? x : ignore_case(x); };
    if (!a[2] || a[2]->is_none()) {
      keys.push_back(key_of(item));
      continue;
    }
    // make_multi_attrgetter: "a,b" sorts by [item.a, item.b].
    std::vector<Value> parts;
    const std::string spec = a[2]->is_string() ? a[2]->str() : to_str(*a[2]);
    size_t start = 0;
    while (true) {
      const size_t comma = spec.find(',', start);
      const std::string part = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      parts.push_back(key_of(lookup_path(item, a[2]->is_string() ? Value::string(part) : *a[2])));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    keys.push_back(Value::sequence(std::move(parts)));
  }
  sort_values(interp, items, keys, reverse);
  return Value::sequence(std::move(items));
}

Value f_string(Interpreter&, const Value& v, CallArgs args) {
  bind_args(filter_what("string"), std::move(args), {});
  return soft_str(v);
}

Value f_tojson(Interpreter& interp, const Value& v, CallArgs args) {
  auto a = bind_args(filter_what("tojson"), std::move(args), {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonStyle style;
  style.ensure_ascii = a[0] && truthy(*a[0]);
  if (a[1] && !a[1]->is_none()) {
    if (a[1]->is_string()) style.indent = a[1]->str();
    else if (!a[1]->is_int() && !a[1]->is_bool()) throw TemplateError("filter 'tojson': indent must be an integer or a string");
    else if (a[1]->as_int() > 1024) throw TemplateError("filter 'tojson': an indent above 1024 is not supported");
    else style.indent = std::string(static_cast<size_t>(std::max<int64_t>(0, a[1]->as_int())), ' ');
  }
  if (a[2] && !a[2]->is_none()) {
    const std::vector<Value> seps = a[2]->is_sequence() ? a[2]->seq().items : std::vector<Value>{};
    if (seps.size() != 2 || !seps[0].is_string() || !seps[1].is_string())
      throw TemplateError("filter 'tojson': separators must be two strings");
    style.separators = std::make_pair(seps[0].str(), seps[1].str());
  }
  style.sort_keys = a[3] && truthy(*a[3]);
  std::string out = to_json(v, style);
  interp.produced(out.size());
  return Value::string(std::move(out));
}

Value f_trim(Interpreter&, const Value& v, CallArgs args) {
  auto a = bind_args(filter_what("trim"), std::move(args), {"chars"});
  std::optional<std::string> chars;
  if (a[0] && !a[0]->is_none()) chars = to_str(*a[0]);
  return same_markup(v, py_strip(to_str(v), chars, true, true));
}

const std::map<std::string, FilterFn, std::less<>>& filters() {
  static const std::map<std::string, FilterFn, std::less<>> table = {
      {"abs", f_abs},         {"capitalize", f_capitalize}, {"count", f_length},     {"d", f_default},
      {"default", f_default}, {"dictsort", f_dictsort},     {"first", f_first},      {"float", f_float},
      {"int", f_int},         {"items", f_items},           {"join", f_join},        {"last", f_last},
      {"length", f_length},   {"list", f_list},             {"lower", f_lower},      {"map", f_map},
      {"reject", f_reject},   {"rejectattr", f_rejectattr}, {"replace", f_replace},  {"reverse", f_reverse},
      {"round", f_round},     {"safe", f_safe},             {"select", f_select},    {"selectattr", f_selectattr},
      {"sort", f_sort},       {"string", f_string},         {"title", f_title},      {"tojson", f_tojson},
      {"trim", f_trim},       {"upper", f_upper},
  };
  return table;
}

// --- tests

const Value& one_arg(std::string_view test, CallArgs& args) {
  if (!args.keyword.empty() || args.positional.size() != 1)
    throw TemplateError(fmt::format("test '{}' takes one argument", test));
  return args.positional[0];
}

void no_args(std::string_view test, const CallArgs& args) {
  if (!args.keyword.empty() || !args.positional.empty())
    throw TemplateError(fmt::format("test '{}' takes no arguments", test));
}

bool t_defined(Interpreter&, const Value& v, CallArgs a) { no_args("defined", a); return !v.is_undefined(); }
bool t_undefined(Interpreter&, const Value& v, CallArgs a) { no_args("undefined", a); return v.is_undefined(); }
bool t_none(Interpreter&, const Value& v, CallArgs a) { no_args("none", a); return v.is_none(); }
bool t_boolean(Interpreter&, const Value& v, CallArgs a) { no_args("boolean", a); return v.is_bool(); }
bool t_true(Interpreter&, const Value& v, CallArgs a) { no_args("true", a); return v.is_bool() && v.as_bool(); }
bool t_false(Interpreter&, const Value& v, CallArgs a) { no_args("false", a); return v.is_bool() && !v.as_bool(); }
bool t_string(Interpreter&, const Value& v, CallArgs a) { no_args("string", a); return v.is_string(); }
bool t_number(Interpreter&, const Value& v, CallArgs a) { no_args("number", a); return v.is_number(); }
bool t_integer(Interpreter&, const Value& v, CallArgs a) { no_args("integer", a); return v.is_int(); }
bool t_float(Interpreter&, const Value& v, CallArgs a) { no_args("float", a); return v.is_float(); }
bool t_mapping(Interpreter&, const Value& v, CallArgs a) { no_args("mapping", a); return v.is_dict(); }
bool t_callable(Interpreter&, const Value& v, CallArgs a) {
  no_args("callable", a);
  return v.is_callable() || v.is_undefined();  // Undefined defines __call__ (which raises)
}
bool t_iterable(Interpreter&, const Value& v, CallArgs a) {
  no_args("iterable", a);
  return v.is_undefined() || v.is_string() || v.is_sequence() || v.is_dict() || v.is_loop();
}
bool t_sequence(Interpreter&, const Value& v, CallArgs a) {  // len() and __getitem__
  no_args("sequence", a);
  return v.is_undefined() || v.is_string() || v.is_dict() || v.is_sequence(SeqKind::List) ||
         v.is_sequence(SeqKind::Tuple) || v.is_sequence(SeqKind::Range);
}
// str.islower() / str.isupper(): some cased letter, and every cased letter in that case.
bool all_cased(const Value& v, CallArgs& a, std::string_view test, bool lower) {
  no_args(test, a);
  const std::string text = to_str(v);
  if (!case_mapping_is_ascii(text))
    throw TemplateError(fmt::format("test '{}' of text with letters beyond ASCII is not supported", test));
  bool cased = false;
  for (const char c : text) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      if ((c >= 'a' && c <= 'z') != lower) return false;
      cased = true;
    }
  }
  return cased;
}

bool t_lower(Interpreter&, const Value& v, CallArgs a) { return all_cased(v, a, "lower", true); }
bool t_upper(Interpreter&, const Value& v, CallArgs a) { return all_cased(v, a, "upper", false); }
bool t_eq(Interpreter&, const Value& v, CallArgs a) { return equal(v, one_arg("eq", a)); }
bool t_ne(Interpreter&, const Value& v, CallArgs a) { return !equal(v, one_arg("ne", a)); }
bool t_lt(Interpreter&, const Value& v, CallArgs a) { return compare(v, "<", one_arg("lt", a)); }
bool t_le(Interpreter&, const Value& v, CallArgs a) { return compare(v, "<=", one_arg("le", a)); }
bool t_gt(Interpreter&, const Value& v, CallArgs a) { return compare(v, ">", one_arg("gt", a)); }
bool t_ge(Interpreter&, const Value& v, CallArgs a) { return compare(v, ">=", one_arg("ge", a)); }
bool t_in(Interpreter&, const Value& v, CallArgs a) { return contains(one_arg("in", a), v); }

// value % n == 0 with Python's modulo, for ints and floats.
bool divisible(const Value& v, const Value& n, int64_t remainder) {
  if (v.is_undefined()) throw TemplateError(v.undefined_hint());
  if (!v.is_number() || !n.is_number())
    throw TemplateError(fmt::format("unsupported operand type(s) for %: '{}' and '{}'", v.type_name(), n.type_name()));
  if (!v.is_float() && !n.is_float()) {
    if (n.as_int() == 0) throw TemplateError("integer division or modulo by zero");
    int64_t m = v.as_int() % n.as_int();
    if (m != 0 && ((m < 0) != (n.as_int() < 0))) m += n.as_int();
    return m == remainder;
  }
  if (n.as_double() == 0) throw TemplateError("float modulo");
  double m = std::fmod(v.as_double(), n.as_double());
  if (m != 0 && ((m < 0) != (n.as_double() < 0))) m += n.as_double();
  return m == static_cast<double>(remainder);
}

bool t_odd(Interpreter&, const Value& v, CallArgs a) { no_args("odd", a); return divisible(v, Value::integer(2), 1); }
bool t_even(Interpreter&, const Value& v, CallArgs a) { no_args("even", a); return divisible(v, Value::integer(2), 0); }
bool t_divisibleby(Interpreter&, const Value& v, CallArgs a) { return divisible(v, one_arg("divisibleby", a), 0); }

// `is`: identity. Defined here for the values whose identity Python fixes (None, booleans,
// CPython's cached small ints, and objects this renderer shares by reference).
bool t_sameas(Interpreter&, const Value& v, CallArgs a) {
  const Value& other = one_arg("sameas", a);
  if (v.is_none() || v.is_bool() || other.is_none() || other.is_bool())
    return v.is_none() == other.is_none() && v.is_bool() == other.is_bool() && (!v.is_bool() || v.as_bool() == other.as_bool());
  if (v.is_int() && other.is_int() && v.as_int() >= -5 && v.as_int() <= 256) return v.as_int() == other.as_int();
  if (v.is_sequence() && other.is_sequence()) return &v.seq() == &other.seq();
  if (v.is_dict() && other.is_dict()) return &v.dict() == &other.dict();
  if (v.is_namespace() && other.is_namespace()) return v.ns() == other.ns();
  if (v.type_name() != other.type_name()) return false;
  throw TemplateError(fmt::format("test 'sameas' on values of type '{}' is not supported (Python's answer depends on "
                                  "how it stored them)", v.type_name()));
}

const std::map<std::string, TestFn, std::less<>>& tests() {
  static const std::map<std::string, TestFn, std::less<>> table = {
      {"boolean", t_boolean}, {"callable", t_callable}, {"defined", t_defined}, {"divisibleby", t_divisibleby},
      {"eq", t_eq},           {"equalto", t_eq},        {"==", t_eq},           {"even", t_even},
      {"false", t_false},     {"float", t_float},       {"ge", t_ge},           {">=", t_ge},
      {"gt", t_gt},           {"greaterthan", t_gt},    {">", t_gt},            {"in", t_in},
      {"integer", t_integer}, {"iterable", t_iterable}, {"le", t_le},           {"<=", t_le},
      {"lower", t_lower},     {"lt", t_lt},             {"lessthan", t_lt},     {"<", t_lt},
      {"mapping", t_mapping}, {"upper", t_upper},
      {"ne", t_ne},           {"!=", t_ne},             {"none", t_none},       {"number", t_number},
      {"odd", t_odd},         {"sameas", t_sameas},     {"sequence", t_sequence}, {"string", t_string},
      {"true", t_true},       {"undefined", t_undefined},
  };
  return table;
}

}  // namespace

bool is_filter(std::string_view name) { return filters().count(name) > 0; }
bool is_test(std::string_view name) { return tests().count(name) > 0; }

Value apply_filter(Interpreter& interp, std::string_view name, const Value& subject, CallArgs args) {
  interp.charge(1);
  const auto it = filters().find(name);
  if (it == filters().end()) throw TemplateError(fmt::format("filter '{}' is not supported", name));
  return it->second(interp, subject, std::move(args));
}

bool apply_test(Interpreter& interp, std::string_view name, const Value& subject, CallArgs args) {
  interp.charge(1);
  const auto it = tests().find(name);
  if (it == tests().end()) throw TemplateError(fmt::format("test '{}' is not supported", name));
  return it->second(interp, subject, std::move(args));
}

bool contains(const Value& container, const Value& needle) {
  if (container.is_undefined()) return false;
  if (container.is_string()) {
    if (!needle.is_string())
      throw TemplateError(fmt::format("'in <string>' requires string as left operand, not {}", needle.type_name()));
    return container.str().find(needle.str()) != std::string::npos;
  }
  if (container.is_dict()) {
    if (needle.is_string()) return container.dict().find(needle.str()) != nullptr;
    if (needle.is_sequence(SeqKind::List) || needle.is_dict() || needle.is_namespace())
      throw TemplateError(fmt::format("unhashable type: '{}'", needle.type_name()));
    return false;
  }
  if (container.is_sequence()) {
    const Sequence& s = container.seq();
    if (s.kind == SeqKind::Generator) {  // consumes up to the match
      while (s.taken < s.items.size())
        if (equal(s.items[s.taken++], needle)) return true;
      return false;
    }
    return std::any_of(s.items.begin(), s.items.end(), [&](const Value& v) { return equal(v, needle); });
  }
  throw TemplateError(fmt::format("argument of type '{}' is not iterable", container.type_name()));
}

}  // namespace kvb::jinja
