#pragma once
// --preset NAME: the settings of a published evaluation protocol, as the flags a user would type
// (shared/spec/triattention.md section 6). A flag given explicitly wins over the preset's value;
// the result records the preset, what it set and what the flags overrode (settings.preset).
//   aime24, aime25  generate, the paper's prompt (--prompt-template triattention), 8 draws per
//                   question, temperature 0.6, top-p 0.95, top-k from the model's
//                   generation_config.json (transformers' 50 when it says nothing), max_length
//                   32768 (prompt + answer), seed 888, full, TriAttention, SnapKV and R-KV at
//                   budget 2048 (the paper's accuracy table)
//   math500         the same with 1 draw, max_length 8192 and budget 512
//   dfs             the DFS state-query sets: the set's own prompt as plain text, 1 draw, otherwise
//                   the AIME settings (the runner's DFS settings are not published; see docs)
// The workload is not part of a preset: pass the dataset with -w.
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kvb {

struct Preset {
  std::string name;
  std::string summary;
  std::vector<std::pair<std::string, std::string>> flags;  // (flag, value) in the order shown
  std::optional<int> top_k_when_unshipped;  // top-k when neither a flag nor generation_config.json sets it
};

// InputError naming --preset and the known names for an unknown one.
const Preset& find_preset(const std::string& name);

}  // namespace kvb
