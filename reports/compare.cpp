#include "reports/compare.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

#include <fmt/format.h>

#include "reports/markup.hpp"
#include "reports/table.hpp"
#include "util/errors.hpp"
#include "util/json_fields.hpp"

namespace kvb {

using nlohmann::json;

std::vector<MetricRule> default_metric_rules() {
  // Throughput and latency move with machine noise: 5%. Memory is deterministic: 1%. Fidelity and
  // accuracy in absolute units: 0.005 nats of KL, one point of agreement, two of accuracy (and a
  // change of accuracy inside the two runs' sampling noise is unclear, whatever its size), two of
  // correct prefix (sequence-graded answers: finer than exact match, so a gate on few items bites).
  return {
      {"tokens_per_s", "decode/tokens_per_s", true, 0.05, true, "decode_tokens_per_s", ""},
      {"prefill_tokens_per_s", "prefill/tokens_per_s", true, 0.05, true, "prefill_tokens_per_s", ""},
      {"step_p50_ms", "decode/step_latency_ms/p50", false, 0.05, true, "step_p50_ms", ""},
      {"kv_peak_bytes", "memory/kv_bytes_per_sequence_peak", false, 0.01, true, "", ""},
      {"kl_mean", "fidelity/kl/mean", false, 0.005, false, "", ""},
      {"top1_agreement", "fidelity/top1_agreement_with_full", true, 0.01, false, "", ""},
      {"retained_mass", "fidelity/retained_attention_mass/mean", true, 0.01, false, "", ""},
      {"accuracy", "accuracy/accuracy", true, 0.02, false, "", "accuracy/ci95"},
      {"prefix_fraction", "accuracy/prefix_fraction_mean", true, 0.02, false, "", ""},
  };
}

namespace {

std::string metric_names(const std::vector<MetricRule>& rules) {
  std::string names;
  for (const MetricRule& r : rules) names += (names.empty() ? "" : ", ") + r.name;
  return names;
}

}  // namespace

void apply_threshold(std::vector<MetricRule>& rules, const std::string& assignment) {
  const size_t eq = assignment.find('=');
  const std::string name = assignment.substr(0, eq);
  auto rule = std::find_if(rules.begin(), rules.end(), [&](const MetricRule& r) { return r.name == name; });
  if (eq == std::string::npos || rule == rules.end()) {
    fail_input("--threshold {}: expected NAME=VALUE with NAME one of {}", assignment, metric_names(rules));
  }
  std::string value = assignment.substr(eq + 1);
  const bool relative = !value.empty() && value.back() == '%';
  if (relative) value.pop_back();
  char* end = nullptr;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || !std::isfinite(v))
    fail_input("--threshold {}: the value must be a number, optionally with %, e.g. -5% or +0.005", assignment);
  rule->threshold = std::fabs(relative ? v / 100.0 : v);
  rule->relative = relative;
}

void keep_only_metrics(std::vector<MetricRule>& rules, const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    if (std::none_of(rules.begin(), rules.end(), [&](const MetricRule& r) { return r.name == name; })) {
      fail_input("--metrics {}: unknown metric (known: {})", name, metric_names(rules));
    }
  }
  std::erase_if(rules, [&](const MetricRule& r) { return std::find(names.begin(), names.end(), r.name) == names.end(); });
}

namespace {

// A numeric value at a path, or nullptr.
const json* at_path(const json& j, const std::string& path) {
  const json* at = find_path(j, path);
  return at && at->is_number() ? at : nullptr;
}

// What makes two runs comparable. A workload file counts by its bytes (sha256), wherever it
// was read from, so a baseline made in one checkout judges a run made in another.
std::string run_key(const json& doc, const json& run) {
  const std::string sha = doc["workload"].value("sha256", "");
  return fmt::format("{}|{}|{}|{}|{}|{}|{}", doc["model"].value("name", ""), doc["model"].value("parameters", 0.0),
                     sha.empty() ? doc["workload"].value("source", "") : "sha256:" + sha, run.value("method", ""),
                     run["budget"].is_null() ? std::string("-") : run["budget"].dump(), doc["device"].value("kind", ""),
                     doc["settings"].value("mode", ""));
}

std::string run_label(const json& doc, const json& run) {
  std::string label = run.value("method", "?");
  if (!run["budget"].is_null()) label += "@" + run["budget"].dump();
  return fmt::format("{} ({}, {})", label, doc["settings"].value("mode", "?"), doc["device"].value("kind", "?"));
}

// Twice the standard error of the difference of two means (about a 95% interval), from the
// repetitions both runs recorded; 0 when either has fewer than two.
double noise_of_difference(const json& base_run, const json& new_run, const std::string& key) {
  const json* a = at_path(base_run["measurements"], "repetitions/" + key + "/stddev");
  const json* b = at_path(new_run["measurements"], "repetitions/" + key + "/stddev");
  const json* na = at_path(base_run["measurements"], "repetitions/count");
  const json* nb = at_path(new_run["measurements"], "repetitions/count");
  if (!a || !b || !na || !nb || na->get<double>() < 2 || nb->get<double>() < 2) return 0;
  const double sa = a->get<double>(), sb = b->get<double>();
  return 2.0 * std::sqrt(sa * sa / na->get<double>() + sb * sb / nb->get<double>());
}

// About the 95% half-width of the difference of two independent estimates, from their 95%
// intervals (each half-width / 1.96 taken as its standard error); 0 when either has none.
double noise_of_intervals(const json& base_run, const json& new_run, const std::string& path) {
  const json* a = find_path(base_run["measurements"], path);
  const json* b = find_path(new_run["measurements"], path);
  auto se = [](const json* ci) { return (ci->at(1).get<double>() - ci->at(0).get<double>()) / (2 * 1.96); };
  if (!a || !b || !a->is_array() || !b->is_array() || a->size() != 2 || b->size() != 2) return 0;
  return 1.96 * std::hypot(se(a), se(b));
}

std::string format_threshold(const MetricRule& r) {
  const char sign = r.higher_is_better ? '-' : '+';
  return r.relative ? fmt::format("{}{:g}%", sign, r.threshold * 100) : fmt::format("{}{:g}", sign, r.threshold);
}

}  // namespace

