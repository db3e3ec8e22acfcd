#include "engine/decode_loop.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

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
      opt.cuda ? make_cuda_backend(*opt.cuda, opt.policy) : make_cpu_backend(model, opt.policy, std::max(batch_size, opt.prefill_chunk), opt.kv_dtype);
  const bool lockstep = opt.mode == RunMode::Replay && traits(opt.policy.method).budgeted;
  std::vector<BatchToken> batch;
  batch.reserve(std::max(batch_size, opt.prefill_chunk));
  std::vector<int> targets;
  std::vector<StepFidelity> fidelity;

  DecodeOutput out;
  out.sequences.resize(requests.size());
  auto stop_requested = [&] { return opt.stop && opt.stop->load(std::memory_order_relaxed); };

  // Continuous batching: `n_rows` cache rows decode together, and a row whose sequence ends takes
  // the next request at once (its prefill runs on that row before the next step), so the batch
  // stays full until the requests run out. Every row is sized for the largest request.
  const int n_rows = static_cast<int>(std::min<size_t>(batch_size, requests.size()));
  int capacity = 1, full_capacity = 1;
  for (const DecodeRequest& r : requests) {
    const int prompt = static_cast<int>(r.prompt.size()), total = prompt + steps_of(r, opt.mode);
    capacity = std::max(capacity, cache_capacity(opt.policy, prompt, total));
    full_capacity = std::max(full_capacity, total);
  }
  backend->begin_batch(n_rows, capacity, lockstep ? full_capacity : 0);
  out.stats.kv_capacity_bytes = backend->capacity_bytes();
  std::vector<Sampler> samplers;
  for (size_t i = 0; i < requests.size(); ++i)
    samplers.emplace_back(opt.sampling, requests[i].stream >= 0 ? uint64_t(requests[i].stream) : uint64_t(i));
  std::vector<int> request_of(n_rows, -1);  // the request each row decodes (-1: none)
  size_t next_request = 0;
  DecodeProgress status;
  status.total = static_cast<int>(requests.size());

  // Runs the reference forward on the batch the method just consumed (before the method
  // compresses, so the method's cache holds what its attention read) and returns its duration,
  // to be left out of the method's timings.
  auto reference_forward = [&]() -> double {
    if (!lockstep) return 0.0;
    profiler::Range range("reference forward");
    const auto t0 = Clock::now();
    backend->reference_forward(batch);
    return seconds_since(t0);
  };

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
    for (const KeptEvent& k : kept) opt.on_kept(requests[request_of[k.seq]].id, k);
  };

  // Per row: what it consumes next, whether its sequence ended, KV bytes held in its last forward.
  std::vector<int> next_token(n_rows), done(n_rows, 0);
  std::vector<uint64_t> held_bytes(n_rows);
  // Replay compares every row of the last forward at once (on the device where it ran).
  auto measure_fidelity = [&](std::span<const int> rows) {
    if (opt.mode != RunMode::Replay) return;
    targets.clear();
    for (int row : rows) {
      const int i = request_of[row];
      targets.push_back(requests[i].forced[out.sequences[i].tokens.size()]);
    }
    backend->fidelity(targets, fidelity);
  };
  auto consume = [&](int row, int logits_row) {  // the last forward's logits_row is for row's next position
    const int i = request_of[row];
    const DecodeRequest& r = requests[i];
    SequenceOutcome& o = out.sequences[i];
    o.kv_bytes.push_back(held_bytes[row]);
    if (lockstep) {
      const double mass = backend->take_retained_mass(row);
      if (!std::isnan(mass)) o.retained_mass.push_back(static_cast<float>(mass));
    }
    // A benchmark must not publish numbers computed from NaN or Inf (overflowed activations,
    // corrupt weights that passed the load check): the run stops with exit 3, and the sequences
    // already finished stay in the journal.
    auto non_finite = [&] {
      fail_runtime("sequence {}: non-finite logits (NaN or Inf) after {} tokens; the model's activations overflowed, "
                   "nothing computed from them is reported", r.id, r.prompt.size() + o.tokens.size());
    };
    if (opt.mode == RunMode::Generate) {
      const float* logits = backend->host_logits(logits_row);
      bool finite = true;
      for (int v = 0; v < vocab; ++v) finite &= std::fabs(logits[v]) <= std::numeric_limits<float>::max();
      if (!finite) non_finite();
      const int tok = samplers[i].sample(logits, vocab);
      o.tokens.push_back(tok);
      next_token[row] = tok;
      if (is_stop_token(model, tok)) {
        o.stop_reason = "eos";
        done[row] = 1;
      } else if (static_cast<int>(o.tokens.size()) >= r.max_new_tokens) {
        o.stop_reason = "max_new_tokens";
        done[row] = 1;
      }
      return;
    }
    if (opt.mode == RunMode::Replay) {
      const StepFidelity& f = fidelity[logits_row];
      if (!std::isfinite(f.method_logprob) || !std::isfinite(f.full_logprob) || !std::isfinite(f.kl)) non_finite();
      o.target_logprob.push_back(static_cast<float>(f.method_logprob));
      o.predicted.push_back(f.method_argmax);
      o.kl.push_back(static_cast<float>(f.kl));
      o.full_logprob.push_back(static_cast<float>(f.full_logprob));
      o.full_predicted.push_back(f.full_argmax);
    }
    next_token[row] = r.forced[o.tokens.size()];
    o.tokens.push_back(next_token[row]);
    if (o.tokens.size() == r.forced.size()) {
      o.stop_reason = "end_of_trace";
      done[row] = 1;
    }
  };
  // Counts `row`'s token just consumed, and its sequence when it ended.
  auto count = [&](int row) {
    ++status.tokens;
    if (!done[row]) return;
    const SequenceOutcome& o = out.sequences[request_of[row]];
    ++status.finished;
    status.finished_tokens += static_cast<int64_t>(o.tokens.size());
    if (opt.on_finished) opt.on_finished(o);
  };

  // Gives `row` the next request and prefills it, in chunks; false when none is left.
  auto start = [&](int row) {
    request_of[row] = -1;
    if (next_request == requests.size()) return false;
    const int i = static_cast<int>(next_request++);
    request_of[row] = i;
    done[row] = 0;
    const DecodeRequest& r = requests[i];
    SequenceOutcome& o = out.sequences[i];
    o.id = r.id;
    o.item = r.item;
    o.draw = r.draw;
    o.prompt = r.prompt;
    profiler::Range range("prefill");
    const auto t0 = Clock::now();
    double reference_seconds = 0;
    const int len = static_cast<int>(r.prompt.size());
    backend->begin_sequence(row);
    const int only[] = {row};
    for (int at = 0; at < len; at += opt.prefill_chunk) {
      const int end = std::min(len, at + opt.prefill_chunk);
      batch.clear();
      for (int p = at; p < end; ++p) batch.push_back(BatchToken{row, p, r.prompt[p], p == len - 1});
      backend->forward(batch);
      reference_seconds += reference_forward();
    }
    held_bytes[row] = backend->sequence_bytes(row);
    measure_fidelity(only);
    progress.assign(1, RowProgress{row, len, len, true});
    compress();
    consume(row, 0);
    o.prefill_seconds = seconds_since(t0) - reference_seconds;
    count(row);
    out.stats.prefill_seconds += o.prefill_seconds;
    out.stats.prefill_tokens += len;
    return true;
  };
  for (int row = 0; row < n_rows; ++row) start(row);

  // Decode steps: every running row feeds its last token and gets logits for the next; rows
  // that finish take the next request before the following step.
  std::vector<int> rows;
  while (true) {
    batch.clear();
    rows.clear();
    for (int row = 0; row < n_rows; ++row) {
      if (request_of[row] < 0 || done[row]) continue;
      const SequenceOutcome& o = out.sequences[request_of[row]];
      const int pos = static_cast<int>(o.prompt.size() + o.tokens.size()) - 1;
      batch.push_back(BatchToken{row, pos, next_token[row], true});
      rows.push_back(row);
    }
    if (batch.empty()) break;
    if (stop_requested()) {
      for (int row : rows) out.sequences[request_of[row]].stop_reason = "interrupted";
      out.interrupted = true;
      break;
    }
    {
      profiler::Range range("decode step");
      const auto t0 = Clock::now();
      backend->forward(batch);
      const double forward_seconds = seconds_since(t0);
      uint64_t step_bytes = 0;
      for (int row : rows) step_bytes += held_bytes[row] = backend->sequence_bytes(row);
      out.stats.step_kv_slots.push_back(double(step_bytes) / backend->bytes_per_slot() /
                                        (double(c.n_layers) * c.n_kv_heads) / rows.size());
      reference_forward();
      measure_fidelity(rows);
      const auto t1 = Clock::now();
      progress.clear();
      for (size_t k = 0; k < rows.size(); ++k) {
        const int row = rows[k];
        progress.push_back(RowProgress{row, static_cast<int>(requests[request_of[row]].prompt.size()), batch[k].pos + 1, false});
      }
      compress();
      const double dt = forward_seconds + seconds_since(t1);
      for (size_t k = 0; k < rows.size(); ++k) {
        consume(rows[k], static_cast<int>(k));
        count(rows[k]);
      }
      out.stats.step_seconds.push_back(dt);
      out.stats.decode_seconds += dt;
      out.stats.decode_tokens += static_cast<int64_t>(batch.size());
    }
    for (int row : rows)
      if (done[row]) start(row);
    if (opt.on_progress) {
      status.running = 0;
      for (int row = 0; row < n_rows; ++row) status.running += request_of[row] >= 0 && !done[row];
      opt.on_progress(status);
    }
  }
  out.stats.kv_peak_bytes = backend->peak_bytes();
  if (out.interrupted) {
    // Sequences never started keep empty outcomes; drop them so the result holds only what ran.
    std::erase_if(out.sequences, [](const SequenceOutcome& o) { return o.id.empty(); });
  }
  return out;
}

}  // namespace kvb
