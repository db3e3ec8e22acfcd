#include "formats/jinja_methods.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <set>

#include "formats/jinja_interpreter.hpp"
#include "formats/jinja_text.hpp"

namespace kvb::jinja {

namespace {

using Names = std::set<std::string, std::less<>>;

// Python 3.11's methods of str, dict and list (tuple and range have count and index).
const Names kStrMethods = {
    "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format",
    "format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier",
    "islower", "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower",
    "lstrip", "maketrans", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex",
    "rjust", "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip",
    "swapcase", "title", "translate", "upper", "zfill"};
const Names kDictMethods = {"clear", "copy", "fromkeys", "get", "items", "keys",
                            "pop", "popitem", "setdefault", "update", "values"};
const Names kListMethods = {"append", "clear", "copy", "count", "extend", "index",
                            "insert", "pop", "remove", "reverse", "sort"};
const Names kTupleMethods = {"count", "index"};
// What ImmutableSandboxedEnvironment refuses to call because it modifies the object.
const Names kUnsafeDict = {"clear", "pop", "popitem", "setdefault", "update"};
const Names kUnsafeList = {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"};

class BoundMethod : public Callable {
 public:
  BoundMethod(Value self, std::string name) : self_(std::move(self)), name_(std::move(name)) {}
  std::string type_name() const override { return "builtin_function_or_method"; }
  Value call(Interpreter& interp, CallArgs args) const override;

 private:
  Value self_;
  std::string name_;
};

class GlobalFunction : public Callable {
 public:
  explicit GlobalFunction(std::string name) : name_(std::move(name)) {}
  std::string type_name() const override { return "function"; }
  Value call(Interpreter& interp, CallArgs args) const override;

 private:
  std::string name_;
};

Value method(const Value& self, const std::string& name) {
  return Value::callable(std::make_shared<BoundMethod>(self, name));
}

Value missing_attribute(const Value& object, const std::string& name) {
  return Value::undefined(fmt::format("{} has no attribute {}", py_repr(object_type_repr(object)), py_repr(name)));
}

Value missing_element(const Value& object, const Value& key) {
  std::string shown;
  try {
    shown = to_repr(key);
  } catch (const TemplateError&) {
    shown = "<" + key.type_name() + ">";
  }
  return Value::undefined(fmt::format("{} has no element {}", object_type_repr(object), shown));
}

const Names* methods_of(const Value& v) {
  if (v.is_string()) return &kStrMethods;
  if (v.is_dict()) return &kDictMethods;
  if (v.is_sequence(SeqKind::List)) return &kListMethods;
  if (v.is_sequence(SeqKind::Tuple) || v.is_sequence(SeqKind::Range)) return &kTupleMethods;
  return nullptr;
}

Value loop_field(const Value& loop, const std::string& name) {
  const LoopInfo& l = loop.loop();
  const auto& items = l.items->items;
  const auto n = static_cast<int64_t>(items.size());
  const auto i = static_cast<int64_t>(l.index0);
  if (name == "index0") return Value::integer(i);
  if (name == "index") return Value::integer(i + 1);
  if (name == "revindex") return Value::integer(n - i);
  if (name == "revindex0") return Value::integer(n - i - 1);
  if (name == "first") return Value::boolean(i == 0);
  if (name == "last") return Value::boolean(i == n - 1);
  if (name == "length") return Value::integer(n);
  if (name == "depth") return Value::integer(1);
  if (name == "depth0") return Value::integer(0);
  if (name == "previtem") return i > 0 ? items[i - 1] : Value::undefined("there is no previous item");
  if (name == "nextitem") return i + 1 < n ? items[i + 1] : Value::undefined("there is no next item");
  if (name == "cycle" || name == "changed") return method(loop, name);
  return missing_attribute(loop, name);
}

// A Python index into a sequence of `size` items (negative counts from the end).
std::optional<size_t> resolve_index(int64_t index, size_t size) {
  const int64_t n = static_cast<int64_t>(size);
  if (index < 0) index += n;
  if (index < 0 || index >= n) return std::nullopt;
  return static_cast<size_t>(index);
}

}  // namespace

Value get_attribute(const Value& object, const std::string& name) {
  // Python's dunder attributes are refused by the sandbox (an Undefined, even on an Undefined);
  // a dict key of that name is still found.
  const bool dunder = name.size() > 4 && name.rfind("__", 0) == 0 && name.compare(name.size() - 2, 2, "__") == 0;
  if (dunder && !(object.is_dict() && object.dict().find(name)))
    return Value::undefined(fmt::format("access to attribute {} of {} object is unsafe.", py_repr(name),
                                        py_repr(object.type_name())));
  if (object.is_undefined()) throw TemplateError(object.undefined_hint());
  if (object.is_loop()) return loop_field(object, name);
  if (object.is_namespace()) {
    if (const Value* v = object.ns()->find(name)) return *v;
    return missing_attribute(object, name);
  }
  if ((object.is_dict() && kUnsafeDict.count(name)) || (object.is_sequence(SeqKind::List) && kUnsafeList.count(name)))
    return Value::undefined(fmt::format("access to attribute {} of {} object is unsafe.", py_repr(name),
                                        py_repr(object.type_name())));
  if (const Names* methods = methods_of(object); methods && methods->count(name)) return method(object, name);
  if (object.is_dict())
    if (const Value* v = object.dict().find(name)) return *v;
  return missing_attribute(object, name);
}

Value get_item(const Value& object, const Value& key) {
  if (object.is_undefined()) throw TemplateError(object.undefined_hint());
  if (object.is_dict() && key.is_string()) {
    if (const Value* v = object.dict().find(key.str())) return *v;
    return get_attribute(object, key.str());
  }
  const bool indexable = object.is_string() || object.is_sequence(SeqKind::List) ||
                         object.is_sequence(SeqKind::Tuple) || object.is_sequence(SeqKind::Range);
  if (indexable && (key.is_int() || key.is_bool())) {
    if (object.is_string()) {
      const std::vector<size_t> at = code_point_offsets(object.str());
      if (auto i = resolve_index(key.as_int(), at.size() - 1))
        return Value::string(object.str().substr(at[*i], at[*i + 1] - at[*i]), object.markup());
    } else if (auto i = resolve_index(key.as_int(), object.seq().items.size())) {
      return object.seq().items[*i];
    }
    return missing_element(object, key);
  }
  if (key.is_string()) return get_attribute(object, key.str());
  return missing_element(object, key);
}

Value get_slice(const Value& object, const Value& start, const Value& stop, const Value& step) {
  if (object.is_undefined()) throw TemplateError(object.undefined_hint());
  const bool sliceable = object.is_string() || object.is_sequence(SeqKind::List) ||
                         object.is_sequence(SeqKind::Tuple) || object.is_sequence(SeqKind::Range);
  auto index_ok = [](const Value& v) { return v.is_none() || v.is_int() || v.is_bool(); };
  if (!sliceable || !index_ok(start) || !index_ok(stop) || !index_ok(step))
    return Value::undefined(fmt::format("{} has no element slice(...)", object_type_repr(object)));
  const int64_t by = step.is_none() ? 1 : step.as_int();
  if (by == 0) throw TemplateError("slice step cannot be zero");
  const std::vector<size_t> offsets = object.is_string() ? code_point_offsets(object.str()) : std::vector<size_t>{};
  const int64_t n = static_cast<int64_t>(object.is_string() ? offsets.size() - 1 : object.seq().items.size());
  // CPython's PySlice_AdjustIndices.
  auto adjust = [&](const Value& v, int64_t if_none) {
    if (v.is_none()) return if_none;
    int64_t i = v.as_int();
    if (i < 0) {
      i += n;
      if (i < 0) i = by < 0 ? -1 : 0;
    } else if (i >= n) {
      i = by < 0 ? n - 1 : n;
    }
    return i;
  };
  const int64_t from = adjust(start, by < 0 ? n - 1 : 0);
  const int64_t to = adjust(stop, by < 0 ? -1 : n);
  std::vector<size_t> picked;
  for (int64_t i = from; by > 0 ? i < to : i > to; i += by) picked.push_back(static_cast<size_t>(i));
  if (object.is_string()) {
    std::string out;
    for (size_t i : picked) out.append(object.str(), offsets[i], offsets[i + 1] - offsets[i]);
    return Value::string(std::move(out), object.markup());
  }
  std::vector<Value> items;
  items.reserve(picked.size());
  for (size_t i : picked) items.push_back(object.seq().items[i]);
  return Value::sequence(std::move(items), object.seq().kind);
}

std::optional<Value> global_function(const std::string& name) {
  static const Names kGlobals = {"range", "namespace", "dict", "raise_exception", "strftime_now",
                                 "lipsum", "cycler", "joiner"};
  if (!kGlobals.count(name)) return std::nullopt;
  return Value::callable(std::make_shared<GlobalFunction>(name));
}

namespace {

std::optional<std::string> optional_str(const std::optional<Value>& v, std::string_view what) {
  if (!v || v->is_none()) return std::nullopt;
  if (!v->is_string()) throw TemplateError(fmt::format("{} must be None or str, not {}", what, v->type_name()));
  return v->str();
}

const std::string& require_str(const Value& v, std::string_view what) {
  if (!v.is_string()) throw TemplateError(fmt::format("{} must be str, not {}", what, v.type_name()));
  return v.str();
}

int64_t require_int(const Value& v, std::string_view what) {
  if (!v.is_int() && !v.is_bool())
    throw TemplateError(fmt::format("{}: '{}' object cannot be interpreted as an integer", what, v.type_name()));
  return v.as_int();
}

std::string checked_case(const std::string& text, std::string_view method) {
  if (!case_mapping_is_ascii(text))
    throw TemplateError(fmt::format("str.{}() of text with letters beyond ASCII is not supported", method));
  return text;
}

// Python's str.title() on ASCII: a letter after a non-letter is upper case, other letters lower.
std::string py_title(const std::string& text) {
  std::string out = text;
  bool previous_cased = false;
  for (char& c : out) {
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (letter) c = previous_cased ? ascii_lower(std::string(1, c))[0] : ascii_upper(std::string(1, c))[0];
    previous_cased = letter;
  }
  return out;
}

// str.format with plain {} / {0} / {name} fields (no conversions or format specs).
std::string py_format(const std::string& fmt_text, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt_text.size(); ++i) {
    const char c = fmt_text[i];
    if ((c == '{' || c == '}') && i + 1 < fmt_text.size() && fmt_text[i + 1] == c) {
      out.push_back(c);
      ++i;
      continue;
    }
    if (c == '}') throw TemplateError("Single '}' encountered in format string");
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    const size_t close = fmt_text.find('}', i);
    if (close == std::string::npos) throw TemplateError("Single '{' encountered in format string");
    const std::string field = fmt_text.substr(i + 1, close - i - 1);
    if (field.find_first_of(":![.") != std::string::npos)
      throw TemplateError("str.format with conversions, format specs or field lookups is not supported");
    const Value* v = nullptr;
    if (field.empty() || std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      const size_t index = field.empty() ? auto_index++ : std::stoul(field);
      if (index >= args.positional.size())
        throw TemplateError(fmt::format("Replacement index {} out of range for positional args tuple", index));
      v = &args.positional[index];
    } else {
      for (const auto& [key, value] : args.keyword)
        if (key == field) v = &value;
      if (!v) throw TemplateError(fmt::format("KeyError: {}", py_repr(field)));
    }
    out += to_str(*v);
    i = close;
  }
  return out;
}

Value str_method(Interpreter& interp, const Value& self, const std::string& name, CallArgs args) {
  const std::string& s = self.str();
  const std::string what = "str." + name + "()";
  auto text = [&](std::string out) {
    interp.produced(out.size());
    return Value::string(std::move(out), self.markup());
  };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    auto a = bind_args(what, std::move(args), {"chars"});
    return text(py_strip(s, optional_str(a[0], what), name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    auto a = bind_args(what, std::move(args), {"sep", "maxsplit"});
    const int64_t maxsplit = a[1] ? require_int(*a[1], what) : -1;
    std::vector<Value> parts;
    for (std::string& part : py_split(s, optional_str(a[0], what), maxsplit, name == "rsplit"))
      parts.push_back(Value::string(std::move(part), self.markup()));
    interp.produced(s.size() + parts.size() * sizeof(Value));
    return Value::sequence(std::move(parts));
  }
  if (name == "startswith" || name == "endswith") {
    auto a = bind_args(what, std::move(args), {"prefix", "start", "end"}, 1);
    if (a[1] || a[2]) throw TemplateError(fmt::format("{} with start or end positions is not supported", what));
    std::vector<std::string> affixes;
    if (a[0]->is_sequence(SeqKind::Tuple)) {
      for (const Value& v : a[0]->seq().items) affixes.push_back(require_str(v, what));
    } else if (a[0]->is_string()) {
      affixes.push_back(a[0]->str());
    } else {
      throw TemplateError(fmt::format("{} first arg must be str or a tuple of str, not {}", name, a[0]->type_name()));
    }
    const bool starts = name == "startswith";
    return Value::boolean(std::any_of(affixes.begin(), affixes.end(), [&](const std::string& x) {
      return x.size() <= s.size() && (starts ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0);
    }));
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    bind_args(what, std::move(args), {});
    const std::string t = checked_case(s, name);
    if (name == "upper") return text(ascii_upper(t));
    if (name == "lower") return text(ascii_lower(t));
    if (name == "title") return text(py_title(t));
    return text(t.empty() ? t : ascii_upper(t.substr(0, 1)) + ascii_lower(t.substr(1)));
  }
  if (name == "replace") {
    auto a = bind_args(what, std::move(args), {"old", "new", "count"}, 2);
    const int64_t count = a[2] ? require_int(*a[2], what) : -1;
    return text(py_replace(s, require_str(*a[0], what), require_str(*a[1], what), count));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    auto a = bind_args(what, std::move(args), {"affix"}, 1);
    const std::string& x = require_str(*a[0], what);
    if (name == "removeprefix") return text(s.compare(0, x.size(), x) == 0 ? s.substr(x.size()) : s);
    const bool ends = x.size() <= s.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
    return text(ends ? s.substr(0, s.size() - x.size()) : s);
  }
  if (name == "count" || name == "find") {
    auto a = bind_args(what, std::move(args), {"sub"}, 1);
    const std::string& sub = require_str(*a[0], what);
    return Value::integer(name == "count" ? py_count(s, sub) : py_find(s, sub));
  }
  if (name == "join") {
    auto a = bind_args(what, std::move(args), {"iterable"}, 1);
    std::string out;
    const std::vector<Value> items = iterate(*a[0]);
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string())
        throw TemplateError(fmt::format("sequence item {}: expected str instance, {} found", i, items[i].type_name()));
      if (i) out += s;
      out += self.markup() && !items[i].markup() ? html_escape(items[i].str()) : items[i].str();
      interp.produced(out.size());
    }
    return text(std::move(out));
  }
  if (name == "format") return text(py_format(s, args));
  throw TemplateError(fmt::format("str method '{}' is not supported", name));
}

Value dict_method(const Value& self, const std::string& name, CallArgs args) {
  const std::string what = "dict." + name + "()";
  if (name == "get") {
    auto a = bind_args(what, std::move(args), {"key", "default"}, 1);
    if (a[0]->is_string())
      if (const Value* v = self.dict().find(a[0]->str())) return *v;
    return a[1] ? *a[1] : Value::none();
  }
  if (name != "items" && name != "keys" && name != "values")
    throw TemplateError(fmt::format("dict method '{}' is not supported", name));
  bind_args(what, std::move(args), {});
  std::vector<Value> out;
  for (const auto& [key, value] : self.dict().entries) {
    if (name == "items") out.push_back(Value::sequence({Value::string(key), value}, SeqKind::Tuple));
    else if (name == "keys") out.push_back(Value::string(key));
    else out.push_back(value);
  }
  const SeqKind kind = name == "items" ? SeqKind::DictItems : name == "keys" ? SeqKind::DictKeys : SeqKind::DictValues;
  return Value::sequence(std::move(out), kind);
}

Value sequence_method(const Value& self, const std::string& name, CallArgs args) {
  const std::string type = self.type_name();
  const std::string what = type + "." + name + "()";
  if (name != "count" && name != "index") throw TemplateError(fmt::format("{} method '{}' is not supported", type, name));
  auto a = bind_args(what, std::move(args), {"value"}, 1);
  const auto& items = self.seq().items;
  if (name == "count")
    return Value::integer(std::count_if(items.begin(), items.end(), [&](const Value& v) { return equal(v, *a[0]); }));
  for (size_t i = 0; i < items.size(); ++i)
    if (equal(items[i], *a[0])) return Value::integer(static_cast<int64_t>(i));
  throw TemplateError(fmt::format("{} is not in {}", to_repr(*a[0]), type));
}

Value BoundMethod::call(Interpreter& interp, CallArgs args) const {
  interp.charge(1);
  if (self_.is_string()) return str_method(interp, self_, name_, std::move(args));
  if (self_.is_dict()) return dict_method(self_, name_, std::move(args));
  if (self_.is_loop()) {
    if (name_ != "cycle") throw TemplateError(fmt::format("loop.{}() is not supported", name_));
    if (!args.keyword.empty()) throw TemplateError("loop.cycle() takes no keyword arguments");
    if (args.positional.empty()) throw TemplateError("no items for cycling given");
    return args.positional[self_.loop().index0 % args.positional.size()];
  }
  return sequence_method(self_, name_, std::move(args));
}

// dict(...) and namespace(...): a mapping or nothing, then keyword arguments.
std::vector<std::pair<std::string, Value>> mapping_args(std::string_view what, CallArgs args) {
  std::vector<std::pair<std::string, Value>> entries;
  if (args.positional.size() > 1) throw TemplateError(fmt::format("{} expected at most 1 argument", what));
  if (!args.positional.empty()) {
    if (!args.positional[0].is_dict())
      throw TemplateError(fmt::format("{} of a {} is not supported (pass a dict or keywords)", what,
                                      args.positional[0].type_name()));
    entries = args.positional[0].dict().entries;
  }
  for (auto& [key, value] : args.keyword) {
    auto it = std::find_if(entries.begin(), entries.end(), [&name = key](const auto& e) { return e.first == name; });
    if (it != entries.end()) it->second = std::move(value);
    else entries.emplace_back(key, std::move(value));
  }
  return entries;
}

Value range(Interpreter& interp, CallArgs args) {
  if (!args.keyword.empty()) throw TemplateError("range() takes no keyword arguments");
  const size_t n = args.positional.size();
  if (n < 1 || n > 3) throw TemplateError(fmt::format("range expected 1 to 3 arguments, got {}", n));
  std::array<int64_t, 3> a{0, 0, 1};
  for (size_t i = 0; i < n; ++i) a[n == 1 ? 1 : i] = require_int(args.positional[i], "range()");
  const auto [start, stop, step] = a;
  if (step == 0) throw TemplateError("range() arg 3 must not be zero");
  const __int128 span = step > 0 ? static_cast<__int128>(stop) - start : static_cast<__int128>(start) - stop;
  const __int128 stride = step > 0 ? step : -static_cast<__int128>(step);
  const __int128 count = span <= 0 ? 0 : (span + stride - 1) / stride;
  constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE
  if (count > kMaxRange)
    throw TemplateError("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  std::vector<Value> items;
  for (int64_t v = start; step > 0 ? v < stop : v > stop; v += step) items.push_back(Value::integer(v));
  interp.charge(items.size() / 64);
  return Value::sequence(std::move(items), SeqKind::Range);
}

Value strftime_now(Interpreter& interp, CallArgs args) {
  auto a = bind_args("strftime_now()", std::move(args), {"format"}, 1);
  const std::string& format = require_str(*a[0], "strftime_now()");
  if (format.size() > 256) throw TemplateError("strftime_now() format longer than 256 bytes");
  const std::time_t t = std::chrono::system_clock::to_time_t(interp.now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  // datetime.strftime handles %f, and %z and %Z of a naive time (empty), before C's strftime.
  std::string c_format;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] == '%' && i + 1 < format.size()) {
      const char f = format[++i];
      if (f == 'f') c_format += "000000";
      else if (f != 'z' && f != 'Z') c_format += std::string("%") + f;
    } else {
      c_format.push_back(format[i]);
    }
  }
  std::string out(1024, '\0');
  const size_t n = std::strftime(out.data(), out.size(), c_format.c_str(), &tm);
  if (n == 0 && !c_format.empty()) throw TemplateError("strftime_now() result is empty or too long");
  out.resize(n);
  return Value::string(out);
}

Value GlobalFunction::call(Interpreter& interp, CallArgs args) const {
  interp.charge(1);
  if (name_ == "range") return range(interp, std::move(args));
  if (name_ == "namespace") {
    auto ns = interp.make_namespace();
    ns->attrs = mapping_args("namespace()", std::move(args));
    return Value::namespace_object(std::move(ns));
  }
  if (name_ == "dict") return Value::dict(mapping_args("dict()", std::move(args)));
  if (name_ == "raise_exception") {
    auto a = bind_args("raise_exception()", std::move(args), {"message"}, 1);
    throw RaisedException(to_str(*a[0]));
  }
  if (name_ == "strftime_now") return strftime_now(interp, std::move(args));
  throw TemplateError(fmt::format("function '{}' is not supported", name_));
}

}  // namespace

}  // namespace kvb::jinja
