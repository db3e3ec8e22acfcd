// Workload readers: every JSONL field and error, built-in and single-prompt workloads, the real
// AIME/MATH/DFS files and recorded R1 traces, and corrupt trace containers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "tests/test_support.hpp"
#include "util/errors.hpp"
#include "workloads/dcmp.hpp"
#include "workloads/workload.hpp"

namespace kvb {
namespace {

using ::testing::HasSubstr;
using ::testing::AllOf;
using test::TempDir;

std::string write_file(const TempDir& dir, const std::string& name, const std::string& content) {
  std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// The InputError message of loading `path`, or a test failure when it loads.
std::string load_error(const std::string& path) {
  try {
    load_workload(path);
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << path << " loaded without an error";
  return "";
}

// ---------------------------------------------------------------------------------------------
// JSONL fields

TEST(WorkloadJsonl, ReadsEveryField) {
  TempDir dir;
  std::string path = write_file(dir, "w.jsonl",
      "# a comment\n"
      "// another comment\n"
      "\n"
      "{\"id\": \"a\", \"prompt\": \"Hello\", \"continuation\": \" world\", \"answer\": \"42\", "
      "\"max_new_tokens\": 16}\n"
      "   \n"
      "{\"id\": 7, \"prompt_ids\": [1, 2, 3], \"continuation_ids\": [4, 5], \"answer\": 70}\r\n"
      "{\"prompt\": \"no id\", \"answer\": 0.5, \"extra\": {\"ignored\": true}}\n"
      "  # indented comment\n"
      "{\"id\": \"both\", \"prompt\": \"x\", \"continuation\": \"text\", \"continuation_ids\": [9]}");
  Workload w = load_workload(path);
  EXPECT_EQ(w.format, "jsonl");
  EXPECT_EQ(w.source, path);
  EXPECT_EQ(w.sha256.size(), 64u);
  ASSERT_EQ(w.items.size(), 4u);

  const WorkloadItem& a = w.items[0];
  EXPECT_EQ(a.id, "a");
  EXPECT_EQ(a.prompt_text, "Hello");
  EXPECT_TRUE(a.prompt_ids.empty());
  EXPECT_EQ(a.continuation_text, " world");
  EXPECT_EQ(a.answer, std::optional<std::string>("42"));
  EXPECT_EQ(a.max_new_tokens, 16);

  const WorkloadItem& b = w.items[1];
  EXPECT_EQ(b.id, "7");
  EXPECT_TRUE(b.prompt_text.empty());
  EXPECT_EQ(b.prompt_ids, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(b.continuation_ids, (std::vector<int>{4, 5}));
  EXPECT_EQ(b.answer, std::optional<std::string>("70"));
  EXPECT_EQ(b.max_new_tokens, 0);

  const WorkloadItem& c = w.items[2];
  EXPECT_EQ(c.id, "line-7");  // default id: the line number
  EXPECT_EQ(c.prompt_text, "no id");
  EXPECT_EQ(c.answer, std::optional<std::string>("0.5"));

  const WorkloadItem& d = w.items[3];
  EXPECT_EQ(d.continuation_text, "text");
  EXPECT_EQ(d.continuation_ids, std::vector<int>{9});
  EXPECT_FALSE(d.answer.has_value());
}

TEST(WorkloadJsonl, GradingSaysHowTheAnswerIsCompared) {
  TempDir dir;
  Workload w = load_workload(write_file(dir, "g.jsonl",
      "{\"prompt\": \"Q 3\", \"answer\": \"u3 #\", \"grading\": \"sequence\"}\n"
      "{\"prompt\": \"x\", \"answer\": 4, \"grading\": \"math\"}\n"
      "{\"prompt\": \"y\", \"answer\": 5}\n"));
  ASSERT_EQ(w.items.size(), 3u);
  EXPECT_EQ(w.items[0].grading, AnswerKind::Sequence);
  EXPECT_EQ(w.items[1].grading, AnswerKind::Math);
  EXPECT_EQ(w.items[2].grading, AnswerKind::Auto);
  EXPECT_THAT(load_error(write_file(dir, "bad.jsonl", "{\"prompt\": \"x\", \"grading\": \"fuzzy\"}\n")),
              AllOf(HasSubstr("bad.jsonl:1:"), HasSubstr("grading"), HasSubstr("fuzzy")));
  EXPECT_THAT(load_error(write_file(dir, "bad2.jsonl", "{\"prompt\": \"x\", \"grading\": 3}\n")),
              HasSubstr("grading"));
}

TEST(WorkloadJsonl, DatasetFieldNamesStandInForPrompt) {
  TempDir dir;
  std::string path = write_file(dir, "d.jsonl",
      "{\"id\": 1, \"problem\": \"P1\", \"question\": \"Q1\", \"answer\": \"033\"}\n"
      "{\"id\": 2, \"question\": \"Q2\", \"answer\": null}\n"
      "{\"id\": 3, \"prompt\": \"explicit\", \"problem\": \"P3\"}\n"
      "{\"id\": 4, \"prompt_ids\": [5], \"problem\": \"P4\"}\n");
  Workload w = load_workload(path);
  ASSERT_EQ(w.items.size(), 4u);
  EXPECT_EQ(w.items[0].prompt_text, "P1");  // problem before question
  EXPECT_EQ(w.items[0].answer, std::optional<std::string>("033"));  // strings kept verbatim
  EXPECT_EQ(w.items[1].prompt_text, "Q2");
  EXPECT_FALSE(w.items[1].answer.has_value());
  EXPECT_EQ(w.items[2].prompt_text, "explicit");
  EXPECT_EQ(w.items[3].prompt_ids, std::vector<int>{5});
  EXPECT_TRUE(w.items[3].prompt_text.empty());
}

TEST(WorkloadJsonl, UnknownExtensionIsJsonlAndBomIsSkipped) {
  TempDir dir;
  Workload w = load_workload(write_file(dir, "prompts.txt", "\xEF\xBB\xBF{\"prompt\": \"hi\"}\n"));
  ASSERT_EQ(w.items.size(), 1u);
  EXPECT_EQ(w.items[0].prompt_text, "hi");
  EXPECT_EQ(w.items[0].id, "line-1");
}

TEST(WorkloadJsonl, Sha256IsOfTheFileBytes) {
  TempDir dir;
  // sha256("{\"prompt\":\"a\"}") computed independently with sha256sum.
  Workload w = load_workload(write_file(dir, "s.jsonl", "{\"prompt\":\"a\"}"));
  EXPECT_EQ(w.sha256, "732acbb3e402e912437dbe53442ca54368b45e73c284acbf4c0530fac53cca74");
}

// ---------------------------------------------------------------------------------------------
// JSONL errors: each names the file and line

struct ErrorCase {
  const char* name;
  std::string content;
  int line;
  const char* what;
  friend void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }
};

class WorkloadJsonlError : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(WorkloadJsonlError, NamesFileLineAndProblem) {
  TempDir dir;
  const ErrorCase& c = GetParam();
  std::string path = write_file(dir, "bad.jsonl", c.content);
  std::string msg = load_error(path);
  EXPECT_THAT(msg, HasSubstr(path + ":" + std::to_string(c.line) + ":"));
  EXPECT_THAT(msg, HasSubstr(c.what));
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "one-line message: " << msg;
}

const std::string kOk = "{\"prompt\": \"ok\"}\n";

INSTANTIATE_TEST_SUITE_P(
    WorkloadJsonlErrors, WorkloadJsonlError,
    ::testing::Values(
        ErrorCase{"MalformedJson", kOk + "{\"prompt\": \"x\",}\n", 2, "malformed JSON"},
        ErrorCase{"TruncatedJson", kOk + kOk + "{\"prompt\": \"x\n", 3, "malformed JSON"},
        ErrorCase{"InvalidUtf8", "{\"prompt\": \"\xff\xfe\"}\n", 1, "malformed JSON"},
        ErrorCase{"NotAnObject", "[1, 2]\n", 1, "expected a JSON object, got an array"},
        ErrorCase{"NotAnObjectNumber", kOk + "42\n", 2, "expected a JSON object"},
        ErrorCase{"NoPrompt", "{\"id\": \"a\", \"answer\": \"1\"}\n", 1, "no prompt"},
        ErrorCase{"BothPrompts", "{\"prompt\": \"a\", \"prompt_ids\": [1]}\n", 1,
                  "both prompt and prompt_ids"},
        ErrorCase{"PromptNotString", "{\"prompt\": 5}\n", 1, "prompt must be a string"},
        ErrorCase{"ProblemNotString", "{\"problem\": [\"x\"]}\n", 1, "problem must be a string"},
        ErrorCase{"EmptyPrompt", "{\"prompt\": \"\"}\n", 1, "prompt is empty"},
        ErrorCase{"EmptyPromptIds", "{\"prompt_ids\": []}\n", 1, "prompt_ids is empty"},
        ErrorCase{"PromptIdsNotArray", "{\"prompt_ids\": \"1 2\"}\n", 1, "prompt_ids must be an array"},
        ErrorCase{"NegativeId", "{\"prompt_ids\": [1, -2]}\n", 1,
                  "prompt_ids[1] is not a non-negative integer"},
        ErrorCase{"FloatId", "{\"prompt_ids\": [1.5]}\n", 1, "prompt_ids[0] is not a non-negative integer"},
        ErrorCase{"StringId", "{\"prompt_ids\": [\"7\"]}\n", 1, "prompt_ids[0] is not a non-negative integer"},
        ErrorCase{"HugeId", "{\"prompt_ids\": [4294967296]}\n", 1, "too large"},
        ErrorCase{"BadContinuationIds", "{\"prompt\": \"a\", \"continuation_ids\": [-1]}\n", 1,
                  "continuation_ids[0] is not a non-negative integer"},
        ErrorCase{"ContinuationNotString", "{\"prompt\": \"a\", \"continuation\": [1]}\n", 1,
                  "continuation must be a string"},
        ErrorCase{"MaxNewTokensZero", "{\"prompt\": \"a\", \"max_new_tokens\": 0}\n", 1,
                  "max_new_tokens must be a positive integer"},
        ErrorCase{"MaxNewTokensNegative", "{\"prompt\": \"a\", \"max_new_tokens\": -5}\n", 1,
                  "max_new_tokens must be a positive integer"},
        ErrorCase{"MaxNewTokensFloat", "{\"prompt\": \"a\", \"max_new_tokens\": 2.5}\n", 1,
                  "max_new_tokens must be a positive integer"},
        ErrorCase{"MaxNewTokensString", "{\"prompt\": \"a\", \"max_new_tokens\": \"8\"}\n", 1,
                  "max_new_tokens must be a positive integer"},
        ErrorCase{"MaxNewTokensHuge", "{\"prompt\": \"a\", \"max_new_tokens\": 99999999999}\n", 1,
                  "max_new_tokens must be a positive integer"},
        ErrorCase{"AnswerBool", "{\"prompt\": \"a\", \"answer\": true}\n", 1,
                  "answer must be a string or a number"},
        ErrorCase{"IdFloat", "{\"id\": 1.5, \"prompt\": \"a\"}\n", 1, "id must be a string or an integer"},
        ErrorCase{"IdEmpty", "{\"id\": \"\", \"prompt\": \"a\"}\n", 1, "id is empty"},
        ErrorCase{"DuplicateId", "{\"id\": \"x\", \"prompt\": \"a\"}\n\n{\"id\": \"x\", \"prompt\": \"b\"}\n", 3,
                  "duplicate id \"x\" (first used on line 1)"},
        ErrorCase{"DuplicateIntAndStringId", "{\"id\": 5, \"prompt\": \"a\"}\n{\"id\": \"5\", \"prompt\": \"b\"}\n",
                  2, "duplicate id"},
        ErrorCase{"OnlyComments", "# nothing\n\n// here\n", 3, "no workload items"}),
    [](const ::testing::TestParamInfo<ErrorCase>& info) { return std::string(info.param.name); });

TEST(WorkloadJsonl, EmptyFileIsAnError) {
  TempDir dir;
  std::string path = write_file(dir, "empty.jsonl", "");
  std::string msg = load_error(path);
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_THAT(msg, HasSubstr("empty"));
}

TEST(WorkloadJsonl, MissingFileAndDirectoryAreInputErrors) {
  TempDir dir;
  EXPECT_THAT(load_error((dir / "nope.jsonl").string()), HasSubstr("nope.jsonl"));
  EXPECT_THAT(load_error(dir.path().string()), HasSubstr("not a regular file"));
}

TEST(WorkloadJsonl, LongParseMessagesAreShortened) {
  TempDir dir;
  std::string path = write_file(dir, "long.jsonl", "{\"prompt\": \"" + std::string(5000, 'x') + "\" oops}\n");
  std::string msg = load_error(path);
  EXPECT_THAT(msg, HasSubstr("malformed JSON"));
  EXPECT_LT(msg.size(), 400u + path.size());
  EXPECT_EQ(msg.find("[json.exception"), std::string::npos);
}

TEST(WorkloadJsonl, NeverCrashesOnGarbage) {
  TempDir dir;
  std::mt19937 rng(1234);
  const std::string alphabet = "{}[]\":,0123456789-.eE truefalsnul\\\n#/abc\x80\xff";
  for (int trial = 0; trial < 300; ++trial) {
    std::string content;
    size_t n = rng() % 200;
    for (size_t i = 0; i < n; ++i) content += alphabet[rng() % alphabet.size()];
    std::string path = write_file(dir, "fuzz.jsonl", content);
    try {
      load_workload(path);
    } catch (const InputError&) {
    }
  }
  // Deep nesting is refused before anything is built (a copy or dump of it would overflow the
  // stack), naming the line, even inside a key kvbench ignores.
  std::string deep = "{\"prompt\": \"a\", \"x\": " + std::string(200000, '[') + std::string(200000, ']') + "}\n";
  EXPECT_THAT(load_error(write_file(dir, "deep.jsonl", deep)), HasSubstr("deep.jsonl:1: malformed JSON: nested deeper than 64"));
}

// ---------------------------------------------------------------------------------------------
// Built-in and single-prompt workloads

TEST(WorkloadBuiltin, Stories) {
  Workload w = builtin_workload("stories");
  EXPECT_EQ(w.format, "builtin");
  EXPECT_EQ(w.source, "builtin:stories");
  EXPECT_TRUE(w.sha256.empty());
  ASSERT_EQ(w.items.size(), 4u);
  EXPECT_EQ(w.items[0].prompt_text, "Once upon a time");
  std::set<std::string> ids;
  for (const WorkloadItem& item : w.items) {
    EXPECT_FALSE(item.prompt_text.empty());
    EXPECT_EQ(item.max_new_tokens, 0);
    ids.insert(item.id);
  }
  EXPECT_EQ(ids.size(), 4u);
}

TEST(WorkloadBuiltin, UnknownNameListsAvailable) {
  try {
    builtin_workload("poems");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr("poems"));
    EXPECT_THAT(e.what(), HasSubstr("available: stories"));
  }
}

TEST(WorkloadBuiltin, SinglePrompt) {
  Workload w = single_prompt_workload("Tell me a story");
  EXPECT_EQ(w.format, "prompt");
  EXPECT_EQ(w.source, "prompt");
  ASSERT_EQ(w.items.size(), 1u);
  EXPECT_EQ(w.items[0].id, "prompt");
  EXPECT_EQ(w.items[0].prompt_text, "Tell me a story");
  EXPECT_THROW(single_prompt_workload(""), InputError);
}

// ---------------------------------------------------------------------------------------------
// Real datasets

void expect_dataset(const std::filesystem::path& path, size_t count) {
  Workload w = load_workload(path.string());
  EXPECT_EQ(w.format, "jsonl");
  ASSERT_EQ(w.items.size(), count);
  for (const WorkloadItem& item : w.items) {
    EXPECT_FALSE(item.prompt_text.empty()) << item.id;
    ASSERT_TRUE(item.answer.has_value()) << item.id;
    EXPECT_FALSE(item.answer->empty()) << item.id;
  }
}

TEST(WorkloadData, Aime24) {
  KVB_REQUIRE_DATA(path, "workloads/aime24/aime24.jsonl");
  expect_dataset(path, 30);
  Workload w = load_workload(path.string());
  EXPECT_EQ(w.sha256, "af2b8bd2aa911b6333ad0df32f3ca05c7ae8ed10f1731f4372c8ae26990bf7ac");
}

TEST(WorkloadData, Aime25) {
  KVB_REQUIRE_DATA(path, "workloads/aime25/aime25.jsonl");
  expect_dataset(path, 30);
  Workload w = load_workload(path.string());
  // id = the traces' qid; qid 0 -> 70, qid 7 -> 77 (SOURCES.md section 5).
  EXPECT_EQ(w.items[0].id, "0");
  EXPECT_EQ(w.items[0].answer, std::optional<std::string>("70"));
  EXPECT_EQ(w.items[7].id, "7");
  EXPECT_EQ(w.items[7].answer, std::optional<std::string>("77"));
}

TEST(WorkloadData, Math500) {
  KVB_REQUIRE_DATA(path, "workloads/math500/math.jsonl");
  expect_dataset(path, 500);
}

// The rules stated in the DFS prompt, run here: they must reproduce every recorded answer.
nlohmann::json simulate_dfs(const nlohmann::json& c) {
  std::map<int, std::set<int>> adj;
  for (const auto& e : c["graph"]["edges"]) {
    adj[e[0].get<int>()].insert(e[1].get<int>());
    adj[e[1].get<int>()].insert(e[0].get<int>());
  }
  std::vector<int> stack{c["start_node"].get<int>()};
  std::set<int> visited{stack.back()};
  for (int step = 0; step < c["steps"].get<int>() && !stack.empty(); ++step) {
    int next = -1;
    for (int n : adj[stack.back()]) {
      if (!visited.count(n)) {
        next = n;
        break;
      }
    }
    if (next >= 0) {
      stack.push_back(next);
      visited.insert(next);
    } else {
      stack.pop_back();
    }
  }
  return {{"current_node", stack.empty() ? nlohmann::json(nullptr) : nlohmann::json(stack.back())}, {"stack", stack},
          {"visited_nodes", std::vector<int>(visited.begin(), visited.end())}};
}

TEST(WorkloadData, DfsSmall) {
  KVB_REQUIRE_DATA(path, "workloads/dfs/dfs_state_query_small.json");
  Workload w = load_workload(path.string());
  EXPECT_EQ(w.format, "dfs");
  ASSERT_EQ(w.items.size(), 30u);
  nlohmann::json cases = nlohmann::json::parse(std::ifstream(path));
  for (size_t i = 0; i < w.items.size(); ++i) {
    const WorkloadItem& item = w.items[i];
    EXPECT_EQ(item.id, cases[i]["id"].dump());
    EXPECT_THAT(item.prompt_text, HasSubstr("Answer:"));
    EXPECT_THAT(item.prompt_text, HasSubstr("starts at node " + cases[i]["start_node"].dump()));
    EXPECT_THAT(item.prompt_text, HasSubstr("Simulate exactly " + cases[i]["steps"].dump() + " steps"));
    ASSERT_TRUE(item.answer.has_value());
    EXPECT_EQ(nlohmann::json::parse(*item.answer), cases[i]["answer"]);
    EXPECT_EQ(item.answer->find(' '), std::string::npos) << "compact: " << *item.answer;
    EXPECT_EQ(simulate_dfs(cases[i]), cases[i]["answer"]) << "case " << i;
  }
}

TEST(WorkloadData, DfsRulesReproduceEveryRecordedAnswer) {
  // The larger sets hold searches that finish (the start node popped) exactly at the queried
  // step: their answers have current_node null and an empty stack, as the prompt says.
  int finished = 0;
  for (const char* name : {"dfs_state_query_small.json", "dfs_state_query_100.json", "dfs_state_query_300.json"}) {
    KVB_REQUIRE_DATA(path, std::string("workloads/dfs/") + name);
    const Workload w = load_workload(path.string());
    const nlohmann::json cases = nlohmann::json::parse(std::ifstream(path));
    ASSERT_EQ(w.items.size(), cases.size()) << name;
    for (size_t i = 0; i < cases.size(); ++i) {
      EXPECT_EQ(simulate_dfs(cases[i]), cases[i]["answer"]) << name << " case " << i;
      finished += cases[i]["answer"]["current_node"].is_null();
    }
  }
  EXPECT_GT(finished, 0) << "no finished search: the null case is not exercised";
}

TEST(WorkloadDfs, RejectsMalformedCases) {
  TempDir dir;
  std::string ok = R"({"id": 1, "graph": {"nodes": [0, 1], "edges": [[0, 1]]}, "start_node": 0, "steps": 1,
                      "answer": {"current_node": 1, "stack": [0, 1], "visited_nodes": [0, 1]}})";
  Workload w = load_workload(write_file(dir, "ok.json", "[" + ok + "]"));
  ASSERT_EQ(w.items.size(), 1u);
  EXPECT_EQ(*w.items[0].answer, R"({"current_node":1,"stack":[0,1],"visited_nodes":[0,1]})");
  EXPECT_THAT(w.items[0].prompt_text, HasSubstr("Edges: 0-1"));

