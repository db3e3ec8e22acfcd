#pragma once
// The canonical result document (docs/result-schema.md). Every other output is rendered from it.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/decode_loop.hpp"
#include "engine/model.hpp"
#include "kernels/gpu_info.hpp"
#include "profiler/gpu_activity.hpp"
#include "profiler/host_info.hpp"
#include "profiler/trace.hpp"
#include "reports/result_schema.hpp"
#include "workloads/workload.hpp"

namespace kvb {

struct RunSettings {
  RunMode mode = RunMode::Generate;
  int max_new_tokens = 0;
  int max_length = 0;  // 0: no cap on prompt + new tokens
  nlohmann::json prompt;  // how prompts were built (PromptBuilder::description)
  nlohmann::json preset;  // --preset {name, set, overridden}; null without one
  SamplingParams sampling;
  nlohmann::json sampling_sources = nlohmann::json::object();  // per setting: flag, generation_config.json or default
  int samples = 1;     // draws per item
  int batch_size = 1;  // as asked; 0 = auto
  std::string device = "cpu";
  int threads = 1;
  std::string compute_dtype = "f32";  // what the backend computes in
  uint64_t weights_bytes = 0;         // as the backend holds them; 0 = the model's fp32 host weights
};

// One (method, budget) run and what it measured.
struct MethodRun {
  std::string name;  // "method@budget" (run_name)
  Method method = Method::Full;
  int budget = 0;  // 0 = unbounded
  int divide_length = 0;
  int batch = 1;   // sequences decoded together (--batch, or what --batch auto chose)
  nlohmann::json parameters = nlohmann::json::object();  // the method's settings (method_parameters)
  DecodeOutput output;                   // the first measured repetition: sequences, fidelity, memory
  std::vector<DecodeStats> repetitions;  // timings of every measured repetition (--repeat)
  int warmup = 0;                        // repetitions run first and discarded (--warmup)
  std::vector<profiler::Event> events;   // host phase ranges of the measured repetitions (--trace)
  std::optional<profiler::GpuRunTrace> gpu;  // CUPTI records of the measured repetitions (--trace on a GPU)
  uint64_t peak_rss_bytes = 0;
  // --resume: sequences taken from the journal rather than decoded by this process, and how many
  // sequences the timings, compression counts and KV peak cover.
  int from_journal = 0;
  int timed_sequences = 0;
};

struct ResultHeader {
  std::vector<std::string> command_line;
  std::string started_at;  // ISO 8601 UTC
  HostInfo host;
  GpuQuery gpus;  // what answered on this machine (recorded even when the run used the CPU)
  RunSettings settings;
  // device.gpu_telemetry: NVML's summary while a CUDA run decoded, or {sampled: false, note: why not}.
  nlohmann::json gpu_telemetry;
  // device.gpu_trace with --trace: {traced, note} -- what recorded GPU activity, or why nothing did.
  nlohmann::json gpu_trace;  // null without --trace
};

nlohmann::json model_to_json(const Model& model, const std::string& compute_dtype);
nlohmann::json host_to_json(const HostInfo& host);
// [{index, name, sm_count, compute_capability, memory_bytes, memory_bus_bits, driver_version,
//   runtime_version, pci_bus_id}]
nlohmann::json gpus_to_json(const GpuQuery& gpus);
// In generate mode, sequences whose workload item has a reference answer are graded
// (workloads/grading.hpp) and the run gets an `accuracy` block.
// weights_bytes: as the backend holds them (measurements.memory.weights_bytes).
nlohmann::json run_to_json(const MethodRun& run, const Model& model, const Workload& workload, RunMode mode,
                           uint64_t weights_bytes);

// Every run, with each budgeted run's paired accuracy difference to full attention.
nlohmann::json runs_to_json(const std::vector<MethodRun>& runs, const Model& model, const Workload& workload, RunMode mode,
                            uint64_t weights_bytes);

// status: "complete", "interrupted" or "failed" (with `error`).
nlohmann::json make_result(const ResultHeader& header, const Model& model, const Workload& workload,
                           const std::vector<MethodRun>& runs, const std::string& status,
                           const std::string& error = "");

std::string utc_timestamp();  // ISO 8601, second precision

}  // namespace kvb
