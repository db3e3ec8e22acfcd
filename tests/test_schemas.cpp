// docs/schemas describe what kvbench writes: real runs (replay with --trace, throughput with
// repetitions, generate with a graded answer) validate against them, and the checker rejects
// documents that break a schema, naming where.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/json_schema_check.hpp"
#include "tests/test_support.hpp"

namespace kvb::test {
namespace {

using nlohmann::json;

json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  return json::parse(in);
}

// A run's result.json (and trace.json when there is one) against the schemas.
void expect_valid_outputs(const std::filesystem::path& out) {
  EXPECT_EQ(schema_violation(read_json(out / "result.json"), load_schema("result.schema.json")), "");
  if (std::filesystem::exists(out / "trace.json"))
    EXPECT_EQ(schema_violation(read_json(out / "trace.json"), load_schema("trace.schema.json")), "");
}

TEST(Schemas, TracedCpuReplayMatchesTheSchemas) {
  TempDir dir;
  CommandResult r = run_kvbench("run -q --device cpu --method full,streaming --budget 16 --divide-length 8 -n 24 "
                                "--trace --out " + dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_valid_outputs(dir.path());

  // On the CPU the result says why there is neither GPU telemetry nor GPU records.
  const json result = read_json(dir / "result.json");
  const json& device = result["device"];
  EXPECT_FALSE(device["gpu_telemetry"]["sampled"].get<bool>());
  EXPECT_EQ(device["gpu_telemetry"]["note"], "not sampled: the run used the CPU");
  EXPECT_FALSE(device["gpu_trace"]["traced"].get<bool>());
  for (const json& run : result["runs"]) EXPECT_FALSE(run["measurements"].contains("gpu_profile"));

  // What the schema cannot say (no if/then in its subset): complete events carry a time, a length
  // and a track; host ranges are on pid 1.
  const json trace = read_json(dir / "trace.json");
  int complete = 0;
  for (const json& e : trace["traceEvents"]) {
    if (e["ph"] != "X") continue;
    ++complete;
    for (const char* key : {"ts", "dur", "tid", "cat"}) EXPECT_TRUE(e.contains(key)) << e.dump();
    EXPECT_EQ(e["pid"], 1) << e.dump();
  }
  EXPECT_GT(complete, 0);
}

TEST(Schemas, ThroughputAndGeneratedRunsMatchTheResultSchema) {
  TempDir dir;
  CommandResult t = run_kvbench("run -q --device cpu --mode throughput --method full,h2o --budget 16 --divide-length 8 "
                                "-n 24 --warmup 0 --repeat 2 --out " + (dir / "throughput").string());
  ASSERT_EQ(t.exit_code, 0) << t.output;
  expect_valid_outputs(dir / "throughput");
  EXPECT_TRUE(read_json(dir / "throughput" / "result.json")["runs"][0]["measurements"].contains("repetitions"));

  const auto workload = dir / "q.jsonl";
  std::ofstream(workload) << "{\"id\": \"a\", \"prompt\": \"1+1=\", \"answer\": \"2\"}\n";
  CommandResult g = run_kvbench("run -q --device cpu --mode generate --method full,streaming --budget 8 --divide-length 4 "
                                "-n 8 --samples 2 --temperature 0.7 --workload " + workload.string() + " --out " +
                                (dir / "generate").string());
  ASSERT_EQ(g.exit_code, 0) << g.output;
  expect_valid_outputs(dir / "generate");
  const json doc = read_json(dir / "generate" / "result.json");
  EXPECT_TRUE(doc["runs"][0]["sequences"][0].contains("grade"));
  EXPECT_TRUE(doc["runs"][1]["measurements"]["accuracy"].contains("vs_full"));
}

// The smallest result the schema accepts; each broken copy below must be refused.
json minimal_result() {
  return {{"schema_version", 1},
          {"tool", {{"name", "kvbench"}, {"version", "0.1.0"}, {"git_commit", "abc"}}},
          {"command_line", json::array()},
          {"started_at", "2026-11-22T10:00:00Z"},
          {"finished_at", "2026-11-22T10:00:01Z"},
          {"status", "complete"},
          {"synthetic", true},
          {"host", {{"cpu_model", "x"}, {"logical_cores", 2}, {"memory_bytes", 1}, {"os", "Linux"}, {"hostname", "h"}}},
          {"device", {{"kind", "cpu"}, {"threads", 1}, {"gpus", json::array()}, {"gpus_note", "none"},
                      {"gpu_telemetry", {{"sampled", false}, {"note", "not sampled: the run used the CPU"}}}}},
          {"model", json::object()},
          {"workload", {{"source", "builtin:stories"}, {"format", "builtin"}, {"sha256", ""}, {"sequences", 0}}},
          {"settings", {{"mode", "replay"}, {"max_new_tokens", 1}, {"max_length", nullptr},
                        {"prompt", {{"template", "plain"}, {"add_generation_prompt", false}, {"template_vars", json::object()},
                                    {"system_prompt", nullptr}}},
                        {"preset", nullptr}, {"temperature", 0}, {"top_p", 1}, {"top_k", 0}, {"min_p", 0},
                        {"sampling_sources", json::object()}, {"samples", 1}, {"seed", 0},
                        {"batch", 1}}},
          {"runs", json::array()}};
}

TEST(Schemas, CheckerRejectsBrokenDocumentsNamingWhere) {
  json schema = load_schema("result.schema.json");
  // The model object is checked elsewhere; this test is about the checker.
  schema["properties"]["model"] = {{"type", "object"}};
  ASSERT_EQ(schema_violation(minimal_result(), schema), "");

  json missing = minimal_result();
  missing.erase("status");
  EXPECT_EQ(schema_violation(missing, schema), "(root): missing required key \"status\"");

  json wrong_type = minimal_result();
  wrong_type["host"]["logical_cores"] = "two";
  EXPECT_EQ(schema_violation(wrong_type, schema), "/host/logical_cores: expected \"integer\", found string");

  json not_integer = minimal_result();
  not_integer["host"]["logical_cores"] = 2.5;
  EXPECT_EQ(schema_violation(not_integer, schema), "/host/logical_cores: expected \"integer\", found number");

  json bad_enum = minimal_result();
  bad_enum["status"] = "done";
  EXPECT_NE(schema_violation(bad_enum, schema).find("/status: \"done\" is not one of"), std::string::npos);

  json negative = minimal_result();
  negative["workload"]["sequences"] = -1;
  EXPECT_EQ(schema_violation(negative, schema), "/workload/sequences: -1 is below the minimum 0");

  json deep = minimal_result();  // through $ref, items and a nullable type
  deep["device"]["gpus_note"] = 3;
  EXPECT_EQ(schema_violation(deep, schema), "/device/gpus_note: expected [\"string\",\"null\"], found number");

  json row = minimal_result();
  row["command_line"] = {"kvbench", 7};
  EXPECT_EQ(schema_violation(row, schema), "/command_line/1: expected \"string\", found number");
}

TEST(Schemas, CheckerHandlesMapsPointersAndRefusesUnknownKeywords) {
  const json map_schema = {{"type", "object"}, {"additionalProperties", {{"type", "number"}}}};
  EXPECT_EQ(schema_violation(json{{"a/b", 1.5}}, map_schema), "");
  EXPECT_EQ(schema_violation(json{{"a/b~", "x"}}, map_schema), "/a~1b~0: expected \"number\", found string");
  const json closed = {{"type", "object"}, {"properties", {{"a", true}}}, {"additionalProperties", false}};
  EXPECT_EQ(schema_violation(json{{"b", 1}}, closed), "/b: no value is allowed here");
  EXPECT_THROW(schema_violation(json(1), json{{"pattern", "x"}}), std::invalid_argument);
  EXPECT_THROW(schema_violation(json(1), json{{"$ref", "#/$defs/missing"}}), std::invalid_argument);
}

}  // namespace
}  // namespace kvb::test
