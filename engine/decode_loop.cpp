#include "engine/decode_loop.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "engine/decode_backend.hpp"
#include "profiler/trace.hpp"
#include "util/errors.hpp"

namespace kvb {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int steps_of(const DecodeRequest& r, RunMode mode) {
  return mode == RunMode::Generate ? r.max_new_tokens : static_cast<int>(r.forced.size());
}

}  // namespace

const char* to_string(RunMode m) {
  return m == RunMode::Replay ? "replay" : m == RunMode::Throughput ? "throughput" : "generate";
}

double log_probability(const float* logits, int vocab, int target) {
  float max = logits[0];
  for (int i = 1; i < vocab; ++i) max = std::max(max, logits[i]);
  double sum = 0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - max);
  return double(logits[target]) - max - std::log(sum);
}

void validate_requests(const Model& model, const std::vector<DecodeRequest>& requests, RunMode mode,
                       const KvMethod* method) {
  const ModelConfig& c = model.config;
  for (const DecodeRequest& r : requests) {
    if (r.prompt.empty()) fail_input("sequence {}: the prompt is empty and the model adds no BOS token", r.id);
    if (method) method->check_prompt(static_cast<int>(r.prompt.size()), r.id);
    for (const auto* ids : {&r.prompt, &r.forced})
      for (int t : *ids)
        if (t < 0 || t >= c.vocab_size)
          fail_input("sequence {}: token id {} is outside the model's vocabulary of {}", r.id, t, c.vocab_size);
    const int steps = steps_of(r, mode);
    if (mode != RunMode::Generate && steps == 0) fail_input("sequence {}: nothing to replay (empty continuation)", r.id);
    if (mode == RunMode::Generate && steps <= 0) fail_input("sequence {}: --max-new-tokens must be positive", r.id);
    const int64_t total = int64_t(r.prompt.size()) + steps;
    if (total > c.max_seq_len)
      fail_input("sequence {}: prompt of {} tokens + {} {} tokens exceeds the model's context of {}{}", r.id,
                 r.prompt.size(), steps, mode == RunMode::Generate ? "new" : "replayed", c.max_seq_len,
                 " (lower --max-new-tokens)");
  }
}