  std::string path = write_file(dir, "bad.json", "[" + ok + R"(, {"id": 2, "graph": {"nodes": [0], "edges": [[0]]}, "start_node": 0, "steps": 1}])");
  std::string msg = load_error(path);
  EXPECT_THAT(msg, HasSubstr(path + ": case 1:"));
  EXPECT_THAT(msg, HasSubstr("pairs"));
  EXPECT_THAT(load_error(write_file(dir, "dup.json", "[" + ok + "," + ok + "]")), HasSubstr("duplicate id"));
  EXPECT_THAT(load_error(write_file(dir, "nostart.json", R"([{"graph": {"nodes": [0], "edges": []}, "steps": 1}])")),
              HasSubstr("start_node"));
  // A JSON array that is not a DFS set goes to the JSONL reader, which names the line.
  EXPECT_THAT(load_error(write_file(dir, "arr.json", "[{\"prompt\": \"a\"}]")), HasSubstr(":1: expected a JSON object"));
}

// ---------------------------------------------------------------------------------------------
// Recorded R1 traces

struct TraceCase {
  const char* file;
  const char* id;
  size_t tokens;
  const char* answer;
};

TEST(WorkloadTrace, RealTraces) {
  const TraceCase cases[] = {
      {"deepthink_offline_qid7_ridsparse_unbounded_20251107_103629.msgpack", "aime25-q7", 2048, "77"},
      {"deepthink_offline_qid0_ridstream_default_20251107_213125.msgpack.gz", "aime25-q0", 15359, "70"},
      {"deepthink_offline_qid0_ridsparse_regress_20251107_183851.msgpack.gz", "aime25-q0", 131010, "70"},
  };
  for (const TraceCase& c : cases) {
    KVB_REQUIRE_DATA(path, std::string("workloads/traces/deepseek-r1-0528-qwen3-8b/") + c.file);
    auto t0 = std::chrono::steady_clock::now();
    Workload w = load_workload(path.string());
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "[ loaded   ] " << c.file << ": " << c.tokens << " tokens in " << ms << " ms\n";
    EXPECT_EQ(w.format, "r1-trace");
    ASSERT_EQ(w.items.size(), 1u);
    const WorkloadItem& item = w.items[0];
    EXPECT_EQ(item.id, c.id);
    EXPECT_EQ(item.continuation_ids.size(), c.tokens);
    EXPECT_EQ(item.answer, std::optional<std::string>(c.answer));
    EXPECT_EQ(item.max_new_tokens, 0);
    EXPECT_TRUE(item.prompt_ids.empty());
    EXPECT_THAT(item.prompt_text, HasSubstr("<｜User｜>"));
    EXPECT_THAT(item.prompt_text, HasSubstr("<｜Assistant｜>"));
    EXPECT_EQ(w.sha256.size(), 64u);
    EXPECT_LT(ms, 5000.0);
    for (int id : item.continuation_ids) ASSERT_LT(id, 152000);  // Qwen3 vocabulary
  }
}

TEST(WorkloadTrace, CompleteTraceEndsAfterThink) {
  KVB_REQUIRE_DATA(path, "workloads/traces/deepseek-r1-0528-qwen3-8b/"
                         "deepthink_offline_qid0_ridstream_default_20251107_213125.msgpack.gz");
  Workload w = load_workload(path.string());
  const std::vector<int>& ids = w.items[0].continuation_ids;
  EXPECT_NE(std::find(ids.begin(), ids.end(), 151668), ids.end()) << "</think> present";
}

TEST(WorkloadTrace, Sha256MatchesSources) {
  KVB_REQUIRE_DATA(path, "workloads/traces/deepseek-r1-0528-qwen3-8b/"
                         "deepthink_offline_qid7_ridsparse_unbounded_20251107_103629.msgpack");
  EXPECT_EQ(load_workload(path.string()).sha256,
            "d7d3bfaf49111e4b70f1b80f155545a8074efed0805d8cd760d996da9dbdcd7c");
}

// Synthetic containers, so the container checks run without the shared data.

std::string gzip(const std::string& data) { return test::deflate_bytes(data, 16 + MAX_WBITS); }

std::string sample_msgpack() {
  nlohmann::json doc = {{"qid", 3},
                        {"prompt", "<｜User｜>What is 1+1?<｜Assistant｜>"},
                        {"ground_truth", "2"},
                        {"trace", {{"token_ids", std::vector<int>(5000, 151667)}, {"tokens", {"a"}}}},
                        {"metrics", {{"generated_tokens", 5000}}}};
  std::vector<uint8_t> bytes = nlohmann::json::to_msgpack(doc);
  return std::string(bytes.begin(), bytes.end());
}

std::string container(char mode, const std::string& payload) {
  return std::string("DCMP\x01", 5) + mode + payload;
}

TEST(WorkloadTrace, SyntheticContainersLoad) {
  TempDir dir;
  for (char mode : {'N', 'G'}) {
    std::string payload = mode == 'G' ? gzip(sample_msgpack()) : sample_msgpack();
    Workload w = load_workload(write_file(dir, std::string("t") + mode + ".msgpack", container(mode, payload)));
    ASSERT_EQ(w.items.size(), 1u);
    EXPECT_EQ(w.items[0].id, "aime25-q3");
    EXPECT_EQ(w.items[0].answer, std::optional<std::string>("2"));
    EXPECT_EQ(w.items[0].continuation_ids.size(), 5000u);
  }
  // Recognised by its magic under any name.
  Workload w = load_workload(write_file(dir, "renamed.bin", container('G', gzip(sample_msgpack()))));
  EXPECT_EQ(w.format, "r1-trace");
}

TEST(WorkloadTrace, TruncatedGzipIsInputError) {
  TempDir dir;
  std::string full = container('G', gzip(sample_msgpack()));
  for (size_t keep : {size_t(6), size_t(10), size_t(30), full.size() / 2, full.size() - 9, full.size() - 1}) {
    std::string path = write_file(dir, "trunc.msgpack.gz", full.substr(0, keep));
    std::string msg = load_error(path);
    EXPECT_THAT(msg, HasSubstr(path)) << keep;
    EXPECT_THAT(msg, ::testing::AnyOf(HasSubstr("truncated"), HasSubstr("corrupt"))) << keep << ": " << msg;
  }
}

TEST(WorkloadTrace, CorruptContainerIsInputError) {
  TempDir dir;
  std::string good = container('N', sample_msgpack());
  auto with = [&](size_t at, char byte) {
    std::string s = good;
    s[at] = byte;
    return s;
  };
  EXPECT_THAT(load_error(write_file(dir, "a.msgpack", with(0, 'X'))), HasSubstr("not a DCMP"));
  EXPECT_THAT(load_error(write_file(dir, "b.msgpack", with(4, '\x02'))), HasSubstr("version 2"));
  EXPECT_THAT(load_error(write_file(dir, "c.msgpack", with(5, 'Z'))), HasSubstr("compression byte"));
  EXPECT_THAT(load_error(write_file(dir, "d.msgpack", "DCM")), HasSubstr("not a DCMP"));
  EXPECT_THAT(load_error(write_file(dir, "e.msgpack", "")), HasSubstr("not a DCMP"));
  EXPECT_THAT(load_error(write_file(dir, "f.msgpack", container('N', ""))), HasSubstr("corrupt trace"));
  EXPECT_THAT(load_error(write_file(dir, "g.msgpack", container('N', sample_msgpack() + "xx"))),
              HasSubstr("unexpected bytes"));
  EXPECT_THAT(load_error(write_file(dir, "h.msgpack", container('G', "not gzip at all"))),
              HasSubstr("corrupt gzip"));
  // Nesting a million levels deep must be refused, not recursed into.
  EXPECT_THAT(load_error(write_file(dir, "i.msgpack", container('N', std::string(1000000, '\x91') + '\x01'))),
              HasSubstr("nested deeper"));
  // A map that is missing the fields we need.
  std::vector<uint8_t> other = nlohmann::json::to_msgpack({{"qid", 1}, {"prompt", "p"}});
  EXPECT_THAT(load_error(write_file(dir, "j.msgpack", container('N', std::string(other.begin(), other.end())))),
              HasSubstr("no `trace`"));
  std::vector<uint8_t> arr = nlohmann::json::to_msgpack({1, 2, 3});
  EXPECT_THAT(load_error(write_file(dir, "k.msgpack", container('N', std::string(arr.begin(), arr.end())))),
              HasSubstr("not a MessagePack map"));
  // Every truncation of a raw container is refused.
  for (size_t keep = 6; keep < good.size(); keep += 97) {
    EXPECT_THROW(load_workload(write_file(dir, "t.msgpack", good.substr(0, keep))), InputError) << keep;
  }
}

TEST(WorkloadTrace, RandomCorruptionNeverCrashes) {
  TempDir dir;
  std::mt19937 rng(42);
  for (char mode : {'N', 'G'}) {
    std::string good = container(mode, mode == 'G' ? gzip(sample_msgpack()) : sample_msgpack());
    for (int trial = 0; trial < 200; ++trial) {
      std::string s = good;
      for (int flips = 1 + rng() % 4; flips > 0; --flips) s[6 + rng() % (s.size() - 6)] = char(rng());
      std::string path = write_file(dir, "fuzz.msgpack", s);
      try {
        load_workload(path);  // a flip inside a string can still decode to a valid trace
      } catch (const InputError&) {
      }
    }
  }
}

TEST(WorkloadTrace, MsgpackCheckerAcceptsEveryType) {
  nlohmann::json doc = {{"i", -5},        {"u", 300},       {"big", 1ull << 40}, {"neg", -100000},
                        {"f", 0.25},      {"b", true},      {"n", nullptr},      {"s", std::string(300, 'x')},
                        {"a", {1, "two", 3.0}}, {"m", {{"k", "v"}}}, {"bin", nlohmann::json::binary({1, 2, 3})}};
  std::vector<uint8_t> bytes = nlohmann::json::to_msgpack(doc);
  EXPECT_EQ(workloads::check_msgpack(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), 64, 100), "");
  EXPECT_NE(workloads::check_msgpack(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), 64, 10),
            "");
}

// Bombs: a small gzip inflating past the inflated-bytes limit, and a small MessagePack array of
// millions of one-byte ints (past the value limit; nlohmann would need ~16 bytes each), are each
// one InputError naming the file, found before anything large is allocated.
TEST(WorkloadTrace, DecompressionAndElementBombsAreRefused) {
  TempDir dir;
  const std::string zeros(80u << 20, '\0');
  std::string path = write_file(dir, "inflate.msgpack.gz", container('G', gzip(zeros)));
  EXPECT_THAT(load_error(path), AllOf(HasSubstr("inflate.msgpack.gz"), HasSubstr("inflates to more than")));
  std::string ints = "\xdd";
  const uint32_t n = 5u << 20;
  for (int shift = 24; shift >= 0; shift -= 8) ints += char((n >> shift) & 0xff);
  ints += std::string(n, '\x01');
  path = write_file(dir, "values.msgpack.gz", container('G', gzip(ints)));
  EXPECT_THAT(load_error(path), AllOf(HasSubstr("values.msgpack.gz"), HasSubstr("more than 4194304 values")));
}

}  // namespace
}  // namespace kvb
