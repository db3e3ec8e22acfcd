// kvbench report RESULT.json --format md|csv [--out FILE]: renders a result file.
#include <cstdio>
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
  std::string text;
  if (f.format == "html")
    fail_input("--format html: not implemented yet (planned in issue 5); use md or csv");
  if (f.format != "md" && f.format != "csv") fail_input("--format {}: expected md or csv", f.format);
  const nlohmann::json doc = read_result_file(f.result);
  text = f.format == "md" ? render_summary_table(doc) : render_csv(doc);
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
  CLI::App* cmd = app.add_subcommand("report", "render a result file as a markdown table or CSV");
  cmd->add_option("result", f->result, "result.json written by kvbench run")->required();
  cmd->add_option("--format", f->format, "md | csv")->capture_default_str();
  cmd->add_option("--out,-o", f->out, "write to this file (atomically) instead of standard output");
  return [f] { return execute(*f); };
}

}  // namespace kvb::cli
