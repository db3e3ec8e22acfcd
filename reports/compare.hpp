#pragma once
// The regression gate (`kvbench compare BASE NEW`): runs of two result documents are matched by
// model, workload, method, budget, device and mode, and each metric gets a verdict against its
// threshold. A threshold is relative ("-5%") or absolute ("+0.005") and signed in the direction
// that hurts: a change past it is "worse", past its mirror "better", else "same" -- and "unclear"
// when both runs recorded repetitions (--repeat) and the change is within twice the standard
// error of the difference of their means.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvb {

struct MetricRule {
  std::string name;       // e.g. "tokens_per_s"
  std::string path;       // where it sits in a run's measurements, '/'-separated
  bool higher_is_better;
  double threshold;       // magnitude
  bool relative;          // threshold as a fraction of the base value
  std::string spread;     // key under measurements/repetitions holding its spread ("" for none)
  std::string interval;   // path of its 95% interval [low, high] in a run's measurements ("" for none)
};

// The metrics compared and their default thresholds.
std::vector<MetricRule> default_metric_rules();

// Applies "name=value" overrides (value like -5%, +0.005, 10%); InputError naming --threshold for
// an unknown name or a malformed value.
void apply_threshold(std::vector<MetricRule>& rules, const std::string& assignment);
// Keeps only the rules named (compare --metrics); InputError naming an unknown one.
void keep_only_metrics(std::vector<MetricRule>& rules, const std::vector<std::string>& names);

struct MetricVerdict {
  std::string run;     // "method@budget (mode, device)"
  std::string metric;
  double base = 0, current = 0;
  double change = 0;   // relative (fraction) or absolute, as the rule says
  std::string threshold;
  std::string verdict;  // "same", "better", "worse", or "unclear" (past the threshold, within the noise)
};

struct Comparison {
  std::vector<MetricVerdict> verdicts;
  std::vector<std::string> unmatched;  // runs present in only one document
  bool regression() const;
};

// InputError (naming the files) when the documents share no comparable run.
Comparison compare_results(const nlohmann::json& base, const nlohmann::json& current, const std::vector<MetricRule>& rules,
                           const std::string& base_name, const std::string& current_name);

std::string render_comparison_markdown(const Comparison& c);
std::string render_comparison_junit(const Comparison& c);

}  // namespace kvb
