// kvbench report RESULT.json --format md|csv [--out FILE]: renders a result file.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.hpp"
#include "reports/json_file.hpp"
#include "reports/report.hpp"
#include "reports/table.hpp"
#include "util/errors.hpp"

namespace kvb::cli {

namespace {

struct ReportFlags {
  std::string result;
  std::string format = "md";
  std::string out;
};

int execute(const ReportFlags& f) {
  if (f.format != "md" && f.format != "csv" && f.format != "html")
    fail_input("--format {}: expected md, csv or html", f.format);
  const nlohmann::json doc = read_result_file(f.result);
  const std::string text = render_report(doc, f.format, std::filesystem::path(f.result).parent_path() / "steps.csv");
  if (f.out.empty()) {
    std::fputs(text.c_str(), stdout);
  } else {
    write_file_atomic(f.out, text);
  }
  return 0;
}

}  // namespace

Action add_report_command(CLI::App& app) {
  auto f = std::make_shared<ReportFlags>();
  CLI::App* cmd = app.add_subcommand("report", "render a result file as a markdown table, CSV or an HTML page");
  cmd->add_option("result", f->result, "result.json written by kvbench run")->required();
  cmd->add_option("--format", f->format, "md | csv | html (one self-contained page with charts; reads steps.csv beside the result)")
      ->capture_default_str();
  cmd->add_option("--out,-o", f->out, "write to this file (atomically) instead of standard output");
  return [f] { return execute(*f); };
}

}  // namespace kvb::cli
