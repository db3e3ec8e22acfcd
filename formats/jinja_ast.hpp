#pragma once
// The syntax tree of a parsed chat template (jinja_parser.cpp builds it, jinja_interpreter.cpp
// walks it). Nodes carry their source line for error messages. Nodes are tagged with a kind and
// downcast by the interpreter's switch; nothing here has behaviour.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "formats/jinja_value.hpp"

namespace kvb::jinja::ast {

enum class ExprKind {
  Literal, Name, List, Dict, Attr, Item, Slice, Call, Filter, Test,
  Not, Negate, Plus, And, Or, Binary, Compare, Conditional,
};

struct Expr {
  Expr(ExprKind k, int l) : kind(k), line(l) {}
  virtual ~Expr() = default;
  ExprKind kind;
  int line;
};
using ExprPtr = std::unique_ptr<Expr>;

struct Args {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
};

struct Literal : Expr {
  Literal(int l, Value v) : Expr(ExprKind::Literal, l), value(std::move(v)) {}
  Value value;
};

struct Name : Expr {
  Name(int l, std::string n) : Expr(ExprKind::Name, l), name(std::move(n)) {}
  std::string name;
};

struct List : Expr {  // [a, b] and (a, b)
  List(int l, bool t) : Expr(ExprKind::List, l), tuple(t) {}
  bool tuple;
  std::vector<ExprPtr> items;
};

struct Dict : Expr {
  explicit Dict(int l) : Expr(ExprKind::Dict, l) {}
  std::vector<std::pair<ExprPtr, ExprPtr>> entries;
};

struct Attr : Expr {  // x.name
  Attr(int l, ExprPtr o, std::string n) : Expr(ExprKind::Attr, l), object(std::move(o)), name(std::move(n)) {}
  ExprPtr object;
  std::string name;
};

struct Item : Expr {  // x[key]
  Item(int l, ExprPtr o, ExprPtr k) : Expr(ExprKind::Item, l), object(std::move(o)), key(std::move(k)) {}
  ExprPtr object, key;
};

struct Slice : Expr {  // x[start:stop:step], absent parts null
  Slice(int l, ExprPtr o) : Expr(ExprKind::Slice, l), object(std::move(o)) {}
  ExprPtr object, start, stop, step;
};

struct Call : Expr {
  Call(int l, ExprPtr c) : Expr(ExprKind::Call, l), callee(std::move(c)) {}
  ExprPtr callee;
  Args args;
};

struct Filter : Expr {  // operand | name(args)
  Filter(int l, ExprPtr o, std::string n) : Expr(ExprKind::Filter, l), operand(std::move(o)), name(std::move(n)) {}
  ExprPtr operand;
  std::string name;
  Args args;
};

struct Test : Expr {  // operand is name(args); `is not` wraps it in Not
  Test(int l, ExprPtr o, std::string n) : Expr(ExprKind::Test, l), operand(std::move(o)), name(std::move(n)) {}
  ExprPtr operand;
  std::string name;
  Args args;
};

struct Unary : Expr {  // not x, -x, +x
  Unary(ExprKind k, int l, ExprPtr o) : Expr(k, l), operand(std::move(o)) {}
  ExprPtr operand;
};

struct Binary : Expr {  // and, or, and the arithmetic operators + - * / // % ** ~
  Binary(ExprKind k, int l, std::string o, ExprPtr a, ExprPtr b)
      : Expr(k, l), op(std::move(o)), lhs(std::move(a)), rhs(std::move(b)) {}
  std::string op;
  ExprPtr lhs, rhs;
};

struct Compare : Expr {  // a == b < c ...: Python's chained comparison; ops include "in", "not in"
  Compare(int l, ExprPtr f) : Expr(ExprKind::Compare, l), first(std::move(f)) {}
  ExprPtr first;
  std::vector<std::pair<std::string, ExprPtr>> rest;
};

struct Conditional : Expr {  // then if test else otherwise (otherwise may be null)
  Conditional(int l, ExprPtr t, ExprPtr c) : Expr(ExprKind::Conditional, l), then(std::move(t)), test(std::move(c)) {}
  ExprPtr then, test, otherwise;
};

enum class StmtKind { Text, Output, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, Scoped, Break, Continue };

struct Stmt {
  Stmt(StmtKind k, int l) : kind(k), line(l) {}
  virtual ~Stmt() = default;
  StmtKind kind;
  int line;
};
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

// What a set or for assigns: a name, a tuple of names, or a namespace attribute (ns.attr).
struct Target {
  std::vector<std::string> names;
  bool unpack = false;
  std::string attribute;  // non-empty: names[0].attribute
};

struct FilterCall {
  std::string name;
  Args args;
  int line = 0;
};

struct Param {
  std::string name;
  ExprPtr default_value;  // null: required
};

// A macro, or the body of a {% call %} block (the `caller` it passes).
struct MacroDef {
  std::string name;
  std::vector<Param> params;
  Body body;
  bool uses_varargs = false, uses_kwargs = false, uses_caller = false;
};

struct Text : Stmt {
  Text(int l, std::string t) : Stmt(StmtKind::Text, l), text(std::move(t)) {}
  std::string text;
};

struct Output : Stmt {
  Output(int l, ExprPtr e) : Stmt(StmtKind::Output, l), expr(std::move(e)) {}
  ExprPtr expr;
};

struct If : Stmt {
  explicit If(int l) : Stmt(StmtKind::If, l) {}
  std::vector<std::pair<ExprPtr, Body>> branches;  // if and elifs
  Body otherwise;
};

struct For : Stmt {
  explicit For(int l) : Stmt(StmtKind::For, l) {}
  Target target;
  ExprPtr iterable, filter;  // filter: `for x in xs if cond`, may be null
  Body body, otherwise;
};

struct Set : Stmt {
  Set(int l, Target t, ExprPtr v) : Stmt(StmtKind::Set, l), target(std::move(t)), value(std::move(v)) {}
  Target target;
  ExprPtr value;
};

struct SetBlock : Stmt {  // {% set x | filters %}body{% endset %}
  explicit SetBlock(int l) : Stmt(StmtKind::SetBlock, l) {}
  Target target;
  std::vector<FilterCall> filters;
  Body body;
};

struct Macro : Stmt {
  explicit Macro(int l) : Stmt(StmtKind::Macro, l) {}
  std::shared_ptr<const MacroDef> def;
};

struct CallBlock : Stmt {  // {% call(params) macro(args) %}body{% endcall %}
  explicit CallBlock(int l) : Stmt(StmtKind::CallBlock, l) {}
  std::unique_ptr<Call> call;
  std::shared_ptr<const MacroDef> caller;
};

struct FilterBlock : Stmt {  // {% filter f|g %}body{% endfilter %}
  explicit FilterBlock(int l) : Stmt(StmtKind::FilterBlock, l) {}
  std::vector<FilterCall> filters;
  Body body;
};

struct Scoped : Stmt {  // {% generation %}body{% endgeneration %}: the body in its own scope
  explicit Scoped(int l) : Stmt(StmtKind::Scoped, l) {}
  Body body;
};

struct Template {
  Body body;
};

}  // namespace kvb::jinja::ast
