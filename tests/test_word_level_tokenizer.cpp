// WordLevel tokenizer.json (the bundled DFS reasoner's tokenizer): whitespace split, whole-word
// lookup, the unknown token, decoding with spaces, normalisation, and what a bad file gets.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "engine/tokenizers/byte_bpe_tokenizer.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

namespace kvb {
namespace {

using json = nlohmann::json;
using test::TempDir;

json tiny_word_level() {
  return {{"version", "1.0"},
          {"added_tokens", json::array({{{"id", 0}, {"content", "<unk>"}, {"special", true}},
                                        {{"id", 1}, {"content", "<pad>"}, {"special", true}}})},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model", {{"type", "WordLevel"},
                     {"vocab", {{"<unk>", 0}, {"<pad>", 1}, {"end", 2}, {"go", 3}, {"u7", 4}, {"\xC3\xA9t\xC3\xA9", 5}}},
                     {"unk_token", "<unk>"}}}};
}

std::string write_tokenizer(const TempDir& dir, const json& tokenizer, const json& config = nullptr) {
  std::ofstream(dir / "tokenizer.json") << tokenizer.dump();
  if (!config.is_null()) std::ofstream(dir / "tokenizer_config.json") << config.dump();
  return (dir / "tokenizer.json").string();
}

TEST(WordLevelTokenizer, SplitsOnWhiteSpaceAndLooksUpWholeWords) {
  TempDir dir;
  auto tok = load_hf_tokenizer(write_tokenizer(dir, tiny_word_level(), {{"eos_token", "end"}}));
  EXPECT_EQ(tok->kind(), "hf-wordlevel");
  EXPECT_EQ(tok->vocab_size(), 6);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_FALSE(tok->add_bos());
  // Any run of white space separates, Unicode's too (U+3000 ideographic space, U+00A0 no-break).
  EXPECT_EQ(tok->encode("  go\tu7\n\ngo\xE3\x80\x80u7\xC2\xA0" "end "), (std::vector<int>{3, 4, 3, 4, 2}));
  EXPECT_EQ(tok->encode(""), std::vector<int>{});
  EXPECT_EQ(tok->encode(" \n\t "), std::vector<int>{});
  // A word is matched whole: "gou7" is not "go" + "u7".
  EXPECT_EQ(tok->encode("gou7 go"), (std::vector<int>{0, 3}));
  EXPECT_EQ(tok->decode({3, 4, 2}), "go u7");  // the end-of-sequence token is special
  EXPECT_EQ(tok->decode({3, 4, 2}, true), "go u7 end");
  EXPECT_EQ(tok->decode({3, 1, 4}), "go u7");  // added tokens marked special are left out
  EXPECT_EQ(tok->decode({3, 99, -1}), "go <?> <?>");
  EXPECT_EQ(tok->decode(tok->encode("go u7 go")), "go u7 go");
}

TEST(WordLevelTokenizer, AppliesTheDeclaredNormalizer) {
  TempDir dir;
  json t = tiny_word_level();
  t["normalizer"] = {{"type", "NFC"}};
  auto tok = load_hf_tokenizer(write_tokenizer(dir, t));
  // "été" written with combining accents (e + U+0301) composes to the vocabulary's word.
  EXPECT_EQ(tok->encode("e\xCC\x81te\xCC\x81"), std::vector<int>{5});
  t["normalizer"] = nullptr;
  auto raw = load_hf_tokenizer(write_tokenizer(dir, t));
  EXPECT_EQ(raw->encode("e\xCC\x81te\xCC\x81"), std::vector<int>{0});
}

TEST(WordLevelTokenizer, UnknownWordWithoutUnkTokenIsAnErrorNamingTheFile) {
  TempDir dir;
  json t = tiny_word_level();
  t["model"].erase("unk_token");
  auto tok = load_hf_tokenizer(write_tokenizer(dir, t));
  EXPECT_EQ(tok->encode("go"), std::vector<int>{3});
  try {
    (void)tok->encode("go fly\naway");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("tokenizer.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("fly"), std::string::npos) << msg;
  }
}

TEST(WordLevelTokenizer, BadFilesAreRefusedWithOneLine) {
  struct Case {
    std::function<void(json&)> edit;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {[](json& t) { t["pre_tokenizer"] = {{"type", "Whitespace"}}; }, "WhitespaceSplit"},
      {[](json& t) { t["pre_tokenizer"] = nullptr; }, "WhitespaceSplit"},
      {[](json& t) { t["decoder"] = {{"type", "WordPiece"}}; }, "decoder"},
      {[](json& t) { t["model"]["unk_token"] = "<missing>"; }, "<missing>"},
      {[](json& t) { t["model"]["vocab"]["go again"] = 6; }, "white space"},
      {[](json& t) { t["model"]["vocab"]["go"] = 4; }, "id 4"},  // two words, one id
      {[](json& t) { t["model"]["vocab"]["bad"] = -3; }, "id -3"},
      {[](json& t) { t["model"]["merges"] = json::array(); }, "no merges"},
      {[](json& t) { t["added_tokens"][0]["id"] = 3; }, "id 3"},
      {[](json& t) { t["normalizer"] = {{"type", "Lowercase"}}; }, "Lowercase"},
  };
  for (const Case& c : cases) {
    TempDir dir;
    json t = tiny_word_level();
    c.edit(t);
    const std::string path = write_tokenizer(dir, t);
    try {
      (void)load_hf_tokenizer(path);
      ADD_FAILURE() << "accepted: " << t.dump();
    } catch (const InputError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
}

TEST(WordLevelTokenizer, AWordListedTwiceIsRefused) {
  TempDir dir;
  std::string text = tiny_word_level().dump();
  const std::string go = "\"go\":3";
  ASSERT_NE(text.find(go), std::string::npos);
  text.replace(text.find(go), go.size(), go + ",\"go\":6");  // JSON objects may repeat a key
  std::ofstream(dir / "tokenizer.json") << text;
  try {
    (void)load_hf_tokenizer((dir / "tokenizer.json").string());
    FAIL() << "accepted a repeated word";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("two ids"), std::string::npos) << e.what();
  }
}

TEST(WordLevelTokenizer, TheBundledReasonersTokenizerSpellsItsTask) {
  const auto path = std::filesystem::path(KVBENCH_SOURCE_DIR) / "models" / "dfs-reasoner" / "tokenizer.json";
  auto tok = load_hf_tokenizer(path.string());
  EXPECT_EQ(tok->vocab_size(), 6 + 4 * 64);
  EXPECT_EQ(tok->decode({tok->eos_id()}, true), "done");
  const std::string moves = "u30 # v30 16 u16 30 v16 - s16 - u16 30 s30 - u30 #";
  const std::vector<int> ids = tok->encode(moves);
  EXPECT_EQ(ids.size(), 16u);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 0);  // no <unk>
  EXPECT_EQ(tok->decode(ids), moves);
}

}  // namespace
}  // namespace kvb
