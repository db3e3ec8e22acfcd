#include "run/result.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "build_info.hpp"
#include "util/accuracy_stats.hpp"
#include "util/statistics.hpp"
#include "util/errors.hpp"
#include "workloads/grading.hpp"
#include "util/timestamp.hpp"

namespace kvb {

using nlohmann::json;

std::string utc_timestamp() { return format_now("%Y-%m-%dT%H:%M:%SZ", true); }

json gpus_to_json(const GpuQuery& q) {
  json list = json::array();
  for (const GpuInfo& g : q.gpus)
    list.push_back({{"index", g.index}, {"name", g.name}, {"sm_count", g.sm_count},
                    {"compute_capability", fmt::format("{}.{}", g.compute_major, g.compute_minor)},
                    {"memory_bytes", g.memory_bytes}, {"memory_bus_bits", g.memory_bus_bits},
                    {"driver_version", g.driver_version}, {"runtime_version", g.runtime_version},
                    {"pci_bus_id", g.pci_bus_id}});
  return list;
}

json host_to_json(const HostInfo& h) {
  return {{"cpu_model", h.cpu_model}, {"logical_cores", h.logical_cores}, {"memory_bytes", h.memory_bytes},
          {"os", h.os}, {"hostname", h.hostname}};
}

json model_to_json(const Model& m, const std::string& compute_dtype) {
  const ModelConfig& c = m.config;
  json files = json::array();
  for (const ModelFile& f : m.info.files)
    files.push_back({{"path", f.path}, {"bytes", f.bytes}, {"sha256", f.sha256}, {"hash_seconds", f.hash_seconds},
                     {"hash_cached", f.hash_cached}});
  json rope_scaling = {{"type", to_string(c.rope_scaling.type)}};
  if (c.rope_scaling.type != RopeScalingType::None) {
    rope_scaling["factor"] = c.rope_scaling.factor;
    if (c.rope_scaling.original_max_position > 0)
      rope_scaling["original_max_position"] = c.rope_scaling.original_max_position;
  }
  return {{"source", m.info.source},
          {"name", m.info.name},
          {"format", m.info.format},
          {"synthetic", m.info.synthetic},
          {"architecture", to_string(c.arch)},
          {"stored_dtype", m.info.stored_dtype},
          {"compute_dtype", compute_dtype},
          {"parameters", c.parameter_count()},
          {"layers", c.n_layers},
          {"hidden", c.dim},
          {"heads", c.n_heads},
          {"kv_heads", c.n_kv_heads},
          {"head_dim", c.head_dim},
          {"ffn", c.ffn_dim},
          {"vocab", c.vocab_size},
          {"context", c.max_seq_len},
          {"rope_theta", c.rope_theta},
          {"rope_pairing", to_string(c.rope_pairing)},
          {"rope_scaling", rope_scaling},
          {"qkv_bias", c.qkv_bias},
          {"qk_norm", c.qk_norm},
          {"tied_embeddings", c.tied_embeddings},
          {"tokenizer", m.tokenizer ? m.tokenizer->kind() : "none"},
          {"files", files},
          {"load",
           {{"seconds", m.info.load.seconds},
            {"device_seconds", m.info.load.device_seconds},
            {"host_peak_rss_bytes", m.info.load.host_peak_rss_bytes}}}};
}

namespace {

json summary_ms(const std::vector<double>& seconds) {
  std::vector<double> ms(seconds.size());
  for (size_t i = 0; i < seconds.size(); ++i) ms[i] = seconds[i] * 1e3;
  const Summary s = summarize(std::move(ms));
  return {{"count", s.count}, {"mean", s.mean}, {"min", s.min}, {"p50", s.p50},
          {"p90", s.p90},     {"p99", s.p99},   {"max", s.max}};
}

double rate(double count, double seconds) { return seconds > 0 ? count / seconds : 0.0; }

// Decode step latency against the KV length the step read: steps grouped into up to 8 equal
// ranges of mean KV slots per (layer, KV head), each with its latency summary.
json step_latency_by_kv(const DecodeStats& st) {
  json out = json::array();
  if (st.step_seconds.empty() || st.step_kv_slots.size() != st.step_seconds.size()) return out;
  const auto [lo_it, hi_it] = std::minmax_element(st.step_kv_slots.begin(), st.step_kv_slots.end());
  const double lo = *lo_it, hi = *hi_it, width = std::max(1.0, (hi - lo) / 8.0);
  std::vector<std::vector<double>> buckets(8);
  for (size_t i = 0; i < st.step_seconds.size(); ++i)
    buckets[std::min<size_t>(7, size_t((st.step_kv_slots[i] - lo) / width))].push_back(st.step_seconds[i]);
  for (size_t b = 0; b < buckets.size(); ++b) {
    if (buckets[b].empty()) continue;
    out.push_back({{"kv_slots_from", lo + b * width}, {"kv_slots_to", std::min(hi, lo + (b + 1) * width)},
                   {"step_latency_ms", summary_ms(buckets[b])}});
  }
  return out;
}

// Agreement with full attention over every replayed step of every sequence.
json fidelity_to_json(const std::vector<SequenceOutcome>& sequences) {
  std::vector<double> kl, retained;
  double nll_full = 0, nll_method = 0, abs_dp = 0;
  int64_t same_top1 = 0;
  for (const SequenceOutcome& o : sequences) {
    retained.insert(retained.end(), o.retained_mass.begin(), o.retained_mass.end());
    for (size_t i = 0; i < o.kl.size(); ++i) {
      kl.push_back(o.kl[i]);
      nll_full -= o.full_logprob[i];
      nll_method -= o.target_logprob[i];
      abs_dp += std::fabs(std::exp(double(o.full_logprob[i])) - std::exp(double(o.target_logprob[i])));
      same_top1 += o.full_predicted[i] == o.predicted[i];
    }
  }
  const double n = static_cast<double>(kl.size());
  if (kl.empty()) return json::object();
  const Summary k = summarize(kl);
  json out = {{"steps", kl.size()},
              {"kl", {{"mean", k.mean}, {"p50", k.p50}, {"p90", k.p90}, {"p99", k.p99}, {"max", k.max}}},
              {"top1_agreement_with_full", same_top1 / n},
              {"mean_abs_dprob", abs_dp / n},
              {"ppl_ratio", std::exp((nll_method - nll_full) / n)}};
  // Only measured against a lockstep reference (full attention itself holds every key).
  if (!retained.empty()) {
    const Summary r = summarize(retained);
    out["retained_attention_mass"] = {{"mean", r.mean}, {"p50", r.p50}, {"min", r.min}};
  }
  return out;
}

}  // namespace

json run_to_json(const MethodRun& run, const Model& model, const Workload& workload, RunMode mode,
                 uint64_t weights_bytes) {
  const DecodeStats& st = run.output.stats;
  DrawOutcomes outcomes(workload.items.size());  // graded draws per item
  std::vector<double> answer_tokens, prefix_fractions;
  int64_t cut_at_cap = 0, correct_tokens = 0;
  json sequences = json::array();
  double nll_sum = 0;
  int64_t replayed = 0, agree = 0;
  for (const SequenceOutcome& o : run.output.sequences) {
    json s = {{"id", o.id},
              {"item", o.item < int(workload.items.size()) ? json(workload.items[o.item].id) : json(nullptr)},
              {"draw", o.draw},
              {"prompt_tokens", o.prompt.size()},
              {"prompt_ids", o.prompt},
              {"token_ids", o.tokens},
              {"text", model.tokenizer->decode(o.tokens)},
              {"stop_reason", o.stop_reason},
              {"prefill_ms", o.prefill_seconds * 1e3}};
    const WorkloadItem* item = o.item < int(workload.items.size()) ? &workload.items[o.item] : nullptr;
    if (mode == RunMode::Generate && item && item->answer) {
      json g;
      try {
        const Grade grade = grade_answer(s["text"].get<std::string>(), *item->answer, item->grading);
        g = {{"correct", grade.correct}, {"extracted", grade.extracted}, {"predicted", grade.predicted},
             {"reference", grade.reference}, {"note", grade.note}};
        if (grade.prefix_fraction) {
          g["prefix_fraction"] = *grade.prefix_fraction;
          prefix_fractions.push_back(*grade.prefix_fraction);
        }
        outcomes[o.item].push_back(grade.correct);
        answer_tokens.push_back(double(o.tokens.size()));
        cut_at_cap += o.stop_reason == "max_new_tokens";
        if (grade.correct) correct_tokens += int64_t(o.tokens.size());
      } catch (const InputError& e) {  // an unusable reference answer: reported, not counted
        g = {{"correct", false}, {"extracted", false}, {"reference", *item->answer}, {"note", e.what()}};
      }
      s["grade"] = std::move(g);
    }
    if (mode == RunMode::Replay && !o.target_logprob.empty()) {
      double nll = 0;
      int64_t a = 0;
      for (size_t i = 0; i < o.target_logprob.size(); ++i) {
        nll -= o.target_logprob[i];
        a += o.predicted[i] == o.tokens[i];
      }
      const double n = static_cast<double>(o.target_logprob.size());
      s["replay"] = {{"tokens", o.target_logprob.size()}, {"nll_mean", nll / n}, {"ppl", std::exp(nll / n)},
                     {"top1_agreement", a / n}};
      nll_sum += nll;
      replayed += static_cast<int64_t>(o.target_logprob.size());
      agree += a;
    }
    sequences.push_back(std::move(s));
  }
  uint64_t kv_sum = 0, kv_max = 0, kv_steps = 0;
  for (const SequenceOutcome& o : run.output.sequences)
    for (uint64_t b : o.kv_bytes) {
      kv_sum += b;
      kv_max = std::max(kv_max, b);
      ++kv_steps;
    }
  json measurements = {
      {"prefill", {{"tokens", st.prefill_tokens}, {"seconds", st.prefill_seconds},
                   {"tokens_per_s", rate(st.prefill_tokens, st.prefill_seconds)}}},
      {"decode", {{"tokens", st.decode_tokens}, {"steps", st.step_seconds.size()}, {"seconds", st.decode_seconds},
                  {"tokens_per_s", rate(st.decode_tokens, st.decode_seconds)},
                  // Each step feeds one token per running row (continuous batching refills them).
                  {"mean_running_rows", st.step_seconds.empty() ? 0.0 : double(st.decode_tokens) / st.step_seconds.size()},
                  {"step_latency_ms", summary_ms(st.step_seconds)}}},
      {"memory", {{"weights_bytes", weights_bytes}, {"kv_bytes_peak", st.kv_peak_bytes},
                  {"kv_bytes_allocated", st.kv_capacity_bytes},
                  {"kv_bytes_per_sequence_mean", kv_steps > 0 ? double(kv_sum) / kv_steps : 0.0},
                  {"kv_bytes_per_sequence_peak", kv_max}, {"peak_rss_bytes", run.peak_rss_bytes}}}};
  if (!run.repetitions.empty()) {
    // Timings over repetitions: each figure's median, mean, spread; the headline rates become the
    // medians and the step latencies pool every measured step.
    std::vector<double> decode_rate, prefill_rate, step_p50, steps;
    for (const DecodeStats& r : run.repetitions) {
      decode_rate.push_back(rate(r.decode_tokens, r.decode_seconds));
      prefill_rate.push_back(rate(r.prefill_tokens, r.prefill_seconds));
      step_p50.push_back(summarize(std::vector<double>(r.step_seconds)).p50 * 1e3);
      steps.insert(steps.end(), r.step_seconds.begin(), r.step_seconds.end());
    }
    auto spread = [](const std::vector<double>& v) {
      const Summary s = summarize(v);
      return json{{"median", s.p50}, {"mean", s.mean}, {"stddev", s.stddev}, {"min", s.min}, {"max", s.max},
                  {"values", v}};
    };
    measurements["repetitions"] = {{"count", run.repetitions.size()},
                                   {"warmup", run.warmup},
                                   {"decode_tokens_per_s", spread(decode_rate)},
                                   {"prefill_tokens_per_s", spread(prefill_rate)},
                                   {"step_p50_ms", spread(step_p50)}};
    measurements["decode"]["tokens_per_s"] = summarize(decode_rate).p50;
    measurements["prefill"]["tokens_per_s"] = summarize(prefill_rate).p50;
    measurements["decode"]["step_latency_ms"] = summary_ms(steps);
  }
  if (!run.events.empty()) {
    // Shares are of the time in top-level ranges (prefill and decode steps, the lockstep
    // reference included), so the top-level rows add up to 1.
    double top_ms = 0;
    for (const profiler::Event& e : run.events) top_ms += e.depth == 0 ? e.duration_ns * 1e-6 : 0.0;
    measurements["profile"] = profiler::op_table(run.events, top_ms);
  }
  if (run.gpu) measurements["gpu_profile"] = profiler::gpu_profile(*run.gpu);
  if (mode == RunMode::Throughput) {
    std::vector<double> ttft;
    for (const SequenceOutcome& o : run.output.sequences) ttft.push_back(o.prefill_seconds);
    measurements["throughput"] = {{"time_to_first_token_ms", summary_ms(ttft)},
                                  {"step_latency_by_kv_length", step_latency_by_kv(st)}};
  }
  std::erase_if(outcomes, [](const std::vector<uint8_t>& draws) { return draws.empty(); });
  if (!outcomes.empty()) {
    const AccuracySummary a = summarize_accuracy(outcomes);
    json pass = json::object();
    for (size_t k = 0; k < a.pass_at_k.size(); ++k) pass[std::to_string(k + 1)] = a.pass_at_k[k];
    const Summary lengths = summarize(answer_tokens);
    const double answers = double(answer_tokens.size());
    measurements["accuracy"] = {
        {"correct", a.correct},
        {"total", a.total},
        {"items", a.items},
        {"draws", a.draws},
        {"accuracy", a.avg},  // avg@N: the mean over items of each item's mean over its draws
        {"ci95", {a.ci95.low, a.ci95.high}},
        {"interval", fmt::format("BCa bootstrap over items, {} resamples", kBootstrapResamples)},
        {"pass_at_k", pass},
        {"answer_tokens", {{"mean", lengths.mean}, {"p50", lengths.p50}, {"p90", lengths.p90}}},
        {"cut_at_length_cap", double(cut_at_cap) / answers},
        // What a correct answer costs: every answer's tokens (and decode time) per correct one.
        {"tokens_per_correct", a.correct > 0 ? json(lengths.mean * answers / double(a.correct)) : json(nullptr)},
        {"seconds_per_correct", a.correct > 0 ? json(st.decode_seconds / double(a.correct)) : json(nullptr)},
        {"correct_answer_tokens_mean", a.correct > 0 ? json(double(correct_tokens) / double(a.correct)) : json(nullptr)}};
    // Sequence answers: how far into the reference the outputs stayed right, on average.
    if (!prefix_fractions.empty()) measurements["accuracy"]["prefix_fraction_mean"] = summarize(prefix_fractions).mean;
  }
  const double total_seconds = st.prefill_seconds + st.decode_seconds;
  measurements["compression"] = {{"events", st.compression_events},
                                 {"evicted_slots", st.evicted_slots},
                                 {"seconds", st.compression_seconds},
                                 {"ms_per_event", st.compression_events > 0 ? st.compression_seconds * 1e3 / st.compression_events : 0.0},
                                 {"share_of_time", total_seconds > 0 ? st.compression_seconds / total_seconds : 0.0}};
  if (mode == RunMode::Replay && replayed > 0) {
    const double n = static_cast<double>(replayed);
    measurements["replay"] = {{"tokens", replayed}, {"nll_mean", nll_sum / n}, {"ppl", std::exp(nll_sum / n)},
                              {"top1_agreement", agree / n}};
    measurements["fidelity"] = fidelity_to_json(run.output.sequences);
  }
  return {{"method", std::string(method_name(run.method))},
          {"budget", run.budget > 0 ? json(run.budget) : json(nullptr)},
          {"divide_length", run.divide_length > 0 ? json(run.divide_length) : json(nullptr)},
          {"batch", run.batch},
          {"parameters", run.parameters},
          {"interrupted", run.output.interrupted},
          {"resumed", run.from_journal > 0 ? json{{"sequences_from_journal", run.from_journal},
                                                 {"timed_sequences", run.timed_sequences}}
                                           : json(nullptr)},
          {"measurements", measurements},
          {"sequences", sequences}};
}

// Graded draws per item of a run document, in item order (the sequences' item and draw).
DrawOutcomes graded_outcomes(const json& run) {
  std::map<std::string, std::vector<uint8_t>> by_item;
  std::vector<std::string> order;
  for (const json& s : run["sequences"]) {
    // Graded against a usable reference (an unusable one leaves no "predicted").
    if (!s.contains("grade") || !s["grade"].contains("predicted") || !s["item"].is_string()) continue;
    const std::string item = s["item"];
    if (!by_item.count(item)) order.push_back(item);
    by_item[item].push_back(s["grade"]["correct"].get<bool>());
  }
  DrawOutcomes out;
  for (const std::string& item : order) out.push_back(by_item[item]);
  return out;
}

// Every budgeted run's accuracy against the full-attention run of the same result, item by item
// and draw by draw.
void add_paired_differences(json& runs) {
  const auto full = std::find_if(runs.begin(), runs.end(), [](const json& r) { return r["budget"].is_null(); });
  if (full == runs.end() || !(*full)["measurements"].contains("accuracy")) return;
  const DrawOutcomes reference = graded_outcomes(*full);
  for (json& run : runs) {
    if (run["budget"].is_null() || !run["measurements"].contains("accuracy")) continue;
    const DrawOutcomes mine = graded_outcomes(run);
    if (mine.size() != reference.size()) continue;  // an interrupted run: not the same items
    try {
      const PairedDifference d = paired_difference(mine, reference);
      run["measurements"]["accuracy"]["vs_full"] = {
          {"difference", d.difference}, {"ci95", {d.ci95.low, d.ci95.high}}, {"verdict", d.verdict}};
    } catch (const InputError&) {  // different draws (an interrupted run): no pairing
    }
  }
}

json runs_to_json(const std::vector<MethodRun>& runs, const Model& model, const Workload& workload, RunMode mode,
                  uint64_t weights_bytes) {
  json out = json::array();
  for (const MethodRun& r : runs) out.push_back(run_to_json(r, model, workload, mode, weights_bytes));
  add_paired_differences(out);
  return out;
}

json make_result(const ResultHeader& h, const Model& model, const Workload& workload,
                 const std::vector<MethodRun>& runs, const std::string& status, const std::string& error) {
  const RunSettings& s = h.settings;
  json runs_json = runs_to_json(runs, model, workload, s.mode, s.weights_bytes > 0 ? s.weights_bytes : model.weights.bytes());
  json device = {{"kind", s.device}, {"threads", s.threads}, {"gpus", gpus_to_json(h.gpus)},
                 {"gpus_note", h.gpus.gpus.empty() ? json(h.gpus.why_none) : json(nullptr)},
                 {"gpu_telemetry", h.gpu_telemetry}};
  if (!h.gpu_trace.is_null()) device["gpu_trace"] = h.gpu_trace;
  json doc = {{"schema_version", kResultSchemaVersion},
              {"tool", {{"name", "kvbench"}, {"version", build::kVersion}, {"git_commit", build::kGitCommit}}},
              {"command_line", h.command_line},
              {"started_at", h.started_at},
              {"finished_at", utc_timestamp()},
              {"status", status},
              {"synthetic", model.info.synthetic},
              {"host", host_to_json(h.host)},
              {"device", std::move(device)},
              {"model", model_to_json(model, s.compute_dtype)},
              {"workload", {{"source", workload.source}, {"format", workload.format}, {"sha256", workload.sha256},
                            {"sequences", workload.items.size()}}},
              {"settings", {{"mode", to_string(s.mode)}, {"max_new_tokens", s.max_new_tokens},
                            {"max_length", s.max_length > 0 ? json(s.max_length) : json(nullptr)},
                            {"prompt", s.prompt},
                            {"preset", s.preset},
                            {"temperature", s.sampling.temperature}, {"top_p", s.sampling.top_p},
                            {"top_k", s.sampling.top_k}, {"min_p", s.sampling.min_p},
                            {"sampling_sources", s.sampling_sources}, {"samples", s.samples},
                            {"seed", s.sampling.seed}, {"batch", s.batch_size > 0 ? json(s.batch_size) : json("auto")}}},
              {"runs", runs_json}};
  if (!error.empty()) doc["error"] = error;
  return doc;
}

}  // namespace kvb
