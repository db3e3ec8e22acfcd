// kvbench report: the markdown table equals what run printed, CSV has a row per run, and bad
// files exit 2 naming the file.
#include <gtest/gtest.h>

#include <cstdlib>
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
           {"report " + (dir / "other.json").string() + " --format html", "schema version 99"}}) {
    CommandResult r = run_kvbench(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(expect), std::string::npos) << args << "\n" << r.output;
  }
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(CliReport, HtmlIsOneSelfContainedPageWithItsCharts) {
  TempDir dir;
  const auto out = dir / "run";
  CommandResult run = run_kvbench("run -q --method full,streaming,h2o --budget 16,24 --divide-length 8 -n 40 --format html,md --out " +
                                  out.string());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  ASSERT_TRUE(std::filesystem::exists(out / "result.md"));
  const std::string html = read_text(out / "result.html");
  EXPECT_EQ(html.rfind("<!doctype html>", 0), 0u);
  // Six charts: KV over steps, KL over steps, top-1 over steps, tokens/s and KV against budget, frontier.
  EXPECT_EQ(count_of(html, "<svg class=\"chart\""), 6u) << html.substr(0, 2000);
  EXPECT_EQ(count_of(html, "<svg"), count_of(html, "</svg>"));
  // Per-step charts: one polyline per run (KV: 5 runs; KL and top-1: the 4 budgeted runs), budget
  // charts one per method (3), frontier one dot per run.
  EXPECT_EQ(count_of(html, "<polyline"), 5u + 4u + 4u + 3u + 3u);
  EXPECT_EQ(count_of(html, "<circle"), 5u);
  // Nothing fetched from anywhere: no scripts, no links, no remote resources.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http"), std::string::npos);
  EXPECT_NE(html.find("h2o@24"), std::string::npos);

  // report --format html on the same result gives the same page; without steps.csv it says so.
  CommandResult again = run_kvbench("report " + (out / "result.json").string() + " --format html");
  ASSERT_EQ(again.exit_code, 0);
  EXPECT_EQ(again.output, html);
  std::filesystem::create_directories(dir / "alone");
  std::filesystem::copy_file(out / "result.json", dir / "alone" / "result.json");
  CommandResult alone = run_kvbench("report " + (dir / "alone" / "result.json").string() + " --format html");
  ASSERT_EQ(alone.exit_code, 0);
  EXPECT_NE(alone.output.find("No steps.csv beside the result"), std::string::npos);
  EXPECT_EQ(count_of(alone.output, "<svg class=\"chart\""), 3u);
}

TEST(CliReport, HtmlRendersInHeadlessChromium) {
  // The page loads and paints in a real browser (Debian's chromium), where one is installed.
  if (std::system("command -v chromium >/dev/null 2>&1") != 0) GTEST_SKIP() << "chromium is not installed";
  TempDir dir;
  ASSERT_EQ(run_kvbench("run -q --method full,streaming --budget 16 --divide-length 8 -n 30 --format html --out " +
                        dir.path().string()).exit_code, 0);
  const auto png = dir / "page.png";
  const std::string cmd = "timeout 120 chromium --headless --no-sandbox --disable-gpu --window-size=1200,2000 --screenshot=" +
                          png.string() + " file://" + (dir / "result.html").string() + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  ASSERT_TRUE(std::filesystem::exists(png));
  EXPECT_GT(std::filesystem::file_size(png), 20000u);  // a blank 1200x2000 page compresses far smaller
}

}  // namespace
}  // namespace kvb::test
