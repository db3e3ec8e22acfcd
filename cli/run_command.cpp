#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/commands.hpp"
#include "run/gpu_workers.hpp"
#include "run/benchmark.hpp"
#include "run/journal.hpp"
#include "run/presets.hpp"
#include "run/shard_manifest.hpp"
#include "reports/result_outputs.hpp"
#include "reports/table.hpp"
#include "util/errors.hpp"
#include "util/timestamp.hpp"

namespace kvb::cli {

namespace fs = std::filesystem;

namespace {

std::atomic<bool> g_stop{false};

// First Ctrl-C: finish the current step and write what was measured; second: default action.
void on_interrupt(int) {
  g_stop.store(true);
  std::signal(SIGINT, SIG_DFL);
}

struct RunFlags {
  RunConfig config;
  CLI::App* command = nullptr;
  std::string preset;
  std::string mode = "replay";
  std::string tri_mode = "per-head";
  std::string tri_aggregation = "mean";
  std::string batch = "1";
  std::vector<std::string> methods = every_method_name();
  std::string trigger;  // empty: each method's own
  std::string streaming_positions = "absolute";
  bool method_given = false;
  CLI::Option *temperature = nullptr, *top_p = nullptr, *top_k = nullptr, *min_p = nullptr;
  std::string out;
  std::string resume;  // --resume DIR
  std::string shard;   // --shard I/N
  bool no_hash = false;
  bool quiet = false;
  std::vector<std::string> formats;  // reports written beside result.json
};

fs::path default_out_dir() {
  fs::path base = fs::path("kvbench-out") / format_now("%Y%m%d-%H%M%S", false);
  fs::path p = base;
  for (int i = 2; fs::exists(p); ++i) p = base.string() + "-" + std::to_string(i);
  return p;
}

// --preset: each of its flags the command line did not give is applied as if given; the result
// records what the preset set and what the flags overrode.
void apply_preset(RunFlags& f, std::function<void(const std::string&)> say) {
  const Preset& preset = find_preset(f.preset);
  nlohmann::json set = nlohmann::json::object(), overridden = nlohmann::json::object();
  std::string shown;
  for (const auto& [flag, value] : preset.flags) {
    CLI::Option* option = f.command->get_option(flag);
    if (option->count() > 0) {
      overridden[flag] = fmt::format("{}", fmt::join(option->results(), ","));
      continue;
    }
    option->add_result(value);
    option->run_callback();
    set[flag] = value;
    shown += fmt::format(" {} {}", flag, value);
  }
  f.config.top_k_when_unshipped = preset.top_k_when_unshipped;
  f.config.preset = {{"name", preset.name}, {"summary", preset.summary}, {"set", set}, {"overridden", overridden}};
  say(fmt::format("preset {} ({}):{}{}", preset.name, preset.summary, shown,
                  overridden.empty() ? "" : fmt::format("; given flags win: {}", overridden.dump())));
}

int execute(RunFlags& f) {
  RunConfig& c = f.config;
  auto progress = [&f](const std::string& line) {
    if (!f.quiet) std::fprintf(stderr, "kvbench: %s\n", line.c_str());
  };
  std::set<std::string> preset_set;
  if (!f.preset.empty()) {
    apply_preset(f, progress);
    for (const auto& [flag, value] : c.preset["set"].items()) preset_set.insert(flag);
  }
  if (f.mode == "generate") c.mode = RunMode::Generate;
  else if (f.mode == "replay") c.mode = RunMode::Replay;
  else if (f.mode == "throughput") c.mode = RunMode::Throughput;
  else fail_input("--mode {}: expected replay, generate or throughput", f.mode);
  if (f.batch == "auto") {
    c.batch_size = 0;
  } else {
    size_t used = 0;
    try {
      c.batch_size = std::stoi(f.batch, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != f.batch.size() || c.batch_size <= 0)
      fail_input("--batch {}: expected a positive number of sequences or auto", f.batch);
  }
  auto source = [&](const CLI::Option* o, const char* flag) -> std::string {
    return preset_set.count(flag) ? "preset" : o->count() > 0 ? "flag" : "";
  };
  c.sampling_given = {source(f.temperature, "--temperature"), source(f.top_p, "--top-p"), source(f.top_k, "--top-k"),
                      source(f.min_p, "--min-p")};
  c.methods.clear();
  for (const std::string& name : f.methods) c.methods.push_back(parse_method(name));
  if (!f.trigger.empty()) c.method_options.trigger = parse_trigger(f.trigger);
  if (f.streaming_positions == "absolute") c.method_options.streaming_positions = StreamingPositions::Absolute;
  else if (f.streaming_positions == "cache") c.method_options.streaming_positions = StreamingPositions::Cache;
  else fail_input("--streaming-positions {}: expected absolute or cache", f.streaming_positions);
  // The default comparison of every method needs TriAttention statistics the user did not name.
  if (!f.method_given && c.stats_path.empty()) c.stats_path = "self";
  if (f.tri_mode == "per-head") c.method_options.tri.selection = TriSelection::PerHead;
  else if (f.tri_mode == "global") c.method_options.tri.selection = TriSelection::Global;
  else if (f.tri_mode == "per-layer-head") c.method_options.tri.selection = TriSelection::PerLayerHead;
  else fail_input("--tri-mode {}: expected per-head, global or per-layer-head", f.tri_mode);
  if (f.tri_aggregation == "mean") c.method_options.tri.scoring.aggregation = TriAggregation::Mean;
  else if (f.tri_aggregation == "max") c.method_options.tri.scoring.aggregation = TriAggregation::Max;
  else fail_input("--tri-aggregation {}: expected mean or max", f.tri_aggregation);
  c.hash_files = !f.no_hash;
  c.progress = f.quiet ? ProgressStyle::None : isatty(STDERR_FILENO) ? ProgressStyle::Terminal : ProgressStyle::Lines;

  if (!f.resume.empty()) {
    if (!f.out.empty() && fs::weakly_canonical(f.out) != fs::weakly_canonical(f.resume))
      fail_input("--resume {}: continues in that folder; drop --out {}", f.resume, f.out);
    f.out = f.resume;
    c.resume = true;
  }
  // Several GPUs: one worker per GPU, each a shard, merged (run/gpu_workers.hpp).
  if (const std::optional<std::vector<int>> gpus = worker_gpus(c.device)) {
    if (!f.shard.empty()) fail_input("--device {}: runs one shard per GPU itself; drop --shard", c.device);
    if (c.resume)
      fail_input("--device {}: resume each worker's shard on its own (kvbench run --resume OUT/shard-I-of-N --device "
                 "cuda:K), then kvbench merge OUT",
                 c.device);
    if (const std::optional<ShardPlace> placed = shard_from_environment([](const char* name) { return std::getenv(name); }))
      fail_input("--device {}: {} already makes this process shard {}; launch one task per GPU with --device cuda:N",
                 c.device, placed->placed_by, placed->text());
    return run_workers(c.command_line, *gpus, f.out.empty() ? default_out_dir().string() : f.out, f.formats, f.quiet);
  }
  // --shard I/N, else the launcher's place (run/shard_plan.hpp). A shard of the sweep SWEEP
  // writes SWEEP/shard-I-of-N (the same command line on every rank); resumed, the folder given.
  c.shard = !f.shard.empty() ? std::optional<ShardPlace>(parse_shard(f.shard))
                             : shard_from_environment([](const char* name) { return std::getenv(name); });
  if (c.shard && c.shard->placed_by != "--shard") progress(fmt::format("shard {} from {}", c.shard->text(), c.shard->placed_by));
  if (c.shard && f.out.empty())
    fail_input("--shard {}: give --out SWEEP (each shard writes SWEEP/shard-I-of-N; kvbench merge SWEEP joins them)",
               c.shard->text());
  const fs::path out_dir = f.out.empty() ? default_out_dir()
                           : c.shard && !c.resume ? fs::path(f.out) / fmt::format("shard-{}-of-{}", c.shard->index, c.shard->count)
                                                  : fs::path(f.out);
  c.journal = (out_dir / "journal.jsonl").string();  // written by generate and replay runs
  c.shard_dir = out_dir.string();
  if (c.resume && !fs::exists(c.journal))
    fail_input("--resume {}: no journal.jsonl there (generate and replay runs write one)", f.resume);
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) fail_input("--out {}: cannot create directory: {}", out_dir.string(), ec.message());

  std::signal(SIGINT, on_interrupt);
  BenchmarkResult r = run_benchmark(c, &g_stop, progress);
  fs::path result_path;
  try {
    result_path = write_result_outputs(out_dir, r.document, r.steps_csv, f.formats, r.trace);
    if (c.shard && r.document["status"] == "complete") mark_shard_complete(c.shard_dir, *c.shard);
  } catch (const RuntimeFailure&) {
    // The run's own failure (a journal line that a full disk refused) comes first: it is why
    // the run stopped; the output that could not be written then follows (exit 3 from main).
    if (!r.failure.empty()) std::fprintf(stderr, "kvbench: %s\n", r.failure.c_str());
    throw;
  }

  // A single prompt's text is worth printing; throughput mode's synthetic trace is not.
  if (!c.prompt.empty() && c.mode != RunMode::Throughput && !r.document["runs"].empty()) {
    for (const auto& s : r.document["runs"][0]["sequences"])
      std::printf("%s%s\n\n", c.prompt.c_str(), s["text"].get<std::string>().c_str());
  }
  std::fputs(render_summary_table(r.document).c_str(), stdout);
  std::printf("\nresult: %s\n", result_path.string().c_str());
  if (!r.failure.empty()) {
    std::fprintf(stderr, "kvbench: %s (partial result written)\n", r.failure.c_str());
    return 3;
  }
  if (r.interrupted) {
    std::fprintf(stderr, "kvbench: interrupted; partial result written\n");
    return 130;
  }
  return 0;
}

}  // namespace

std::vector<std::string> expand_resume(const std::vector<std::string>& args) {
  if (args.size() < 2 || args[1] != "run") return args;
  // What was given besides --resume DIR: settings that leave the tokens as they are (--device is
  // in the journal's fingerprint), which replace the recorded ones.
  std::string dir;
  std::vector<std::string> given, replaced = {"--out", "-o", "--resume"};
  for (size_t i = 2; i < args.size(); ++i) {
    const std::string& a = args[i];
    const bool valued = a.find('=') == std::string::npos && i + 1 < args.size();
    const std::string name = a.substr(0, a.find('='));
    if (name == "--resume") {
      dir = a.find('=') != std::string::npos ? a.substr(a.find('=') + 1) : valued ? args[++i] : "";
    } else if (a == "-q" || a == "--quiet") {
      given.push_back(a);
      replaced.insert(replaced.end(), {"-q", "--quiet"});
    } else if (name == "--batch" || name == "--threads" || name == "--format" || name == "--device") {
      given.push_back(a);
      if (valued) given.push_back(args[++i]);
      replaced.push_back(name);
    } else {
      return args;  // other flags: the command line as given, checked against the journal
    }
  }
  if (dir.empty()) return args;
  const std::vector<std::string> recorded = journal_command_line((fs::path(dir) / "journal.jsonl").string());
  std::vector<std::string> out(args.begin(), args.begin() + 2);
  for (size_t i = 2; i < recorded.size(); ++i) {
    const std::string& a = recorded[i];
    const std::string name = a.rfind("-o", 0) == 0 && a.size() > 2 && a[2] != '-' ? "-o=" : a.substr(0, a.find('='));
    if (name == "-o=") continue;  // -oDIR
    if (std::find(replaced.begin(), replaced.end(), name) == replaced.end()) {
      out.push_back(a);
      continue;
    }
    const bool flag = name == "-q" || name == "--quiet";
    if (!flag && a.find('=') == std::string::npos) ++i;  // and its value
  }
  out.push_back("--resume");
  out.push_back(dir);
  out.insert(out.end(), given.begin(), given.end());
  return out;
}

void add_prompt_options(CLI::App& cmd, PromptSettings& p) {
  cmd.add_option("--prompt-template", p.prompt_template,
                 "how items become prompts: chat (the model's chat template; the default when it has one) | plain "
                 "(the text as is; the default otherwise) | " + named_prompt_names() +
                     " (the TriAttention paper's prompt, plain or in the chat template) | FILE (a .jinja template "
                     "or a tokenizer_config.json)");
  cmd.add_option("--system-prompt", p.system_prompt, "chat templates: a system message before the item");
  cmd.add_option("--template-var", p.template_vars,
                 "chat templates: KEY=VALUE passed to the template (repeatable; VALUE read as JSON when it is, e.g. "
                 "enable_thinking=false)");
}

// The flags that tune one method; defaults follow shared/spec/triattention.md (HF research path).
void add_method_options(CLI::App& cmd, RunFlags& f) {
  PolicyConfig& p = f.config.method_options;
  cmd.add_option("--stats", f.config.stats_path,
                 "triattention: query statistics (.pt from TriAttention, `kvbench calibrate` output, or self: "
                 "calibrate on this run's own tokens; the default when --method is not given)");
  cmd.add_option("--tri-mode", f.tri_mode, "triattention selection: per-head | global | per-layer-head")
      ->capture_default_str();
  cmd.add_option("--tri-aggregation", f.tri_aggregation, "triattention: mean | max over the future offsets")
      ->capture_default_str();
  cmd.add_option("--tri-offset-max", p.tri.scoring.offset_max, "triattention: largest offset (1, 2, 4, ... up to this)")
      ->capture_default_str();
  cmd.add_flag("--tri-disable-mlr", p.tri.scoring.disable_mlr, "triattention ablation: norm term without the R discount");
  cmd.add_flag("--tri-disable-trig", p.tri.scoring.disable_trig, "triattention ablation: norm term only");
  cmd.add_option("--tri-protect-prompt", p.tri.protect_prompt, "triattention: pin the prompt (true | false)")
      ->capture_default_str();
  cmd.add_option("--tri-window", p.tri.window, "triattention: most recent tokens always kept (vLLM runtime: 128)")
      ->capture_default_str();
  cmd.add_option("--tri-seed", p.tri.seed, "triattention: tie-break noise seed")->capture_default_str();
  cmd.add_option("--sink-tokens", p.sink_tokens, "streaming: attention sinks kept")->capture_default_str();
  cmd.add_option("--streaming-positions", f.streaming_positions,
                 "streaming: RoPE positions absolute (the tokens' own) | cache (their places in the cache, as the "
                 "StreamingLLM paper assigns them)")
      ->capture_default_str();
  cmd.add_option("--trigger", f.trigger,
                 "when streaming and h2o compress: slack (at budget + divide length, back to budget; the default, as "
                 "TriAttention) | every-step (hold exactly the budget, as their papers); triattention runs slack, "
                 "snapkv and rkv their schedule (after the prefill and every divide length)");
}

Action add_run_command(CLI::App& app, const std::vector<std::string>& argv) {
  auto f = std::make_shared<RunFlags>();
  f->config.command_line = argv;
  CLI::App* cmd = app.add_subcommand("run", "run a benchmark: model x workload -> result.json + table");
  f->command = cmd;
  RunConfig& c = f->config;
  cmd->add_option("--preset", f->preset,
                  "a published protocol's settings (aime24, aime25, math500, dfs: prompt, draws, length caps, "
                  "sampling, methods and budget of the TriAttention paper); flags given explicitly win");
  cmd->add_option("--model,-m", c.model,
                  "model: llama2.c .bin, .gguf, Hugging Face folder, or synthetic:<preset>[,seed=N] "
                  "(presets: tiny, qwen3-0.6b, qwen3-8b, llama3-8b, qwen2-7b)")
      ->capture_default_str();
  cmd->add_option("--tokenizer", c.tokenizer, "llama2.c tokenizer file (default: beside the model)");
  cmd->add_option("--prompt,-p", c.prompt, "a single prompt (instead of --workload)");
  cmd->add_option("--workload,-w", c.workload,
                  "workload: JSONL (docs/workloads.md), a recorded R1 trace (.msgpack[.gz]), a DFS set, or "
                  "builtin:stories (default: the model folder's workload.jsonl when it has one, else builtin:stories)");
  cmd->add_option("--limit", c.limit,
                  fmt::format("the workload's first N items only (0: every item; default: every item, or the first {} "
                              "of a model folder's own workload)",
                              kModelWorkloadQuickItems));
  add_prompt_options(*cmd, c.prompt_settings);
  cmd->add_option("--mode", f->mode,
                  "replay (every method teacher-forced through the same tokens, compared with full attention) | "
                  "generate (each method decodes on its own; answers graded) | throughput (a batch fed its "
                  "recorded or a synthetic trace, timed without comparisons)")
      ->capture_default_str();
  cmd->add_option("--max-new-tokens,-n,--gen-len", c.max_new_tokens,
                  "new tokens per sequence (replay: cap on replayed tokens; throughput: synthetic trace length)")
      ->capture_default_str();
  cmd->add_option("--max-length", c.max_length,
                  "cap on prompt + new tokens per sequence, as Hugging Face's max_length (the paper's protocol: "
                  "32768 for AIME); 0: none")
      ->capture_default_str();
  f->temperature = cmd->add_option("--temperature", c.sampling.temperature,
                                   "sampling temperature; 0 = greedy (default: the model's generation_config.json, else 0)")
                       ->capture_default_str();
  f->top_p = cmd->add_option("--top-p", c.sampling.top_p, "nucleus sampling mass (default: generation_config.json, else 1)")
                 ->capture_default_str();
  f->top_k = cmd->add_option("--top-k", c.sampling.top_k, "keep the k most likely tokens; 0 = off (default: generation_config.json, else 0)")
                 ->capture_default_str();
  f->min_p = cmd->add_option("--min-p", c.sampling.min_p,
                             "drop tokens less likely than this share of the most likely; 0 = off (default: "
                             "generation_config.json, else 0)")
                 ->capture_default_str();
  cmd->add_option("--seed", c.sampling.seed, "sampling seed")->capture_default_str();
  cmd->add_option("--samples", c.samples,
                  "generate: draws per item, each seeded from (seed, item, draw); accuracy is then avg@N with a 95% "
                  "confidence interval over items, pass@k, and each method's paired difference to full attention")
      ->capture_default_str();
  cmd->add_option("--batch", f->batch,
                  "sequences decoded together, or auto (GPU: the most whose KV caches fit in device memory, per "
                  "method and budget); throughput mode repeats the workload's items to fill the batch")
      ->capture_default_str();
  cmd->add_option("--warmup", c.warmup, "repetitions run first and discarded (default: 1 in throughput mode, else 0)");
  cmd->add_option("--repeat", c.repeat,
                  "measured repetitions of each method and budget (default: 5 in throughput mode, else 1); "
                  "timings report median, mean, stddev, min and max");
  cmd->add_option("--method", f->methods, "comma list of KV methods: " + method_names())
      ->delimiter(',')
      ->capture_default_str()
      ->each([f](const std::string&) { f->method_given = true; });
  cmd->add_option("--budget", c.budgets, "comma list of KV budgets (tokens kept per layer and kv-head)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--divide-length", c.divide_length, "compression interval in tokens (slack above the budget)")
      ->capture_default_str();
  add_method_options(*cmd, *f);
  cmd->add_option("--device", c.device,
                  "auto | cpu | cuda[:N] | cuda:all | cuda:I,J,... (several GPUs: one worker process per GPU, each a "
                  "shard of the run, merged into one result)")->capture_default_str();
  cmd->add_option("--threads", c.threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--kv-dtype", c.kv_dtype,
                  "precision of the KV cache's keys and values: f32 | bf16 | f16 (default: f32 on the CPU; a GPU holds "
                  "bf16, so --kv-dtype bf16 compares a CPU run with a GPU one on equal terms); KV bytes are reported at "
                  "this size");
  cmd->add_option("--out,-o", f->out, "output directory (default kvbench-out/<timestamp>)");
  cmd->add_option("--resume", f->resume,
                  "continue the generate or replay run whose output folder this is, from its journal (the same sequences and "
                  "accuracy as an uninterrupted run); alone (or with -q, --batch, --threads, --device, --format) it "
                  "reruns the journal's command line");
  cmd->add_option("--shard", f->shard,
                  "run shard I of N of the sweep's units (method x budget x item x draw, balanced by expected tokens) "
                  "into OUT/shard-I-of-N; default: the place Slurm, MPI, torchrun or a Kubernetes Indexed Job gives "
                  "(docs/cluster.md); join the shards with kvbench merge");
  cmd->add_flag("--no-hash", f->no_hash, "skip the sha256 of model files");
  cmd->add_flag("--trace", c.trace,
                "time phases (prefill, decode steps, per-layer attention and MLP, compression): a per-op table in "
                "result.json and the summary, and trace.json (Chrome trace format; open in Perfetto); on a GPU "
                "also every kernel, memcpy and memset (CUPTI): a per-kernel table and GPU tracks in the trace");
  cmd->add_option("--dump-kept", c.dump_kept,
                  "write the absolute positions every method keeps at every compression event, per layer and KV head, "
                  "to this JSONL file (one line per event; docs/methods.md)");
  cmd->add_flag("--quiet,-q", f->quiet, "no progress lines on stderr");
  add_format_option(*cmd, f->formats);
  return [f] { return execute(*f); };
}

void add_format_option(CLI::App& cmd, std::vector<std::string>& formats) {
  cmd.add_option("--format", formats, "also write result.md / result.csv / result.html beside result.json (comma list)")
      ->delimiter(',')
      ->check(CLI::IsMember({"md", "csv", "html"}));
}

}  // namespace kvb::cli
