// report and compare read result files from other machines: every document is checked against the
// documented schema first, so a missing key or a wrong type anywhere is exit 2 naming the file and
// the field, never a read out of bounds (const operator[] on a missing key) or an escaped
// json::type_error. The property is checked by mutating every node of real result documents
// (deleted, null, a string, an empty array) and rendering or comparing whatever validates; under
// the ASan/UBSan build (scripts/sanitize.sh) an unguarded read is a failure, not luck.
#include <gtest/gtest.h>

#include <fstream>

#include "reports/compare.hpp"
#include "reports/report.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

namespace kvb::test {
namespace {

using nlohmann::json;

// Every JSON pointer in `doc` but the root.
void collect_pointers(const json& doc, const json::json_pointer& at, std::vector<json::json_pointer>& out) {
  if (doc.is_object())
    for (const auto& [key, value] : doc.items()) {
      out.push_back(at / key);
      collect_pointers(value, at / key, out);
    }
  if (doc.is_array())
    for (size_t i = 0; i < doc.size(); ++i) {
      out.push_back(at / i);
      collect_pointers(doc[i], at / i, out);
    }
}

// Writes `doc`, reads it as report and compare do, and renders or compares it when it validates.
// Returns "" when the outcome is one of the two allowed ones, else what happened.
std::string read_and_render(const json& doc, const std::filesystem::path& file) {
  { std::ofstream(file) << doc.dump(); }
  json read;
  try {
    read = read_result_file(file.string());
  } catch (const InputError& e) {
    const std::string what = e.what();
    if (what.find(file.string()) == std::string::npos) return "an error that names no file: " + what;
    if (what.find('\n') != std::string::npos) return "an error of more than one line: " + what;
    return "";
  } catch (const std::exception& e) {
    return std::string("read: ") + e.what();
  }
  try {
    for (const char* format : {"md", "csv", "html"}) (void)render_report(read, format, "");
  } catch (const std::exception& e) {
    return std::string("render of a document that validated: ") + e.what();
  }
  try {  // refusing to compare (no run in common) is an answer too
    (void)compare_results(read, read, default_metric_rules(), file.string(), file.string());
  } catch (const InputError& e) {
    if (std::string(e.what()).find('\n') != std::string::npos) return std::string("compare: ") + e.what();
  } catch (const std::exception& e) {
    return std::string("render of a document that validated: ") + e.what();
  }
  return "";
}

void check_every_mutation(const json& doc, const std::filesystem::path& file) {
  std::vector<json::json_pointer> pointers;
  collect_pointers(doc, json::json_pointer(), pointers);
  ASSERT_GT(pointers.size(), 50u);
  int validated = 0;
  for (const json::json_pointer& p : pointers) {
    const std::string parent = p.parent_pointer().to_string();
    json deleted = doc;
    json& holder = deleted.at(p.parent_pointer());
    if (holder.is_object()) holder.erase(p.back());
    else holder.erase(holder.begin() + std::stol(p.back()));
    for (const json& replacement : {json(nullptr), json("x"), json::array(), json(-1)}) {
      json changed = doc;
      changed.at(p) = replacement;
      const std::string e = read_and_render(changed, file);
      EXPECT_EQ(e, "") << p.to_string() << " = " << replacement.dump();
    }
    const std::string e = read_and_render(deleted, file);
    EXPECT_EQ(e, "") << p.to_string() << " deleted";
    validated += e.empty();
    if (testing::Test::HasFailure()) return;  // the first node that breaks a reader is enough to read
  }
  EXPECT_GT(validated, 0);
}

TEST(ResultValidation, EveryMutatedNodeIsRenderedOrRefusedNamingTheFile) {
  TempDir dir;
  const auto workload = dir / "q.jsonl";
  std::ofstream(workload) << "{\"id\": \"a\", \"prompt\": \"Once upon a time\", \"answer\": \"Lily\"}\n";
  ASSERT_EQ(run_kvbench("run -q --method full,streaming --budget 16 --divide-length 8 -n 24 --trace --out " +
                        (dir / "replay").string()).exit_code, 0);
  ASSERT_EQ(run_kvbench("run -q --mode throughput --method full --repeat 2 -n 8 --out " + (dir / "throughput").string())
                .exit_code, 0);
  ASSERT_EQ(run_kvbench("run -q --mode generate --method full,streaming --budget 8 --divide-length 4 -n 16 "
                        "--samples 2 --temperature 0.8 --workload " + workload.string() + " --out " +
                        (dir / "generate").string()).exit_code, 0);
  for (const char* name : {"replay", "generate", "throughput"}) {
    SCOPED_TRACE(name);
    check_every_mutation(read_result(dir / name), dir / "mutated.json");
  }
}

TEST(ResultValidation, WrongTypesNameTheFieldAndExitTwo) {
  TempDir dir;
  ASSERT_EQ(run_kvbench("run -q --method full -n 8 --out " + (dir / "r").string()).exit_code, 0);
  const json good = read_result(dir / "r");
  for (const auto& [pointer, value, field] : std::vector<std::tuple<std::string, json, std::string>>{
           {"/workload", nullptr, "/workload"},
           {"/tool", nullptr, "/tool"},
           {"/started_at", 12, "/started_at"},
           {"/runs/0/method", "full\nsecond line", "/runs/0/method"}}) {
    json doc = good;
    doc[json::json_pointer(pointer)] = value;
    const auto file = dir / "bad.json";
    std::ofstream(file) << doc.dump();
    for (const std::string& command : std::vector<std::string>{"report ", "compare " + file.string() + " "}) {
      CommandResult r = run_kvbench(command + file.string());
      EXPECT_EQ(r.exit_code, 2) << command << pointer << "\n" << r.output;
      EXPECT_NE(r.output.find("bad.json"), std::string::npos) << r.output;
      EXPECT_NE(r.output.find(field), std::string::npos) << r.output;
      EXPECT_EQ(r.output.find('\n'), r.output.size() - 1) << "not one line:\n" << r.output;
    }
  }
}

TEST(ResultValidation, DeeplyNestedValuesAreRefusedBeforeTheyAreRead) {
  TempDir dir;
  ASSERT_EQ(run_kvbench("run -q --method full -n 8 --out " + (dir / "r").string()).exit_code, 0);
  std::string text;
  {
    std::ifstream in(dir / "r" / "result.json");
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const size_t at = text.find("\"status\"");
  ASSERT_NE(at, std::string::npos);
  std::ofstream(dir / "deep.json") << text.substr(0, at) << "\"extra\": " << deep << ", " << text.substr(at);
  CommandResult r = run_kvbench("report " + (dir / "deep.json").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("deep.json"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("nest"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace kvb::test
