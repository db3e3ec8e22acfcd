#include "formats/jinja_parser.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>
#include <set>

#include "formats/jinja_filters.hpp"
#include "formats/jinja_lexer.hpp"

namespace kvb::jinja {

namespace {

using namespace ast;

std::string describe(const Token& t) {
  switch (t.kind) {
    case TokenKind::Text: return "template text";
    case TokenKind::OutputBegin: return "'{{'";
    case TokenKind::OutputEnd: return "'}}'";
    case TokenKind::BlockBegin: return "'{%'";
    case TokenKind::BlockEnd: return "'%}'";
    case TokenKind::Name: return "'" + t.text + "'";
    case TokenKind::String: return "a string";
    case TokenKind::Integer:
    case TokenKind::Float: return "a number";
    case TokenKind::Operator: return "'" + t.text + "'";
    case TokenKind::End: return "the end of the template";
  }
  return "a token";
}

// Statements Jinja2 has that this renderer does not.
const std::set<std::string, std::less<>> kUnsupportedStatements = {
    "extends", "block", "include", "import", "from", "with", "autoescape", "do", "trans", "print"};

// Names that close a body.
const std::set<std::string, std::less<>> kBodyEnds = {
    "endfor", "endif", "elif", "else", "endset", "endmacro", "endcall", "endfilter", "endgeneration", "endraw"};

class Parser {
 public:
  Parser(std::vector<Token> tokens, int max_nesting) : t_(std::move(tokens)), max_nesting_(max_nesting) {}

  Template parse() {
    Template tpl;
    tpl.body = body({}, "");
    return tpl;
  }

 private:
  // --- tokens
  const Token& cur() const { return t_[at_]; }
  const Token& ahead(size_t k = 1) const { return t_[std::min(at_ + k, t_.size() - 1)]; }
  Token take() { return t_[at_ < t_.size() - 1 ? at_++ : at_]; }
  bool is_op(std::string_view op) const { return cur().kind == TokenKind::Operator && cur().text == op; }
  bool is_name(std::string_view n) const { return cur().kind == TokenKind::Name && cur().text == n; }
  bool accept_op(std::string_view op) {
    if (!is_op(op)) return false;
    take();
    return true;
  }
  bool accept_name(std::string_view n) {
    if (!is_name(n)) return false;
    take();
    return true;
  }
  [[noreturn]] void fail(const std::string& message) const { throw TemplateError(message, cur().line); }
  [[noreturn]] void unexpected(std::string_view wanted) const {
    fail(fmt::format("expected {}, got {}", wanted, describe(cur())));
  }
  void expect_op(std::string_view op) {
    if (!accept_op(op)) unexpected("'" + std::string(op) + "'");
  }
  std::string expect_name() {
    if (cur().kind != TokenKind::Name) unexpected("a name");
    return take().text;
  }
  void expect_block_end() {
    if (cur().kind != TokenKind::BlockEnd) unexpected("'%}'");
    take();
  }

  struct Nest {
    Parser& p;
    explicit Nest(Parser& parser) : p(parser) {
      if (++p.depth_ > p.max_nesting_)
        p.fail(fmt::format("the template nests blocks and expressions more than {} deep", p.max_nesting_));
    }
    ~Nest() { --p.depth_; }
  };

  // --- statements

