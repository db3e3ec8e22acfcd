#pragma once
// An independent reference forward pass for Hugging Face Llama / Qwen2 / Qwen3 models, written
// from the transformers modeling code's semantics with plain loops in double precision: the whole
// sequence at once with a causal mask (no KV cache), nothing shared with the engine. It reads the
// weights the test writer produced, so a test compares "file -> loader -> engine" with
// "values written -> this code".
#include <vector>

#include "tests/hf_model_writer.hpp"

namespace kvb::test {

// RoPE frequencies and the cos/sin multiplier for a spec (its rope_scaling JSON), as
// transformers' modeling_rope_utils defines them.
struct ReferenceRope {
  std::vector<double> inv_freq;  // head_dim / 2 entries
  double attention_factor = 1.0;
};
ReferenceRope reference_rope(const HfTinySpec& spec);

// Logits [tokens.size()][vocab], row-major, for the sequence starting at position 0.
std::vector<double> reference_logits(const HfTinyModel& model, const std::vector<int>& tokens);

}  // namespace kvb::test
