#pragma once
// The schemas of docs/schemas/ for tests, read from the source tree; the checker itself is the
// library's (reports/json_schema.hpp), the one report and compare use.
#include <string>

#include <nlohmann/json.hpp>

#include "reports/json_schema.hpp"

namespace kvb::test {

using kvb::schema_violation;

// docs/schemas/<name> of the source tree.
nlohmann::json load_schema(const std::string& name);

}  // namespace kvb::test