  // Statements up to one of `ends` (left unconsumed; `ended` names it) or the end of the template.
  Body body(std::initializer_list<std::string_view> ends, const std::string& opener, std::string* ended = nullptr) {
    Body out;
    while (true) {
      const Token& t = cur();
      if (t.kind == TokenKind::Text) {
        out.push_back(std::make_unique<Text>(t.line, t.text));
        take();
      } else if (t.kind == TokenKind::OutputBegin) {
        const int line = take().line;
        ExprPtr e = tuple(true, {});
        if (cur().kind != TokenKind::OutputEnd) unexpected("'}}'");
        take();
        out.push_back(std::make_unique<Output>(line, std::move(e)));
      } else if (t.kind == TokenKind::BlockBegin) {
        const Token& name = ahead();
        if (name.kind != TokenKind::Name) {
          take();
          unexpected("a statement name");
        }
        if (std::find(ends.begin(), ends.end(), name.text) != ends.end()) {
          if (ended) *ended = name.text;
          return out;
        }
        if (kBodyEnds.count(name.text)) {
          take();
          fail(opener.empty() ? fmt::format("unexpected '{{% {} %}}'", name.text)
                              : fmt::format("unexpected '{{% {} %}}' inside {}", name.text, opener));
        }
        take();
        out.push_back(statement());
      } else if (t.kind == TokenKind::End) {
        const auto closer = std::find_if(ends.begin(), ends.end(), [](std::string_view e) { return e.rfind("end", 0) == 0; });
        if (closer != ends.end())
          fail(fmt::format("the template ends inside {}: '{{% {} %}}' is missing", opener, *closer));
        return out;
      } else {
        unexpected("text or a tag");
      }
    }
  }

  // Consumes `{% name %}` that body() stopped at.
  void end_tag() {
    take();  // {%
    take();  // the name
    expect_block_end();
  }

  StmtPtr statement() {
    Nest nest(*this);
    const Token name = take();
    const int line = name.line;
    const std::string& n = name.text;
    if (n == "if") return if_statement(line);
    if (n == "for") return for_statement(line);
    if (n == "set") return set_statement(line);
    if (n == "macro") return macro_statement(line);
    if (n == "call") return call_statement(line);
    if (n == "filter") return filter_statement(line);
    if (n == "generation") {  // Hugging Face's tag: a call block whose caller renders the body
      expect_block_end();
      auto s = std::make_unique<Scoped>(line);
      const int loops = loop_depth_;
      loop_depth_ = 0;
      s->body = body({"endgeneration"}, fmt::format("the 'generation' on line {}", line));
      loop_depth_ = loops;
      end_tag();
      return s;
    }
    if (n == "break" || n == "continue") {
      if (loop_depth_ == 0) throw TemplateError(fmt::format("'{}' outside of a for loop", n), line);
      expect_block_end();
      return std::make_unique<Stmt>(n == "break" ? StmtKind::Break : StmtKind::Continue, line);
    }
    if (kUnsupportedStatements.count(n))
      throw TemplateError(fmt::format("statement '{}' is not supported", n), line);
    throw TemplateError(fmt::format("unknown statement '{}'", n), line);
  }

  StmtPtr if_statement(int line) {
    auto s = std::make_unique<If>(line);
    const std::string opener = fmt::format("the 'if' on line {}", line);
    std::string ended = "elif";
    while (ended == "elif") {
      ExprPtr test = tuple(false, {});
      expect_block_end();
      Body b = body({"elif", "else", "endif"}, opener, &ended);
      s->branches.emplace_back(std::move(test), std::move(b));
      take();  // {%
      take();  // elif, else or endif
    }
    if (ended == "else") {
      expect_block_end();
      s->otherwise = body({"endif"}, opener);
      end_tag();
    } else {
      expect_block_end();
    }
    return s;
  }

  // A name, names separated by commas (optionally in parentheses) or, with `namespaces`, ns.attr.
  Target target(bool namespaces) {
    Target t;
    if (namespaces && cur().kind == TokenKind::Name && ahead().kind == TokenKind::Operator && ahead().text == ".") {
      t.names.push_back(take().text);
      take();
      t.attribute = expect_name();
      return t;
    }
    const bool parens = accept_op("(");
    while (true) {
      t.names.push_back(expect_name());
      if (!accept_op(",")) break;
      t.unpack = true;
      if (cur().kind != TokenKind::Name) break;  // a trailing comma
    }
    if (parens) {
      expect_op(")");
      t.unpack = true;
    }
    for (const std::string& name : t.names)
      if (name == "true" || name == "false" || name == "none" || name == "True" || name == "False" || name == "None")
        fail(fmt::format("cannot assign to '{}'", name));
    return t;
  }

