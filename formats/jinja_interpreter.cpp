#include "formats/jinja_interpreter.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <unordered_map>

#include "formats/jinja_filters.hpp"
#include "formats/jinja_methods.hpp"
#include "formats/jinja_text.hpp"

namespace kvb::jinja {

struct Scope {
  explicit Scope(std::shared_ptr<Scope> p) : parent(std::move(p)) {}
  std::shared_ptr<Scope> parent;
  std::unordered_map<std::string, Value> vars;
};

namespace {

using namespace ast;

// A macro, or a call block's `caller`: its definition and the scope it was defined in.
class MacroCallable : public Callable {
 public:
  MacroCallable(std::shared_ptr<const MacroDef> def, std::weak_ptr<Scope> closure)
      : def_(std::move(def)), closure_(std::move(closure)) {}
  std::string type_name() const override { return "Macro"; }
  Value call(Interpreter& interp, CallArgs args) const override {
    return interp.call_macro(*def_, closure_, std::move(args));
  }

 private:
  std::shared_ptr<const MacroDef> def_;
  std::weak_ptr<Scope> closure_;
};

[[noreturn]] void unsupported_operands(std::string_view op, const Value& a, const Value& b) {
  throw TemplateError(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(), b.type_name()));
}

void check_overflow(bool overflow) {
  if (overflow) throw TemplateError("integer overflow (Python's integers are unbounded, this renderer's are 64-bit)");
}

// CPython's float floor division and modulo.
std::pair<double, double> float_divmod(double x, double y) {
  double mod = std::fmod(x, y);
  double div = (x - mod) / y;
  if (mod != 0) {
    if ((y < 0) != (mod < 0)) {
      mod += y;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, y);
  }
  double floordiv;
  if (div != 0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, x / y);
  }
  return {floordiv, mod};
}

Value arithmetic(std::string_view op, const Value& a, const Value& b) {
  if (!a.is_float() && !b.is_float()) {
    const int64_t x = a.as_int(), y = b.as_int();
    int64_t r = 0;
    if (op == "+" || op == "-" || op == "*") {
      check_overflow(op == "+"   ? __builtin_add_overflow(x, y, &r)
                     : op == "-" ? __builtin_sub_overflow(x, y, &r)
                                 : __builtin_mul_overflow(x, y, &r));
      return Value::integer(r);
    }
    if (op == "/") {
      if (y == 0) throw TemplateError("division by zero");
      return Value::number(static_cast<double>(x) / static_cast<double>(y));
    }
    if (op == "//" || op == "%") {
      if (y == 0) throw TemplateError("integer division or modulo by zero");
      check_overflow(x == std::numeric_limits<int64_t>::min() && y == -1);
      int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        m += y;
        q -= 1;
      }
      return Value::integer(op == "//" ? q : m);
    }
    if (y >= 0) {  // "**"
      int64_t result = 1, base = x;
      for (int64_t e = y; e > 0; e >>= 1) {
        if (e & 1) check_overflow(__builtin_mul_overflow(result, base, &result));
        if (e > 1) check_overflow(__builtin_mul_overflow(base, base, &base));
      }
      return Value::integer(result);
    }
  }
  const double x = a.as_double(), y = b.as_double();
  if (op == "+") return Value::number(x + y);
  if (op == "-") return Value::number(x - y);
  if (op == "*") return Value::number(x * y);
  if (op == "/") {
    if (y == 0) throw TemplateError("float division by zero");
    return Value::number(x / y);
  }
  if (op == "//" || op == "%") {
    if (y == 0) throw TemplateError(op == "//" ? "float floor division by zero" : "float modulo");
    const auto [q, m] = float_divmod(x, y);
    return Value::number(op == "//" ? q : m);
  }
  if (x == 0 && y < 0) throw TemplateError("0.0 cannot be raised to a negative power");
  if (x < 0 && y != std::floor(y)) throw TemplateError("a negative number to a fractional power (a complex number) is not supported");
  const double power = std::pow(x, y);
  if (std::isinf(power) && std::isfinite(x) && std::isfinite(y)) throw TemplateError("(34, 'Numerical result out of range')");
  return Value::number(power);
}

}  // namespace

