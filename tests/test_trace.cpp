// Host phase ranges: recorded only when enabled, nested correctly, summarised into the per-op
// table, and written by `run --trace` as a Chrome trace whose events agree with the table.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "profiler/trace.hpp"
#include "test_support.hpp"

namespace kvb::test {
namespace {

TEST(Trace, RangesRecordOnlyWhenEnabledAndNest) {
  profiler::enable(false);
  { profiler::Range r("ignored"); }
  EXPECT_TRUE(profiler::take_events().empty());

  profiler::enable(true);
  {
    profiler::Range outer("outer");
    { profiler::Range inner("inner"); std::this_thread::sleep_for(std::chrono::milliseconds(2)); }
    { profiler::Range inner("inner"); }
  }
  const auto events = profiler::take_events();
  profiler::enable(false);
  ASSERT_EQ(events.size(), 3u);  // in closing order: inner, inner, outer
  EXPECT_STREQ(events[2].name, "outer");
  EXPECT_EQ(events[2].depth, 0);
  for (int i = 0; i < 2; ++i) {
    EXPECT_STREQ(events[i].name, "inner");
    EXPECT_EQ(events[i].depth, 1);
    EXPECT_GE(events[i].start_ns, events[2].start_ns);
    EXPECT_LE(events[i].start_ns + events[i].duration_ns, events[2].start_ns + events[2].duration_ns);
  }
  EXPECT_GE(events[0].duration_ns, 2'000'000);

  const nlohmann::json table = profiler::op_table(events, events[2].duration_ns * 1e-6);
  ASSERT_EQ(table.size(), 2u);
  EXPECT_EQ(table[0]["name"], "outer");  // heaviest first
  EXPECT_DOUBLE_EQ(table[0]["share"].get<double>(), 1.0);
  EXPECT_EQ(table[1]["calls"], 2);
  EXPECT_NEAR(table[1]["total_ms"].get<double>(), (events[0].duration_ns + events[1].duration_ns) * 1e-6, 1e-9);
  EXPECT_LE(table[1]["min_ms"].get<double>(), table[1]["max_ms"].get<double>());
}

TEST(CliTrace, TraceFileAgreesWithTheOpTable) {
  TempDir dir;
  CommandResult r = run_kvbench("run -q --method full,streaming --budget 16 --divide-length 8 -n 30 --trace --out " +
                                dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(" decode step |"), std::string::npos) << r.output;  // the printed op table
  std::ifstream in(dir / "trace.json");
  const auto trace = nlohmann::json::parse(in);
  std::ifstream rin(dir / "result.json");
  const auto result = nlohmann::json::parse(rin);
  // Count the host phases' complete events (pid 1; GPU records have tracks of their own) per
  // (track, name) and check children sit inside a decode step or prefill.
  std::map<std::pair<int, std::string>, int64_t> calls;
  std::map<int, std::vector<std::pair<double, double>>> parents;
  for (const auto& e : trace["traceEvents"]) {
    if (e["ph"] != "X" || e["pid"] != 1) continue;
    for (const char* key : {"name", "ts", "dur", "pid", "tid"}) ASSERT_TRUE(e.contains(key)) << e.dump();
    ++calls[{e["tid"].get<int>(), e["name"].get<std::string>()}];
    if (e["args"]["depth"] == 0) parents[e["tid"]].push_back({e["ts"].get<double>(), e["ts"].get<double>() + e["dur"].get<double>()});
  }
  for (const auto& e : trace["traceEvents"]) {
    if (e["ph"] != "X" || e["pid"] != 1 || e["args"]["depth"] == 0) continue;
    const double from = e["ts"], to = from + e["dur"].get<double>();
    bool inside = false;
    for (const auto& [a, b] : parents[e["tid"]]) inside = inside || (a <= from + 1e-3 && to <= b + 1e-3);
    EXPECT_TRUE(inside) << e.dump();
  }
  ASSERT_EQ(result["runs"].size(), 2u);
  // The compression stages of the streaming run (track 2), each compaction preceded by its selection.
  const int64_t selects = calls[{2, "select"}], compacts = calls[{2, "compact"}];
  EXPECT_GT(selects, 0);
  EXPECT_EQ(compacts, selects);
  for (int i = 0; i < 2; ++i) {
    const auto& profile = result["runs"][i]["measurements"]["profile"];
    ASSERT_FALSE(profile.empty());
    for (const auto& op : profile)
      EXPECT_EQ(op["calls"].get<int64_t>(), (calls[{i + 1, op["name"].get<std::string>()}])) << op.dump();
  }
  // Without --trace: neither the file nor the table.
  const auto plain = dir / "plain";
  ASSERT_EQ(run_kvbench("run -q --method full -n 10 --out " + plain.string()).exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(plain / "trace.json"));
  std::ifstream pin(plain / "result.json");
  EXPECT_FALSE(nlohmann::json::parse(pin)["runs"][0]["measurements"].contains("profile"));
}

}  // namespace
}  // namespace kvb::test
