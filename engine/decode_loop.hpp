#pragma once
// The decode loop: prefill each sequence's prompt, then step a batch of sequences one token at a
// time, either generating (sampling) or replaying a given continuation (teacher forcing), and
// time every phase. Measurement (timers) stays here; what is measured is the backend's forward
// pass and policy (engine/decode_backend.hpp), on the CPU or a GPU.
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/methods/kv_method.hpp"
#include "engine/model.hpp"
#include "engine/sampler.hpp"

namespace kvb {

class CudaTransformer;

// Generate: sample; Replay: feed a given continuation and compare with full attention;
// Throughput: feed a given continuation as fast as possible (no comparison), for tokens/s.
enum class RunMode { Generate, Replay, Throughput };
const char* to_string(RunMode m);

struct DecodeRequest {
  std::string id;
  std::vector<int> prompt;  // complete, BOS included when the model wants one
  std::vector<int> forced;  // replay: the continuation fed token by token
  int max_new_tokens = 0;   // generate: at most this many new tokens
  int item = 0;             // the workload item it draws from, and which draw (--samples)
  int draw = 0;
  int64_t stream = -1;      // its sampler's stream (engine/sampler.hpp); -1: its index among the requests
};

struct SequenceOutcome {
  std::string id;
  int item = 0, draw = 0;
  std::vector<int> prompt;
  std::vector<int> tokens;            // generated (generate) or replayed (replay) ids
  std::string stop_reason;            // "eos", "max_new_tokens", "end_of_trace", "interrupted"
  std::vector<float> target_logprob;  // replay: log p(trace token) before it was fed
  std::vector<int> predicted;         // replay: the model's argmax at each step
  // replay with a budgeted method: full attention run in lockstep on the same tokens
  std::vector<float> kl;              // KL(full || method) per step
  std::vector<float> full_logprob;    // log p_full(trace token) per step
  std::vector<int> full_predicted;    // full attention's argmax per step
  std::vector<float> retained_mass;   // share of full attention's probability on the keys the method held
  std::vector<uint64_t> kv_bytes;     // KV bytes the sequence held when each step's logits were computed
  double prefill_seconds = 0;
};

struct DecodeStats {
  int64_t prefill_tokens = 0;
  double prefill_seconds = 0;
  int64_t decode_tokens = 0;          // tokens fed by decode steps (all sequences)
  double decode_seconds = 0;
  std::vector<double> step_seconds;   // one entry per decode step (a step feeds every active sequence)
  std::vector<double> step_kv_slots;  // per step: mean KV slots per (layer, kv-head) of the sequences it fed
  uint64_t kv_peak_bytes = 0;
  uint64_t kv_capacity_bytes = 0;     // largest cache allocated
  int64_t compression_events = 0;     // compressions that evicted slots (one per sequence and event)
  int64_t evicted_slots = 0;          // summed over layers and kv-heads
  double compression_seconds = 0;     // time in the method (scoring, selection, compaction)
};

struct DecodeOutput {
  std::vector<SequenceOutcome> sequences;
  DecodeStats stats;
  bool interrupted = false;
};

// How far a run_decode has come.
struct DecodeProgress {
  int finished = 0, total = 0;  // sequences
  int running = 0;              // rows decoding now
  int64_t tokens = 0;           // generated or replayed so far, every sequence
  int64_t finished_tokens = 0;  // of the finished sequences
};

struct DecodeOptions {
  RunMode mode = RunMode::Generate;
  SamplingParams sampling;
  int batch_size = 1;
  int prefill_chunk = 512;                  // prompt tokens per forward call
  PolicyConfig policy;                      // which KV-cache method, at which budget
  const std::atomic<bool>* stop = nullptr;  // set (e.g. by SIGINT) to end early, keeping what was measured
  CudaTransformer* cuda = nullptr;          // the GPU engine (weights already on the device); nullptr: CPU
  DType kv_dtype = DType::F32;              // CPU: keys and values rounded to F32/BF16/F16 as stored (--kv-dtype; BF16 is the GPU's)
  // Called with every compression event of every sequence (--dump-kept); empty: not recorded.
  std::function<void(const std::string& sequence_id, const KeptEvent& event)> on_kept;
  // Called after every decode step and every finished sequence (progress display); may be empty.
  std::function<void(const DecodeProgress& progress)> on_progress;
  // Called with every sequence that ended (not one cut short by `stop`), as it ends (the run's
  // journal); may be empty.
  std::function<void(const SequenceOutcome& sequence)> on_finished;
};

// In replay mode a budgeted method is run in lockstep with full attention: every step feeds the
// same token to both caches and compares their next-token distributions (engine/fidelity.hpp).
// The reference forward is timed apart and not counted in the method's latencies.

// Checks every request against the model's context and vocabulary, and its prompt against the
// method's budget (InputError naming the sequence), before anything runs.
void validate_requests(const Model& model, const std::vector<DecodeRequest>& requests, RunMode mode,
                       const KvMethod* method = nullptr);

DecodeOutput run_decode(const Model& model, const std::vector<DecodeRequest>& requests, const DecodeOptions& options);

// log softmax(logits)[target]
double log_probability(const float* logits, int vocab, int target);

}  // namespace kvb
