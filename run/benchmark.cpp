#include "run/benchmark.hpp"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include <filesystem>

#include <fmt/format.h>

#include "build_info.hpp"
#include "engine/bundled_models.hpp"
#include "engine/cuda_calibration.hpp"
#include "run/gpu_session.hpp"
#include "engine/methods/calibration.hpp"
#include "engine/methods/query_stats.hpp"
#include "engine/model.hpp"
#include "kernels/cpu/thread_pool.hpp"
#include "kernels/gpu_info.hpp"
#include "profiler/cupti_tracer.hpp"
#include "profiler/host_info.hpp"
#include "profiler/nvml_sampler.hpp"
#include "profiler/trace.hpp"
#include "util/errors.hpp"
#include "run/journal.hpp"
#include "run/kept_log.hpp"
#include "run/shard_manifest.hpp"
#include "run/result.hpp"
#include "run/steps_csv.hpp"
#include "workloads/workload.hpp"

namespace kvb {

namespace {

// Picks the compute device: "cpu" or "cuda:N". auto takes GPU 0 when one answers (and the build
// has the CUDA backend) and says which it took; naming a GPU that does not answer is an error,
// never a silent CPU run.
std::string resolve_device(const std::string& device, const std::function<void(const std::string&)>& progress) {
  if (device == "cpu") return "cpu";
  const GpuQuery q = query_gpus();
  if (device == "auto") {
    if (q.gpus.empty()) {
      progress(fmt::format("device: cpu ({})", q.why_none));
      return "cpu";
    }
    progress(fmt::format("device: cuda:0 ({})", q.gpus[0].name));
    return "cuda:0";
  }
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (device != "cuda") {
      size_t used = 0;
      try {
        index = std::stoi(device.substr(5), &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != device.size() - 5 || index < 0) fail_input("--device {}: expected cuda or cuda:N", device);
    }
    if (q.gpus.empty()) fail_input("--device {}: no GPU answered ({})", device, q.why_none);
    if (index >= static_cast<int>(q.gpus.size()))
      fail_input("--device {}: this machine has {} GPU(s)", device, q.gpus.size());
    return fmt::format("cuda:{}", index);
  }
  fail_input("--device {}: expected auto, cpu or cuda[:N]", device);
}

// Throughput mode decodes full batches: items repeat, in order, until `batch` sequences are
// running (the k-th repeat of an item gets the id suffix #k).
std::vector<DecodeRequest> fill_batch(const std::vector<DecodeRequest>& requests, int batch) {
  std::vector<DecodeRequest> out = requests;
  for (size_t i = requests.size(); i < size_t(batch); ++i) {
    out.push_back(requests[i % requests.size()]);
    out.back().id += fmt::format("#{}", i / requests.size());
  }
  return out;
}

// An estimate of an item's prompt length in tokens before the tokenizer is loaded, for the
// memory check: every supported tokenizer emits at most one token per byte, plus BOS and a dummy
// prefix; a chat template or named prompt adds its own text (allowed for here up to 1024 tokens).
int64_t prompt_token_bound(const WorkloadItem& item, const RunConfig& c) {
  if (!item.prompt_ids.empty()) return static_cast<int64_t>(item.prompt_ids.size());
  const bool wrapped = !item.prompt_rendered && c.prompt_settings.prompt_template != "plain";
  return static_cast<int64_t>(item.prompt_text.size()) + 2 + (wrapped ? 1024 : 0);
}

int64_t steps_bound(const WorkloadItem& item, const RunConfig& c) {
  const int64_t cont = item.continuation_ids.empty() ? static_cast<int64_t>(item.continuation_text.size()) + 2
                                                     : static_cast<int64_t>(item.continuation_ids.size());
  const int64_t gen = item.max_new_tokens > 0 ? item.max_new_tokens : c.max_new_tokens;
  return c.mode == RunMode::Generate ? gen : std::max(cont, gen);
}

// One request per (item, draw): with --samples N, draw d of item i is "<id>#d" for d > 0, and its
// sampler's stream is (d, i), so a draw's tokens depend on neither the batch, the order nor the
// device (draw 0 of item i has stream i: the same tokens as a run without draws).
std::vector<DecodeRequest> make_requests(const Workload& w, const Model& m, const PromptBuilder& prompts,
                                        const RunConfig& c) {
  std::vector<DecodeRequest> out;
  for (size_t index = 0; index < w.items.size(); ++index) {
    const WorkloadItem& item = w.items[index];
    DecodeRequest r;
    r.id = item.id;
    r.item = static_cast<int>(index);
    r.stream = static_cast<int64_t>(index);
    r.prompt = prompts.ids(item);
    r.max_new_tokens = item.max_new_tokens > 0 ? item.max_new_tokens : c.max_new_tokens;
    if (c.max_length > 0) {  // the cap counts the prompt, as Hugging Face's max_length does
      if (static_cast<int64_t>(r.prompt.size()) >= c.max_length)
        fail_input("--max-length {}: sequence {} has a prompt of {} tokens", c.max_length, r.id, r.prompt.size());
      r.max_new_tokens = std::min(r.max_new_tokens, c.max_length - static_cast<int>(r.prompt.size()));
    }
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
    out.push_back(r);
    for (int d = 1; d < c.samples; ++d) {
      DecodeRequest draw = r;
      draw.id = fmt::format("{}#{}", item.id, d);
      draw.draw = d;
      draw.stream = static_cast<int64_t>((uint64_t(d) << 32) | index);
      out.push_back(std::move(draw));
    }
  }
  return out;
}

// The CUDA device a resolved device names ("cuda" is device 0, "cuda:N"); nullopt for the CPU.
std::optional<int> cuda_device_index(const std::string& device) {
  if (device == "cuda") return 0;
  if (device.rfind("cuda:", 0) != 0) return std::nullopt;
  try {
    return std::stoi(device.substr(5));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// What watches the GPU while a CUDA run decodes: NVML telemetry always, CUPTI records with --trace.
// Either one that cannot start says why once and the run goes on without it.
struct GpuObservers {
  std::unique_ptr<profiler::NvmlSampler> sampler;
  std::unique_ptr<profiler::CuptiTracer> tracer;  // null unless it traces
};

GpuObservers start_gpu_observers(ResultHeader& header, bool trace, const std::function<void(const std::string&)>& progress) {
  GpuObservers o;
  const std::optional<int> index = cuda_device_index(header.settings.device);
  if (!index) {
    header.gpu_telemetry = profiler::telemetry_not_sampled("not sampled: the run used the CPU");
    if (trace) header.gpu_trace = {{"traced", false}, {"note", "no GPU records: the run used the CPU"}};
    return o;
  }
  const auto gpu = std::find_if(header.gpus.gpus.begin(), header.gpus.gpus.end(),
                                [&](const GpuInfo& g) { return g.index == *index; });
  if (gpu == header.gpus.gpus.end()) {
    header.gpu_telemetry = profiler::telemetry_not_sampled(fmt::format("not sampled: GPU {} did not answer", *index));
  } else {
    o.sampler = std::make_unique<profiler::NvmlSampler>(*gpu);
    if (!o.sampler->available()) progress(o.sampler->unavailable_reason());
  }
  if (trace) {
    auto tracer = std::make_unique<profiler::CuptiTracer>();
    header.gpu_trace = {{"traced", tracer->available()},
                        {"note", tracer->available() ? tracer->description() : tracer->unavailable_reason()}};
    if (tracer->available()) o.tracer = std::move(tracer);
    else progress(tracer->unavailable_reason());
  }
  return o;
}

// Stops the sampler and records its summary; a throttled GPU is worth a line on the terminal too.
void finish_gpu_observers(GpuObservers& o, ResultHeader& header, const std::function<void(const std::string&)>& progress) {
  if (!o.sampler) return;
  header.gpu_telemetry = o.sampler->finish();
  const nlohmann::json& t = header.gpu_telemetry;
  if (t.contains("warning") && t["warning"].is_string()) progress("warning: " + t["warning"].get<std::string>());
}

void append_gpu_records(std::optional<profiler::GpuRunTrace>& to, profiler::GpuRunTrace from) {
  if (!to) to.emplace();
  to->activities.insert(to->activities.end(), std::make_move_iterator(from.activities.begin()),
                        std::make_move_iterator(from.activities.end()));
  to->dropped_records += from.dropped_records;
}


// The run's sampling: each setting from its flag (or preset) when given, else from the model's
// generation_config.json when it says (do_sample false: greedy), else kvbench's default (a
// preset's top-k stands in for transformers' default); the sources say which, setting by setting.
SamplingParams resolve_sampling(const RunConfig& c, const GenerationDefaults& g, nlohmann::json& sources) {
  SamplingParams p = c.sampling;
  auto pick = [&](const char* name, const std::string& given, auto& value, const auto& shipped) {
    if (!given.empty()) sources[name] = given;
    else if (shipped) {
      value = *shipped;
      sources[name] = "generation_config.json";
    } else sources[name] = "default";
  };
  pick("temperature", c.sampling_given.temperature, p.temperature, g.temperature);
  if (c.sampling_given.temperature.empty() && g.do_sample && !*g.do_sample) {
    p.temperature = 0.0f;  // the model ships greedy decoding
    sources["temperature"] = "generation_config.json";
  }
  pick("top_p", c.sampling_given.top_p, p.top_p, g.top_p);
  pick("top_k", c.sampling_given.top_k, p.top_k, g.top_k);
  if (sources["top_k"] == "default" && c.top_k_when_unshipped) {
    p.top_k = *c.top_k_when_unshipped;
    sources["top_k"] = "preset (transformers' default)";
  }
  pick("min_p", c.sampling_given.min_p, p.min_p, g.min_p);
  return p;
}

// Flags that need nothing loaded.
void check_run_config(const RunConfig& c) {
  if (c.max_new_tokens <= 0) fail_input("--max-new-tokens {}: must be a positive integer", c.max_new_tokens);
  if (c.limit && *c.limit < 0) fail_input("--limit {}: must be >= 0 (0: every item)", *c.limit);
  if (c.max_length < 0) fail_input("--max-length {}: must be a positive integer (0: no cap)", c.max_length);
  if (c.batch_size < 0) fail_input("--batch {}: must be a positive integer or auto", c.batch_size);
  if (!(c.sampling.temperature >= 0.0f)) fail_input("--temperature {}: must be >= 0", c.sampling.temperature);
  if (!(c.sampling.top_p > 0.0f && c.sampling.top_p <= 1.0f)) fail_input("--top-p {}: must be in (0, 1]", c.sampling.top_p);
  if (c.sampling.top_k < 0) fail_input("--top-k {}: must be at least 0 (0: off)", c.sampling.top_k);
  if (!(c.sampling.min_p >= 0.0f && c.sampling.min_p < 1.0f)) fail_input("--min-p {}: must be in [0, 1)", c.sampling.min_p);
  if (c.threads < 0) fail_input("--threads {}: must be >= 0", c.threads);
  if (c.warmup < -1) fail_input("--warmup {}: must be >= 0", c.warmup);
  if (c.repeat == 0 || c.repeat < -1) fail_input("--repeat {}: must be >= 1", c.repeat);
  if (c.methods.empty()) fail_input("--method: no method given");
  if (c.samples < 1) fail_input("--samples {}: must be at least 1", c.samples);
  if (c.samples > 1 && c.mode != RunMode::Generate)
    fail_input("--samples {}: draws are for --mode generate (replay and throughput feed given tokens)", c.samples);
  if (c.resume && c.mode == RunMode::Throughput)
    fail_input("--resume: throughput runs keep no journal (they are timings: rerun them)");
  if (c.shard && c.mode == RunMode::Throughput)
    fail_input("--shard {}: throughput runs are timings of full batches, not work to share; shard generate or replay runs",
               c.shard->text());
  if (c.shard && c.stats_path == "self")
    fail_input("--shard {}: --stats self calibrates on the run's own tokens, which no shard holds all of; calibrate "
               "once (kvbench calibrate) and pass --stats FILE",
               c.shard->text());
  if (c.resume && (c.warmup > 0 || c.repeat > 1))
    fail_input("--resume: the journal keeps one measured repetition; drop --warmup and --repeat");
  if (c.resume && !c.dump_kept.empty())
    fail_input("--resume: the journalled sequences' kept positions were not recorded; drop --dump-kept");
}

// Every (method, budget) of the run, checked before anything is loaded. TriAttention's statistics
// are read here; with --stats self they are measured later (calibrate_on_run_tokens).
std::vector<PolicyConfig> plan_policies(const RunConfig& c, const std::function<void(const std::string&)>& progress) {
  const bool wants_stats =
      std::any_of(c.methods.begin(), c.methods.end(), [](Method m) { return traits(m).needs_stats; });
  std::shared_ptr<const QueryStats> stats;
  if (wants_stats && c.stats_path == "self") stats = std::make_shared<const QueryStats>();  // a placeholder
  else if (wants_stats && !c.stats_path.empty()) stats = std::make_shared<const QueryStats>(read_query_stats(c.stats_path));
  if (!c.stats_path.empty() && !wants_stats) progress("--stats is only used by --method triattention; ignored");
  std::vector<PolicyConfig> policies;
  for (Method method : c.methods) {
    PolicyConfig p = c.method_options;
    p.method = method;
    p.divide_length = c.divide_length;
    p.stats = stats;
    if (!traits(method).budgeted) {
      check_policy(p);
      policies.push_back(p);
      continue;
    }
    if (c.budgets.empty()) check_policy(p);  // asks for --budget
    for (int b : c.budgets) {
      p.budget = b;
      check_policy(p);
      policies.push_back(p);
    }
  }
  return policies;
}

// The machine and the settings every result records; resolves the device.
ResultHeader make_header(const RunConfig& c, const std::function<void(const std::string&)>& progress) {
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
  header.settings.max_length = c.max_length;
  header.settings.sampling = c.sampling;
  header.settings.samples = c.samples;
  header.settings.preset = c.preset;
  header.settings.batch_size = c.batch_size;
  if (header.settings.device == "cpu" && c.batch_size == 0)
    fail_input("--batch auto: sizes the batch to the GPU's memory; on the CPU give a number of sequences");
  return header;
}

// The model, loaded for the run's device: the CPU backend holds fp32 weights and caches in host
// memory (the estimate refuses what cannot fit), the GPU its own; a synthetic model's weights are
// then generated there (no host copy).
Model load_run_model(const RunConfig& c, const Workload& workload, bool on_gpu,
                     const std::function<void(const std::string&)>& progress) {
  int64_t per_sequence = 1;
  for (const WorkloadItem& item : workload.items)
    per_sequence = std::max(per_sequence, prompt_token_bound(item, c) + steps_bound(item, c));
  LoadOptions lo;
  lo.tokenizer_path = c.tokenizer;
  lo.hash_files = c.hash_files;
  lo.kv_slots = on_gpu ? 0 : per_sequence * std::min<int64_t>(c.batch_size, static_cast<int64_t>(workload.items.size()));
  lo.config_only = on_gpu && c.model.rfind("synthetic:", 0) == 0;
  lo.skip_weights = on_gpu && !lo.config_only;  // the GPU engine streams them from the files
  progress(fmt::format("loading {}", c.model));
  // "load" ranges show in an Nsight capture (the per-op table only times decoding: --trace starts later).
  const auto started = std::chrono::steady_clock::now();
  Model model = [&] {
    profiler::Range range("load");
    return load_model(c.model, lo);
  }();
  model.info.load.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  model.info.load.host_peak_rss_bytes = peak_rss_bytes();
  progress(fmt::format("model: {} ({} {}, {:.2f} M parameters{})", model.info.name, model.info.format,
                       to_string(model.config.arch), model.config.parameter_count() / 1e6,
                       model.info.synthetic ? ", synthetic weights" : ""));
  return model;
}

// One engine serves every method of a GPU run (and the greedy continuations): sized for all of
// them (planned: the policies, then full attention), weights uploaded once.
std::unique_ptr<GpuSession> start_gpu_session(const RunConfig& c, Model& model, const std::vector<DecodeRequest>& requests,
                                              const std::vector<PolicyConfig>& planned, int prefill_chunk,
                                              ResultHeader& header, const std::function<void(const std::string&)>& progress) {
  GpuSessionRequest g;
  g.device_index = *cuda_device_index(header.settings.device);
  g.batch = c.batch_size;
  g.prefill_chunk = prefill_chunk;
  g.mode = c.mode;
  std::unique_ptr<GpuSession> session;
  {
    profiler::Range range("load");  // weights to the device
    session = std::make_unique<GpuSession>(model, requests, planned, g);
  }
  progress(session->summary());
  header.settings.compute_dtype = "bf16 weights and KV cache, fp32 activations and accumulation";
  header.settings.weights_bytes = session->weight_bytes();
  if (model.weights.layers.empty()) model.info.stored_dtype = session->stored_dtypes();  // streamed or generated
  model.info.load.device_seconds = session->weight_seconds();
  model.info.load.seconds += session->weight_seconds();
  model.info.load.host_peak_rss_bytes = peak_rss_bytes();
  return session;
}

// Replay items without a recorded continuation replay full attention's own greedy continuation.
void complete_replay_traces(const RunConfig& c, const Model& model, const DecodeOptions& opt, int batch,
                            std::vector<DecodeRequest>& requests, const std::function<void(const std::string&)>& progress) {
  std::vector<DecodeRequest> to_generate;
  std::vector<size_t> where;
  for (size_t i = 0; i < requests.size(); ++i)
    if (requests[i].forced.empty()) {
      to_generate.push_back(requests[i]);
      where.push_back(i);
    }
  if (to_generate.empty()) return;
  progress(fmt::format("replay: {} item(s) have no recorded continuation; generating full attention's greedy "
                       "continuation of {} tokens first",
                       to_generate.size(), c.max_new_tokens));
  DecodeOptions gen = opt;
  gen.batch_size = batch;
  gen.mode = RunMode::Generate;
  gen.sampling = SamplingParams{};
  gen.policy = PolicyConfig{};
  validate_requests(model, to_generate, RunMode::Generate);
  DecodeOutput g = run_decode(model, to_generate, gen);
  for (size_t i = 0; i < g.sequences.size(); ++i) requests[where[i]].forced = g.sequences[i].tokens;
}

// --stats self: statistics measured on the very tokens being replayed, a self-contained
// demonstration, not the held-out calibration of the paper (recorded as such in the result).
void calibrate_on_run_tokens(const Model& model, const std::vector<DecodeRequest>& requests, GpuSession* gpu,
                             std::vector<PolicyConfig>& policies, const std::function<void(const std::string&)>& progress) {
  TokenSequences sequences;
  for (const DecodeRequest& r : requests) {
    sequences.push_back(r.prompt);
    sequences.back().insert(sequences.back().end(), r.forced.begin(), r.forced.end());
  }
  QueryStats measured = gpu ? calibrate_query_stats(*gpu->engine(), model, sequences) : calibrate_query_stats(model, sequences);
  measured.format = "calibrated-on-run-tokens";
  measured.source_path = "self";
  progress(fmt::format("triattention: query statistics calibrated on this run's own {} tokens (--stats self); pass "
                       "--stats FILE for held-out statistics",
                       measured.token_count.value_or(0)));
  const auto stats = std::make_shared<const QueryStats>(std::move(measured));
  for (PolicyConfig& p : policies)
    if (traits(p.method).needs_stats) p.stats = stats;
}

// The warm-up and measured repetitions of one (method, budget). A runtime failure is recorded in
// `failure` and ends the run; what was measured stays.
// What a (method, budget) run is, before anything is measured.
MethodRun describe_run(const PolicyConfig& p, int batch, size_t requests, int warmup) {
  MethodRun run;
  run.batch = std::min<int>(batch, static_cast<int>(requests));
  run.name = run_name(p);
  run.method = p.method;
  run.budget = p.budget;
  run.divide_length = p.budget > 0 ? p.divide_length : 0;
  run.parameters = method_parameters(p);
  run.warmup = warmup;
  return run;
}

MethodRun measure_policy(const Model& model, const std::vector<DecodeRequest>& requests, DecodeOptions opt,
                         const PolicyConfig& p, int warmup, int repeat, GpuObservers& gpu, KeptLog* kept,
                         RunJournal* journal, ProgressReporter& reporter, std::string& failure) {
  MethodRun run = describe_run(p, opt.batch_size, requests.size(), warmup);
  opt.policy = p;
  const profiler::RunRange nvtx_run(run.name);
  int max_tokens = 0;
  for (const DecodeRequest& r : requests) max_tokens = std::max(max_tokens, r.max_new_tokens);
  opt.on_progress = [&](const DecodeProgress& progress) { reporter.update(progress); };
  try {
    for (int rep = 0; rep < warmup + repeat; ++rep) {
      reporter.begin(warmup + repeat > 1 ? fmt::format("{} ({} of {})", run.name, rep + 1, warmup + repeat) : run.name,
                     static_cast<int>(requests.size()), max_tokens);
      // The kept positions of the first measured repetition (the others repeat them).
      opt.on_kept = nullptr;
      if (kept && rep == warmup)
        opt.on_kept = [&](const std::string& id, const KeptEvent& e) { kept->write(run.name, p, id, e); };
      opt.on_finished = nullptr;
      if (journal && rep == warmup)
        opt.on_finished = [&](const SequenceOutcome& o) { journal->record_sequence(run.name, o); };
      DecodeOutput out = run_decode(model, requests, opt);
      reporter.end();
      std::vector<profiler::Event> events = profiler::take_events();
      if (gpu.tracer) {
        profiler::GpuRunTrace records = gpu.tracer->take(events);
        if (rep >= warmup) append_gpu_records(run.gpu, std::move(records));
      }
      if (rep >= warmup) run.events.insert(run.events.end(), events.begin(), events.end());
      const bool first_measured = rep == warmup || (out.interrupted && run.repetitions.empty());
      if (rep >= warmup && !out.interrupted) run.repetitions.push_back(out.stats);
      if (out.interrupted) run.output.interrupted = true;
      if (first_measured) run.output = std::move(out);
      if (run.output.interrupted) break;
    }
  } catch (const RuntimeFailure& e) {
    reporter.end();
    failure = e.what();
  }
  run.peak_rss_bytes = peak_rss_bytes();
  run.timed_sequences = static_cast<int>(run.output.sequences.size());
  return run;
}

// The KV cache's value type: what --kv-dtype asks, else fp32 on the CPU and bf16 on a GPU (the
// only type the CUDA backend holds).
DType resolve_kv_dtype(const std::string& flag, bool on_gpu) {
  if (flag.empty()) return on_gpu ? DType::BF16 : DType::F32;
  for (DType d : {DType::F32, DType::BF16, DType::F16})
    if (flag == lower_name(d)) {
      if (on_gpu && d != DType::BF16)
        fail_input("--kv-dtype {}: the CUDA backend holds the KV cache in bf16 (use --kv-dtype bf16 or --device cpu)", flag);
      return d;
    }
  fail_input("--kv-dtype {}: expected f32, bf16 or f16", flag);
}

// What determines a run's tokens and decisions (run/journal.hpp): a resumed run or another shard must match it. Paths
// are left out (a model or workload may be reached another way); their sha256 are in.
nlohmann::json run_fingerprint(const ResultHeader& h, const Model& model, const Workload& w,
                               const std::vector<PolicyConfig>& policies) {
  nlohmann::json m = model_to_json(model, h.settings.compute_dtype);
  m.erase("source");
  m.erase("load");  // how long it took, not what was loaded
  for (nlohmann::json& f : m["files"]) {
    f.erase("path");
    f.erase("hash_seconds");  // how it was hashed, not what was read
    f.erase("hash_cached");
  }
  nlohmann::json runs = nlohmann::json::array();
  for (const PolicyConfig& p : policies) {
    nlohmann::json parameters = method_parameters(p);
    // Statistics by content, not by where they were read.
    if (parameters.contains("stats") && p.stats && !p.stats->source_path.empty() && p.stats->source_path != "self") {
      LoadOptions hashing;
      hashing.hash_files = true;
      parameters["stats"]["path"] = nullptr;
      parameters["stats"]["sha256"] = describe_file(p.stats->source_path, hashing).sha256;
    }
    runs.push_back({{"name", run_name(p)}, {"parameters", parameters}});
  }
  std::string device = "cpu";
  if (const std::optional<int> index = cuda_device_index(h.settings.device))
    for (const GpuInfo& g : h.gpus.gpus)
      if (g.index == *index) device = g.name;
  const SamplingParams& s = h.settings.sampling;
  nlohmann::json prompt = h.settings.prompt;
  prompt.erase("clock");  // a date a template prints shows in the prompts, which are checked one by one
  return {{"kvbench", build::kGitCommit},
          {"model", m},
          {"workload", {{"format", w.format}, {"sha256", w.sha256}, {"items", w.items.size()},
                        {"source", w.sha256.empty() ? w.source : ""}}},
          {"device", device},
          {"prompt", prompt},
          {"settings", {{"mode", to_string(h.settings.mode)}, {"max_new_tokens", h.settings.max_new_tokens}, {"max_length", h.settings.max_length},
                        {"temperature", s.temperature},
                        {"top_p", s.top_p}, {"top_k", s.top_k}, {"min_p", s.min_p}, {"seed", s.seed},
                        {"samples", h.settings.samples}}},
          {"runs", runs}};
}

// A run the journal holds in part: the requests still to decode. Each journalled sequence must be
// one of this run's requests, fed the same prompt.
std::vector<DecodeRequest> pending_requests(const std::vector<DecodeRequest>& requests, const JournalRun& before,
                                            const std::string& run, const std::string& journal) {
  std::vector<DecodeRequest> pending;
  size_t matched = 0;
  for (const DecodeRequest& r : requests) {
    const auto it = before.sequences.find({r.item, r.draw});
    if (it == before.sequences.end()) {
      pending.push_back(r);
      continue;
    }
    if (it->second.prompt != r.prompt)
      fail_input("--resume: {}: {} of {} was fed another prompt than this run builds", journal, r.id, run);
    ++matched;
  }
  if (matched != before.sequences.size()) fail_input("--resume: {}: {} holds sequences this run does not have", journal, run);
  return pending;
}

// A run with sequences from the journal: those and the ones just decoded, in request order.
void merge_journalled(MethodRun& run, const std::vector<DecodeRequest>& requests, const JournalRun& before) {
  std::map<std::pair<int, int>, SequenceOutcome> decoded;
  for (SequenceOutcome& o : run.output.sequences) decoded[{o.item, o.draw}] = std::move(o);
  run.output.sequences.clear();
  for (const DecodeRequest& r : requests) {
    const std::pair<int, int> key{r.item, r.draw};
    if (const auto it = before.sequences.find(key); it != before.sequences.end()) run.output.sequences.push_back(it->second);
    else if (const auto jt = decoded.find(key); jt != decoded.end()) run.output.sequences.push_back(std::move(jt->second));
  }
  run.from_journal = static_cast<int>(before.sequences.size());
}

// --shard: the units of every run this shard decodes (run/shard_plan.hpp), balanced by the
// tokens each is expected to cost: its prompt and the most it may decode or the trace it replays.
OwnedUnits plan_shard(const ShardPlace& place, const std::vector<PolicyConfig>& policies,
                      const std::vector<DecodeRequest>& requests, ShardManifest& manifest) {
  std::vector<WorkUnit> units;
  for (size_t p = 0; p < policies.size(); ++p)
    for (const DecodeRequest& r : requests)
      units.push_back({static_cast<int>(p), r.item, r.draw,
                       static_cast<int64_t>(r.prompt.size()) + (r.forced.empty() ? r.max_new_tokens : static_cast<int64_t>(r.forced.size()))});
  const std::vector<int> owner = assign_units(units, place.count);
  OwnedUnits owned;
  manifest.total_units = static_cast<int64_t>(units.size());
  for (size_t u = 0; u < units.size(); ++u) {
    manifest.total_expected_tokens += units[u].expected_tokens;
    if (owner[u] != place.index) continue;
    owned[run_name(policies[units[u].run])].insert({units[u].item, units[u].draw});
    manifest.expected_tokens += units[u].expected_tokens;
  }
  return owned;
}

int64_t owned_unit_count(const OwnedUnits& owned) {
  int64_t n = 0;
  for (const auto& [run, pairs] : owned) n += static_cast<int64_t>(pairs.size());
  return n;
}

// The requests some run of this shard decodes.
std::vector<DecodeRequest> owned_requests(const std::vector<DecodeRequest>& requests, const OwnedUnits& owned) {
  std::vector<DecodeRequest> out;
  for (const DecodeRequest& r : requests)
    if (std::any_of(owned.begin(), owned.end(), [&](const auto& run) { return run.second.count({r.item, r.draw}) > 0; }))
      out.push_back(r);
  return out;
}

// What merge needs to load again: the run's inputs, with paths absolute (a merge may run elsewhere).
nlohmann::json shard_inputs(const RunConfig& c) {
  auto absolute = [](const std::string& path) {
    if (path.empty() || path.rfind("synthetic:", 0) == 0 || path.rfind("builtin:", 0) == 0) return path;
    return std::filesystem::absolute(path).lexically_normal().string();
  };
  return {{"model", absolute(c.model)}, {"tokenizer", absolute(c.tokenizer)}, {"workload", absolute(c.workload)},
          {"prompt", c.prompt}, {"limit", c.limit.value_or(0)}};
}

// The workload a run reads and how many of its items, said once here so that the header, shards and
// merge all see the same: no --workload or --prompt means the model folder's own workload (its first
// kModelWorkloadQuickItems without --limit), else builtin:stories.
RunConfig resolve_workload_choice(const RunConfig& given, const std::function<void(const std::string&)>& progress) {
  RunConfig c = given;
  if (c.prompt.empty() && c.workload.empty()) {
    c.workload = model_default_workload(c.model);
    if (!c.workload.empty() && !c.limit) {
      c.limit = kModelWorkloadQuickItems;
      progress(fmt::format("workload: the model's own {}, its first {} items (--limit 0: all of them)", c.workload,
                           kModelWorkloadQuickItems));
    }
  }
  return c;
}

}  // namespace

BenchmarkResult run_benchmark(const RunConfig& given, const std::atomic<bool>* stop,
                              const std::function<void(const std::string&)>& progress) {
  check_run_config(given);
  const RunConfig c = resolve_workload_choice(given, progress);
  // Like llama-bench: timing runs warm up once and repeat five times; fidelity runs are deterministic.
  const bool timing = c.mode == RunMode::Throughput;
  const int warmup = c.warmup >= 0 ? c.warmup : (timing ? 1 : 0);
  const int repeat = c.repeat >= 1 ? c.repeat : (timing ? 5 : 1);
  std::vector<PolicyConfig> policies = plan_policies(c, progress);
  std::optional<KeptLog> kept;
  if (!c.dump_kept.empty()) kept.emplace(c.dump_kept);

  ResultHeader header = make_header(c, progress);
  const bool on_gpu = header.settings.device != "cpu";
  Workload workload = resolve_workload(c.prompt, c.workload);
  if (c.limit.value_or(0) > 0 && workload.items.size() > size_t(*c.limit)) workload.items.resize(*c.limit);
  Model model = load_run_model(c, workload, on_gpu, progress);
  const DType kv_dtype = resolve_kv_dtype(c.kv_dtype, on_gpu);
  if (!on_gpu)  // the GPU session says what it holds when it uploads
    header.settings.compute_dtype = fmt::format("{} weights, {} KV cache, fp32 activations and accumulation",
                                                model.weights.matrix_dtypes(), lower_name(kv_dtype));
  const PromptBuilder prompts(c.prompt_settings, model);
  header.settings.prompt = prompts.description();
  std::vector<DecodeRequest> requests = make_requests(workload, model, prompts, c);
  ShardManifest manifest;
  OwnedUnits owned;
  if (c.shard) {
    manifest.place = *c.shard;
    owned = plan_shard(*c.shard, policies, requests, manifest);
    requests = owned_requests(requests, owned);
    progress(fmt::format("shard {} (from {}): {} of {} units, {:.1f}% of the expected tokens", c.shard->text(),
                         c.shard->placed_by, owned_unit_count(owned), manifest.total_units,
                         100.0 * manifest.expected_tokens / std::max<int64_t>(1, manifest.total_expected_tokens)));
  }
  header.settings.sampling = resolve_sampling(c, model.generation, header.settings.sampling_sources);
  if (c.mode == RunMode::Generate && !model.generation.source.empty())
    progress(fmt::format("sampling: temperature {}, top-p {}, top-k {}, min-p {} ({})", header.settings.sampling.temperature,
                         header.settings.sampling.top_p, header.settings.sampling.top_k, header.settings.sampling.min_p,
                         header.settings.sampling_sources.dump()));
  DecodeOptions opt;
  opt.mode = c.mode;
  opt.kv_dtype = kv_dtype;
  opt.sampling = header.settings.sampling;
  opt.batch_size = c.batch_size;
  opt.stop = stop;

  // A runtime failure from here on (out of device memory, a device error) ends the run with a
  // result that says so and holds what was measured before it.
  BenchmarkResult result;
  std::vector<MethodRun> runs;
  std::unique_ptr<GpuSession> gpu_session;
  std::vector<PolicyConfig> planned = policies;
  planned.push_back(PolicyConfig{});  // full attention, for continuations generated before the runs
  auto batch_of = [&](size_t planned_index) { return gpu_session ? gpu_session->batch_for(planned_index) : c.batch_size; };
  try {
    if (on_gpu) {
      gpu_session = start_gpu_session(c, model, requests, planned, opt.prefill_chunk, header, progress);
      opt.cuda = gpu_session->engine();
    }
    if (c.mode == RunMode::Replay) complete_replay_traces(c, model, opt, batch_of(planned.size() - 1), requests, progress);
    const bool self_calibrate =
        c.stats_path == "self" && std::any_of(policies.begin(), policies.end(), [](const PolicyConfig& p) { return traits(p.method).needs_stats; });
    if (self_calibrate) calibrate_on_run_tokens(model, requests, gpu_session.get(), policies, progress);
  } catch (const RuntimeFailure& e) {
    result.failure = e.what();
  }
  // Statistics against the model, prompts against every budget: before any method runs.
  if (result.failure.empty())
    for (const PolicyConfig& p : policies) validate_requests(model, requests, c.mode, make_method(p, model.config).get());

  std::optional<RunJournal> journal;
  if (!c.journal.empty() && c.mode != RunMode::Throughput && result.failure.empty()) {
    const nlohmann::json fingerprint = run_fingerprint(header, model, workload, policies);
    // A shard's journal is its own: resuming it as another shard is refused. The command line it
    // records names the shard even when the launcher's environment placed it.
    nlohmann::json journal_fingerprint = fingerprint;
    std::vector<std::string> command_line = c.command_line;
    if (c.shard) {
      journal_fingerprint["shard"] = c.shard->text();
      if (c.shard->placed_by != "--shard") command_line.insert(command_line.end(), {"--shard", c.shard->text()});
    }
    journal.emplace(c.resume ? RunJournal::resume(c.journal, journal_fingerprint)
                             : RunJournal::create(c.journal, command_line, journal_fingerprint));
    if (c.shard) {
      manifest.fingerprint = fingerprint;
      manifest.command_line = command_line;
      manifest.inputs = shard_inputs(c);
      manifest.result_header = make_result(header, model, workload, {}, "running");
      manifest.result_header.erase("runs");
      manifest.weights_bytes = header.settings.weights_bytes > 0 ? header.settings.weights_bytes : model.weights.bytes();
      for (size_t pi = 0; pi < policies.size(); ++pi) {
        const MethodRun run = describe_run(policies[pi], batch_of(pi), requests.size(), warmup);
        manifest.runs.push_back({{"name", run.name}, {"method", method_name(run.method)}, {"budget", run.budget},
                                 {"divide_length", run.divide_length}, {"batch", run.batch}, {"parameters", run.parameters}});
      }
      manifest.owned = owned;
      write_shard_manifest(c.shard_dir, manifest);
    }
  }

  ProgressReporter reporter(c.progress);
  profiler::enable(c.trace);
  GpuObservers gpu = start_gpu_observers(header, c.trace, progress);  // after enable: CUPTI reads its clock
  for (size_t pi = 0; pi < policies.size() && !result.interrupted && result.failure.empty(); ++pi) {
    const PolicyConfig& p = policies[pi];
    opt.batch_size = batch_of(pi);
    const std::string name = run_name(p);
    static const JournalRun kNothing;
    const JournalRun& before = journal ? journal->previous(name) : kNothing;
    std::vector<DecodeRequest> mine = requests;  // this run's share of the requests (all without --shard)
    if (c.shard) {
      const auto it = owned.find(name);
      if (it == owned.end()) continue;  // another shard's run
      std::erase_if(mine, [&](const DecodeRequest& r) { return !it->second.count({r.item, r.draw}); });
    }
    const std::vector<DecodeRequest> run_requests =
        c.mode == RunMode::Throughput ? fill_batch(requests, opt.batch_size)
        : before.sequences.empty()    ? mine
                                      : pending_requests(mine, before, name, c.journal);
    if (run_requests.empty()) {  // every sequence finished in an earlier session: nothing to decode
      MethodRun run = describe_run(p, opt.batch_size, mine.size(), warmup);
      if (before.complete) {
        run.output.stats = before.complete->stats;
        if (before.complete->timed_sequences > 0) run.repetitions = {before.complete->stats};
        run.peak_rss_bytes = before.complete->peak_rss_bytes;
        run.timed_sequences = before.complete->timed_sequences;
      } else if (journal) {  // it ended before it could say so: no timings
        journal->record_complete(name, {run.output.stats, 0, 0});
      }
      merge_journalled(run, mine, before);
      progress(fmt::format("{}: all {} sequence(s) from the journal", name, mine.size()));
      runs.push_back(std::move(run));
      continue;
    }
    progress(fmt::format("decoding {} sequence(s) with {}{}, mode {}, batch {}{}", run_requests.size(), method_name(p.method),
                         p.budget > 0 ? fmt::format(" at budget {}", p.budget) : "", to_string(c.mode), opt.batch_size,
                         before.sequences.empty() ? "" : fmt::format(" ({} from the journal)", before.sequences.size())));
    MethodRun run = measure_policy(model, run_requests, opt, p, warmup, repeat, gpu, kept ? &*kept : nullptr,
                                   journal ? &*journal : nullptr, reporter, result.failure);
    if (!before.sequences.empty()) {
      merge_journalled(run, mine, before);
      run.batch = std::min<int>(opt.batch_size, static_cast<int>(mine.size()));
    }
    result.interrupted = run.output.interrupted;
    // A journal line refused (a full disk) ends the sweep like any runtime failure: this run's
    // measurements still go into the result, which says why it stopped.
    if (journal && !run.output.interrupted && result.failure.empty()) {
      try {
        journal->record_complete(name, {run.output.stats, run.peak_rss_bytes, run.timed_sequences});
      } catch (const RuntimeFailure& e) {
        result.failure = e.what();
      }
    }
    runs.push_back(std::move(run));
  }
  finish_gpu_observers(gpu, header, progress);
  if (kept) kept->finish();
  const std::string status = !result.failure.empty() ? "failed" : result.interrupted ? "interrupted" : "complete";
  result.document = make_result(header, model, workload, runs, status, result.failure);
  if (c.shard)
    result.document["shard"] = {{"index", c.shard->index}, {"count", c.shard->count}, {"placed_by", c.shard->placed_by},
                                {"units", owned_unit_count(owned)},
                                {"expected_tokens", manifest.expected_tokens},
                                {"total_units", manifest.total_units}};
  result.steps_csv = render_steps_csv(runs, c.mode);
  if (c.trace) {
    // One host track per run; traced GPU work on tracks of its own, one per stream.
    std::vector<profiler::TraceRun> tracks;
    for (const MethodRun& r : runs) tracks.push_back({r.name, &r.events, r.gpu ? &*r.gpu : nullptr});
    result.trace = profiler::chrome_trace(tracks);
  }
  profiler::enable(false);
  return result;
}

}  // namespace kvb
