#pragma once
// Byte-level BPE (GPT-2 style) as used by Hugging Face tokenizer.json files of Llama 3 and Qwen
// models, and by GGUF files whose tokenizer.ggml.model is "gpt2".
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tokenizer.hpp"

namespace kvb {

// Which pre-tokenizer regex splits text before BPE.
enum class PreTokenizer { Gpt2, Llama3, Qwen2 };

struct ByteBpeSpec {
  std::vector<std::string> vocab;                              // id -> token in byte-level form (e.g. "Ġthe")
  std::vector<std::pair<std::string, std::string>> merges;     // in rank order
  std::vector<std::pair<std::string, int>> special_tokens;     // added tokens matched verbatim before BPE
  PreTokenizer pre_tokenizer = PreTokenizer::Qwen2;
  int bos_id = -1;
  int eos_id = -1;
  bool add_bos = false;
};

std::unique_ptr<Tokenizer> make_byte_bpe_tokenizer(ByteBpeSpec spec);

// Reads a Hugging Face tokenizer.json (model.type "BPE", byte-level) plus, when present,
// tokenizer_config.json beside it for bos/eos and add_bos_token.
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& tokenizer_json_path);

}  // namespace kvb
