#pragma once
// One `kvbench run`: check the configuration, resolve the device, load the workload and the model,
// turn items into decode requests, complete replay traces, calibrate, decode every method and
// budget, and assemble the result document. The CLI only parses flags into a RunConfig and writes
// what this returns. Above the engine: run/ may use engine/, reports/ and profiler/; none of them
// uses run/.
#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/bundled_models.hpp"
#include "engine/decode_loop.hpp"
#include "engine/methods/method.hpp"
#include "engine/sampler.hpp"
#include "run/progress.hpp"
#include "run/prompt_builder.hpp"
#include "run/shard_plan.hpp"

namespace kvb {

struct RunConfig {
  std::string model = kDefaultModel;  // builtin:dfs-reasoner
  std::string tokenizer;          // llama2.c tokenizer override
  std::string prompt;             // a single prompt (wins over workload)
  std::string workload;           // file or builtin:<name>; empty = the model folder's workload.jsonl, else builtin:stories
  // The workload's first N items only; 0: all. Unset: all, except a model folder's own workload
  // (no --workload or --prompt), of which the first kModelWorkloadQuickItems run.
  std::optional<int> limit;
  RunMode mode = RunMode::Replay;
  int max_new_tokens = 512;
  int max_length = 0;             // cap on prompt + new tokens per sequence (Hugging Face's max_length); 0: none
  PromptSettings prompt_settings; // how items become prompts (--prompt-template, --system-prompt, --template-var)
  SamplingParams sampling;        // the flags' values (or kvbench's defaults)
  // Where each sampling setting given came from: "flag" or "preset" ("": not given); the others
  // come from the model's generation_config.json when it has one (recorded per setting).
  struct SamplingGiven {
    std::string temperature, top_p, top_k, min_p;
  } sampling_given;
  std::optional<int> top_k_when_unshipped;  // --preset: top-k when nothing else sets it (transformers' default)
  nlohmann::json preset;          // --preset: {name, set, overridden} (settings.preset); null without one
  int samples = 1;                // generate: draws per item (--samples)
  int batch_size = 1;
  int warmup = -1;                // repetitions run first and discarded; -1 = 1 in throughput mode, else 0
  int repeat = -1;                // measured repetitions; -1 = 5 in throughput mode, else 1
  // Every method x every budget is run; by default all of them at two budgets.
  std::vector<Method> methods = every_method();
  std::vector<int> budgets = {256, 384};  // above the bundled reasoner's prompts (<= 178 tokens), which TriAttention pins
  int divide_length = 128;
  PolicyConfig method_options;    // per-method settings (sinks, windows, TriAttention options)
  std::string stats_path;         // TriAttention query statistics (--stats)
  std::string device = "auto";    // auto | cpu | cuda[:N]
  std::string kv_dtype;           // --kv-dtype: f32 | bf16 | f16; empty = f32 on the CPU, bf16 on a GPU
  int threads = 0;                // 0 = all cores
  bool hash_files = true;
  bool trace = false;             // host phase ranges: per-op table in the result and a Chrome trace
  std::string dump_kept;          // JSONL of the positions kept at every compression event (--dump-kept)
  // Generate and replay modes: the journal of finished sequences (run/journal.hpp); empty: none.
  // With `resume`, the journal an earlier run left there is read and continued (--resume).
  std::string journal;
  bool resume = false;
  // This process's share of the work units (run/shard_plan.hpp); none: all of them. A shard
  // writes its manifest (run/shard_manifest.hpp) into `shard_dir` before it decodes.
  std::optional<ShardPlace> shard;
  std::string shard_dir;
  ProgressStyle progress = ProgressStyle::None;  // the decoding's progress on stderr
  std::vector<std::string> command_line;
};

struct BenchmarkResult {
  nlohmann::json document;  // the canonical result (run/result.hpp)
  std::string steps_csv;    // per-step series (run/steps_csv.hpp)
  nlohmann::json trace;     // Chrome trace document with --trace, else null
  bool interrupted = false;
  std::string failure;      // non-empty when a runtime failure ended the run early
};

// Throws InputError for bad input (before anything is measured). A RuntimeFailure during
// decoding is caught and reported in the result (status "failed") so what was measured is kept.
BenchmarkResult run_benchmark(const RunConfig& config, const std::atomic<bool>* stop,
                              const std::function<void(const std::string&)>& progress);

}  // namespace kvb
