#include "engine/methods/calibration.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "engine/kv_cache.hpp"
#include "util/statistics.hpp"
#include "util/errors.hpp"

namespace kvb {

namespace {

// Appends `tokens` to `out` as sequences of at most `context` tokens, until `used` reaches
// `max_tokens`. Positions past the context are outside what the model was trained for, so a
// longer stream becomes several windows; a window after the first starts with `bos` (when >= 0).
void append_windows(const std::vector<int>& tokens, int bos, int context, int64_t max_tokens,
                    TokenSequences& out, int64_t& used) {
  size_t at = 0;
  while (at < tokens.size() && used < max_tokens) {
    std::vector<int> seq;
    if (at > 0 && bos >= 0) seq.push_back(bos);
    const int64_t room = std::min<int64_t>(context, max_tokens - used) - static_cast<int64_t>(seq.size());
    if (room <= 0) break;  // only the BOS would fit
    const size_t take = std::min(static_cast<size_t>(room), tokens.size() - at);
    seq.insert(seq.end(), tokens.begin() + at, tokens.begin() + at + take);
    at += take;
    used += static_cast<int64_t>(seq.size());
    out.push_back(std::move(seq));
  }
}

}  // namespace

TokenSequences calibration_sequences_from_text(const Model& model, std::string_view text, int64_t max_tokens) {
  if (model.tokenizer->encode(text).empty()) fail_input("the calibration text has no tokens");
  const std::vector<int> tokens = model.tokenizer->encode_prompt(text);
  const int bos = model.tokenizer->add_bos() ? model.tokenizer->bos_id() : -1;
  TokenSequences out;
  int64_t used = 0;
  append_windows(tokens, bos, model.config.max_seq_len, max_tokens, out, used);
  return out;
}

TokenSequences calibration_sequences_from_workload(const Model& model, const Workload& workload,
                                                   int64_t max_tokens) {
  const int bos = model.tokenizer->add_bos() ? model.tokenizer->bos_id() : -1;
  TokenSequences out;
  int64_t used = 0;
  for (const WorkloadItem& item : workload.items) {
    if (used >= max_tokens) break;
    // The prompt as `run` builds it (engine/benchmark.cpp), then the recorded continuation.
    std::vector<int> tokens =
        !item.prompt_ids.empty() ? item.prompt_ids : model.tokenizer->encode_prompt(item.prompt_text);
    const std::vector<int> continuation = !item.continuation_ids.empty()
                                              ? item.continuation_ids
                                              : model.tokenizer->encode(item.continuation_text);
    tokens.insert(tokens.end(), continuation.begin(), continuation.end());
    append_windows(tokens, bos, model.config.max_seq_len, max_tokens, out, used);
  }
  return out;
}

QueryStatsAccumulator::QueryStatsAccumulator(const ModelConfig& config) : config_(config) {
  const size_t n = size_t(config.n_layers) * config.n_heads * (config.head_dim / 2);
  sum_re_.assign(n, 0.0);
  sum_im_.assign(n, 0.0);
  sum_abs_.assign(n, 0.0);
}

void QueryStatsAccumulator::on_query(int layer, int /*seq*/, int /*pos*/, const float* pre_rope) {
  if (layer == 0) ++tokens_;
  const int hd = config_.head_dim, F = hd / 2;
  const bool interleaved = config_.rope_pairing == RopePairing::Interleaved;
  for (int h = 0; h < config_.n_heads; ++h) {
    const float* x = pre_rope + size_t(h) * hd;
    const size_t base = (size_t(layer) * config_.n_heads + h) * F;
    for (int f = 0; f < F; ++f) {
      const double re = interleaved ? x[2 * f] : x[f];
      const double im = interleaved ? x[2 * f + 1] : x[f + F];
      sum_re_[base + f] += re;
      sum_im_[base + f] += im;
      sum_abs_[base + f] += std::hypot(re, im);
    }
  }
}

QueryStats QueryStatsAccumulator::stats() const {
  if (tokens_ == 0) fail_input("no calibration tokens: nothing to average");
  QueryStats qs;
  qs.n_layers = config_.n_layers;
  qs.n_heads = config_.n_heads;
  qs.head_dim = config_.head_dim;
  qs.rope_style = to_string(config_.rope_pairing);
  qs.n_kv_heads = config_.n_kv_heads;
  qs.rope_theta = config_.rope_theta;
  qs.rope_scaling_type = to_string(config_.rope_scaling.type);
  if (config_.rope_scaling.type != RopeScalingType::None) qs.rope_scaling_factor = config_.rope_scaling.factor;
  qs.token_count = tokens_;

  const int F = config_.head_dim / 2;
  const double inv = 1.0 / static_cast<double>(tokens_);
  qs.heads.resize(size_t(qs.n_layers) * qs.n_heads);
  for (size_t i = 0; i < qs.heads.size(); ++i) {
    HeadStats& h = qs.heads[i];
    h.q_mean_real.resize(F);
    h.q_mean_imag.resize(F);
    h.q_abs_mean.resize(F);
    for (int f = 0; f < F; ++f) {
      h.q_mean_real[f] = static_cast<float>(sum_re_[i * F + f] * inv);
      h.q_mean_imag[f] = static_cast<float>(sum_im_[i * F + f] * inv);
      h.q_abs_mean[f] = static_cast<float>(sum_abs_[i * F + f] * inv);
    }
  }
  return qs;
}

QueryStats calibrate_with(const Model& model, const TokenSequences& sequences,
                          const std::function<void(const std::string&)>& progress, const CalibrationForward& forward) {
  int64_t total = 0;
  size_t longest = 0;
  for (const auto& s : sequences) {
    total += static_cast<int64_t>(s.size());
    longest = std::max(longest, s.size());
  }
  if (total == 0) fail_input("no calibration tokens: nothing to average");

  QueryStatsAccumulator acc(model.config);
  std::vector<BatchToken> batch;
  int64_t done = 0, reported = 0;
  for (size_t i = 0; i < sequences.size(); ++i) {
    const std::vector<int>& seq = sequences[i];
    for (size_t start = 0; start < seq.size(); start += kCalibrationChunk) {
      batch.clear();
      for (size_t p = start; p < std::min(seq.size(), start + kCalibrationChunk); ++p)
        batch.push_back(BatchToken{0, static_cast<int>(p), seq[p], false});  // no logits: the observer is the output
      forward(batch, start == 0, static_cast<int>(longest), acc);
      done += static_cast<int64_t>(batch.size());
      if (progress && (done - reported >= 8 * kCalibrationChunk || done == total)) {
        progress(fmt::format("calibrate: {}/{} tokens", done, total));
        reported = done;
      }
    }
  }

  QueryStats qs = acc.stats();
  qs.model_source = model.info.source;
  qs.model_name = model.info.name;
  return qs;
}

QueryStats calibrate_query_stats(const Model& model, const TokenSequences& sequences,
                                 const std::function<void(const std::string&)>& progress) {
  // One cache row, reused by every sequence; sized for the longest.
  std::optional<KvCache> cache;
  std::optional<Transformer> tf;
  return calibrate_with(model, sequences, progress,
                        [&](std::span<const BatchToken> batch, bool new_sequence, int longest, QueryObserver& acc) {
                          if (!tf) {
                            cache.emplace(model.config, 1, longest);
                            tf.emplace(model, std::min(kCalibrationChunk, longest));
                          }
                          if (new_sequence) cache->clear_sequence(0);
                          ForwardRecording<KvCache> record;
                          record.queries = &acc;
                          tf->forward(batch, *cache, nullptr, record);
                        });
}

double head_concentration(const HeadStats& head) {
  double mean_modulus = 0.0, abs_mean = 0.0;
  for (size_t f = 0; f < head.q_abs_mean.size(); ++f) {
    mean_modulus += std::hypot(double(head.q_mean_real[f]), double(head.q_mean_imag[f]));
    abs_mean += head.q_abs_mean[f];
  }
  return abs_mean > 0.0 ? mean_modulus / abs_mean : 0.0;
}

double median_head_concentration(const QueryStats& stats) {
  std::vector<double> r;
  for (const HeadStats& h : stats.heads)
    if (h.present()) r.push_back(head_concentration(h));
  return summarize(std::move(r)).p50;
}

}  // namespace kvb
