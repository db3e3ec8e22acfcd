#pragma once
// Measuring TriAttention's query statistics (`kvbench calibrate`): calibration tokens go through
// the transformer, and every query head's pre-RoPE query -- exactly what attention rotates, so
// after the q projection, its bias and Qwen3's q_norm -- is averaged per RoPE frequency over all
// tokens with equal weight (shared/spec/triattention.md section 1, docs/calibration.md).
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/methods/query_stats.hpp"
#include "engine/model.hpp"
#include "engine/transformer.hpp"
#include "workloads/workload.hpp"

namespace kvb {

// Token sequences, each run from position 0 in its own KV cache.
using TokenSequences = std::vector<std::vector<int>>;

// The text tokenized with the model's tokenizer (BOS first when the model wants one) and cut to
// max_tokens: one sequence, or several when it is longer than the model's context (each further
// window starts with BOS again, so that every window begins like a document).
TokenSequences calibration_sequences_from_text(const Model& model, std::string_view text, int64_t max_tokens);

// One sequence per item: its prompt (prompt_ids verbatim, else the tokenized text with BOS as
// `run` builds it) followed by its recorded continuation, until max_tokens tokens in all (the
// last sequence cut short). Windows longer than the context are split as above.
TokenSequences calibration_sequences_from_workload(const Model& model, const Workload& workload,
                                                   int64_t max_tokens);

// Sums, per (layer, query head, frequency f), of z_f and |z_f| over every query it is shown, in
// double so that tens of thousands of tokens lose nothing to rounding. z_f pairs the lanes the
// way the model's RoPE rotates them: x[f] + i x[f + d/2] (half) or x[2f] + i x[2f+1] (interleaved).
class QueryStatsAccumulator : public QueryObserver {
 public:
  explicit QueryStatsAccumulator(const ModelConfig& config);

  void on_query(int layer, int seq, int pos, const float* pre_rope) override;

  // Tokens seen (counted once, at layer 0).
  int64_t token_count() const { return tokens_; }
  // The means over the tokens seen, with the config's shape, pairing, KV heads and RoPE settings
  // as metadata. InputError when no token was seen.
  QueryStats stats() const;

 private:
  ModelConfig config_;
  int64_t tokens_ = 0;
  // [layer][head][f], each n_layers * n_heads * head_dim/2.
  std::vector<double> sum_re_, sum_im_, sum_abs_;
};

// Runs `sequences` through the model (prefill in chunks, logits skipped) and returns their query
// statistics, with model_source / model_name from model.info. `progress` (may be empty) gets a
// line now and then. InputError when there is no token at all.
QueryStats calibrate_query_stats(const Model& model, const TokenSequences& sequences,
                                 const std::function<void(const std::string&)>& progress = {});

// Tokens per forward of a calibration: a prefill chunk, so the scratch and attention scores stay
// small whatever the calibration length (the cache holds the whole sequence).
constexpr int kCalibrationChunk = 512;

// What feeds a calibration: runs `batch` (row 0, in position order; new_sequence: the first chunk
// of a sequence, whose cache starts empty; longest: the longest sequence's length) through a
// forward pass that shows `queries` every token's pre-RoPE queries.
using CalibrationForward =
    std::function<void(std::span<const BatchToken> batch, bool new_sequence, int longest, QueryObserver& queries)>;

// calibrate_query_stats over any forward pass (the CPU Transformer above, or the GPU engine's:
// engine/cuda_calibration.cpp).
QueryStats calibrate_with(const Model& model, const TokenSequences& sequences,
                          const std::function<void(const std::string&)>& progress, const CalibrationForward& forward);

// A head's energy-weighted concentration R = sum_f |qbar_f| / sum_f qabs_f, in [0, 1]; 0 for a
// head whose queries are all zero.
double head_concentration(const HeadStats& head);
// The median of head_concentration over every (layer, head) present (about 0.74 for the official
// Qwen3-8B and DeepSeek-R1-Distill-Llama-8B files).
double median_head_concentration(const QueryStats& stats);

}  // namespace kvb
