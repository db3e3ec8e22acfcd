#include "run/progress.hpp"

#include <cstdio>

#include <fmt/format.h>

namespace kvb {

namespace {

std::string duration(double seconds) {
  const long s = static_cast<long>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, s / 60 % 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

std::string count(double n) {
  if (n >= 1e6) return fmt::format("{:.2f}M", n / 1e6);
  if (n >= 1e4) return fmt::format("{:.1f}K", n / 1e3);
  return fmt::format("{:.0f}", n);
}

}  // namespace

std::string ProgressReporter::describe(const std::string& run, const DecodeProgress& p, double seconds, int max_tokens) {
  const double rate = seconds > 0 ? double(p.tokens) / seconds : 0.0;
  std::string text = fmt::format("{}: {}/{} sequences ({} running), {} tokens, {} tok/s", run, p.finished, p.total,
                                 p.running, count(double(p.tokens)), count(rate));
  if (p.finished < p.total && rate > 0) {
    const double per_sequence = p.finished > 0 ? double(p.finished_tokens) / p.finished : double(max_tokens);
    const double remaining = double(p.finished_tokens) + per_sequence * (p.total - p.finished) - double(p.tokens);
    if (remaining > 0) text += ", ETA " + duration(remaining / rate);
  }
  return text;
}

void ProgressReporter::begin(const std::string& run, int sequences, int max_tokens) {
  run_ = run;
  max_tokens_ = max_tokens;
  last_ = DecodeProgress{};
  last_.total = sequences;
  started_ = shown_ = Clock::now();
  any_ = false;
}

void ProgressReporter::update(const DecodeProgress& progress) {
  last_ = progress;
  if (style_ == ProgressStyle::None) return;
  const double since = std::chrono::duration<double>(Clock::now() - shown_).count();
  if (since >= (style_ == ProgressStyle::Terminal ? 0.25 : 30.0)) show(false);
}

void ProgressReporter::end() {
  if (style_ == ProgressStyle::None || (!any_ && last_.tokens == 0)) return;
  show(true);
}

void ProgressReporter::show(bool final) {
  shown_ = Clock::now();
  any_ = true;
  const std::string text = describe(run_, last_, std::chrono::duration<double>(shown_ - started_).count(), max_tokens_);
  if (style_ == ProgressStyle::Terminal)
    std::fprintf(stderr, "\r\033[Kkvbench: %s%s", text.c_str(), final ? "\n" : "");
  else
    std::fprintf(stderr, "kvbench: %s\n", text.c_str());
  std::fflush(stderr);
}

}  // namespace kvb
