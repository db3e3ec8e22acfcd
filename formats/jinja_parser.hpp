#pragma once
// Parses a chat template's tokens (jinja_lexer.hpp) into a syntax tree (jinja_ast.hpp), with
// Jinja2's grammar and operator precedence.
//
// Accepts the statements if/elif/else, for (with tuple targets, `if` filters and else), set
// (to names, tuples and namespace attributes; the block form with filters), macro, call,
// filter, break/continue (the loopcontrols extension) and Hugging Face's generation tag; the
// expressions of Jinja2 (literals, lists, tuples, dicts, attribute and item access, slices,
// calls with keyword arguments, filters, tests, `not`/`and`/`or`, comparisons with `in`, the
// arithmetic operators, `~`, and `a if c else b`).
// Limits: statements and expressions nest at most `max_nesting` deep.
// Errors: TemplateError with the line for a syntax error, an unknown statement, filter or
// test ("filter 'xmlattr' is not supported"), break outside a loop, or nesting too deep.
#include <string_view>

#include "formats/jinja_ast.hpp"

namespace kvb::jinja {

ast::Template parse_template(std::string_view source, int max_nesting);

}  // namespace kvb::jinja
