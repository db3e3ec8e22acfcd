// Golden: stories260K reproduces the story llama2.c documents for it, from the .bin and the .gguf
// (identical token ids from both).
#include <gtest/gtest.h>

#include "engine/decode_loop.hpp"
#include "engine/model.hpp"
#include "tests/test_support.hpp"

namespace kvb {
namespace {

// shared/data/SOURCES.md, section 1: llama2.c's documented greedy output (first 60 tokens).
constexpr const char* kStory =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, "
    "she saw a big, red ball. She wanted to play with it, but it was too high";

std::vector<int> greedy_ids(const Model& m, int new_tokens) {
  DecodeRequest r;
  r.id = "golden";
  r.prompt = m.tokenizer->encode("Once upon a time");
  r.prompt.insert(r.prompt.begin(), m.tokenizer->bos_id());
  r.max_new_tokens = new_tokens;
  DecodeOptions opt;
  DecodeOutput out = run_decode(m, {r}, opt);
  std::vector<int> ids = out.sequences[0].prompt;
  ids.insert(ids.end(), out.sequences[0].tokens.begin(), out.sequences[0].tokens.end());
  return ids;
}

TEST(GoldenStories, BinReproducesDocumentedStory) {
  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  Model m = load_model(bin.string());
  std::vector<int> ids = greedy_ids(m, 60);
  std::string text = m.tokenizer->decode(ids);
  EXPECT_EQ(text.substr(0, std::string(kStory).size()), kStory) << text;
}

TEST(GoldenStories, GgufGivesIdenticalTokenIds) {
  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  KVB_REQUIRE_DATA(gguf, "models/stories260K/stories260K.gguf");
  Model a = load_model(bin.string());
  Model b = load_model(gguf.string());
  std::vector<int> ia = greedy_ids(a, 200);
  std::vector<int> ib = greedy_ids(b, 200);
  EXPECT_EQ(ia, ib);
  std::string text = b.tokenizer->decode(ib);
  EXPECT_EQ(text.substr(0, std::string(kStory).size()), kStory) << text;
}

}  // namespace
}  // namespace kvb
