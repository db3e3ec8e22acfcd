#pragma once
// Models shipped in the repository's models/ folder, named "builtin:<name>" on the command line
// (today one: "builtin:dfs-reasoner", trained by tools/train-reasoner; the default of `kvbench
// run`). A bundled model is an ordinary Hugging Face folder; the name only says where it is:
// $KVBENCH_MODELS_DIR/<name> when that variable is set, else <source tree>/models/<name> (the
// path compiled in). A model folder may carry the workload it is meant for, `workload.jsonl`,
// which runs when no workload is given.
#include <string>

namespace kvb {

inline constexpr const char* kDefaultModel = "builtin:dfs-reasoner";

// How many items of a model folder's own workload run when no --limit is given: enough to rank the
// methods, few enough that the default `kvbench run` (every method at two budgets, 11 runs) takes
// under a minute on a 2-core CPU (about 1.3 s per item there). `--limit 0` runs them all.
inline constexpr int kModelWorkloadQuickItems = 32;

// The folder a "builtin:<name>" spec names; any other spec is returned unchanged. Throws
// InputError naming the spec and the folder looked in when it is missing.
std::string resolve_model_spec(const std::string& spec);

// "<folder>/workload.jsonl" when `spec` resolves to a folder that has one, else "".
std::string model_default_workload(const std::string& spec);

}  // namespace kvb
