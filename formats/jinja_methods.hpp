#pragma once
// What a template reaches through values: Jinja2's sandboxed attribute and item lookup
// (x.name, x[key], x[a:b:c]), the Python methods called on values (str, dict, list and tuple
// methods, loop.cycle) and the global functions (range, namespace, dict, raise_exception,
// strftime_now).
//
// As in ImmutableSandboxedEnvironment: a missing attribute, key or index gives an Undefined (an
// error only once used), methods that modify a list or dict raise ("access to attribute 'append'
// of 'list' object is unsafe."), and range() refuses more than 100000 items.
// strftime_now formats the render's clock (Interpreter::now) in UTC with C's strftime.
// Errors: TemplateError for a real Python method that is not implemented ("str method 'zfill'
// is not supported"), bad arguments, or what Python raises.
#include <string>

#include "formats/jinja_value.hpp"

namespace kvb::jinja {

Value get_attribute(const Value& object, const std::string& name);
Value get_item(const Value& object, const Value& key);
// x[start:stop:step]; absent parts are None.
Value get_slice(const Value& object, const Value& start, const Value& stop, const Value& step);
// The global function `name`, or nullopt.
std::optional<Value> global_function(const std::string& name);

}  // namespace kvb::jinja
