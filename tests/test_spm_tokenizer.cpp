// The SentencePiece merge (engine/tokenizers/spm_tokenizer.cpp) is a heap over adjacent pairs; it
// must give exactly what llama2.c's run.c gives, which rescans the whole symbol list for the
// best-scoring pair (the leftmost among equal scores) after every merge. Checked against that
// quadratic loop, written out here, on random vocabularies with many tied scores.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <set>
#include <unordered_map>

#include "engine/tokenizers/spm_tokenizer.hpp"
#include "tests/test_support.hpp"
#include "util/errors.hpp"

namespace kvb {
namespace {

std::vector<int> run_c_encode(const std::vector<std::string>& pieces, const std::vector<float>& scores,
                              const std::string& text) {
  std::unordered_map<std::string, int> index;
  for (size_t i = 0; i < pieces.size(); ++i) index.emplace(pieces[i], static_cast<int>(i));
  std::vector<int> ids = {index.at(" ")};  // the dummy prefix
  for (char c : text) ids.push_back(index.at(std::string(1, c)));
  while (true) {
    float best = -1e10f;
    int best_id = -1, best_at = -1;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      auto it = index.find(pieces[ids[i]] + pieces[ids[i + 1]]);
      if (it != index.end() && scores[it->second] > best) {
        best = scores[it->second];
        best_id = it->second;
        best_at = static_cast<int>(i);
      }
    }
    if (best_at < 0) return ids;
    ids[best_at] = best_id;
    ids.erase(ids.begin() + best_at + 1);
  }
}

TEST(SpmTokenizer, HeapMergeEqualsRunCOnRandomVocabularies) {
  std::mt19937 rng(20261203);
  const std::string alphabet = " abc";
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<std::string> pieces = {"<unk>", "<s>", "</s>", " ", "a", "b", "c"};
    std::set<std::string> seen(pieces.begin(), pieces.end());
    const int extra = 5 + static_cast<int>(rng() % 60);
    while (static_cast<int>(pieces.size()) < 7 + extra) {
      std::string p;
      for (size_t len = 2 + rng() % 5; p.size() < len;) p += alphabet[rng() % alphabet.size()];
      if (seen.insert(p).second) pieces.push_back(p);
    }
    std::vector<float> scores(pieces.size());
    for (float& s : scores) s = -static_cast<float>(rng() % 6);  // few distinct values: many ties
    std::vector<SpmTokenizer::PieceType> types(pieces.size(), SpmTokenizer::PieceType::Normal);
    types[0] = SpmTokenizer::PieceType::Unknown;
    types[1] = types[2] = SpmTokenizer::PieceType::Control;
    const SpmTokenizer tok(pieces, scores, types, 1, 2, "test");
    for (int t = 0; t < 5; ++t) {
      std::string text;
      for (size_t len = 1 + rng() % 200; text.size() < len;) text += alphabet[rng() % alphabet.size()];
      ASSERT_EQ(tok.encode(text), run_c_encode(pieces, scores, text)) << "trial " << trial << " text \"" << text << "\"";
    }
  }
}

// Found by fuzz_llama2c_tokenizer: with no pieces at all, byte fallback's <unk> (id 0) indexed
// past the vocabulary. A vocabulary of 0 is refused naming the file; the tokenizer itself refuses
// pieces, scores and types that do not line up.
TEST(SpmTokenizer, AnEmptyVocabularyIsRefused) {
  test::TempDir dir;
  const std::string path = (dir / "tokenizer.bin").string();
  std::ofstream(path, std::ios::binary).write("\x10\x00\x00\x00", 4);  // max token length 16, no tokens
  try {
    load_llama2c_tokenizer(path, 0);
    ADD_FAILURE() << "loaded";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_THROW(SpmTokenizer({}, {}, {}, -1, -1, "t"), InputError);
  EXPECT_THROW(SpmTokenizer({"a"}, {}, {SpmTokenizer::PieceType::Normal}, -1, -1, "t"), InputError);
}

}  // namespace
}  // namespace kvb
