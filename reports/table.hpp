#pragma once
// The human summary printed by `kvbench run`, rendered from the result document (markdown table,
// as llama-bench prints).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvb {

// A right-aligned markdown table.
std::string markdown_table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows);

std::string render_summary_table(const nlohmann::json& result);

}  // namespace kvb