DecodeOutput run_decode(const Model& model, const std::vector<DecodeRequest>& requests, const DecodeOptions& opt) {
  const ModelConfig& c = model.config;
  validate_requests(model, requests, opt.mode, make_method(opt.policy, c).get());
  const int vocab = c.vocab_size;
  const int batch_size = std::max(1, opt.batch_size);
  std::unique_ptr<DecodeBackend> backend =
      opt.cuda ? make_cuda_backend(*opt.cuda, opt.policy) : make_cpu_backend(model, opt.policy, std::max(batch_size, opt.prefill_chunk), opt.bf16_kv);
  const bool lockstep = opt.mode == RunMode::Replay && traits(opt.policy.method).budgeted;
  std::vector<BatchToken> batch;
  batch.reserve(std::max(batch_size, opt.prefill_chunk));
  std::vector<int> targets;
  std::vector<StepFidelity> fidelity;

  DecodeOutput out;
  out.sequences.resize(requests.size());
  auto stop_requested = [&] { return opt.stop && opt.stop->load(std::memory_order_relaxed); };

  for (size_t first = 0; first < requests.size() && !out.interrupted; first += batch_size) {
    const int n = static_cast<int>(std::min<size_t>(batch_size, requests.size() - first));
    int capacity = 1, full_capacity = 1;
    for (int s = 0; s < n; ++s) {
      const DecodeRequest& r = requests[first + s];
      const int prompt = static_cast<int>(r.prompt.size()), total = prompt + steps_of(r, opt.mode);
      capacity = std::max(capacity, cache_capacity(opt.policy, prompt, total));
      full_capacity = std::max(full_capacity, total);
    }
    backend->begin_batch(n, capacity, lockstep ? full_capacity : 0);
    // Runs the reference forward on the batch the method just consumed (before the method
    // compresses, so the method's cache holds what its attention read) and returns its
    // duration, to be left out of the method's timings.
    auto reference_forward = [&]() -> double {
      if (!lockstep) return 0.0;
      profiler::Range range("reference forward");
      const auto t0 = Clock::now();
      backend->reference_forward(batch);
      return seconds_since(t0);
    };
    out.stats.kv_capacity_bytes = std::max(out.stats.kv_capacity_bytes, backend->capacity_bytes());
    std::vector<Sampler> samplers;
    for (int s = 0; s < n; ++s) {
      const int64_t stream = requests[first + s].stream;
      samplers.emplace_back(opt.sampling, stream >= 0 ? uint64_t(stream) : uint64_t(first + s));
    }

    // The method runs after every forward, over every row it fed; its time is measured apart
    // from the forward's.
    std::vector<RowProgress> progress;
    std::vector<int64_t> evicted;
    std::vector<KeptEvent> kept;
    auto compress = [&] {
      profiler::Range range("compress");
      const auto t0 = Clock::now();
      evicted.resize(progress.size());
      kept.clear();
      backend->compress(progress, evicted, opt.on_kept ? &kept : nullptr);
      out.stats.compression_seconds += seconds_since(t0);
      for (int64_t e : evicted)
        if (e > 0) {
          ++out.stats.compression_events;
          out.stats.evicted_slots += e;
        }
      for (const KeptEvent& k : kept) opt.on_kept(requests[first + k.seq].id, k);
    };

    // What each sequence consumes next and whether it is still running.
    std::vector<int> next_token(n), done(n, 0);
    std::vector<uint64_t> held_bytes(n);  // KV bytes each row held during its last forward
    // Replay compares every row of the last forward at once (on the device where it ran).
    auto measure_fidelity = [&](std::span<const int> rows) {
      if (opt.mode != RunMode::Replay) return;
      targets.clear();
      for (int s : rows) targets.push_back(requests[first + s].forced[out.sequences[first + s].tokens.size()]);
      backend->fidelity(targets, fidelity);
    };
    auto consume = [&](int s, int row) {  // the last forward's logits row `row` is for s's next position
      const DecodeRequest& r = requests[first + s];
      SequenceOutcome& o = out.sequences[first + s];
      o.kv_bytes.push_back(held_bytes[s]);
      if (lockstep) {
        const double mass = backend->take_retained_mass(s);
        if (!std::isnan(mass)) o.retained_mass.push_back(static_cast<float>(mass));
      }
      if (opt.mode == RunMode::Throughput) {
        next_token[s] = r.forced[o.tokens.size()];
        o.tokens.push_back(next_token[s]);
        if (o.tokens.size() == r.forced.size()) {
          o.stop_reason = "end_of_trace";
          done[s] = 1;
        }
      } else if (opt.mode == RunMode::Replay) {
        const StepFidelity& f = fidelity[row];
        o.target_logprob.push_back(static_cast<float>(f.method_logprob));
        o.predicted.push_back(f.method_argmax);
        o.kl.push_back(static_cast<float>(f.kl));
        o.full_logprob.push_back(static_cast<float>(f.full_logprob));
        o.full_predicted.push_back(f.full_argmax);
        next_token[s] = r.forced[o.tokens.size()];
        o.tokens.push_back(next_token[s]);
        if (o.tokens.size() == r.forced.size()) {
          o.stop_reason = "end_of_trace";
          done[s] = 1;
        }
      } else {
        const int tok = samplers[s].sample(backend->host_logits(row), vocab);
        o.tokens.push_back(tok);
        next_token[s] = tok;
        if (is_stop_token(model, tok)) {
          o.stop_reason = "eos";
          done[s] = 1;
        } else if (static_cast<int>(o.tokens.size()) >= r.max_new_tokens) {
          o.stop_reason = "max_new_tokens";
          done[s] = 1;
        }
      }
    };

    // Prefill, one sequence at a time, in chunks.
    double reference_seconds = 0;
    for (int s = 0; s < n; ++s) {
      const DecodeRequest& r = requests[first + s];
      SequenceOutcome& o = out.sequences[first + s];
      o.id = r.id;
      o.item = r.item;
      o.draw = r.draw;
      o.prompt = r.prompt;
      profiler::Range range("prefill");
      const auto t0 = Clock::now();
      const int len = static_cast<int>(r.prompt.size());
      backend->begin_sequence(s);
      const int row[] = {s};
      for (int at = 0; at < len; at += opt.prefill_chunk) {
        const int end = std::min(len, at + opt.prefill_chunk);
        batch.clear();
        for (int p = at; p < end; ++p) batch.push_back(BatchToken{s, p, r.prompt[p], p == len - 1});
        backend->forward(batch);
        reference_seconds += reference_forward();
      }
      held_bytes[s] = backend->sequence_bytes(s);
      measure_fidelity(row);
      progress.assign(1, RowProgress{s, len, len, true});
      compress();
      consume(s, 0);
      o.prefill_seconds = seconds_since(t0) - reference_seconds;
      reference_seconds = 0;
      out.stats.prefill_seconds += o.prefill_seconds;
      out.stats.prefill_tokens += len;
    }

    // Decode steps: every running sequence feeds its last token and gets logits for the next.
    std::vector<int> rows;
    while (true) {
      batch.clear();
      rows.clear();
      for (int s = 0; s < n; ++s) {
        if (done[s]) continue;
        const SequenceOutcome& o = out.sequences[first + s];
        const int pos = static_cast<int>(o.prompt.size() + o.tokens.size()) - 1;
        batch.push_back(BatchToken{s, pos, next_token[s], true});
        rows.push_back(s);
      }
      if (batch.empty()) break;
      if (stop_requested()) {
        for (int s : rows) out.sequences[first + s].stop_reason = "interrupted";
        out.interrupted = true;
        break;
      }
      profiler::Range range("decode step");
      const auto t0 = Clock::now();
      backend->forward(batch);
      const double forward_seconds = seconds_since(t0);
      uint64_t step_bytes = 0;
      for (int s : rows) step_bytes += held_bytes[s] = backend->sequence_bytes(s);
      out.stats.step_kv_slots.push_back(double(step_bytes) / backend->bytes_per_slot() /
                                        (double(c.n_layers) * c.n_kv_heads) / rows.size());
      reference_forward();
      measure_fidelity(rows);
      const auto t1 = Clock::now();
      progress.clear();
      for (size_t i = 0; i < rows.size(); ++i) {
        const int s = rows[i];
        progress.push_back(RowProgress{s, static_cast<int>(requests[first + s].prompt.size()), batch[i].pos + 1, false});
      }
      compress();
      const double dt = forward_seconds + seconds_since(t1);
      for (size_t i = 0; i < rows.size(); ++i) consume(rows[i], static_cast<int>(i));
      out.stats.step_seconds.push_back(dt);
      out.stats.decode_seconds += dt;
      out.stats.decode_tokens += static_cast<int64_t>(batch.size());
    }
    out.stats.kv_peak_bytes = std::max(out.stats.kv_peak_bytes, backend->peak_bytes());
  }
  if (out.interrupted) {
    // Sequences never started keep empty outcomes; drop them so the result holds only what ran.
    std::erase_if(out.sequences, [](const SequenceOutcome& o) { return o.id.empty(); });
  }
  return out;
}

}  // namespace kvb
