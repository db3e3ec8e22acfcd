#pragma once
// The human summary printed by `kvbench run`, rendered from the result document (markdown table,
// as llama-bench prints).
#include <string>

#include <nlohmann/json.hpp>

namespace kvb {

std::string render_summary_table(const nlohmann::json& result);

// "1.50 MiB" style sizes.
std::string human_bytes(double bytes);

}  // namespace kvb
