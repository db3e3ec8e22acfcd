#include "engine/benchmark.hpp"

#include <algorithm>
#include <memory>

#include <fmt/format.h>

#include "engine/methods/calibration.hpp"
#include "engine/methods/query_stats.hpp"
#include "engine/model.hpp"
#include "kernels/cpu/thread_pool.hpp"
#include "kernels/gpu_info.hpp"
#include "profiler/host_info.hpp"
#include "profiler/trace.hpp"
#include "reports/result.hpp"
#include "reports/steps_csv.hpp"
#include "util/errors.hpp"
#include "workloads/workload.hpp"

namespace kvb {

namespace {

Workload resolve_workload(const RunConfig& c) {
  if (!c.prompt.empty()) return single_prompt_workload(c.prompt);
  if (c.workload.empty()) return builtin_workload("stories");
  if (c.workload.rfind("builtin:", 0) == 0) return builtin_workload(c.workload.substr(8));
  return load_workload(c.workload);
}

// Picks the compute device. Only the CPU decode path exists so far; asking for CUDA explicitly
// is refused rather than silently measured on the CPU.
std::string resolve_device(const std::string& device, const std::function<void(const std::string&)>& progress) {
  if (device == "cpu") return "cpu";
  if (device == "auto") {
    GpuQuery q = query_gpus();
    if (!q.gpus.empty())
      progress(fmt::format("device: cpu (a GPU answered: {}, but the CUDA decode path is not implemented yet)",
                           q.gpus[0].name));
    else
      progress(fmt::format("device: cpu ({})", q.why_none));
    return "cpu";
  }
  if (device == "cuda" || device.rfind("cuda:", 0) == 0)
    fail_input("--device {}: the CUDA decode path is not implemented yet; use --device cpu", device);
  fail_input("--device {}: expected auto, cpu or cuda[:N]", device);
}

// An upper bound on an item's prompt length in tokens before the tokenizer is loaded (every
// supported tokenizer emits at most one token per byte, plus BOS and a dummy prefix).
int64_t prompt_token_bound(const WorkloadItem& item) {
  return item.prompt_ids.empty() ? static_cast<int64_t>(item.prompt_text.size()) + 2
                                 : static_cast<int64_t>(item.prompt_ids.size());
}

int64_t steps_bound(const WorkloadItem& item, const RunConfig& c) {
  const int64_t cont = item.continuation_ids.empty() ? static_cast<int64_t>(item.continuation_text.size()) + 2
                                                     : static_cast<int64_t>(item.continuation_ids.size());
  const int64_t gen = item.max_new_tokens > 0 ? item.max_new_tokens : c.max_new_tokens;
  return c.mode == RunMode::Generate ? gen : std::max(cont, gen);
}

std::vector<DecodeRequest> make_requests(const Workload& w, const Model& m, const RunConfig& c) {
  std::vector<DecodeRequest> out;
  for (const WorkloadItem& item : w.items) {
    DecodeRequest r;
    r.id = item.id;
    r.prompt = !item.prompt_ids.empty() ? item.prompt_ids : m.tokenizer->encode_prompt(item.prompt_text);
    r.max_new_tokens = item.max_new_tokens > 0 ? item.max_new_tokens : c.max_new_tokens;
    if (c.mode != RunMode::Generate) {
      r.forced = !item.continuation_ids.empty() ? item.continuation_ids : m.tokenizer->encode(item.continuation_text);
      // --max-new-tokens caps how much of a recorded trace is replayed.
      if (static_cast<int>(r.forced.size()) > r.max_new_tokens) r.forced.resize(r.max_new_tokens);
    }
    if (c.mode == RunMode::Throughput && r.forced.empty()) {
      // No recorded continuation: a seeded synthetic trace of --max-new-tokens ids. Attention cost
      // depends on lengths, not on which tokens are fed.
      Rng rng(c.sampling.seed ^ (0x9e3779b97f4a7c15ull * (out.size() + 1)));
      r.forced.resize(r.max_new_tokens);
      for (int& t : r.forced) t = static_cast<int>(rng.next() % uint64_t(m.config.vocab_size));
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

BenchmarkResult run_benchmark(const RunConfig& c, const std::atomic<bool>* stop,
                              const std::function<void(const std::string&)>& progress) {
  if (c.max_new_tokens <= 0) fail_input("--max-new-tokens {}: must be a positive integer", c.max_new_tokens);
  if (c.batch_size <= 0) fail_input("--batch {}: must be a positive integer", c.batch_size);
  if (!(c.sampling.temperature >= 0.0f)) fail_input("--temperature {}: must be >= 0", c.sampling.temperature);
  if (!(c.sampling.top_p > 0.0f && c.sampling.top_p <= 1.0f)) fail_input("--top-p {}: must be in (0, 1]", c.sampling.top_p);
  if (c.threads < 0) fail_input("--threads {}: must be >= 0", c.threads);
  if (c.warmup < -1) fail_input("--warmup {}: must be >= 0", c.warmup);
  if (c.repeat == 0 || c.repeat < -1) fail_input("--repeat {}: must be >= 1", c.repeat);
  // Like llama-bench: timing runs warm up once and repeat five times; fidelity runs are deterministic.
  const bool timing = c.mode == RunMode::Throughput;
  const int warmup = c.warmup >= 0 ? c.warmup : (timing ? 1 : 0);
  const int repeat = c.repeat >= 1 ? c.repeat : (timing ? 5 : 1);

  // Every (method, budget) is checked before anything is loaded.
  const bool wants_stats = std::find(c.methods.begin(), c.methods.end(), "triattention") != c.methods.end();
  const bool self_calibrate = wants_stats && c.stats_path == "self";
  std::shared_ptr<const QueryStats> stats;
  if (self_calibrate) stats = std::make_shared<const QueryStats>();  // measured once the tokens are known
  else if (!c.stats_path.empty() && wants_stats) stats = std::make_shared<const QueryStats>(read_query_stats(c.stats_path));
  if (!c.stats_path.empty() && !wants_stats) progress("--stats is only used by --method triattention; ignored");
  std::vector<PolicyConfig> policies;
  for (const std::string& method : c.methods) {
    PolicyConfig p = c.method_options;
    p.method = method;
    p.divide_length = c.divide_length;
    p.stats = stats;
    if (method == "full") {
      check_policy(p);
      policies.push_back(p);
      continue;
    }
    if (c.budgets.empty()) check_policy(p);  // names an unknown method, else asks for --budget
    for (int b : c.budgets) {
      p.budget = b;
      check_policy(p);
      policies.push_back(p);
    }
  }
  if (policies.empty()) fail_input("--method: no method given");

  ResultHeader header;
  header.started_at = utc_timestamp();
  header.command_line = c.command_line;
  header.host = query_host_info();
  header.gpus = query_gpus();
  header.settings.device = resolve_device(c.device, progress);
  cpu::ThreadPool::instance().set_threads(c.threads);
  header.settings.threads = cpu::ThreadPool::instance().threads();
  header.settings.mode = c.mode;
  header.settings.max_new_tokens = c.max_new_tokens;
  header.settings.sampling = c.sampling;
  header.settings.batch_size = c.batch_size;

  Workload workload = resolve_workload(c);
  int64_t per_sequence = 1;
  for (const WorkloadItem& item : workload.items)
    per_sequence = std::max(per_sequence, prompt_token_bound(item) + steps_bound(item, c));
  LoadOptions lo;
  lo.tokenizer_path = c.tokenizer;
  lo.hash_files = c.hash_files;
  lo.kv_slots = per_sequence * std::min<int64_t>(c.batch_size, static_cast<int64_t>(workload.items.size()));
  progress(fmt::format("loading {}", c.model));
  Model model = load_model(c.model, lo);
  progress(fmt::format("model: {} ({} {}, {:.2f} M parameters{})", model.info.name, model.info.format,
                       to_string(model.config.arch), model.config.parameter_count() / 1e6,
                       model.info.synthetic ? ", synthetic weights" : ""));

  std::vector<DecodeRequest> requests = make_requests(workload, model, c);
  DecodeOptions opt;
  opt.mode = c.mode;
  opt.sampling = c.sampling;
  opt.batch_size = c.batch_size;
  opt.stop = stop;

  if (c.mode == RunMode::Replay) {
    // Items without a recorded continuation replay full attention's own greedy continuation.
    std::vector<DecodeRequest> to_generate;
    std::vector<size_t> where;
    for (size_t i = 0; i < requests.size(); ++i)
      if (requests[i].forced.empty()) {
        to_generate.push_back(requests[i]);
        where.push_back(i);
      }
    if (!to_generate.empty()) {
      progress(fmt::format("replay: {} item(s) have no recorded continuation; generating full attention's greedy "
                           "continuation of {} tokens first",
                           to_generate.size(), c.max_new_tokens));
      DecodeOptions gen = opt;
      gen.mode = RunMode::Generate;
      gen.sampling = SamplingParams{};
      validate_requests(model, to_generate, RunMode::Generate);
      DecodeOutput g = run_decode(model, to_generate, gen);
      for (size_t i = 0; i < g.sequences.size(); ++i) requests[where[i]].forced = g.sequences[i].tokens;
    }
  }
  if (self_calibrate) {
    // Statistics measured on the very tokens being replayed: a self-contained demonstration, not
    // the held-out calibration of the paper (recorded as such in the result).
    TokenSequences sequences;
    for (const DecodeRequest& r : requests) {
      sequences.push_back(r.prompt);
      sequences.back().insert(sequences.back().end(), r.forced.begin(), r.forced.end());
    }
    QueryStats measured = calibrate_query_stats(model, sequences);
    measured.format = "calibrated-on-run-tokens";
    measured.source_path = "self";
    progress(fmt::format("triattention: query statistics calibrated on this run's own {} tokens (--stats self); pass "
                         "--stats FILE for held-out statistics",
                         measured.token_count.value_or(0)));
    stats = std::make_shared<const QueryStats>(std::move(measured));
    for (PolicyConfig& p : policies) p.stats = stats;
  }
  // Statistics against the model, prompts against every budget: before any method runs.
  for (const PolicyConfig& p : policies) validate_requests(model, requests, c.mode, make_policy(p, model.config).get());

  BenchmarkResult result;
  std::vector<MethodRun> runs;
  profiler::enable(c.trace);
  for (const PolicyConfig& p : policies) {
    if (result.interrupted || !result.failure.empty()) break;
    progress(fmt::format("decoding {} sequence(s) with {}{}, mode {}, batch {}", requests.size(), p.method,
                         p.budget > 0 ? fmt::format(" at budget {}", p.budget) : "", to_string(c.mode), c.batch_size));
    MethodRun run;
    run.method = p.method;
    run.budget = p.budget;
    run.divide_length = p.budget > 0 ? p.divide_length : 0;
    run.parameters = policy_parameters(p);
    run.warmup = warmup;
    opt.policy = p;
    const profiler::RunRange nvtx_run(p.budget > 0 ? fmt::format("{}@{}", p.method, p.budget) : p.method);
    try {
      for (int rep = 0; rep < warmup + repeat; ++rep) {
        DecodeOutput out = run_decode(model, requests, opt);
        std::vector<profiler::Event> events = profiler::take_events();
        if (rep >= warmup) run.events.insert(run.events.end(), events.begin(), events.end());
        const bool first_measured = rep == warmup || (out.interrupted && run.repetitions.empty());
        if (rep >= warmup && !out.interrupted) run.repetitions.push_back(out.stats);
        if (out.interrupted) run.output.interrupted = true;
        if (first_measured) run.output = std::move(out);
        if (run.output.interrupted) break;
      }
    } catch (const RuntimeFailure& e) {
      result.failure = e.what();
    }
    run.peak_rss_bytes = peak_rss_bytes();
    result.interrupted = run.output.interrupted;
    runs.push_back(std::move(run));
  }
  const std::string status = !result.failure.empty() ? "failed" : result.interrupted ? "interrupted" : "complete";
  result.document = make_result(header, model, workload, runs, status, result.failure);
  result.steps_csv = render_steps_csv(runs, c.mode);
  if (c.trace) {
    // One track per run, host phases only on the CPU backend (GPU kernels get their own tracks).
    nlohmann::json events = nlohmann::json::array();
    for (size_t i = 0; i < runs.size(); ++i) {
      const std::string name = runs[i].budget > 0 ? fmt::format("{}@{}", runs[i].method, runs[i].budget) : runs[i].method;
      events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 1}, {"tid", int(i) + 1}, {"args", {{"name", name}}}});
      for (auto& e : profiler::chrome_events(runs[i].events, name, int(i) + 1)) events.push_back(std::move(e));
    }
    result.trace = {{"traceEvents", events}, {"displayTimeUnit", "ms"}};
  }
  profiler::enable(false);
  return result;
}

}  // namespace kvb
