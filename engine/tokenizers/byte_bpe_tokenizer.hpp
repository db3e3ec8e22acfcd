#pragma once
// Byte-level BPE (GPT-2 style) as used by Hugging Face tokenizer.json files of Llama 3 and Qwen
// models, and by GGUF files whose tokenizer.ggml.model is "gpt2".
//
// Encoding: added tokens are cut out verbatim first (leftmost, then longest match); the text
// between them is normalised (the tokenizer's declared Unicode forms, e.g. Qwen's NFC), split by
// the pre-tokenizer regex; each piece is mapped byte by byte to
// GPT-2's printable stand-ins and merged by BPE, lowest merge rank first.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/tokenizer.hpp"
#include "engine/tokenizers/unicode_normalizer.hpp"

namespace kvb {

// Which pre-tokenizer regex splits text before BPE.
enum class PreTokenizer { Gpt2, Llama3, Qwen2 };

struct ByteBpeSpec {
  std::vector<std::string> vocab;                              // id -> token in byte-level form (e.g. "Ġthe")
  std::vector<std::pair<std::string, std::string>> merges;     // in rank order
  std::vector<std::pair<std::string, int>> special_tokens;     // added tokens matched verbatim before BPE
  // Added tokens that are not special (HF "special": false, e.g. Qwen's <think>): matched
  // verbatim like special_tokens, but decode() always renders them because they are content.
  std::vector<std::pair<std::string, int>> added_tokens;
  PreTokenizer pre_tokenizer = PreTokenizer::Qwen2;
  Normalizer normalizer;  // applied to the text between added tokens, before the pre-tokenizer
  int bos_id = -1;
  int eos_id = -1;
  bool add_bos = false;
  // HF "ignore_merges" (Llama 3): a piece that is itself a vocabulary token is emitted as that
  // token without running the merges.
  bool ignore_merges = false;
  std::string origin = "byte-level BPE";  // the file it came from, named in encode-time errors
};

// Throws InputError when a merge names a token missing from the vocabulary.
std::unique_ptr<Tokenizer> make_byte_bpe_tokenizer(ByteBpeSpec spec);

// Reads a Hugging Face tokenizer.json (model.type "BPE", byte-level; or "WordLevel", see
// word_level_tokenizer.hpp) plus, when present,
// tokenizer_config.json beside it for bos/eos and add_bos_token.
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& tokenizer_json_path);

// Splits `text` into the pieces the pre-tokenizer regex matches (they cover the text, in order).
// Invalid UTF-8 bytes count as single code points that are neither letters, digits nor spaces.
std::vector<std::string_view> pre_tokenize(PreTokenizer kind, std::string_view text);

// GPT-2's byte <-> printable-character map: the byte-level form of raw bytes, and back.
// Characters outside the map are kept as they are when converting back.
std::string bytes_to_byte_level(std::string_view bytes);
std::string byte_level_to_bytes(std::string_view byte_level);

}  // namespace kvb
