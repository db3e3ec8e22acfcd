// kvbench compare BASE.json NEW.json: the regression gate. Exit 0 no regression, 1 a metric worse
// than its threshold, 2 bad input (missing file, schema mismatch, nothing comparable).
#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "reports/compare.hpp"
#include "reports/json_file.hpp"
#include "reports/report.hpp"

namespace kvb::cli {

namespace {

struct CompareFlags {
  std::string base, current;
  std::vector<std::string> thresholds, metrics;
  std::string junit, markdown;
};

int execute(const CompareFlags& f) {
  std::vector<MetricRule> rules = default_metric_rules();
  for (const std::string& t : f.thresholds) apply_threshold(rules, t);
  if (!f.metrics.empty()) keep_only_metrics(rules, f.metrics);
  const nlohmann::json base = read_result_file(f.base);
  const nlohmann::json current = read_result_file(f.current);
  const Comparison c = compare_results(base, current, rules, f.base, f.current);
  const std::string table = render_comparison_markdown(c);
  std::fputs(table.c_str(), stdout);
  if (!f.markdown.empty()) write_file_atomic(f.markdown, table);
  if (!f.junit.empty()) write_file_atomic(f.junit, render_comparison_junit(c));
  return c.regression() ? 1 : 0;
}

}  // namespace

Action add_compare_command(CLI::App& app) {
  auto f = std::make_shared<CompareFlags>();
  CLI::App* cmd = app.add_subcommand("compare", "compare two result files: exit 1 on a regression (CI gate)");
  cmd->add_option("base", f->base, "the baseline result.json")->required();
  cmd->add_option("new", f->current, "the result.json to judge")->required();
  cmd->add_option("--threshold", f->thresholds,
                  "NAME=VALUE, repeatable: tokens_per_s=-5% prefill_tokens_per_s=-5% step_p50_ms=+5% kv_peak_bytes=+1% "
                  "kl_mean=+0.005 top1_agreement=-0.01 retained_mass=-0.01 accuracy=-0.02 prefix_fraction=-0.02 (the defaults)");
  cmd->add_option("--metrics", f->metrics,
                  "comma list: judge only these metrics (e.g. accuracy,kl_mean for a gate across machines)")
      ->delimiter(',');
  cmd->add_option("--junit", f->junit, "also write JUnit XML here (one test case per run and metric)");
  cmd->add_option("--markdown", f->markdown, "also write the markdown summary here (for CI job pages)");
  return [f] { return execute(*f); };
}

}  // namespace kvb::cli
