// Nothing lost: result files are written to a temporary name, synced and renamed into place, so a
// run killed with SIGKILL at any moment leaves the previous result.json (or none), never a
// truncated one; a full disk (here a file-size limit, which fails writes with EFBIG as a full disk
// fails them with ENOSPC) ends with exit 3 and one line naming the file that could not be written.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "test_support.hpp"
#include "util/json_fields.hpp"

namespace kvb::test {
namespace {

// Runs `script` with sh; exit code (128 + signal when killed) and what it printed.
CommandResult shell(const std::string& script) {
  CommandResult r;
  FILE* pipe = popen(("(" + script + ") 2>&1").c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) r.output.append(buf, n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kRun = std::string("'") + KVBENCH_BINARY +
                         "' run -q --device cpu -m synthetic:tiny --method full,streaming,h2o --budget 16 --divide-length 8 -n 48 --out ";

TEST(Reliability, SigkillAtAnyMomentLeavesThePreviousResultOrAWholeNewOne) {
  TempDir dir;
  const auto out = dir / "run";
  ASSERT_EQ(shell(kRun + out.string()).exit_code, 0);
  const std::string previous = slurp(out / "result.json");
  ASSERT_NO_THROW(parse_json(previous, "previous"));
  int killed = 0;
  // Kill points spread over start-up, the runs and the writing of the outputs.
  for (const char* delay : {"0.01", "0.05", "0.1", "0.2", "0.3", "0.4", "0.5", "0.7", "0.9", "1.2", "1.6", "2.0"}) {
    const CommandResult r = shell("timeout -s KILL " + std::string(delay) + " " + kRun + out.string());
    killed += r.exit_code == 128 + 9 || r.exit_code == 137;
    const std::string now = slurp(out / "result.json");
    ASSERT_FALSE(now.empty()) << "killed after " << delay << " s: result.json is gone or empty";
    if (now != previous) EXPECT_NO_THROW(parse_json(now, "result.json")) << "killed after " << delay << " s";
  }
  EXPECT_GT(killed, 0) << "no run was killed: the kill points missed the run";
}

TEST(Reliability, AFullDiskEndsWithExitThreeNamingTheFile) {
  TempDir dir;
  // ulimit -f counts 1024-byte blocks: limits from 14 to 24 KiB hold the journal's first lines,
  // not all of them, so the journal fails at some line: after a sequence, or after a run's
  // closing line (the case that once ended the sweep without writing result.json).
  for (int limit = 14; limit <= 24; limit += 2) {
    const auto out = dir / ("run-" + std::to_string(limit));
    const CommandResult r = shell("ulimit -f " + std::to_string(limit) + "; " + kRun + out.string());
    EXPECT_EQ(r.exit_code, 3) << limit << ": " << r.output;
    // The journal's failure stopped the run and is said; what was measured before it is kept:
    // the journal's complete lines, and result.json marked failed, unless writing it failed
    // too, which is then said as well.
    EXPECT_NE(r.output.find("journal.jsonl: write failed: File too large"), std::string::npos) << limit << ": " << r.output;
    EXPECT_FALSE(slurp(out / "journal.jsonl").empty()) << limit;
    if (std::filesystem::exists(out / "result.json")) {
      const nlohmann::json doc = parse_json(slurp(out / "result.json"), "result.json");
      EXPECT_EQ(doc["status"], "failed") << limit;
    } else {
      EXPECT_NE(r.output.find("result.json: write failed"), std::string::npos) << limit << ": " << r.output;
    }
  }
  // A limit that the journal's lines fit under and the result does not: result.json is refused
  // whole (no truncated file), the message names it.
  // (this run's journal is ~10 KB, its result.json ~16 KB)
  const CommandResult small = shell("ulimit -f 12; '" + std::string(KVBENCH_BINARY) +
                                    "' run -q --device cpu -m synthetic:tiny --method full,streaming --budget 16 --divide-length 8 -n 8 --out " +
                                    (dir / "small").string());
  EXPECT_EQ(small.exit_code, 3) << small.output;
  EXPECT_NE(small.output.find("result.json: write failed: File too large"), std::string::npos) << small.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "small" / "result.json"));
  EXPECT_FALSE(slurp(dir / "small" / "journal.jsonl").empty());
}

}  // namespace
}  // namespace kvb::test
