// The progress line (run/progress.hpp): counts, rate and ETA from a run's state.
#include <gtest/gtest.h>

#include "run/progress.hpp"

namespace kvb {
namespace {

TEST(Progress, DescribesCountsRateAndEta) {
  DecodeProgress p;
  p.total = 10;
  p.finished = 4;
  p.running = 2;
  p.tokens = 5000;
  p.finished_tokens = 4000;  // 1,000 tokens a finished sequence
  // 6 sequences left at 1,000 tokens, 1,000 of them already decoded: 5,000 more at 100 tok/s.
  EXPECT_EQ(ProgressReporter::describe("tri@512", p, 50.0, 4096),
            "tri@512: 4/10 sequences (2 running), 5000 tokens, 100 tok/s, ETA 50s");
  // Before any finishes, the length cap stands in for the length: 10 x 32,768 - 20,000 at 2,000 tok/s.
  p.finished = 0;
  p.finished_tokens = 0;
  p.tokens = 20000;
  EXPECT_EQ(ProgressReporter::describe("full", p, 10.0, 32768),
            "full: 0/10 sequences (2 running), 20.0K tokens, 2000 tok/s, ETA 2m34s");
  p.finished = 10;
  EXPECT_EQ(ProgressReporter::describe("full", p, 10.0, 32768), "full: 10/10 sequences (2 running), 20.0K tokens, 2000 tok/s");
}

}  // namespace
}  // namespace kvb
