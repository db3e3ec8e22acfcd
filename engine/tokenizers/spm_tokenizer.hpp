#pragma once
// SentencePiece-style BPE driven by piece scores, with byte fallback: the tokenizer of llama2.c
// (tok512.bin, tokenizer.bin) and of GGUF files whose tokenizer.ggml.model is "llama".
// Encoding follows llama2.c's run.c: a dummy-prefix space, one symbol per UTF-8 character
// (bytes <0xXX> when the character is not a piece), then repeatedly merge the adjacent pair whose
// concatenation is the highest-scoring piece.
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/tokenizer.hpp"

namespace kvb {

class SpmTokenizer : public Tokenizer {
 public:
  enum class PieceType { Normal, Control, Byte, Unknown };

  // `pieces` use plain spaces (GGUF's U+2581 must be replaced by the caller).
  SpmTokenizer(std::vector<std::string> pieces, std::vector<float> scores, std::vector<PieceType> types,
               int bos_id, int eos_id, std::string kind);

  std::vector<int> encode(std::string_view text) const override;
  std::string decode(const std::vector<int>& ids, bool render_special = false) const override;
  int vocab_size() const override { return static_cast<int>(pieces_.size()); }
  std::string kind() const override { return kind_; }
  size_t longest_token_bytes() const override { return longest_piece_; }

  const std::string& piece(int id) const { return pieces_.at(id); }

 private:
  int lookup(const std::string& s) const;

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<PieceType> types_;
  std::unordered_map<std::string, int> index_;
  int byte_token_[256];
  size_t longest_piece_ = 1;
  std::string kind_;
};

// Reads a llama2.c tokenizer file (tok512.bin, tokenizer.bin) for a model of `vocab_size`.
std::unique_ptr<SpmTokenizer> load_llama2c_tokenizer(const std::string& path, int vocab_size);

}  // namespace kvb
