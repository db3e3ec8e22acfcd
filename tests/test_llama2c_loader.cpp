// llama2.c checkpoints and tokenizer files: the real stories260K, and corrupt variants of it.
#include <gtest/gtest.h>

#include <fstream>

#include "engine/model.hpp"
#include "engine/tokenizers/spm_tokenizer.hpp"
#include "tests/test_support.hpp"
#include "util/errors.hpp"

namespace kvb {
namespace {

std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

void write_bytes(const std::filesystem::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// Expects InputError whose message names `path` and contains `what`.
void expect_input_error(const std::function<void()>& f, const std::string& path, const std::string& what) {
  try {
    f();
    FAIL() << "expected InputError mentioning " << what;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

TEST(Llama2cLoader, Stories260KConfigAndTokenizer) {
  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  Model m = load_model(bin.string());
  const ModelConfig& c = m.config;
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.ffn_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_seq_len, 512);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ(c.rope_pairing, RopePairing::Interleaved);
  EXPECT_EQ(m.weights.bytes(), uint64_t(c.parameter_count()) * 4);
  EXPECT_EQ(m.info.files.size(), 2u);  // checkpoint and tokenizer
  // tok512.bin facts from SOURCES.md: 259 is " t", 260 is "he"; byte tokens decode to bytes.
  auto* tok = dynamic_cast<SpmTokenizer*>(m.tokenizer.get());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->piece(259), " t");
  EXPECT_EQ(tok->piece(260), "he");
  EXPECT_EQ(m.tokenizer->decode({3 + 'A', 3 + '\n'}), "A\n");
  const std::string text = "The cat sat on the mat. \xC3\xA9t\xC3\xA9!";  // non-ASCII goes through byte fallback
  auto ids = m.tokenizer->encode(text);
  ids.insert(ids.begin(), 1);
  EXPECT_EQ(m.tokenizer->decode(ids), text);
}

TEST(Llama2cLoader, CorruptCheckpointsAreInputErrors) {
  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  test::TempDir dir;
  const std::string bytes = read_bytes(bin);
  std::filesystem::copy_file(bin.parent_path() / "tok512.bin", dir / "tok512.bin");
  const std::string p = (dir / "m.bin").string();

  for (size_t cut : {size_t(0), size_t(10), size_t(27), size_t(28), bytes.size() / 3, bytes.size() - 1}) {
    write_bytes(p, bytes.substr(0, cut));
    expect_input_error([&] { load_model(p); }, p, cut < 28 ? "past the end" : "truncated");
  }
  write_bytes(p, bytes + "extra");
  expect_input_error([&] { load_model(p); }, p, "implies");

  auto with_header = [&](int index, int32_t value) {
    std::string b = bytes;
    std::memcpy(b.data() + 4 * index, &value, 4);
    write_bytes(p, b);
  };
  with_header(0, 63);  // dim not a multiple of heads
  expect_input_error([&] { load_model(p); }, p, "multiple");
  with_header(2, -5);  // negative layer count
  expect_input_error([&] { load_model(p); }, p, "n_layers");
  with_header(4, 3);  // heads not a multiple of kv heads
  expect_input_error([&] { load_model(p); }, p, "kv heads");
  with_header(6, 1 << 30);  // absurd context: refused before any allocation
  expect_input_error([&] { load_model(p); }, p, "context length");
  write_bytes(p, "ak42" + bytes.substr(4));
  expect_input_error([&] { load_model(p); }, p, "version 1/2");
}

TEST(Llama2cLoader, TokenizerProblemsAreInputErrors) {
  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  test::TempDir dir;
  std::filesystem::copy_file(bin, dir / "m.bin");
  const std::string p = (dir / "m.bin").string();
  expect_input_error([&] { load_model(p); }, p, "no llama2.c tokenizer");
  const std::string tok = read_bytes(bin.parent_path() / "tok512.bin");
  write_bytes(dir / "tok512.bin", tok.substr(0, tok.size() / 2));
  expect_input_error([&] { load_model(p); }, (dir / "tok512.bin").string(), "past the end");
  write_bytes(dir / "tok512.bin", tok + "xx");
  expect_input_error([&] { load_model(p); }, (dir / "tok512.bin").string(), "trailing bytes");
}

}  // namespace
}  // namespace kvb
