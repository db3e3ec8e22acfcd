// kvbench compare: verdicts by threshold and direction, matching of runs, exit codes 0/1/2,
// JUnit and markdown outputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "reports/compare.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

namespace kvb::test {
namespace {

nlohmann::json read_json(const std::filesystem::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

void write_json(const std::filesystem::path& p, const nlohmann::json& j) { std::ofstream(p) << j.dump(); }

// One real result (replay of full and streaming@16 on the built-in default), made once and kept
// for the whole test process.
const std::filesystem::path& baseline() {
  static TempDir keep;
  static const std::filesystem::path path = [] {
    CommandResult r = run_kvbench("run -q --method full,streaming --budget 16 --divide-length 8 -n 40 --out " +
                                  (keep / "base").string());
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return keep / "base" / "result.json";
  }();
  return path;
}

// An accuracy drop beyond the 2-point threshold is "worse" when the runs' intervals are tight,
// "unclear" when it lies inside their sampling noise (30 questions: intervals of +-15 points).
TEST(Compare, AccuracyInsideTheIntervalsIsUnclear) {
  nlohmann::json base = read_json(baseline());
  auto set = [](nlohmann::json& doc, double accuracy, double half_width) {
    doc["runs"][1]["measurements"]["accuracy"] = {{"accuracy", accuracy},
                                                  {"ci95", {accuracy - half_width, accuracy + half_width}}};
  };
  nlohmann::json changed = base;
  set(base, 0.40, 0.15);
  set(changed, 0.35, 0.15);
  auto accuracy_verdict = [](const Comparison& c) {
    for (const MetricVerdict& v : c.verdicts)
      if (v.metric == "accuracy") return v.verdict;
    return std::string("absent");
  };
  EXPECT_EQ(accuracy_verdict(compare_results(base, changed, default_metric_rules(), "a", "b")), "unclear");
  set(base, 0.40, 0.01);
  set(changed, 0.35, 0.01);
  EXPECT_EQ(accuracy_verdict(compare_results(base, changed, default_metric_rules(), "a", "b")), "worse");
}

TEST(Compare, VerdictsFollowThresholdAndDirection) {
  const nlohmann::json base = read_json(baseline());
  nlohmann::json changed = base;
  auto& m = changed["runs"][1]["measurements"];
  m["decode"]["tokens_per_s"] = m["decode"]["tokens_per_s"].get<double>() * 0.90;           // 10% slower: worse
  m["fidelity"]["kl"]["mean"] = m["fidelity"]["kl"]["mean"].get<double>() - 0.01;            // lower KL: better
  m["memory"]["kv_bytes_per_sequence_peak"] = m["memory"]["kv_bytes_per_sequence_peak"].get<double>() * 1.005;  // within 1%
  const Comparison c = compare_results(base, changed, default_metric_rules(), "a", "b");
  auto verdict = [&](const std::string& run_prefix, const std::string& metric) {
    for (const MetricVerdict& v : c.verdicts)
      if (v.run.rfind(run_prefix, 0) == 0 && v.metric == metric) return v.verdict;
    return std::string("absent");
  };
  EXPECT_EQ(verdict("streaming@16", "tokens_per_s"), "worse");
  EXPECT_EQ(verdict("streaming@16", "kl_mean"), "better");
  EXPECT_EQ(verdict("streaming@16", "kv_peak_bytes"), "same");
  EXPECT_EQ(verdict("full", "tokens_per_s"), "same");
  EXPECT_EQ(verdict("full", "accuracy"), "absent");  // replay has no accuracy
  EXPECT_TRUE(c.regression());
  // A looser threshold turns the slowdown into "same".
  std::vector<MetricRule> loose = default_metric_rules();
  apply_threshold(loose, "tokens_per_s=-20%");
  EXPECT_FALSE(compare_results(base, changed, loose, "a", "b").regression());
}

TEST(Compare, ThresholdSyntaxErrorsNameTheFlag) {
  std::vector<MetricRule> rules = default_metric_rules();
  for (const char* bad : {"speed=-5%", "tokens_per_s", "tokens_per_s=fast", "kl_mean=", "kl_mean=1e999"})
    EXPECT_THROW(apply_threshold(rules, bad), InputError) << bad;
  apply_threshold(rules, "kl_mean=0.01");
  EXPECT_DOUBLE_EQ(rules[4].threshold, 0.01);
  EXPECT_FALSE(rules[4].relative);
}

TEST(Compare, MetricsKeepsOnlyTheNamedRules) {
  const nlohmann::json base = read_json(baseline());
  nlohmann::json changed = base;
  auto& tps = changed["runs"][1]["measurements"]["decode"]["tokens_per_s"];
  tps = tps.get<double>() * 0.5;  // another machine: half as fast
  std::vector<MetricRule> rules = default_metric_rules();
  EXPECT_TRUE(compare_results(base, changed, rules, "a", "b").regression());
  keep_only_metrics(rules, {"kl_mean", "accuracy"});
  ASSERT_EQ(rules.size(), 2u);
  const Comparison c = compare_results(base, changed, rules, "a", "b");
  EXPECT_FALSE(c.regression());
  for (const MetricVerdict& v : c.verdicts) EXPECT_TRUE(v.metric == "kl_mean" || v.metric == "accuracy") << v.metric;
  // ... and still judges what it kept.
  changed["runs"][1]["measurements"]["fidelity"]["kl"]["mean"] =
      changed["runs"][1]["measurements"]["fidelity"]["kl"]["mean"].get<double>() + 0.1;
  EXPECT_TRUE(compare_results(base, changed, rules, "a", "b").regression());
  try {
    keep_only_metrics(rules, {"speed"});
    ADD_FAILURE() << "accepted an unknown metric";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--metrics speed"), std::string::npos) << e.what();
  }
}

// A workload file is the same workload wherever it was read from (its sha256), so a baseline
// made in one checkout judges a run of another; a different file is not comparable.
TEST(Compare, WorkloadFilesMatchByTheirBytesNotTheirPath) {
  nlohmann::json base = read_json(baseline());
  base["workload"]["source"] = "/checkout-a/w.jsonl";
  base["workload"]["sha256"] = std::string(64, 'a');
  nlohmann::json moved = base;
  moved["workload"]["source"] = "/checkout-b/w.jsonl";
  EXPECT_FALSE(compare_results(base, moved, default_metric_rules(), "a", "b").verdicts.empty());
  nlohmann::json edited = base;
  edited["workload"]["sha256"] = std::string(64, 'b');
  EXPECT_THROW(compare_results(base, edited, default_metric_rules(), "a", "b"), InputError);
}

TEST(CliCompare, ExitCodesJunitAndMarkdown) {
  TempDir dir;
  const auto base = baseline();
  // Identical files: no regression.
  CommandResult same = run_kvbench("compare " + base.string() + " " + base.string());
  EXPECT_EQ(same.exit_code, 0) << same.output;
  EXPECT_NE(same.output.find("no regression"), std::string::npos) << same.output;

  nlohmann::json slower = read_json(base);
  auto& tps = slower["runs"][0]["measurements"]["decode"]["tokens_per_s"];
  tps = tps.get<double>() * 0.5;
  write_json(dir / "slower.json", slower);
  CommandResult worse = run_kvbench("compare " + base.string() + " " + (dir / "slower.json").string() + " --junit " +
                                    (dir / "j.xml").string() + " --markdown " + (dir / "s.md").string());
  EXPECT_EQ(worse.exit_code, 1) << worse.output;
  EXPECT_NE(worse.output.find("REGRESSION"), std::string::npos) << worse.output;
  std::stringstream junit, md;
  junit << std::ifstream(dir / "j.xml").rdbuf();
  md << std::ifstream(dir / "s.md").rdbuf();
  EXPECT_NE(junit.str().find("<testsuite name=\"kvbench compare\""), std::string::npos) << junit.str();
  EXPECT_NE(junit.str().find("failures=\"1\""), std::string::npos) << junit.str();
  EXPECT_NE(junit.str().find("<failure message=\"tokens_per_s went from"), std::string::npos) << junit.str();
  EXPECT_EQ(md.str(), worse.output);
  // The same slowdown with a threshold that tolerates it.
  EXPECT_EQ(run_kvbench("compare " + base.string() + " " + (dir / "slower.json").string() +
                        " --threshold tokens_per_s=-60%").exit_code, 0);

  // Nothing comparable, a missing file, a bad threshold: exit 2.
  nlohmann::json other = read_json(base);
  for (auto& run : other["runs"]) run["method"] = "h2o";
  write_json(dir / "other.json", other);
  for (const std::string& args : {"compare " + base.string() + " " + (dir / "other.json").string(),
                                  "compare " + base.string() + " /nonexistent.json",
                                  "compare " + base.string() + " " + base.string() + " --threshold fast=1"}) {
    CommandResult r = run_kvbench(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
  }
}

TEST(CliRun, RepetitionsRecordTheSpreadOfTimings) {
  TempDir dir;
  CommandResult r = run_kvbench("run -q --mode throughput --method full -n 30 --repeat 3 --warmup 1 --out " +
                                dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto doc = read_json(dir / "result.json");
  const auto& m = doc["runs"][0]["measurements"];
  ASSERT_TRUE(m.contains("repetitions"));
  EXPECT_EQ(m["repetitions"]["count"], 3);
  EXPECT_EQ(m["repetitions"]["warmup"], 1);
  const auto& rate = m["repetitions"]["decode_tokens_per_s"];
  ASSERT_EQ(rate["values"].size(), 3u);
  std::vector<double> v = rate["values"].get<std::vector<double>>();
  std::sort(v.begin(), v.end());
  EXPECT_DOUBLE_EQ(m["decode"]["tokens_per_s"].get<double>(), v[1]);  // the median
  EXPECT_DOUBLE_EQ(rate["min"].get<double>(), v[0]);
  EXPECT_GE(rate["stddev"].get<double>(), 0.0);
  // Step latencies pool the measured repetitions: 4 sequences (batch 1) x 29 decode steps, three times.
  EXPECT_EQ(m["decode"]["step_latency_ms"]["count"], 3 * 4 * 29);
  // Throughput mode defaults to one warm-up and five repetitions; replay to one.
  ASSERT_EQ(run_kvbench("run -q --mode throughput --method full -n 5 --out " + (dir / "t").string()).exit_code, 0);
  EXPECT_EQ(read_json(dir / "t" / "result.json")["runs"][0]["measurements"]["repetitions"]["count"], 5);
  ASSERT_EQ(run_kvbench("run -q --method full -n 5 --out " + (dir / "r").string()).exit_code, 0);
  EXPECT_EQ(read_json(dir / "r" / "result.json")["runs"][0]["measurements"]["repetitions"]["count"], 1);
  EXPECT_EQ(run_kvbench("run -q --repeat 0").exit_code, 2);
  EXPECT_EQ(run_kvbench("run -q --warmup -2").exit_code, 2);
}

TEST(Compare, AChangeWithinTheRecordedNoiseIsUnclear) {
  const nlohmann::json base = read_json(baseline());
  auto with_spread = [](nlohmann::json doc, double factor, double stddev) {
    auto& m = doc["runs"][0]["measurements"];
    const double tps = m["decode"]["tokens_per_s"].get<double>() * factor;
    m["decode"]["tokens_per_s"] = tps;
    m["repetitions"] = {{"count", 5}, {"decode_tokens_per_s", {{"stddev", stddev * tps}}}};
    return doc;
  };
  auto verdict = [](const Comparison& c) {
    for (const MetricVerdict& v : c.verdicts)
      if (v.run.rfind("full", 0) == 0 && v.metric == "tokens_per_s") return v.verdict;
    return std::string("absent");
  };
  // 10% slower with 15% run-to-run spread on both sides: unclear, and not a regression.
  Comparison noisy = compare_results(with_spread(base, 1.0, 0.15), with_spread(base, 0.9, 0.15),
                                     default_metric_rules(), "a", "b");
  EXPECT_EQ(verdict(noisy), "unclear");
  EXPECT_FALSE(noisy.regression());
  // The same slowdown with 1% spread: worse.
  Comparison steady = compare_results(with_spread(base, 1.0, 0.01), with_spread(base, 0.9, 0.01),
                                      default_metric_rules(), "a", "b");
  EXPECT_EQ(verdict(steady), "worse");
  EXPECT_TRUE(steady.regression());
}

}  // namespace
}  // namespace kvb::test