  StmtPtr for_statement(int line) {
    auto s = std::make_unique<For>(line);
    s->target = target(false);
    if (std::find(s->target.names.begin(), s->target.names.end(), "loop") != s->target.names.end())
      throw TemplateError("Can't assign to special loop variable in for-loop target", line);
    if (!accept_name("in")) unexpected("'in'");
    s->iterable = tuple(false, {"recursive"});
    if (accept_name("if")) s->filter = expression(true);
    if (is_name("recursive")) fail("recursive for loops are not supported");
    expect_block_end();
    const std::string opener = fmt::format("the 'for' on line {}", line);
    std::string ended;
    ++loop_depth_;
    s->body = body({"endfor", "else"}, opener, &ended);
    --loop_depth_;
    if (ended == "else") {
      end_tag();
      s->otherwise = body({"endfor"}, opener);
    }
    end_tag();
    return s;
  }

  std::vector<FilterCall> filter_chain(bool first_needs_pipe) {
    std::vector<FilterCall> chain;
    while (first_needs_pipe ? accept_op("|") : true) {
      first_needs_pipe = true;
      FilterCall f;
      f.line = cur().line;
      f.name = filter_name();
      if (accept_op("(")) f.args = call_args();
      chain.push_back(std::move(f));
    }
    return chain;
  }

  StmtPtr set_statement(int line) {
    Target t = target(true);
    if (loop_depth_ > 0 && t.attribute.empty() && std::find(t.names.begin(), t.names.end(), "loop") != t.names.end())
      throw TemplateError("Can't assign to special loop variable in for-loop target", line);
    if (accept_op("=")) {
      ExprPtr value = tuple(true, {});
      expect_block_end();
      return std::make_unique<Set>(line, std::move(t), std::move(value));
    }
    auto s = std::make_unique<SetBlock>(line);
    s->target = std::move(t);
    s->filters = filter_chain(true);
    expect_block_end();
    s->body = body({"endset"}, fmt::format("the 'set' on line {}", line));
    end_tag();
    return s;
  }

  std::vector<Param> signature() {
    std::vector<Param> params;
    expect_op("(");
    while (!is_op(")")) {
      if (!params.empty()) expect_op(",");
      Param p;
      p.name = expect_name();
      if (accept_op("=")) p.default_value = expression(true);
      else if (!params.empty() && params.back().default_value) fail("non-default argument follows default argument");
      params.push_back(std::move(p));
    }
    take();
    return params;
  }

  // A macro's body, noting whether it refers to varargs, kwargs and caller.
  void macro_body(MacroDef& def, const std::string& end, const std::string& opener) {
    std::set<std::string> names;
    referenced_.push_back(&names);
    const int loops = loop_depth_;
    loop_depth_ = 0;
    def.body = body({end}, opener);
    loop_depth_ = loops;
    referenced_.pop_back();
    def.uses_varargs = names.count("varargs") > 0;
    def.uses_kwargs = names.count("kwargs") > 0;
    def.uses_caller = names.count("caller") > 0;
    end_tag();
  }

  StmtPtr macro_statement(int line) {
    auto def = std::make_shared<MacroDef>();
    def->name = expect_name();
    def->params = signature();
    expect_block_end();
    macro_body(*def, "endmacro", fmt::format("the macro '{}' on line {}", def->name, line));
    auto s = std::make_unique<Macro>(line);
    s->def = std::move(def);
    return s;
  }

  StmtPtr call_statement(int line) {
    auto def = std::make_shared<MacroDef>();
    def->name = "caller";
    if (is_op("(")) def->params = signature();
    ExprPtr call = expression(true);
    if (call->kind != ExprKind::Call) throw TemplateError("'call' needs a macro call", line);
    expect_block_end();
    macro_body(*def, "endcall", fmt::format("the 'call' on line {}", line));
    auto s = std::make_unique<CallBlock>(line);
    s->call.reset(static_cast<Call*>(call.release()));
    s->caller = std::move(def);
    return s;
  }

