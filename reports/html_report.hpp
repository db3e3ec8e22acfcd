#pragma once
// The HTML report: one self-contained page (inline CSS and SVG, no scripts, nothing fetched) with
// the summary table and the charts -- KV bytes over decode steps per method, KL and top-1 agreement
// over steps (replay), tokens/s and KV bytes against budget, and the fidelity-or-accuracy against
// throughput frontier. Per-step charts need the run's steps.csv.
#include <string>

#include <nlohmann/json.hpp>

namespace kvb {

// `steps_csv` is the text of the steps.csv written beside the result (empty: per-step charts are
// replaced by a note saying so).
std::string render_html(const nlohmann::json& result, const std::string& steps_csv);

}  // namespace kvb
