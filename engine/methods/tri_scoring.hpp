#pragma once
// TriAttention's key score for one query head (shared/spec/triattention.md section 2): how much
// attention a query at the head's calibrated centre, placed at the geometric offsets ahead of the
// current position, would pay each cached key, plus the norm term for the query mass the centre
// does not explain. Computed on post-RoPE keys without inverting RoPE (spec 2.2): mean
// aggregation is one dot product with an "effective query" per head and event, max aggregation
// one per offset. The result equals the HF formula exactly, 1/s factor included (the vLLM kernel
// drops it; harmless after z-scoring, but kvbench keeps the reference's scale).
#include <cstdint>
#include <vector>

#include "engine/methods/query_stats.hpp"
#include "engine/model_config.hpp"

namespace kvb {

enum class TriAggregation { Mean, Max };

struct TriScoringOptions {
  TriAggregation aggregation = TriAggregation::Mean;
  int64_t offset_max = 65536;  // offsets 1, 2, 4, ... up to this
  bool disable_mlr = false;    // norm term uses mean |q| undiscounted by the concentration R
  bool disable_trig = false;   // score is the norm term alone
};

class TriScorer {
 public:
  TriScorer(const ModelConfig& config, const TriScoringOptions& options);

  // out[j] for the n post-RoPE keys ([n][head_dim], the cache's lanes) of the query head whose
  // statistics are `head`, when t tokens have been processed (the next query's position).
  void score(const HeadStats& head, int64_t t, const float* keys, int n, float* out) const;

  // cos and sin of t * omega_f for every frequency f: what the coefficients of every head at t
  // share (the angles, in double, reach 1e5 rad).
  struct Phase {
    std::vector<double> cos, sin;
  };
  Phase phase(int64_t t) const;

  // What score() hands the key kernel (kernels/cpu/compression_cpu.hpp tri_scores): the effective
  // queries u ([n_u][head_dim], room for max_queries()) of `head` at the phase's t, returning n_u
  // (0 with disable_trig), and its norm weights e ([head_dim / 2]), the same at every t. The
  // compression ops' scoring (kernels/compression_ops.hpp TriEventScoring) takes a table of both.
  int effective_queries(const HeadStats& head, const Phase& phase, float* u) const;
  void norm_weights(const HeadStats& head, float* e) const;
  int max_queries() const;
  bool interleaved() const { return interleaved_; }

  const std::vector<int64_t>& offsets() const { return offsets_; }

 private:
  int head_dim_;
  bool interleaved_;
  std::vector<double> omega_;   // effective RoPE angular frequencies [F]
  double scale_;                // RoPE attention scale s
  TriScoringOptions options_;
  std::vector<int64_t> offsets_;
  std::vector<double> mean_re_, mean_im_;  // M_f = mean over offsets of e^{i delta omega_f}
  std::vector<double> offset_cos_, offset_sin_;  // [offset][f]: e^{i delta omega_f} (max aggregation)
  mutable std::vector<float> u_, e_;       // per-call effective queries and norm coefficients
};

}  // namespace kvb