  StmtPtr filter_statement(int line) {
    auto s = std::make_unique<FilterBlock>(line);
    s->filters = filter_chain(false);
    expect_block_end();
    s->body = body({"endfilter"}, fmt::format("the 'filter' on line {}", line));
    end_tag();
    return s;
  }

  // --- expressions

  bool tuple_ends(std::initializer_list<std::string_view> extra_ends) const {
    const Token& t = cur();
    if (t.kind == TokenKind::OutputEnd || t.kind == TokenKind::BlockEnd) return true;
    if (t.kind == TokenKind::Operator && t.text == ")") return true;
    return t.kind == TokenKind::Name && std::find(extra_ends.begin(), extra_ends.end(), t.text) != extra_ends.end();
  }

  // Jinja2's parse_tuple: one expression, or several separated by commas (a tuple).
  ExprPtr tuple(bool with_conditional, std::initializer_list<std::string_view> extra_ends, bool in_parens = false) {
    const int line = cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (tuple_ends(extra_ends)) break;
      items.push_back(expression(with_conditional));
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!in_parens) unexpected("an expression");
    }
    auto list = std::make_unique<List>(line, true);
    list->items = std::move(items);
    return list;
  }

  ExprPtr expression(bool with_conditional) {
    return with_conditional ? conditional() : or_expr();
  }

  ExprPtr conditional() {
    ExprPtr e = or_expr();
    while (is_name("if")) {
      const int line = take().line;
      auto c = std::make_unique<Conditional>(line, std::move(e), or_expr());
      if (accept_name("else")) c->otherwise = conditional();
      e = std::move(c);
    }
    return e;
  }

  ExprPtr or_expr() {
    ExprPtr e = and_expr();
    while (is_name("or")) {
      const int line = take().line;
      e = std::make_unique<Binary>(ExprKind::Or, line, "or", std::move(e), and_expr());
    }
    return e;
  }

  ExprPtr and_expr() {
    ExprPtr e = not_expr();
    while (is_name("and")) {
      const int line = take().line;
      e = std::make_unique<Binary>(ExprKind::And, line, "and", std::move(e), not_expr());
    }
    return e;
  }

  ExprPtr not_expr() {
    if (is_name("not")) {
      Nest nest(*this);
      const int line = take().line;
      return std::make_unique<Unary>(ExprKind::Not, line, not_expr());
    }
    return comparison();
  }

