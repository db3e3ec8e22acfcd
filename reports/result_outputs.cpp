#include "reports/result_outputs.hpp"

#include "reports/json_file.hpp"
#include "reports/report.hpp"

namespace kvb {

namespace fs = std::filesystem;

fs::path write_result_outputs(const fs::path& dir, const nlohmann::json& document, const std::string& steps_csv,
                              const std::vector<std::string>& formats, const nlohmann::json& trace) {
  const fs::path result_path = dir / "result.json";
  write_json_atomic(result_path, document);
  write_file_atomic(dir / "steps.csv", steps_csv);
  if (!trace.is_null()) write_json_atomic(dir / "trace.json", trace);
  for (const std::string& format : formats)
    write_file_atomic(dir / ("result." + format), render_report(document, format, dir / "steps.csv"));
  return result_path;
}

}  // namespace kvb
