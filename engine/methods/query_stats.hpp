#pragma once
// TriAttention's calibration statistics: per (layer, query head) and per RoPE frequency, the
// mean of the pre-RoPE query as a complex number and the mean of its modulus
// (shared/spec/triattention.md section 1). Read from the official TriAttention .pt files or from
// kvbench's own safetensors format (docs/calibration.md), written in the latter, and checked
// against the model they are about to be used with.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/model_config.hpp"

namespace kvb {

// One head's statistics, each of length head_dim/2 and indexed by RoPE frequency f, where the
// complex query pair is z_f = x[f] + i x[f + d/2] ("half") or x[2f] + i x[2f+1] ("interleaved").
struct HeadStats {
  std::vector<float> q_mean_real;  // Re mean_t z_{t,f}
  std::vector<float> q_mean_imag;  // Im mean_t z_{t,f}
  std::vector<float> q_abs_mean;   // mean_t |z_{t,f}|

  bool present() const { return !q_abs_mean.empty(); }
};

struct QueryStats {
  int n_layers = 0;
  int n_heads = 0;  // query heads
  int head_dim = 0;
  std::string rope_style = "half";  // "half" or "interleaved": how the file paired the lanes

  // Metadata, when the file records it.
  std::string model_name;                    // e.g. "Qwen/Qwen3-8B"
  std::string model_source;                  // kvbench: the --model the stats were measured on
  std::optional<int> n_kv_heads;
  std::optional<double> rope_theta;
  std::string rope_scaling_type;             // "none", "linear", "llama3", "yarn"; empty = unknown
  std::optional<double> rope_scaling_factor;
  std::optional<int64_t> token_count;        // calibration tokens averaged over
  std::string format;                        // "torch-pt" or "kvbench-safetensors" (set by the reader)
  std::string source_path;                   // the file read (set by the reader)

  std::vector<HeadStats> heads;  // [layer * n_heads + head]; absent heads have empty vectors

  const HeadStats& at(int layer, int head) const;  // throws std::out_of_range outside the grid
  int n_freqs() const { return head_dim / 2; }
};

// Reads either format, chosen by content (a zip archive is a torch.save file). Throws
// InputError("<path>: ...") on anything malformed.
QueryStats read_query_stats(const std::string& path);

// The official TriAttention .pt layout: {"metadata": {...}, "stats": {"layerLL_headHH": {...}}}.
QueryStats read_query_stats_pt(const std::string& path);
// kvbench's own safetensors layout (docs/calibration.md).
QueryStats read_query_stats_safetensors(const std::string& path);

// Writes kvbench's safetensors format (every head must be present). Throws InputError when the
// stats are incomplete or the file cannot be written.
void write_query_stats(const std::string& path, const QueryStats& stats);

// InputError naming `path` and the mismatch unless the stats fit the model: same layers, query
// heads and head_dim, same RoPE pairing, same rope_theta / scaling where the file records them,
// and every (layer, head) present. `model_label` names the model in the message.
void check_stats_match_model(const QueryStats& stats, const ModelConfig& config, const std::string& path,
                             const std::string& model_label = "the model");

}  // namespace kvb
