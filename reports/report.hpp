#pragma once
// `kvbench report`: a result document rendered for people (markdown, the table `run` prints) or
// for spreadsheets (CSV, one row per method and budget).
#include <string>

#include <nlohmann/json.hpp>

namespace kvb {

// Reads a result file and checks it is one this kvbench can render (InputError naming the file).
nlohmann::json read_result_file(const std::string& path);

// One header line and one row per run: identity, throughput, latency, memory, compression,
// fidelity and accuracy columns (empty where a run has no such measurement).
std::string render_csv(const nlohmann::json& result);

}  // namespace kvb
