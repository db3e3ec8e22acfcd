#pragma once
// Workloads: what kvbench decodes. One item per sequence: a prompt (text or token ids), optionally
// a recorded continuation to replay, a reference answer, and a max number of new tokens.
// The JSONL format is documented in docs/workloads.md.
#include <optional>
#include <string>
#include <vector>

#include "workloads/grading.hpp"

namespace kvb {

struct WorkloadItem {
  std::string id;
  std::string prompt_text;              // used when prompt_ids is empty: the question, or a whole prompt
  // The text is a prompt already rendered as the model saw it (a recorded trace's): no template
  // is applied to it.
  bool prompt_rendered = false;
  std::vector<int> prompt_ids;          // verbatim (no BOS added) when non-empty
  std::string continuation_text;        // recorded continuation as text (tokenized at run time)
  std::vector<int> continuation_ids;    // recorded continuation as ids (wins over text)
  std::optional<std::string> answer;    // reference answer for grading
  AnswerKind grading = AnswerKind::Auto; // how `answer` is compared (the JSONL "grading" field)
  int max_new_tokens = 0;               // 0: use --max-new-tokens
};

struct Workload {
  std::string source;  // path, "builtin:<name>" or "prompt"
  std::string format;  // "jsonl", "r1-trace", "builtin", "prompt"
  std::string sha256;  // of the file, empty for built-in ones
  std::vector<WorkloadItem> items;
};

// Reads a workload file: JSONL (docs/workloads.md) or a recorded DeepSeek-R1 trace
// (.msgpack / .msgpack.gz, DCMP container). Throws InputError naming the file (and line).
Workload load_workload(const std::string& path);

// Built-in workloads that need no files: "stories" (short story openings).
Workload builtin_workload(const std::string& name);

// A workload of one prompt given on the command line.
Workload single_prompt_workload(const std::string& text);

// What -p / -w name: one prompt when `prompt` is given, else `spec` (a file, builtin:<name>, or
// empty for builtin:stories).
Workload resolve_workload(const std::string& prompt, const std::string& spec);

}  // namespace kvb