Interpreter::Interpreter(const Template& tpl, Value context, const TemplateLimits& limits,
                         std::chrono::system_clock::time_point now)
    : tpl_(tpl), context_(std::move(context)), limits_(limits), now_(now) {}

Interpreter::~Interpreter() {
  // Namespaces are the one mutable object, so the one way to a reference cycle.
  for (const auto& ns : namespaces_) ns->attrs.clear();
}

std::string Interpreter::render() {
  std::string result;
  out_ = &result;
  exec(tpl_.body, std::make_shared<Scope>(nullptr));
  return result;
}

void Interpreter::charge(uint64_t steps) {
  steps_ += steps;
  if (steps_ > limits_.max_steps)
    throw TemplateError(fmt::format("the render took more than {} steps (loop iterations, calls, and 64-byte "
                                    "units of text built): a loop or recursion without end?",
                                    limits_.max_steps));
}

void Interpreter::produced(size_t bytes) {
  if (bytes > limits_.max_output_bytes)
    throw TemplateError(fmt::format("a value larger than {} bytes was built", limits_.max_output_bytes));
  charge(bytes / 64);
}

std::shared_ptr<Namespace> Interpreter::make_namespace() {
  namespaces_.push_back(std::make_shared<Namespace>());
  return namespaces_.back();
}

void Interpreter::emit(const std::string& text) {
  if (out_->size() + text.size() > limits_.max_output_bytes)
    throw TemplateError(fmt::format("the output is larger than {} bytes", limits_.max_output_bytes));
  charge(1 + text.size() / 64);
  *out_ += text;
}

Value Interpreter::lookup(const std::string& name, const Scope& scope) const {
  for (const Scope* s = &scope; s; s = s->parent.get())
    if (auto it = s->vars.find(name); it != s->vars.end()) return it->second;
  if (const Value* v = context_.dict().find(name)) return *v;
  if (auto fn = global_function(name)) return *fn;
  return Value::undefined(py_repr(name) + " is undefined");
}

// --- statements

Interpreter::Flow Interpreter::exec(const Body& body, const std::shared_ptr<Scope>& scope) {
  for (const StmtPtr& s : body)
    if (const Flow f = exec(*s, scope); f != Flow::Next) return f;
  return Flow::Next;
}

Interpreter::Flow Interpreter::exec(const Stmt& stmt, const std::shared_ptr<Scope>& scope) {
  try {
    switch (stmt.kind) {
      case StmtKind::Text: emit(static_cast<const Text&>(stmt).text); break;
      case StmtKind::Output: emit(to_str(eval(*static_cast<const Output&>(stmt).expr, scope))); break;
      case StmtKind::If: {
        const auto& s = static_cast<const If&>(stmt);
        for (const auto& [test, body] : s.branches)
          if (truthy(eval(*test, scope))) return exec(body, scope);
        return exec(s.otherwise, scope);
      }
      case StmtKind::For: return exec_for(static_cast<const For&>(stmt), scope);
      case StmtKind::Set: {
        const auto& s = static_cast<const Set&>(stmt);
        assign(s.target, eval(*s.value, scope), *scope, s.line);
        break;
      }
      case StmtKind::SetBlock: {
        const auto& s = static_cast<const SetBlock&>(stmt);
        std::string text;
        if (const Flow f = capture(s.body, std::make_shared<Scope>(scope), text); f != Flow::Next) return f;
        assign(s.target, apply_filters(s.filters, Value::string(std::move(text)), scope), *scope, s.line);
        break;
      }
      case StmtKind::Macro: {
        const auto& def = static_cast<const Macro&>(stmt).def;
        scope->vars[def->name] = Value::callable(std::make_shared<MacroCallable>(def, scope));
        break;
      }
      case StmtKind::CallBlock: exec_call_block(static_cast<const CallBlock&>(stmt), scope); break;
      case StmtKind::FilterBlock: {
        const auto& s = static_cast<const FilterBlock&>(stmt);
        std::string text;
        if (const Flow f = capture(s.body, std::make_shared<Scope>(scope), text); f != Flow::Next) return f;
        emit(to_str(apply_filters(s.filters, Value::string(std::move(text)), scope)));
        break;
      }
      case StmtKind::Scoped: exec(static_cast<const Scoped&>(stmt).body, std::make_shared<Scope>(scope)); break;
      case StmtKind::Break: return Flow::Break;
      case StmtKind::Continue: return Flow::Continue;
    }
  } catch (TemplateError& e) {
    if (e.line == 0) e.line = stmt.line;
    throw;
  }
  return Flow::Next;
}

