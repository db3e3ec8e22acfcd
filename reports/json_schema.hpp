#pragma once
// A JSON Schema (draft 2020-12) checker for the subset docs/schemas/*.json use: type (a name or a
// list), properties, required, items, enum, minimum, maximum, minItems, maxItems, maxProperties,
// anyOf (the last alternative's violation is reported when none holds), additionalProperties
// (bool or schema) and $ref to "#/$defs/<name>". A schema using any other keyword is refused
// (std::invalid_argument), so no schema can rely on a rule that is silently not checked.
//
// Used on untrusted documents (a result.json from another machine, before report or compare reads
// it): the document's nesting is already bounded by parse_json (util/json_fields.hpp), so the
// recursion here is too, and messages show values through describe() (bounded, quoted).
#include <string>

#include <nlohmann/json.hpp>

namespace kvb {

// Empty when `doc` satisfies `schema`; otherwise "<JSON pointer>: <what is wrong>" for the first
// violation found (the root's pointer is printed as "(root)").
std::string schema_violation(const nlohmann::json& doc, const nlohmann::json& schema);

// docs/schemas/result.schema.json, compiled into the binary (parsed once).
const nlohmann::json& result_schema();

}  // namespace kvb
