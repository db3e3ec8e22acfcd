#pragma once
// Renders a parsed chat template (jinja_ast.hpp) against a context, with the semantics of Jinja2's
// ImmutableSandboxedEnvironment and its default (not strict) Undefined: scopes as Jinja2 has them
// (a for loop's body and a macro call get their own; if does not; set writes to the innermost),
// macros that see the scope they were defined in, loop objects, namespaces, call blocks,
// break/continue, Python's operators and truthiness.
//
// Limits (TemplateLimits): macro calls in progress; "steps" (one per loop iteration, call, filter
// and test, plus one per 64 bytes of every string or list built), so a hostile template cannot
// run for long; bytes of the output and of any single string or list.
// Errors: TemplateError with the line of the expression or statement that failed;
// RaisedException for raise_exception().
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/jinja_ast.hpp"
#include "formats/jinja_template.hpp"

namespace kvb::jinja {

struct Scope;

class Interpreter {
 public:
  Interpreter(const ast::Template& tpl, Value context, const TemplateLimits& limits,
              std::chrono::system_clock::time_point now);
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  std::string render();

  // For builtins: account work, check a built value's size, the render's clock, namespaces
  // (kept until the render ends, so cycles through them are broken there).
  void charge(uint64_t steps);
  void produced(size_t bytes);
  std::chrono::system_clock::time_point now() const { return now_; }
  std::shared_ptr<Namespace> make_namespace();

  // Calls a macro (or a call block's caller) whose scope of definition is `closure`.
  Value call_macro(const ast::MacroDef& def, const std::weak_ptr<Scope>& closure, CallArgs args);

 private:
  enum class Flow { Next, Break, Continue };

  Flow exec(const ast::Body& body, const std::shared_ptr<Scope>& scope);
  Flow exec(const ast::Stmt& stmt, const std::shared_ptr<Scope>& scope);
  Flow exec_for(const ast::For& s, const std::shared_ptr<Scope>& scope);
  void exec_call_block(const ast::CallBlock& s, const std::shared_ptr<Scope>& scope);
  // Runs `body` with its output going to `text`.
  Flow capture(const ast::Body& body, const std::shared_ptr<Scope>& scope, std::string& text);
  Value apply_filters(const std::vector<ast::FilterCall>& filters, Value v, const std::shared_ptr<Scope>& scope);
  void assign(const ast::Target& target, Value v, Scope& scope, int line);
  void emit(const std::string& text);

  Value eval(const ast::Expr& e, const std::shared_ptr<Scope>& scope);
  Value invoke(const Value& callee, CallArgs args);
  CallArgs eval_args(const ast::Args& args, const std::shared_ptr<Scope>& scope);
  Value eval_binary(const ast::Binary& b, const std::shared_ptr<Scope>& scope);
  Value eval_compare(const ast::Compare& c, const std::shared_ptr<Scope>& scope);
  Value lookup(const std::string& name, const Scope& scope) const;

  const ast::Template& tpl_;
  Value context_;
  TemplateLimits limits_;
  std::chrono::system_clock::time_point now_;
  std::string* out_ = nullptr;  // where output goes (the result, or a macro's or block's capture)
  uint64_t steps_ = 0;
  int call_depth_ = 0;
  std::vector<std::shared_ptr<Namespace>> namespaces_;
};

}  // namespace kvb::jinja
