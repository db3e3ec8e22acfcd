#pragma once
// `kvbench report`: a result document rendered for people (markdown, the table `run` prints) or
// for spreadsheets (CSV, one row per method and budget).
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace kvb {

// Reads a result file and checks it is one this kvbench can render (InputError naming the file).
nlohmann::json read_result_file(const std::string& path);

// The result rendered as "md", "csv" or "html" (the HTML's per-step charts read `steps_csv_path`
// when it exists).
std::string render_report(const nlohmann::json& result, const std::string& format,
                          const std::filesystem::path& steps_csv_path);

// One header line and one row per run: identity, throughput, latency, memory, compression,
// fidelity and accuracy columns (empty where a run has no such measurement).
std::string render_csv(const nlohmann::json& result);

}  // namespace kvb
