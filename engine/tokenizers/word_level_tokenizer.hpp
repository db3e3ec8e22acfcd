#pragma once
// Word-level tokenizer: Hugging Face tokenizer.json with model.type "WordLevel" and a
// WhitespaceSplit pre-tokenizer (the bundled DFS reasoner's, models/dfs-reasoner). Text is
// normalised (the declared Unicode forms), split on White_Space code points, and each word is
// looked up whole; a word not in the vocabulary becomes the unknown token, or is an InputError
// naming the tokenizer file when it declares none. Decoding joins the words with single spaces
// (tokenizer.json "decoder": null), leaving special tokens out unless asked.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tokenizer.hpp"
#include "engine/tokenizers/unicode_normalizer.hpp"

namespace kvb {

struct WordLevelSpec {
  std::vector<std::string> vocab;  // id -> word; an empty word is an unused id
  std::vector<int> special_ids;    // added tokens marked special: left out of decode()
  int unk_id = -1;                 // -1: an unknown word is an error
  int bos_id = -1;
  int eos_id = -1;
  bool add_bos = false;
  Normalizer normalizer;
  std::string origin;  // the file it came from, named in errors
};

// Throws InputError when two ids hold the same word or a word holds white space (it could never
// be produced by the split).
std::unique_ptr<Tokenizer> make_word_level_tokenizer(WordLevelSpec spec);

}  // namespace kvb
