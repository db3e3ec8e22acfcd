#pragma once
// The tokenizer of a model folder that ships no tokenizer.json: it cannot turn text into ids, so
// prompts must be given as token ids; ids are rendered back as "<id>" so that generated output
// and traces stay readable.
#include <string>
#include <vector>

#include "engine/tokenizer.hpp"

namespace kvb {

class IdsOnlyTokenizer : public Tokenizer {
 public:
  // `model_dir` is named in the encode() error. Ids are used verbatim, so add_bos() is false.
  IdsOnlyTokenizer(std::string model_dir, int vocab_size, int bos_id, int eos_id);

  // Always throws InputError: there is no vocabulary to encode with.
  std::vector<int> encode(std::string_view text) const override;
  // "<12><7><99>"; BOS/EOS are left out unless `render_special`.
  std::string decode(const std::vector<int>& ids, bool render_special = false) const override;
  int vocab_size() const override { return vocab_size_; }
  std::string kind() const override { return "none"; }
  size_t longest_token_bytes() const override { return SIZE_MAX; }

 private:
  std::string model_dir_;
  int vocab_size_;
};

}  // namespace kvb
