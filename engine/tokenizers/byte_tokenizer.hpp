#pragma once
// The tokenizer of synthetic models: ids 0-255 are bytes, then BOS and EOS; any further ids (the
// synthetic presets keep the real vocabulary size) decode to "<id>".
#include "engine/tokenizer.hpp"

namespace kvb {

class ByteTokenizer : public Tokenizer {
 public:
  explicit ByteTokenizer(int vocab_size);
  std::vector<int> encode(std::string_view text) const override;
  std::string decode(const std::vector<int>& ids, bool render_special = false) const override;
  int vocab_size() const override { return vocab_size_; }
  std::string kind() const override { return "bytes"; }
  size_t longest_token_bytes() const override { return 1; }

 private:
  int vocab_size_;
};

}  // namespace kvb
