#pragma once
// Values of the chat-template renderer: the part of Python's object model that Jinja2 templates
// see (None, bool, int, float, str and markupsafe's Markup, list, tuple, range, generators,
// dict and its views, Jinja's Undefined and namespace(), callables, the loop object), with
// Python's str(), repr(), truthiness, == and <, and json.dumps as Hugging Face's `tojson` calls it.
//
// Accepts: JSON from the caller (nlohmann::ordered_json, so dict order is insertion order as in
// Python); strings must be valid UTF-8.
// Limits: containers nest at most kMaxNesting deep (checked where one is built, so no recursion
// over a value goes deeper); ints are 64-bit where Python's are unbounded (overflow is an error);
// dict keys are strings (all JSON can express).
// Errors: TemplateError, with Python's wording where Python raises.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace kvb::jinja {

// A failure while parsing or rendering; ChatTemplate adds the template's name.
struct TemplateError : std::runtime_error {
  explicit TemplateError(const std::string& message, int at_line = 0)
      : std::runtime_error(message), line(at_line) {}
  int line;  // 1-based line in the template source; 0 until the interpreter knows it
};

// raise_exception(message) called by the template.
struct RaisedException : TemplateError {
  using TemplateError::TemplateError;
};

inline constexpr uint32_t kMaxNesting = 256;

class Value;
class Interpreter;

// Arguments of a call, filter or test, after evaluation.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

// What Python reports where an undefined value is used ("'x' is undefined").
struct Undefined {
  std::string hint;
};

struct Str {
  std::string text;
  bool markup = false;  // markupsafe.Markup (from |safe): `+` with a plain str escapes the str
};

// Python's iterables other than str and dict.
enum class SeqKind { List, Tuple, Range, Generator, DictItems, DictKeys, DictValues };

struct Sequence {
  SeqKind kind = SeqKind::List;
  std::vector<Value> items;
  uint32_t depth = 1;        // containers nested inside, this one included
  mutable size_t taken = 0;  // a generator's items before this one were already consumed
};

struct Dict {
  std::vector<std::pair<std::string, Value>> entries;  // insertion order
  uint32_t depth = 1;
  const Value* find(std::string_view key) const;
};

// Jinja's namespace(): the one mutable object (attributes are assigned with {% set ns.x = v %}).
struct Namespace {
  std::vector<std::pair<std::string, Value>> attrs;
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value value);
};

// Jinja's `loop` inside a for loop.
struct LoopInfo {
  std::shared_ptr<const Sequence> items;
  size_t index0 = 0;
};

// Macros, global functions and bound methods.
class Callable {
 public:
  virtual ~Callable() = default;
  virtual std::string type_name() const = 0;  // Python's type name: "Macro", "function", ...
  virtual Value call(Interpreter& interp, CallArgs args) const = 0;
};

class Value {
 public:
  using Data = std::variant<Undefined, std::nullptr_t, bool, int64_t, double, Str,
                            std::shared_ptr<const Sequence>, std::shared_ptr<const Dict>,
                            std::shared_ptr<Namespace>, std::shared_ptr<const Callable>,
                            std::shared_ptr<const LoopInfo>>;

  Value() = default;  // Undefined
  static Value undefined(std::string hint) { return Value(Undefined{std::move(hint)}); }
  static Value none() { return Value(nullptr); }
  static Value boolean(bool b) { return Value(b); }
  static Value integer(int64_t i) { return Value(i); }
  static Value number(double d) { return Value(d); }
  static Value string(std::string s, bool markup = false) { return Value(Str{std::move(s), markup}); }
  static Value sequence(std::vector<Value> items, SeqKind kind = SeqKind::List);
  static Value dict(std::vector<std::pair<std::string, Value>> entries);
  static Value namespace_object(std::shared_ptr<Namespace> ns) { return Value(std::move(ns)); }
  static Value callable(std::shared_ptr<const Callable> fn) { return Value(std::move(fn)); }
  static Value loop(std::shared_ptr<const LoopInfo> loop) { return Value(std::move(loop)); }

