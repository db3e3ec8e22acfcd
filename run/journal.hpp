#pragma once
// The journal of a generate or replay run: OUT/journal.jsonl records every finished (method, budget, item,
// draw) as it ends, so that `--resume OUT` continues a run that was interrupted or crashed and
// gives the same sequences, grades and accuracy as a run that never stopped.
//
// Format (JSON lines, appended and flushed line by line):
//   {"kvbench_journal": 1, "command_line": [...], "fingerprint": {...}}      first line
//   {"run": "snapkv@64", "sequence": {"id", "item", "draw", "prompt", "tokens", "stop_reason",
//    "prefill_seconds", "kv_bytes": [[delta, count], ...], replay's per-step "target_logprob",
//    "predicted", "kl", "full_logprob", "full_predicted", "retained_mass" when it has them}}
//                                                                            a finished sequence
//   {"run": "snapkv@64", "complete": {"stats": {...}, "peak_rss_bytes", "timed_sequences"}}
// The fingerprint holds everything a sequence's tokens depend on (kvbench's commit, the model and
// its files, the workload's sha256, the mode, length cap, sampling, seed, draws, device, every
// run's name and parameters, the prompt's rendering); a resume whose fingerprint differs is an
// InputError naming the first setting that differs. The batch size is not in it: a draw's tokens
// do not depend on it. `kv_bytes` is the per-step KV byte series, run-length encoded as deltas
// (exact). A crash can leave the last line torn (no newline): it is dropped on resume, and the
// file cut back to its last whole line before new lines are appended; any other unreadable line
// is an InputError naming the file and line.
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/decode_loop.hpp"

namespace kvb {

// What the journal holds of one (method, budget) run.
struct JournalRun {
  std::map<std::pair<int, int>, SequenceOutcome> sequences;  // by (item, draw)
  // Set once the run finished: its measurements (the timings cover `timed_sequences` of its
  // sequences: those decoded in the session that finished it).
  struct Complete {
    DecodeStats stats;
    uint64_t peak_rss_bytes = 0;
    int timed_sequences = 0;
  };
  std::optional<Complete> complete;
};

// A journal read back: the run it was written for and what it holds.
struct JournalContents {
  nlohmann::json fingerprint;
  std::map<std::string, JournalRun> runs;  // by run name
  uint64_t whole_bytes = 0;                // where its last whole line ends
};

// The journal at `path` (a torn last line left out). InputError, starting with `context` (the
// flag or command reading it), when it is missing, unreadable or not a journal.
JournalContents read_journal(const std::string& path, const std::string& context);

class RunJournal {
 public:
  // A new journal at `path` (an existing one is replaced).
  static RunJournal create(const std::string& path, const std::vector<std::string>& command_line,
                           const nlohmann::json& fingerprint);
  // The journal at `path`, read back and opened for appending. InputError when it is missing,
  // unreadable, or was written for a run with another fingerprint.
  static RunJournal resume(const std::string& path, const nlohmann::json& fingerprint);

  RunJournal(RunJournal&& other) noexcept;
  RunJournal& operator=(RunJournal&&) = delete;
  ~RunJournal();

  // What an earlier session journalled of `run` (empty when nothing).
  const JournalRun& previous(const std::string& run) const;
  void record_sequence(const std::string& run, const SequenceOutcome& sequence);
  void record_complete(const std::string& run, const JournalRun::Complete& complete);

 private:
  RunJournal(std::string path, std::FILE* file) : path_(std::move(path)), file_(file) {}
  void append(const nlohmann::json& line);

  std::string path_;
  std::FILE* file_ = nullptr;
  std::map<std::string, JournalRun> previous_;
};

// The command line a journal was written for (its first line), for `kvbench run --resume DIR`
// without other flags. InputError when the journal is missing or unreadable.
std::vector<std::string> journal_command_line(const std::string& path);

// The first place where two fingerprints differ, as "key.sub: a vs b"; empty when equal.
std::string first_difference(const nlohmann::json& a, const nlohmann::json& b, const std::string& at = "");

}  // namespace kvb
