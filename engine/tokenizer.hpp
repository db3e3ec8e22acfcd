#pragma once
// Text <-> token ids. Each model format brings its own tokenizer; all share this interface.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kvb {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Encodes text without adding BOS (callers prepend bos_id() when the model wants it).
  virtual std::vector<int> encode(std::string_view text) const = 0;
  // Decodes ids to text. Special/control tokens (BOS, EOS, chat markers) are rendered as their
  // text only when `render_special` is set.
  virtual std::string decode(const std::vector<int>& ids, bool render_special = false) const = 0;
  virtual int vocab_size() const = 0;
  virtual std::string kind() const = 0;  // e.g. "llama2c-spm", "gguf-llama", "hf-bpe", "bytes"
  // Whether encode() turns the text of special tokens (<|im_start|>, <｜User｜>) into their ids,
  // as a rendered chat template needs.
  virtual bool reads_special_tokens() const { return false; }
  // The most bytes of text one token can stand for (counting how much the tokenizer's Unicode
  // normalisation can shrink text): a text of B bytes needs at least B / longest_token_bytes() tokens, which lets a prompt that cannot fit the context be refused
  // before it is encoded. SIZE_MAX when the tokenizer cannot encode text at all, or when no such
  // bound holds (a word-level split: white space makes no tokens) and encoding is linear anyway.
  virtual size_t longest_token_bytes() const = 0;
  int bos_id() const { return bos_id_; }
  int eos_id() const { return eos_id_; }
  // Whether prompts start with BOS (llama2.c and GGUF llama: yes; Qwen: no).
  bool add_bos() const { return add_bos_; }
  // The ids of a text that starts a sequence: BOS first when the model wants one.
  std::vector<int> encode_prompt(std::string_view text) const {
    std::vector<int> ids = encode(text);
    if (add_bos_ && bos_id_ >= 0) ids.insert(ids.begin(), bos_id_);
    return ids;
  }

 protected:
  int bos_id_ = -1;
  int eos_id_ = -1;
  bool add_bos_ = true;
};

}  // namespace kvb