  bool is_undefined() const { return std::holds_alternative<Undefined>(data_); }
  bool is_none() const { return std::holds_alternative<std::nullptr_t>(data_); }
  bool is_bool() const { return std::holds_alternative<bool>(data_); }
  bool is_int() const { return std::holds_alternative<int64_t>(data_); }
  bool is_float() const { return std::holds_alternative<double>(data_); }
  bool is_number() const { return is_bool() || is_int() || is_float(); }  // Python's Number
  bool is_string() const { return std::holds_alternative<Str>(data_); }
  bool is_sequence() const { return std::holds_alternative<std::shared_ptr<const Sequence>>(data_); }
  bool is_sequence(SeqKind kind) const { return is_sequence() && seq().kind == kind; }
  bool is_dict() const { return std::holds_alternative<std::shared_ptr<const Dict>>(data_); }
  bool is_namespace() const { return std::holds_alternative<std::shared_ptr<Namespace>>(data_); }
  bool is_callable() const { return std::holds_alternative<std::shared_ptr<const Callable>>(data_); }
  bool is_loop() const { return std::holds_alternative<std::shared_ptr<const LoopInfo>>(data_); }

  const std::string& undefined_hint() const { return std::get<Undefined>(data_).hint; }
  bool as_bool() const { return std::get<bool>(data_); }
  int64_t as_int() const { return is_bool() ? as_bool() : std::get<int64_t>(data_); }  // bool or int
  double as_double() const;                                                              // any number
  const std::string& str() const { return std::get<Str>(data_).text; }
  bool markup() const { return std::get<Str>(data_).markup; }
  const Sequence& seq() const { return *std::get<std::shared_ptr<const Sequence>>(data_); }
  const std::shared_ptr<const Sequence>& seq_ptr() const {
    return std::get<std::shared_ptr<const Sequence>>(data_);
  }
  const Dict& dict() const { return *std::get<std::shared_ptr<const Dict>>(data_); }
  const std::shared_ptr<Namespace>& ns() const { return std::get<std::shared_ptr<Namespace>>(data_); }
  const Callable& fn() const { return *std::get<std::shared_ptr<const Callable>>(data_); }
  const LoopInfo& loop() const { return *std::get<std::shared_ptr<const LoopInfo>>(data_); }
  const Data& data() const { return data_; }

  // Python's type(x).__name__, for messages.
  std::string type_name() const;
  // Nesting depth as a child of a container (0 for anything but a sequence or dict).
  uint32_t depth() const;

 private:
  explicit Value(Data data) : data_(std::move(data)) {}
  Data data_;
};

// Converts the caller's JSON; throws TemplateError for invalid UTF-8, integers beyond int64,
// nesting beyond kMaxNesting and binary values.
Value from_json(const nlohmann::ordered_json& json);

// Binds a call's arguments to parameters by position and keyword, as Python does; what is not
// given is nullopt. The first `required` parameters must be given. `what` names the callee in
// errors ("filter 'join'").
std::vector<std::optional<Value>> bind_args(std::string_view what, CallArgs args,
                                            std::initializer_list<std::string_view> params,
                                            size_t required = 0);

bool truthy(const Value& v);
// str(v) (Undefined gives ""); throws for values whose text Python would make up from an address.
std::string to_str(const Value& v);
std::string to_repr(const Value& v);
// Python's == and the orderings (op is "<", "<=", ">" or ">="); `compare` throws TemplateError
// where Python raises TypeError (ordering a str and an int, say).
bool equal(const Value& a, const Value& b);
bool compare(const Value& a, std::string_view op, const Value& b);
// len(v), with Jinja's Undefined counting 0; throws where Python has no len().
size_t py_len(const Value& v);
// The items iter(v) yields (a generator is consumed); throws for what is not iterable.
std::vector<Value> iterate(const Value& v);

// json.dumps(v, ensure_ascii=..., indent=..., separators=..., sort_keys=...).
struct JsonStyle {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // the text of one level; absent: everything on one line
  std::optional<std::pair<std::string, std::string>> separators;  // item and key separators
  bool sort_keys = false;
};
std::string to_json(const Value& v, const JsonStyle& style);

// markupsafe.escape of plain text.
std::string html_escape(std::string_view text);
// Jinja's object_type_repr: "None", "dict object", "jinja2.utils.Namespace object", ...
std::string object_type_repr(const Value& v);

}  // namespace kvb::jinja
