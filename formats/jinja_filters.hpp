#pragma once
// The filters and tests a chat template may use, as Jinja2 3.1 defines them (with Hugging Face's
// `tojson`: json.dumps, insertion-order keys, no HTML escaping, ensure_ascii=False by default).
//
// Filters: abs, capitalize, count, d/default, dictsort, first, float, int, items, join, last,
// length, list, lower, map, reject, rejectattr, replace, reverse, round, safe, select, selectattr,
// sort, string, title, tojson, trim, upper.
// Tests: boolean, callable, defined, divisibleby, eq/equalto/==, even, false, float, ge/>=,
// gt/greaterthan/>, in, integer, iterable, le/<=, lower, lt/lessthan/<, mapping, ne/!=, none,
// number, odd, sameas (None, booleans, small ints and containers), sequence, string, true,
// undefined, upper.
// Case mapping (upper, lower, title, capitalize, the lower/upper tests, sorting without case) is
// ASCII-only: text with other letters is an error, not a different result. `items` of a
// non-mapping fails at once (Jinja2 fails when the result is iterated).
// Errors: TemplateError with Jinja2's or Python's wording.
#include <string_view>

#include "formats/jinja_value.hpp"

namespace kvb::jinja {

bool is_filter(std::string_view name);
bool is_test(std::string_view name);
Value apply_filter(Interpreter& interp, std::string_view name, const Value& subject, CallArgs args);
bool apply_test(Interpreter& interp, std::string_view name, const Value& subject, CallArgs args);

// Python's `needle in container`.
bool contains(const Value& container, const Value& needle);

}  // namespace kvb::jinja
