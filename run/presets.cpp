#include "run/presets.hpp"

#include "util/errors.hpp"

namespace kvb {

namespace {

// The paper's AIME protocol (spec section 6): sampling, draws and length cap of runner_defaults.yaml.
std::vector<std::pair<std::string, std::string>> paper_flags(const std::string& prompt, const std::string& samples,
                                                             const std::string& max_length, const std::string& budget) {
  return {{"--mode", "generate"},
          {"--prompt-template", prompt},
          {"--samples", samples},
          {"--temperature", "0.6"},
          {"--top-p", "0.95"},
          {"--max-length", max_length},
          {"--max-new-tokens", max_length},
          {"--seed", "888"},
          {"--method", "full,triattention,snapkv,rkv"},
          {"--budget", budget}};
}

const std::vector<Preset>& presets() {
  static const std::vector<Preset> all = {
      {"aime24", "TriAttention's AIME24 protocol: avg@8, max_length 32768", paper_flags("triattention", "8", "32768", "2048"), 50},
      {"aime25", "TriAttention's AIME25 protocol: avg@8, max_length 32768", paper_flags("triattention", "8", "32768", "2048"), 50},
      {"math500", "TriAttention's MATH-500 protocol: 1 draw, max_length 8192", paper_flags("triattention", "1", "8192", "512"), 50},
      {"dfs", "DFS state queries with the AIME sampling: 1 draw, the set's own prompt", paper_flags("plain", "1", "32768", "2048"), 50},
  };
  return all;
}

}  // namespace

const Preset& find_preset(const std::string& name) {
  std::string names;
  for (const Preset& p : presets()) {
    if (p.name == name) return p;
    names += (names.empty() ? "" : ", ") + p.name;
  }
  fail_input("--preset {}: expected one of {}", name, names);
}

}  // namespace kvb
