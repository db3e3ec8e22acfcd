#pragma once
// The files a result leaves in its output folder, written the same way by `run`, `merge` and the
// `--device cuda:all` parent: result.json first (what every reader needs), then steps.csv,
// trace.json when the run kept a trace (--trace), and result.<format> for each --format (md, csv,
// html; the HTML's charts read the steps.csv just written). Each file is written atomically
// (util/atomic_file.hpp): RuntimeFailure naming the file when one cannot be, with the files
// before it in place. Returns the path of result.json.
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvb {

std::filesystem::path write_result_outputs(const std::filesystem::path& dir, const nlohmann::json& document,
                                           const std::string& steps_csv, const std::vector<std::string>& formats,
                                           const nlohmann::json& trace = nullptr);

}  // namespace kvb
