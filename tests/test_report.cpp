// kvbench report: the markdown table equals what run printed, CSV has a row per run, and bad
// files exit 2 naming the file.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "test_support.hpp"

namespace kvb::test {
namespace {

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(CliReport, MarkdownIsTheRunTableAndCsvHasARowPerRun) {
  TempDir dir;
  const auto out = dir / "run";
  CommandResult run = run_kvbench("run -q --method full,streaming,h2o --budget 16 --divide-length 8 -n 40 --out " +
                                  out.string());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const std::string result = (out / "result.json").string();
  CommandResult md = run_kvbench("report " + result);
  ASSERT_EQ(md.exit_code, 0) << md.output;
  EXPECT_NE(run.output.find(md.output), std::string::npos) << "run printed:\n" << run.output << "\nreport:\n" << md.output;

  ASSERT_EQ(run_kvbench("report " + result + " --format csv --out " + (dir / "r.csv").string()).exit_code, 0);
  const std::string csv = read_text(dir / "r.csv");
  std::istringstream lines(csv);
  std::string header, line;
  std::getline(lines, header);
  EXPECT_EQ(header.rfind("model,mode,device,method,budget,", 0), 0u) << header;
  std::vector<std::string> rows;
  while (std::getline(lines, line)) rows.push_back(line);
  ASSERT_EQ(rows.size(), 3u) << csv;
  const auto columns = [](const std::string& s) {  // commas outside double quotes, + 1
    int n = 1;
    bool quoted = false;
    for (char c : s) {
      if (c == '"') quoted = !quoted;
      n += c == ',' && !quoted;
    }
    return n;
  };
  for (const auto& r : rows) EXPECT_EQ(columns(r), columns(header)) << r;
  EXPECT_NE(rows[0].find(",replay,cpu,full,,4,"), std::string::npos) << rows[0];
  EXPECT_NE(rows[1].find(",replay,cpu,streaming,16,4,"), std::string::npos) << rows[1];
}

TEST(CliReport, BadFilesAndFormatsExitTwo) {
  TempDir dir;
  std::ofstream(dir / "not.json") << "{nope";
  std::ofstream(dir / "other.json") << R"({"schema_version": 99, "runs": []})";
  std::ofstream(dir / "broken.json") << R"({"schema_version": 1, "runs": [{"method": "full"}]})";
  for (const auto& [args, expect] : std::vector<std::pair<std::string, std::string>>{
           {"report /nonexistent.json", "/nonexistent.json"},
           {"report " + (dir / "not.json").string(), "not.json"},
           {"report " + (dir / "other.json").string(), "schema version 99"},
           {"report " + (dir / "broken.json").string(), "broken.json"},
           {"report " + (dir / "other.json").string() + " --format pdf", "--format pdf"},
           {"report " + (dir / "other.json").string() + " --format html", "not implemented yet"}}) {
    CommandResult r = run_kvbench(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(expect), std::string::npos) << args << "\n" << r.output;
  }
}

}  // namespace
}  // namespace kvb::test
