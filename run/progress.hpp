#pragma once
// The progress of a run on stderr, per method and budget: sequences finished and running, tokens,
// tokens/s and an ETA. On a terminal one status line is redrawn in place (at most 4 times a
// second); otherwise (CI logs) a plain line every 30 seconds and one when the run ends; nothing
// with --quiet. The ETA assumes the unfinished sequences will be as long as the finished ones
// (as long as the length cap before any has finished).
#include <chrono>
#include <string>

#include "engine/decode_loop.hpp"

namespace kvb {

enum class ProgressStyle { None, Terminal, Lines };

class ProgressReporter {
 public:
  explicit ProgressReporter(ProgressStyle style) : style_(style) {}
  // A (method, budget) run of `sequences` sequences of at most `max_tokens` tokens each begins.
  void begin(const std::string& run, int sequences, int max_tokens);
  void update(const DecodeProgress& progress);
  // The run ended (finished, interrupted or failed): its last state.
  void end();

  // The status text of `progress` after `seconds` (for tests).
  static std::string describe(const std::string& run, const DecodeProgress& progress, double seconds, int max_tokens);

 private:
  using Clock = std::chrono::steady_clock;
  void show(bool final);

  ProgressStyle style_;
  std::string run_;
  int max_tokens_ = 0;
  DecodeProgress last_;
  Clock::time_point started_, shown_;
  bool any_ = false;
};

}  // namespace kvb
