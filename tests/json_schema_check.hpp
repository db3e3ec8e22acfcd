#pragma once
// A JSON Schema (draft 2020-12) checker for the subset docs/schemas/*.json use: type (a name or a
// list), properties, required, items, enum, minimum, additionalProperties (bool or schema) and $ref
// to "#/$defs/<name>". A schema using any other keyword is refused (std::invalid_argument), so no
// schema can rely on a rule that is silently not checked.
#include <string>

#include <nlohmann/json.hpp>

namespace kvb::test {

// Empty when `doc` satisfies `schema`; otherwise "<JSON pointer>: <what is wrong>" for the first
// violation found (the root's pointer is printed as "(root)").
std::string schema_violation(const nlohmann::json& doc, const nlohmann::json& schema);

// docs/schemas/<name> of the source tree.
nlohmann::json load_schema(const std::string& name);

}  // namespace kvb::test