bool Comparison::regression() const {
  return std::any_of(verdicts.begin(), verdicts.end(), [](const MetricVerdict& v) { return v.verdict == "worse"; });
}

Comparison compare_results(const json& base, const json& current, const std::vector<MetricRule>& rules,
                           const std::string& base_name, const std::string& current_name) {
  Comparison c;
  std::map<std::string, const json*> current_runs;
  for (const json& run : current["runs"]) current_runs[run_key(current, run)] = &run;
  std::map<std::string, bool> matched;
  for (const json& run : base["runs"]) {
    const std::string key = run_key(base, run);
    auto other = current_runs.find(key);
    if (other == current_runs.end()) {
      c.unmatched.push_back(fmt::format("{} only in {}", run_label(base, run), base_name));
      continue;
    }
    matched[key] = true;
    for (const MetricRule& rule : rules) {
      const json* b = at_path(run["measurements"], rule.path);
      const json* n = at_path((*other->second)["measurements"], rule.path);
      if (!b || !n) continue;  // not measured in this mode
      MetricVerdict v;
      v.run = run_label(base, run);
      v.metric = rule.name;
      v.base = b->get<double>();
      v.current = n->get<double>();
      const double diff = v.current - v.base;
      v.change = rule.relative ? (v.base != 0 ? diff / std::fabs(v.base) : (diff == 0 ? 0.0 : INFINITY)) : diff;
      const double hurt = rule.higher_is_better ? -v.change : v.change;  // > 0: in the bad direction
      v.threshold = format_threshold(rule);
      v.verdict = hurt > rule.threshold ? "worse" : -hurt > rule.threshold ? "better" : "same";
      if (v.verdict != "same") {
        const double noise = !rule.spread.empty() ? noise_of_difference(run, *other->second, rule.spread)
                              : !rule.interval.empty() ? noise_of_intervals(run, *other->second, rule.interval)
                                                       : 0.0;
        if (std::fabs(diff) <= noise) v.verdict = "unclear";
      }
      c.verdicts.push_back(std::move(v));
    }
  }
  for (const json& run : current["runs"])
    if (!matched.count(run_key(current, run)))
      c.unmatched.push_back(fmt::format("{} only in {}", run_label(current, run), current_name));
  if (c.verdicts.empty())
    fail_input("compare: {} and {} share no comparable run (same model, workload, method, budget, device and mode)",
               base_name, current_name);
  return c;
}

std::string render_comparison_markdown(const Comparison& c) {
  std::vector<std::vector<std::string>> rows;
  for (const MetricVerdict& v : c.verdicts) {
    const bool relative = v.threshold.back() == '%';
    rows.push_back({v.run, v.metric, fmt::format("{:.6g}", v.base), fmt::format("{:.6g}", v.current),
                    relative ? fmt::format("{:+.2f}%", v.change * 100) : fmt::format("{:+.6g}", v.change), v.threshold,
                    v.verdict == "worse" ? "**worse**" : v.verdict});
  }
  std::string out = markdown_table({"run", "metric", "base", "new", "change", "threshold", "verdict"}, rows);
  for (const std::string& u : c.unmatched) out += fmt::format("\nnot compared: {}", u);
  if (!c.unmatched.empty()) out += "\n";
  int worse = 0;
  for (const MetricVerdict& v : c.verdicts) worse += v.verdict == "worse";
  out += fmt::format("\n{}: {} metric(s) compared, {} worse\n", c.regression() ? "REGRESSION" : "no regression",
                     c.verdicts.size(), worse);
  return out;
}

std::string render_comparison_junit(const Comparison& c) {
  int failures = 0;
  for (const MetricVerdict& v : c.verdicts) failures += v.verdict == "worse";
  std::string out = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"kvbench compare\" tests=\"{}\" "
      "failures=\"{}\">\n",
      c.verdicts.size(), failures);
  for (const MetricVerdict& v : c.verdicts) {
    out += fmt::format("    <testcase classname=\"{}\" name=\"{}\">", markup_escape(v.run), markup_escape(v.metric));
    if (v.verdict == "worse")
      out += fmt::format("<failure message=\"{}\"/>",
                         markup_escape(fmt::format("{} went from {:.6g} to {:.6g}, beyond {}", v.metric, v.base, v.current,
                                                v.threshold)));
    out += "</testcase>\n";
  }
  return out + "  </testsuite>\n</testsuites>\n";
}

}  // namespace kvb