// A break or continue in the loop's body ends there; one in its else block (which runs when
// nothing was iterated) belongs to an enclosing loop.
Interpreter::Flow Interpreter::exec_for(const For& s, const std::shared_ptr<Scope>& scope) {
  std::vector<Value> items = iterate(eval(*s.iterable, scope));
  if (s.filter) {
    std::vector<Value> kept;
    for (Value& item : items) {
      charge(1);
      auto probe = std::make_shared<Scope>(scope);
      assign(s.target, item, *probe, s.line);
      if (truthy(eval(*s.filter, probe))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) return exec(s.otherwise, std::make_shared<Scope>(scope));
  const Value all = Value::sequence(std::move(items));
  for (size_t i = 0; i < all.seq().items.size(); ++i) {
    charge(1);
    auto body_scope = std::make_shared<Scope>(scope);
    assign(s.target, all.seq().items[i], *body_scope, s.line);
    body_scope->vars["loop"] = Value::loop(std::make_shared<LoopInfo>(LoopInfo{all.seq_ptr(), i}));
    if (exec(s.body, body_scope) == Flow::Break) break;
  }
  return Flow::Next;
}

void Interpreter::exec_call_block(const CallBlock& s, const std::shared_ptr<Scope>& scope) {
  const Value callee = eval(*s.call->callee, scope);
  CallArgs args = eval_args(s.call->args, scope);
  args.keyword.emplace_back("caller", Value::callable(std::make_shared<MacroCallable>(s.caller, scope)));
  emit(to_str(invoke(callee, std::move(args))));
}

Interpreter::Flow Interpreter::capture(const Body& body, const std::shared_ptr<Scope>& scope, std::string& text) {
  std::string* outer = out_;
  out_ = &text;
  try {
    const Flow f = exec(body, scope);
    out_ = outer;
    return f;
  } catch (...) {
    out_ = outer;
    throw;
  }
}

Value Interpreter::apply_filters(const std::vector<FilterCall>& filters, Value v, const std::shared_ptr<Scope>& scope) {
  for (const FilterCall& f : filters) {
    try {
      v = apply_filter(*this, f.name, v, eval_args(f.args, scope));
    } catch (TemplateError& e) {
      if (e.line == 0) e.line = f.line;
      throw;
    }
  }
  return v;
}

void Interpreter::assign(const Target& target, Value v, Scope& scope, int line) {
  if (!target.attribute.empty()) {
    const Value ns = lookup(target.names[0], scope);
    if (!ns.is_namespace())
      throw TemplateError(fmt::format("cannot assign attribute on non-namespace object ('{}' is a {})",
                                      target.names[0], ns.type_name()), line);
    ns.ns()->set(target.attribute, std::move(v));
    return;
  }
  if (!target.unpack) {
    scope.vars[target.names[0]] = std::move(v);
    return;
  }
  std::vector<Value> items = iterate(v);
  const size_t want = target.names.size();
  if (items.size() < want)
    throw TemplateError(fmt::format("not enough values to unpack (expected {}, got {})", want, items.size()), line);
  if (items.size() > want) throw TemplateError(fmt::format("too many values to unpack (expected {})", want), line);
  for (size_t i = 0; i < want; ++i) scope.vars[target.names[i]] = std::move(items[i]);
}

Value Interpreter::call_macro(const MacroDef& def, const std::weak_ptr<Scope>& closure, CallArgs args) {
  const std::shared_ptr<Scope> parent = closure.lock();
  if (!parent) throw TemplateError(fmt::format("macro '{}' was called after the block that defined it ended", def.name));
  if (call_depth_ >= limits_.max_call_depth)
    throw TemplateError(fmt::format("macro calls nested more than {} deep (recursion without end?)", limits_.max_call_depth));
  charge(1);
  auto scope = std::make_shared<Scope>(parent);
  const size_t n = def.params.size();
  if (args.positional.size() > n && !def.uses_varargs)
    throw TemplateError(fmt::format("macro '{}' takes not more than {} argument(s)", def.name, n));
  std::vector<bool> given(n, false);
  std::vector<Value> varargs;
  for (size_t i = 0; i < args.positional.size(); ++i) {
    if (i < n) {
      scope->vars[def.params[i].name] = std::move(args.positional[i]);
      given[i] = true;
    } else {
      varargs.push_back(std::move(args.positional[i]));
    }
  }
  Value caller = Value::undefined("No caller defined");
  std::vector<std::pair<std::string, Value>> kwargs;
  for (auto& [key, value] : args.keyword) {
    const auto it = std::find_if(def.params.begin(), def.params.end(),
                                 [&name = key](const Param& p) { return p.name == name; });  // clang 14: no binding captures
    if (it != def.params.end()) {
      const auto i = static_cast<size_t>(it - def.params.begin());
      if (given[i]) throw TemplateError(fmt::format("macro '{}' got multiple values for argument '{}'", def.name, key));
      scope->vars[key] = std::move(value);
      given[i] = true;
    } else if (key == "caller" && def.uses_caller) {
      caller = std::move(value);
    } else if (def.uses_kwargs) {
      kwargs.emplace_back(key, std::move(value));
    } else {
      throw TemplateError(fmt::format("macro '{}' takes no keyword argument '{}'", def.name, key));
    }
  }
  ++call_depth_;
  struct Leave {
    int& depth;
    ~Leave() { --depth; }
  } leave{call_depth_};
  for (size_t i = 0; i < n; ++i) {
    if (given[i]) continue;
    const Param& p = def.params[i];
    scope->vars[p.name] = p.default_value ? eval(*p.default_value, scope)
                                          : Value::undefined(fmt::format("parameter {} was not provided", py_repr(p.name)));
  }
  if (def.uses_varargs) scope->vars["varargs"] = Value::sequence(std::move(varargs), SeqKind::Tuple);
  if (def.uses_kwargs) scope->vars["kwargs"] = Value::dict(std::move(kwargs));
  if (def.uses_caller) scope->vars["caller"] = std::move(caller);
  std::string text;
  capture(def.body, scope, text);
  return Value::string(std::move(text));
}

// --- expressions

Value Interpreter::invoke(const Value& callee, CallArgs args) {
  if (callee.is_undefined()) throw TemplateError(callee.undefined_hint());
  if (!callee.is_callable()) throw TemplateError(fmt::format("'{}' object is not callable", callee.type_name()));
  return callee.fn().call(*this, std::move(args));
}

CallArgs Interpreter::eval_args(const Args& args, const std::shared_ptr<Scope>& scope) {
  CallArgs out;
  for (const ExprPtr& e : args.positional) out.positional.push_back(eval(*e, scope));
  for (const auto& [key, e] : args.keyword) out.keyword.emplace_back(key, eval(*e, scope));
  return out;
}

Value Interpreter::eval(const Expr& e, const std::shared_ptr<Scope>& scope) {
  try {
    switch (e.kind) {
      case ExprKind::Literal: return static_cast<const Literal&>(e).value;
      case ExprKind::Name: return lookup(static_cast<const Name&>(e).name, *scope);
      case ExprKind::List: {
        const auto& l = static_cast<const List&>(e);
        std::vector<Value> items;
        items.reserve(l.items.size());
        for (const ExprPtr& item : l.items) items.push_back(eval(*item, scope));
        return Value::sequence(std::move(items), l.tuple ? SeqKind::Tuple : SeqKind::List);
      }
      case ExprKind::Dict: {
        std::vector<std::pair<std::string, Value>> entries;
        for (const auto& [key_expr, value_expr] : static_cast<const ast::Dict&>(e).entries) {
          const Value key = eval(*key_expr, scope);
          if (!key.is_string()) throw TemplateError("dict keys other than strings are not supported");
          Value value = eval(*value_expr, scope);
          auto it = std::find_if(entries.begin(), entries.end(), [&](const auto& x) { return x.first == key.str(); });
          if (it != entries.end()) it->second = std::move(value);  // a repeated key keeps its first place
          else entries.emplace_back(key.str(), std::move(value));
        }
        return Value::dict(std::move(entries));
      }
      case ExprKind::Attr: {
        const auto& a = static_cast<const Attr&>(e);
        return get_attribute(eval(*a.object, scope), a.name);
      }
      case ExprKind::Item: {
        const auto& i = static_cast<const Item&>(e);
        const Value object = eval(*i.object, scope);
        return get_item(object, eval(*i.key, scope));
      }
      case ExprKind::Slice: {
        const auto& s = static_cast<const Slice&>(e);
        const Value object = eval(*s.object, scope);
        auto part = [&](const ExprPtr& p) { return p ? eval(*p, scope) : Value::none(); };
        const Value start = part(s.start), stop = part(s.stop), step = part(s.step);
        return get_slice(object, start, stop, step);
      }
      case ExprKind::Call: {
        const auto& c = static_cast<const Call&>(e);
        const Value callee = eval(*c.callee, scope);
        return invoke(callee, eval_args(c.args, scope));
      }
      case ExprKind::Filter: {
        const auto& f = static_cast<const Filter&>(e);
        const Value subject = eval(*f.operand, scope);
        return apply_filter(*this, f.name, subject, eval_args(f.args, scope));
      }
      case ExprKind::Test: {
        const auto& t = static_cast<const Test&>(e);
        const Value subject = eval(*t.operand, scope);
        return Value::boolean(apply_test(*this, t.name, subject, eval_args(t.args, scope)));
      }
      case ExprKind::Not: return Value::boolean(!truthy(eval(*static_cast<const Unary&>(e).operand, scope)));
      case ExprKind::Negate:
      case ExprKind::Plus: {
        const Value v = eval(*static_cast<const Unary&>(e).operand, scope);
        if (v.is_undefined()) throw TemplateError(v.undefined_hint());
        const bool negate = e.kind == ExprKind::Negate;
        if (v.is_float()) return Value::number(negate ? -v.as_double() : v.as_double());
        if (v.is_int() || v.is_bool()) return negate ? arithmetic("-", Value::integer(0), v) : Value::integer(v.as_int());
        throw TemplateError(fmt::format("bad operand type for unary {}: '{}'", negate ? '-' : '+', v.type_name()));
      }
      case ExprKind::And:
      case ExprKind::Or: {
        const auto& b = static_cast<const Binary&>(e);
        Value left = eval(*b.lhs, scope);
        if (truthy(left) == (e.kind == ExprKind::Or)) return left;
        return eval(*b.rhs, scope);
      }
      case ExprKind::Binary: return eval_binary(static_cast<const Binary&>(e), scope);
      case ExprKind::Compare: return eval_compare(static_cast<const Compare&>(e), scope);
      case ExprKind::Conditional: {
        const auto& c = static_cast<const Conditional&>(e);
        if (truthy(eval(*c.test, scope))) return eval(*c.then, scope);
        if (c.otherwise) return eval(*c.otherwise, scope);
        return Value::undefined(fmt::format(
            "the inline if-expression on line {} evaluated to false and no else section was defined.", e.line));
      }
    }
  } catch (TemplateError& err) {
    if (err.line == 0) err.line = e.line;
    throw;
  }
  throw TemplateError("unknown expression");
}

Value Interpreter::eval_binary(const Binary& b, const std::shared_ptr<Scope>& scope) {
  const Value x = eval(*b.lhs, scope);
  const Value y = eval(*b.rhs, scope);
  const std::string& op = b.op;
  if (op == "~") {  // str(x) + str(y): an Undefined is ""
    std::string text = to_str(x) + to_str(y);
    produced(text.size());
    return Value::string(std::move(text));
  }
  if (x.is_undefined()) throw TemplateError(x.undefined_hint());
  if (y.is_undefined()) throw TemplateError(y.undefined_hint());
  if (x.is_number() && y.is_number()) return arithmetic(op, x, y);
  if (op == "+") {
    if (x.is_string() && y.is_string()) {
      // markupsafe: Markup + str escapes the str, whichever side it is on.
      const bool markup = x.markup() || y.markup();
      std::string text = (markup && !x.markup() ? html_escape(x.str()) : x.str()) +
                         (markup && !y.markup() ? html_escape(y.str()) : y.str());
      produced(text.size());
      return Value::string(std::move(text), markup);
    }
    for (const SeqKind kind : {SeqKind::List, SeqKind::Tuple})
      if (x.is_sequence(kind) && y.is_sequence(kind)) {
        std::vector<Value> items = x.seq().items;
        items.insert(items.end(), y.seq().items.begin(), y.seq().items.end());
        produced(items.size() * sizeof(Value));
        return Value::sequence(std::move(items), kind);
      }
    if (x.is_string() || x.is_sequence(SeqKind::List) || x.is_sequence(SeqKind::Tuple))
      throw TemplateError(fmt::format("can only concatenate {} (not \"{}\") to {}", x.type_name(), y.type_name(), x.type_name()));
    unsupported_operands(op, x, y);
  }
  if (op == "*") {
    const bool x_repeats = x.is_string() || x.is_sequence(SeqKind::List) || x.is_sequence(SeqKind::Tuple);
    const bool y_repeats = y.is_string() || y.is_sequence(SeqKind::List) || y.is_sequence(SeqKind::Tuple);
    const Value& seq = x_repeats ? x : y;
    const Value& count = x_repeats ? y : x;
    if ((x_repeats || y_repeats) && (count.is_int() || count.is_bool())) {
      const int64_t times = std::max<int64_t>(0, count.as_int());
      const size_t unit = seq.is_string() ? seq.str().size() : seq.seq().items.size() * sizeof(Value);
      if (unit > 0 && static_cast<uint64_t>(times) > limits_.max_output_bytes / unit) produced(limits_.max_output_bytes + 1);
      produced(unit * static_cast<size_t>(times));
      if (seq.is_string()) {
        std::string text;
        text.reserve(unit * static_cast<size_t>(times));
        for (int64_t i = 0; i < times; ++i) text += seq.str();
        return Value::string(std::move(text), seq.markup());
      }
      std::vector<Value> items;
      for (int64_t i = 0; i < times; ++i) items.insert(items.end(), seq.seq().items.begin(), seq.seq().items.end());
      return Value::sequence(std::move(items), seq.seq().kind);
    }
    if (x_repeats || y_repeats)
      throw TemplateError(fmt::format("can't multiply sequence by non-int of type '{}'", count.type_name()));
  }
  if (op == "%" && x.is_string()) throw TemplateError("printf-style string formatting ('%' on a string) is not supported");
  unsupported_operands(op == "**" ? "** or pow()" : op, x, y);
}

Value Interpreter::eval_compare(const Compare& c, const std::shared_ptr<Scope>& scope) {
  Value left = eval(*c.first, scope);
  for (const auto& [op, expr] : c.rest) {
    Value right = eval(*expr, scope);
    bool holds;
    if (op == "==") holds = equal(left, right);
    else if (op == "!=") holds = !equal(left, right);
    else if (op == "in") holds = contains(right, left);
    else if (op == "not in") holds = !contains(right, left);
    else {
      if (left.is_undefined()) throw TemplateError(left.undefined_hint());
      if (right.is_undefined()) throw TemplateError(right.undefined_hint());
      holds = compare(left, op, right);
    }
    if (!holds) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

}  // namespace kvb::jinja