  ExprPtr comparison() {
    const int line = cur().line;
    ExprPtr first = math1();
    std::unique_ptr<Compare> c;
    while (true) {
      std::string op;
      if (cur().kind == TokenKind::Operator &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
           cur().text == ">" || cur().text == ">=")) {
        op = take().text;
      } else if (accept_name("in")) {
        op = "in";
      } else if (is_name("not") && ahead().kind == TokenKind::Name && ahead().text == "in") {
        take();
        take();
        op = "not in";
      } else {
        break;
      }
      if (!c) c = std::make_unique<Compare>(line, std::move(first));
      c->rest.emplace_back(op, math1());
    }
    if (c) return c;
    return first;
  }

  ExprPtr binary_chain(std::initializer_list<std::string_view> ops, ExprPtr (Parser::*next)()) {
    ExprPtr e = (this->*next)();
    while (cur().kind == TokenKind::Operator && std::find(ops.begin(), ops.end(), cur().text) != ops.end()) {
      const Token op = take();
      e = std::make_unique<Binary>(ExprKind::Binary, op.line, op.text, std::move(e), (this->*next)());
    }
    return e;
  }

  ExprPtr math1() { return binary_chain({"+", "-"}, &Parser::concat); }
  ExprPtr concat() { return binary_chain({"~"}, &Parser::math2); }
  ExprPtr math2() { return binary_chain({"*", "/", "//", "%"}, &Parser::power); }
  ExprPtr power() { return binary_chain({"**"}, &Parser::unary_with_filters); }
  ExprPtr unary_with_filters() { return unary(true); }

  ExprPtr unary(bool with_filters) {
    Nest nest(*this);
    const int line = cur().line;
    ExprPtr e;
    if (accept_op("-")) e = std::make_unique<Unary>(ExprKind::Negate, line, unary(false));
    else if (accept_op("+")) e = std::make_unique<Unary>(ExprKind::Plus, line, unary(false));
    else e = primary();
    e = postfix(std::move(e));
    if (with_filters) e = filters_and_tests(std::move(e));
    return e;
  }

  ExprPtr primary() {
    const Token t = cur();
    switch (t.kind) {
      case TokenKind::Name: {
        take();
        if (t.text == "true" || t.text == "True") return std::make_unique<Literal>(t.line, Value::boolean(true));
        if (t.text == "false" || t.text == "False") return std::make_unique<Literal>(t.line, Value::boolean(false));
        if (t.text == "none" || t.text == "None") return std::make_unique<Literal>(t.line, Value::none());
        for (auto* names : referenced_) names->insert(t.text);
        return std::make_unique<Name>(t.line, t.text);
      }
      case TokenKind::String: {
        std::string text;
        while (cur().kind == TokenKind::String) text += take().text;  // adjacent literals join
        return std::make_unique<Literal>(t.line, Value::string(std::move(text)));
      }
      case TokenKind::Integer: take(); return std::make_unique<Literal>(t.line, Value::integer(t.integer));
      case TokenKind::Float: take(); return std::make_unique<Literal>(t.line, Value::number(t.number));
      case TokenKind::Operator:
        if (t.text == "(") {
          take();
          ExprPtr e = tuple(true, {}, true);
          expect_op(")");
          return e;
        }
        if (t.text == "[") return list_literal();
        if (t.text == "{") return dict_literal();
        break;
      default: break;
    }
    unexpected("an expression");
  }

  ExprPtr list_literal() {
    auto list = std::make_unique<List>(take().line, false);
    while (!is_op("]")) {
      if (!list->items.empty()) expect_op(",");
      if (is_op("]")) break;
      list->items.push_back(expression(true));
    }
    take();
    return list;
  }

  ExprPtr dict_literal() {
    auto dict = std::make_unique<ast::Dict>(take().line);
    while (!is_op("}")) {
      if (!dict->entries.empty()) expect_op(",");
      if (is_op("}")) break;
      ExprPtr key = expression(true);
      expect_op(":");
      dict->entries.emplace_back(std::move(key), expression(true));
    }
    take();
    return dict;
  }

  ExprPtr postfix(ExprPtr e) {
    while (true) {
      if (is_op(".") || is_op("[")) e = subscript(std::move(e));
      else if (is_op("(")) e = call(std::move(e));
      else return e;
    }
  }

  ExprPtr subscript(ExprPtr object) {
    const Token t = take();
    if (t.text == ".") {
      const Token attr = take();
      if (attr.kind == TokenKind::Name) return std::make_unique<Attr>(t.line, std::move(object), attr.text);
      if (attr.kind != TokenKind::Integer) throw TemplateError("expected a name or a number after '.'", attr.line);
      return std::make_unique<Item>(t.line, std::move(object), std::make_unique<Literal>(attr.line, Value::integer(attr.integer)));
    }
    std::vector<ExprPtr> keys;
    while (!is_op("]")) {
      if (!keys.empty()) expect_op(",");
      keys.push_back(subscribed(t.line));
    }
    take();
    if (keys.size() == 1 && keys[0]->kind == ExprKind::Slice) {
      static_cast<Slice&>(*keys[0]).object = std::move(object);
      return std::move(keys[0]);
    }
    ExprPtr key;
    if (keys.size() == 1) {
      key = std::move(keys[0]);
    } else {
      auto tuple_key = std::make_unique<List>(t.line, true);
      tuple_key->items = std::move(keys);
      key = std::move(tuple_key);
    }
    if (key->kind == ExprKind::Slice || (key->kind == ExprKind::List && std::any_of(
        static_cast<List&>(*key).items.begin(), static_cast<List&>(*key).items.end(),
        [](const ExprPtr& k) { return k->kind == ExprKind::Slice; })))
      throw TemplateError("slices inside a tuple subscript are not supported", t.line);
    return std::make_unique<Item>(t.line, std::move(object), std::move(key));
  }

  // One subscript: an expression, or a slice (its object filled in by subscript()).
  ExprPtr subscribed(int line) {
    ExprPtr start;
    if (!is_op(":")) {
      start = expression(true);
      if (!is_op(":")) return start;
    }
    take();
    auto s = std::make_unique<Slice>(line, nullptr);
    s->start = std::move(start);
    if (!is_op(":") && !is_op("]") && !is_op(",")) s->stop = expression(true);
    if (accept_op(":") && !is_op("]") && !is_op(",")) s->step = expression(true);
    return s;
  }

  Args call_args() {
    Args args;
    bool need_comma = false;
    while (!is_op(")")) {
      if (need_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*") || is_op("**")) fail("*args and **kwargs in calls are not supported");
      if (cur().kind == TokenKind::Name && ahead().kind == TokenKind::Operator && ahead().text == "=") {
        std::string key = take().text;
        take();
        args.keyword.emplace_back(std::move(key), expression(true));
      } else {
        if (!args.keyword.empty()) fail("a positional argument follows keyword arguments");
        args.positional.push_back(expression(true));
      }
      need_comma = true;
    }
    take();
    return args;
  }

  ExprPtr call(ExprPtr callee) {
    const int line = take().line;
    auto c = std::make_unique<Call>(line, std::move(callee));
    c->args = call_args();
    return c;
  }

  std::string dotted_name() {
    std::string name = expect_name();
    while (accept_op(".")) name += "." + expect_name();
    return name;
  }

  std::string filter_name() {
    const int line = cur().line;
    std::string name = dotted_name();
    if (!is_filter(name)) throw TemplateError(fmt::format("filter '{}' is not supported", name), line);
    return name;
  }

  ExprPtr filters_and_tests(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        const int line = take().line;
        auto f = std::make_unique<Filter>(line, std::move(e), filter_name());
        if (accept_op("(")) f->args = call_args();
        e = std::move(f);
      } else if (is_name("is")) {
        e = test(std::move(e));
      } else if (is_op("(")) {
        e = call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr test(ExprPtr operand) {
    const int line = take().line;
    const bool negated = accept_name("not");
    const int name_line = cur().line;
    std::string name = dotted_name();
    if (!is_test(name)) throw TemplateError(fmt::format("test '{}' is not supported", name), name_line);
    auto t = std::make_unique<Test>(line, std::move(operand), std::move(name));
    const Token& c = cur();
    const bool argument_follows =
        c.kind == TokenKind::String || c.kind == TokenKind::Integer || c.kind == TokenKind::Float ||
        (c.kind == TokenKind::Name && c.text != "else" && c.text != "or" && c.text != "and") ||
        (c.kind == TokenKind::Operator && (c.text == "[" || c.text == "{"));
    if (accept_op("(")) {
      t->args = call_args();
    } else if (argument_follows) {
      if (is_name("is")) fail("tests cannot be chained with 'is'");
      t->args.positional.push_back(postfix(primary()));
    }
    if (negated) return std::make_unique<Unary>(ExprKind::Not, line, std::move(t));
    return t;
  }

  std::vector<Token> t_;
  size_t at_ = 0;
  int max_nesting_;
  int depth_ = 0;
  int loop_depth_ = 0;
  std::vector<std::set<std::string>*> referenced_;  // names used in the macro bodies being parsed
};

}  // namespace

ast::Template parse_template(std::string_view source, int max_nesting) {
  return Parser(tokenize(source), max_nesting).parse();
}

}  // namespace kvb::jinja
