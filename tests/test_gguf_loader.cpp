// GGUF loader: the real stories260K.gguf against its llama2.c twin, tiny models written by the
// test-side writer (every storage type, every architecture), and corrupt files that must end in
// an InputError naming the file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "engine/model.hpp"
#include "engine/tokenizers/byte_bpe_tokenizer.hpp"
#include "engine/tokenizers/spm_tokenizer.hpp"
#include "tests/gguf_writer.hpp"
#include "tests/test_support.hpp"
#include "util/errors.hpp"

namespace kvb {
namespace {

using test::GgufType;
using test::GgufValue;
using test::GgufWriter;
using test::TempDir;
using test::TinySpec;
using test::kSpmScores;
using test::kSpmTokens;
using test::kSpmTypes;
using test::numel;
using test::pattern;
using test::tiny_writer;
using ::testing::HasSubstr;

LoadOptions quick_options() {
  LoadOptions o;
  o.hash_files = false;
  o.available_bytes = 1ull << 30;  // a corrupt header claiming a huge model is refused, not attempted
  return o;
}

// Bytes of `values` in the host's (little-endian) order.
template <typename T>
std::vector<uint8_t> raw_bytes(const std::vector<T>& values) {
  std::vector<uint8_t> out(values.size() * sizeof(T));
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

size_t find_bytes(const std::vector<uint8_t>& hay, const std::string& needle) {
  const size_t at = std::string_view(reinterpret_cast<const char*>(hay.data()), hay.size()).find(needle);
  if (at == std::string_view::npos) throw std::runtime_error("not found: " + needle);
  return at;
}

template <typename T>
void poke(std::vector<uint8_t>& bytes, size_t at, T value) {
  std::memcpy(bytes.data() + at, &value, sizeof(T));
}

// Loading `path` must throw an InputError naming the file (and containing `needle`).
void expect_input_error(const std::filesystem::path& path, const std::string& needle = "") {
  try {
    load_gguf(path.string(), quick_options());
    ADD_FAILURE() << "loading " << path << " succeeded; expected an error containing '" << needle << "'";
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path.string()));
    EXPECT_THAT(e.what(), HasSubstr(needle));
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "message is not one line: " << e.what();
  }
}

void expect_bytes_error(const TempDir& dir, const std::vector<uint8_t>& bytes, const std::string& needle = "") {
  const auto path = dir / "bad.gguf";
  test::write_bytes(path, bytes);
  expect_input_error(path, needle);
}

// ---- stories260K ---------------------------------------------------------------------------

TEST(GgufLoader, Stories260KConfigMatchesTheSourceFacts) {
  KVB_REQUIRE_DATA(path, "models/stories260K/stories260K.gguf");
  const Model m = load_gguf(path.string(), quick_options());
  const ModelConfig& c = m.config;
  EXPECT_EQ(c.arch, Arch::Llama);
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.ffn_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.max_seq_len, 2048);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScalingType::None);
  EXPECT_EQ(c.rope_pairing, RopePairing::Interleaved);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_id, 2);
  ASSERT_TRUE(m.tokenizer);
  EXPECT_EQ(m.tokenizer->kind(), "gguf-llama");
  EXPECT_EQ(m.tokenizer->vocab_size(), 512);
  EXPECT_EQ(m.tokenizer->bos_id(), 1);
  EXPECT_EQ(m.tokenizer->eos_id(), 2);
  EXPECT_TRUE(m.tokenizer->add_bos());
  EXPECT_EQ(m.info.format, "gguf");
  EXPECT_EQ(m.info.name, "llama");  // general.name
  EXPECT_EQ(m.info.stored_dtype, "F32");
  ASSERT_EQ(m.info.files.size(), 1u);
  EXPECT_EQ(m.info.files[0].bytes, 1185376u);
  EXPECT_EQ(m.weights.layers.size(), 5u);
}

TEST(GgufLoader, Stories260KWeightsAreBitIdenticalToLlama2c) {
  KVB_REQUIRE_DATA(gguf, "models/stories260K/stories260K.gguf");
  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  const Model g = load_gguf(gguf.string(), quick_options());
  const Model b = load_llama2c(bin.string(), quick_options());
  auto same_bits = [](const Tensor& x, const Tensor& y) {
    return x.shape == y.shape && x.dtype == y.dtype && x.bytes == y.bytes;
  };
  EXPECT_EQ(g.weights.token_embedding.shape, (std::vector<int64_t>{512, 64}));
  EXPECT_TRUE(same_bits(g.weights.token_embedding, b.weights.token_embedding));
  EXPECT_TRUE(same_bits(g.weights.layers[0].wq, b.weights.layers[0].wq));
  EXPECT_TRUE(same_bits(g.weights.classifier, b.weights.lm_head()));
  EXPECT_TRUE(same_bits(g.weights.final_norm, b.weights.final_norm));
  EXPECT_TRUE(same_bits(g.weights.layers[4].w_down, b.weights.layers[4].w_down));
}

TEST(GgufLoader, Stories260KTokenizerAgreesWithLlama2c) {
  KVB_REQUIRE_DATA(gguf, "models/stories260K/stories260K.gguf");
  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  const Model g = load_gguf(gguf.string(), quick_options());
  const Model b = load_llama2c(bin.string(), quick_options());
  for (const char* text : {"Once upon a time", "Lily saw a big, red ball.", "Hello world!\nThe end.",
                           "  two  spaces", "caf\xC3\xA9 \xE2\x98\x83", ""}) {
    const auto ids = g.tokenizer->encode(text);
    EXPECT_EQ(ids, b.tokenizer->encode(text)) << text;
    EXPECT_EQ(g.tokenizer->decode(ids), b.tokenizer->decode(ids)) << text;
  }
  EXPECT_FALSE(g.tokenizer->encode("Once upon a time").empty());
}

// ---- tiny models from the writer -----------------------------------------------------------

TEST(GgufLoader, TinyLlamaRoundTrip) {
  TempDir dir;
  GgufWriter w = tiny_writer({});
  w.write(dir / "tiny.gguf");
  const Model m = load_gguf((dir / "tiny.gguf").string(), quick_options());
  EXPECT_EQ(m.config.dim, 32);
  EXPECT_EQ(m.config.ffn_dim, 64);
  EXPECT_EQ(m.config.n_layers, 2);
  EXPECT_EQ(m.config.n_heads, 4);
  EXPECT_EQ(m.config.n_kv_heads, 2);
  EXPECT_EQ(m.config.head_dim, 8);
  EXPECT_EQ(m.config.vocab_size, 10);
  EXPECT_EQ(m.config.max_seq_len, 128);
  EXPECT_FLOAT_EQ(m.config.norm_eps, 1e-6f);
  EXPECT_DOUBLE_EQ(m.config.rope_theta, 1e6);
  EXPECT_EQ(m.info.name, "tiny-llama");
  // Tensors were written in this order with seeds 1, 2, 3, ...
  EXPECT_EQ(to_f32(m.weights.token_embedding), pattern(10 * 32, 1));
  EXPECT_EQ(to_f32(m.weights.final_norm), pattern(32, 2));
  EXPECT_EQ(to_f32(m.weights.classifier), pattern(10 * 32, 3));
  EXPECT_EQ(m.weights.layers[0].wq.shape, (std::vector<int64_t>{32, 32}));
  EXPECT_EQ(to_f32(m.weights.layers[0].wq), pattern(32 * 32, 5));
  EXPECT_EQ(m.weights.layers[0].wk.shape, (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(m.weights.layers[1].w_down.shape, (std::vector<int64_t>{32, 64}));

  // The tokenizer: U+2581 became a space, scores drive the merges, control/byte types are kept.
  const auto ids = m.tokenizer->encode("ab a");
  EXPECT_EQ(ids, (std::vector<int>{8, 6}));
  EXPECT_EQ(m.tokenizer->decode({1, 8, 6, 2}), "ab a");
  EXPECT_EQ(m.tokenizer->decode({9}), "\n");
  EXPECT_EQ(m.tokenizer->encode("\n"), (std::vector<int>{3, 9}));
}

// tokenizer.chat_template is the model's chat template; the special tokens it prints are the
// vocabulary's BOS and EOS texts. skip_weights (kvbench prompt) reads all that without tensors.
TEST(GgufLoader, ChatTemplateAndSpecialTokensWithoutWeights) {
  TempDir dir;
  GgufWriter w = tiny_writer({});
  w.set("tokenizer.chat_template", GgufValue::string("{{ bos_token }}{{ messages[0].content }}"));
  w.write(dir / "chat.gguf");
  LoadOptions o = quick_options();
  o.skip_weights = true;
  const Model m = load_gguf((dir / "chat.gguf").string(), o);
  EXPECT_TRUE(m.weights.layers.empty());
  ASSERT_NE(m.tokenizer, nullptr);
  EXPECT_EQ(m.chat_template.text, "{{ bos_token }}{{ messages[0].content }}");
  EXPECT_NE(m.chat_template.origin.find("tokenizer.chat_template"), std::string::npos);
  EXPECT_EQ(m.chat_template.special_tokens.at("bos_token"), kSpmTokens[m.config.bos_id]);
  EXPECT_EQ(m.chat_template.special_tokens.at("eos_token"), kSpmTokens[m.config.eos_id]);
  EXPECT_TRUE(load_gguf((dir / "chat.gguf").string(), quick_options()).chat_template.text.size() > 0);
}

TEST(GgufLoader, GgufDimsAreReversedIntoRowMajorShape) {
  TempDir dir;
  GgufWriter w = tiny_writer({});
  // token_embd as raw GGUF dims ne = [dim, vocab]: dim varies fastest within a row.
  w.remove_tensor("token_embd.weight");
  std::vector<float> emb(10 * 32);
  for (int t = 0; t < 10; ++t)
    for (int i = 0; i < 32; ++i) emb[t * 32 + i] = float(t * 100 + i);
  w.add_raw_tensor("token_embd.weight", {32, 10}, test::kGgmlF32, raw_bytes(emb));
  w.write(dir / "m.gguf");
  const Model m = load_gguf((dir / "m.gguf").string(), quick_options());
  ASSERT_EQ(m.weights.token_embedding.shape, (std::vector<int64_t>{10, 32}));
  EXPECT_EQ(to_f32(m.weights.token_embedding)[7 * 32 + 5], 705.0f);
}

TEST(GgufLoader, TiedEmbeddingsWhenThereIsNoOutputTensor) {
  TempDir dir;
  TinySpec s;
  s.tied = true;
  tiny_writer(s).write(dir / "m.gguf");
  const Model m = load_gguf((dir / "m.gguf").string(), quick_options());
  EXPECT_TRUE(m.config.tied_embeddings);
  EXPECT_TRUE(m.weights.classifier.empty());
  EXPECT_EQ(to_f32(m.weights.lm_head()), pattern(10 * 32, 1));
}

TEST(GgufLoader, Qwen2HasQkvBiasAndHalfPairing) {
  TempDir dir;
  TinySpec s;
  s.arch = "qwen2";
  tiny_writer(s).write(dir / "m.gguf");
  const Model m = load_gguf((dir / "m.gguf").string(), quick_options());
  EXPECT_EQ(m.config.arch, Arch::Qwen2);
  EXPECT_TRUE(m.config.qkv_bias);
  EXPECT_FALSE(m.config.qk_norm);
  EXPECT_EQ(m.config.rope_pairing, RopePairing::Half);
  EXPECT_EQ(m.weights.layers[1].bq.shape, (std::vector<int64_t>{32}));
  EXPECT_EQ(m.weights.layers[1].bk.shape, (std::vector<int64_t>{16}));
  EXPECT_EQ(m.weights.layers[1].bv.shape, (std::vector<int64_t>{16}));
}

TEST(GgufLoader, Qwen3HasQkNormAndKeyLength) {
  TempDir dir;
  TinySpec s;
  s.arch = "qwen3";
  s.head_dim = 16;  // q_dim 64 != dim 32, as in real Qwen3 models
  tiny_writer(s).write(dir / "m.gguf");
  const Model m = load_gguf((dir / "m.gguf").string(), quick_options());
  EXPECT_EQ(m.config.arch, Arch::Qwen3);
  EXPECT_TRUE(m.config.qk_norm);
  EXPECT_FALSE(m.config.qkv_bias);
  EXPECT_EQ(m.config.rope_pairing, RopePairing::Half);
  EXPECT_EQ(m.config.head_dim, 16);
  EXPECT_EQ(m.weights.layers[0].wq.shape, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(m.weights.layers[0].wo.shape, (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(m.weights.layers[0].q_norm.shape, (std::vector<int64_t>{16}));
  EXPECT_EQ(m.weights.layers[0].k_norm.shape, (std::vector<int64_t>{16}));
}

TEST(GgufLoader, RopeScalingFromMetadata) {
  TempDir dir;
  TinySpec s;
  s.arch = "qwen3";
  GgufWriter w = tiny_writer(s);
  w.set("qwen3.rope.scaling.type", GgufValue::string("yarn"));
  w.set("qwen3.rope.scaling.factor", GgufValue::f32(4.0f));
  w.set("qwen3.rope.scaling.original_context_length", GgufValue::u32(32768));
  w.write(dir / "yarn.gguf");
  Model m = load_gguf((dir / "yarn.gguf").string(), quick_options());
  EXPECT_EQ(m.config.rope_scaling.type, RopeScalingType::Yarn);
  EXPECT_DOUBLE_EQ(m.config.rope_scaling.factor, 4.0);
  EXPECT_EQ(m.config.rope_scaling.original_max_position, 32768);

  w.set("qwen3.rope.scaling.type", GgufValue::string("linear"));
  w.set("qwen3.rope.scaling.factor", GgufValue::f32(2.0f));
  w.write(dir / "linear.gguf");
  m = load_gguf((dir / "linear.gguf").string(), quick_options());
  EXPECT_EQ(m.config.rope_scaling.type, RopeScalingType::Linear);
  EXPECT_DOUBLE_EQ(m.config.rope_scaling.factor, 2.0);

  w.set("qwen3.rope.scaling.type", GgufValue::string("longrope"));
  w.write(dir / "longrope.gguf");
  expect_input_error(dir / "longrope.gguf", "longrope");
}

TEST(GgufLoader, Llama3RopeScalingFromRopeFreqsTensor) {
  // Llama 3.1 style: theta 500000, factor 8, low 1, high 4, original context 8192; the divisors
  // are computed here independently of the loader.
  TempDir dir;
  TinySpec s;
  s.dim = 256;
  s.heads = 4;  // head_dim 64: 32 pairs spanning high, smooth and low frequencies
  s.kv_heads = 4;
  GgufWriter w = tiny_writer(s);
  w.set("llama.rope.freq_base", GgufValue::f32(500000.0f));
  std::vector<float> divisors;
  for (int i = 0; i < 32; ++i) {
    const double wavelen = 2 * 3.14159265358979323846 * std::pow(500000.0, 2.0 * i / 64);
    if (wavelen < 8192.0 / 4) divisors.push_back(1.0f);
    else if (wavelen > 8192.0) divisors.push_back(8.0f);
    else {
      const double smooth = (8192.0 / wavelen - 1.0) / 3.0;
      divisors.push_back(static_cast<float>(1.0 / ((1 - smooth) / 8.0 + smooth)));
    }
  }
  ASSERT_EQ(divisors.front(), 1.0f);
  ASSERT_EQ(divisors.back(), 8.0f);
  w.add_tensor("rope_freqs.weight", {32}, divisors);
  w.write(dir / "l3.gguf");
  const Model m = load_gguf((dir / "l3.gguf").string(), quick_options());
  EXPECT_EQ(m.config.rope_scaling.type, RopeScalingType::Llama3);
  EXPECT_DOUBLE_EQ(m.config.rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(m.config.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(m.config.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(m.config.rope_scaling.original_max_position, 8192);

  // Divisors that no llama3 scaling produces are refused rather than ignored.
  divisors[3] = 3.0f;
  w.remove_tensor("rope_freqs.weight");
  w.add_tensor("rope_freqs.weight", {32}, divisors);
  w.write(dir / "odd.gguf");
  expect_input_error(dir / "odd.gguf", "rope_freqs.weight");
}

TEST(GgufLoader, F16TensorsDequantiseExactly) {
  // Bit patterns and their values: 1, -2.5, 0x3555 (nearest half to 1/3), 65504 (max), 2^-24
  // (smallest subnormal), -0, 2^-14 (smallest normal), 0.5.
  const uint16_t bits[8] = {0x3C00, 0xC100, 0x3555, 0x7BFF, 0x0001, 0x8000, 0x0400, 0x3800};
  const float values[8] = {1.0f, -2.5f, 0.333251953125f, 65504.0f, 5.9604644775390625e-08f, -0.0f,
                           6.103515625e-05f, 0.5f};
  std::vector<uint16_t> stored(32 * 32);
  for (size_t i = 0; i < stored.size(); ++i) stored[i] = bits[i % 8];
  TempDir dir;
  GgufWriter w = tiny_writer({});
  w.remove_tensor("blk.0.attn_q.weight");
  w.add_raw_tensor("blk.0.attn_q.weight", {32, 32}, test::kGgmlF16, raw_bytes(stored));
  w.write(dir / "m.gguf");
  const Model m = load_gguf((dir / "m.gguf").string(), quick_options());
  EXPECT_EQ(m.info.stored_dtype, "F32+F16");
  EXPECT_EQ(m.weights.layers[0].wq.dtype, DType::F16);  // kept as stored, widened in the matmul
  const auto& got = to_f32(m.weights.layers[0].wq);
  ASSERT_EQ(got.size(), stored.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i], values[i % 8]) << i;
    ASSERT_EQ(std::signbit(got[i]), std::signbit(values[i % 8])) << i;
  }
}

TEST(GgufLoader, Bf16TensorsDequantiseExactly) {
  // 1, -2.5, 0x3EAB = 0.333984375, 0x7F7F = largest finite, 0x0001 = 2^-133 (subnormal), -0,
  // 3.140625, -0.5.
  const uint16_t bits[8] = {0x3F80, 0xC020, 0x3EAB, 0x7F7F, 0x0001, 0x8000, 0x4049, 0xBF00};
  const float values[8] = {1.0f, -2.5f, 0.333984375f, 3.3895313892515355e+38f, 9.183549615799121e-41f,
                           -0.0f, 3.140625f, -0.5f};
  std::vector<uint16_t> stored(16 * 32);
  for (size_t i = 0; i < stored.size(); ++i) stored[i] = bits[i % 8];
  TempDir dir;
  GgufWriter w = tiny_writer({});
  w.remove_tensor("blk.1.attn_k.weight");
  w.add_raw_tensor("blk.1.attn_k.weight", {32, 16}, test::kGgmlBF16, raw_bytes(stored));
  w.write(dir / "m.gguf");
  const Model m = load_gguf((dir / "m.gguf").string(), quick_options());
  EXPECT_EQ(m.info.stored_dtype, "F32+BF16");
  EXPECT_EQ(m.weights.layers[1].wk.dtype, DType::BF16);
  const auto& got = to_f32(m.weights.layers[1].wk);
  ASSERT_EQ(got.size(), stored.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], values[i % 8]) << i;
}

TEST(GgufLoader, Q8_0TensorsDequantiseExactly) {
  // wv of layer 0 is [16, 32]: 16 rows of one 32-value block each. Block b has scale
  // 2^-(b % 4 + 5) (an exact half) and int8 values (b * 17 + i * 9) % 256 - 128, so -128 and 127 occur.
  std::vector<uint8_t> stored;
  std::vector<float> expected;
  const uint16_t scale_bits[4] = {0x2800, 0x2400, 0x2000, 0x1C00};  // 2^-5, 2^-6, 2^-7, 2^-8
  for (int b = 0; b < 16; ++b) {
    const uint16_t sb = scale_bits[b % 4];
    stored.push_back(static_cast<uint8_t>(sb & 0xff));
    stored.push_back(static_cast<uint8_t>(sb >> 8));
    const float scale = std::ldexp(1.0f, -(b % 4 + 5));
    for (int i = 0; i < 32; ++i) {
      const int q = (b * 17 + i * 9) % 256 - 128;
      stored.push_back(static_cast<uint8_t>(static_cast<int8_t>(q)));
      expected.push_back(scale * static_cast<float>(q));
    }
  }
  TempDir dir;
  GgufWriter w = tiny_writer({});
  w.remove_tensor("blk.0.attn_v.weight");
  w.add_raw_tensor("blk.0.attn_v.weight", {32, 16}, test::kGgmlQ8_0, stored);
  w.write(dir / "m.gguf");
  const Model m = load_gguf((dir / "m.gguf").string(), quick_options());
  EXPECT_EQ(m.info.stored_dtype, "F32+Q8_0");
  EXPECT_EQ(m.weights.layers[0].wv.dtype, DType::Q8_0);
  EXPECT_EQ(to_f32(m.weights.layers[0].wv), expected);
}

TEST(GgufLoader, WriterEncodingsRoundTripThroughTheLoader) {
  // The writer's own F16/BF16/Q8_0 encoders (used to build test models) against known bits,
  // then random values through the loader within each format's rounding error.
  EXPECT_EQ(test::to_f16(1.0f / 3.0f), 0x3555);
  EXPECT_EQ(test::to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(test::to_f16(65520.0f), 0x7C00);
  EXPECT_EQ(test::to_f16(5.9604644775390625e-08f), 0x0001);
  EXPECT_EQ(test::to_f16(-2.5f), 0xC100);
  EXPECT_EQ(test::to_bf16(1.0f / 3.0f), 0x3EAB);
  EXPECT_EQ(test::to_bf16(-2.5f), 0xC020);

  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 0.5f);
  std::vector<float> values(64 * 32);
  for (float& v : values) v = dist(rng);
  TempDir dir;
  for (uint32_t type : {test::kGgmlF16, test::kGgmlBF16, test::kGgmlQ8_0}) {
    GgufWriter w = tiny_writer({});
    w.remove_tensor("blk.1.ffn_up.weight");
    w.add_tensor("blk.1.ffn_up.weight", {64, 32}, values, type);
    w.write(dir / "m.gguf");
    const Model m = load_gguf((dir / "m.gguf").string(), quick_options());
    const auto& got = to_f32(m.weights.layers[1].w_up);
    ASSERT_EQ(got.size(), values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      float tol = 0;
      if (type == test::kGgmlF16) tol = std::fabs(values[i]) * 0x1p-11f + 0x1p-25f;
      if (type == test::kGgmlBF16) tol = std::fabs(values[i]) * 0x1p-8f;
      if (type == test::kGgmlQ8_0) {
        float amax = 0;
        for (size_t j = i / 32 * 32; j < i / 32 * 32 + 32; ++j) amax = std::max(amax, std::fabs(values[j]));
        tol = amax / 127.0f * 0.502f + amax * 0x1p-11f;  // half a step, plus the f16 scale's rounding
      }
      ASSERT_NEAR(got[i], values[i], tol) << "type " << type << " index " << i;
    }
  }
}

TEST(GgufLoader, AcceptsVersion2AndAnyAlignment) {
  TempDir dir;
  GgufWriter w = tiny_writer({});
  w.version = 2;
  w.write(dir / "v2.gguf");
  EXPECT_EQ(to_f32(load_gguf((dir / "v2.gguf").string(), quick_options()).weights.final_norm), pattern(32, 2));

  w.version = 3;
  w.alignment = 256;
  w.set("general.alignment", GgufValue::u32(256));
  w.write(dir / "a256.gguf");
  const Model m = load_gguf((dir / "a256.gguf").string(), quick_options());
  EXPECT_EQ(to_f32(m.weights.final_norm), pattern(32, 2));
  EXPECT_EQ(to_f32(m.weights.layers[1].w_down), pattern(32 * 64, 21));  // the last tensor written
}

TEST(GgufLoader, ReadsEveryMetadataValueType) {
  TempDir dir;
  GgufWriter w = tiny_writer({});
  // Config keys in unusual (but valid) integer and float types.
  w.set("llama.embedding_length", GgufValue::u64(32));
  w.set("llama.feed_forward_length", GgufValue::i32(64));
  w.set("llama.block_count", GgufValue::u16(2));
  w.set("llama.attention.head_count", GgufValue::i64(4));
  w.set("llama.attention.head_count_kv", GgufValue::u8(2));
  w.set("llama.context_length", GgufValue::i16(128));
  w.set("llama.rope.freq_base", GgufValue::f64(20000.0));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::i8(1));
  // Keys the loader does not use, of every type, including nested and empty arrays.
  w.set("test.u8", GgufValue::u8(200));
  w.set("test.i8", GgufValue::i8(-5));
  w.set("test.u16", GgufValue::u16(60000));
  w.set("test.i16", GgufValue::i16(-30000));
  w.set("test.u32", GgufValue::u32(4000000000u));
  w.set("test.i32", GgufValue::i32(-2000000000));
  w.set("test.u64", GgufValue::u64(~0ull));
  w.set("test.i64", GgufValue::i64(-1));
  w.set("test.f32", GgufValue::f32(1.5f));
  w.set("test.f64", GgufValue::f64(-2.25));
  w.set("test.bool", GgufValue::boolean(true));
  w.set("test.string", GgufValue::string("h\xC3\xA9llo"));
  w.set("test.empty_string", GgufValue::string(""));
  w.set("test.empty_array", GgufValue::array(GgufType::U32, {}));
  w.set("test.nested", GgufValue::array(GgufType::Array, {GgufValue::strings({"a", "bc"}),
                                                          GgufValue::array(GgufType::U8, {GgufValue::u8(1)}),
                                                          GgufValue::array(GgufType::Array, {})}));
  w.set("test.bools", GgufValue::array(GgufType::Bool, {GgufValue::boolean(false), GgufValue::boolean(true)}));
  w.set("test.f64s", GgufValue::array(GgufType::F64, {GgufValue::f64(1.0)}));
  w.write(dir / "m.gguf");
  const Model m = load_gguf((dir / "m.gguf").string(), quick_options());
  EXPECT_EQ(m.config.dim, 32);
  EXPECT_EQ(m.config.ffn_dim, 64);
  EXPECT_EQ(m.config.n_layers, 2);
  EXPECT_EQ(m.config.n_heads, 4);
  EXPECT_EQ(m.config.n_kv_heads, 2);
  EXPECT_EQ(m.config.max_seq_len, 128);
  EXPECT_DOUBLE_EQ(m.config.rope_theta, 20000.0);
  EXPECT_EQ(m.config.bos_id, 1);
}

TEST(GgufLoader, DefaultsForOptionalKeys) {
  TempDir dir;
  GgufWriter w = tiny_writer({});
  w.remove("llama.attention.head_count_kv");
  w.remove("llama.rope.freq_base");
  w.remove("general.name");
  // Without head_count_kv every head has its own kv head.
  for (int l = 0; l < 2; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    for (const char* t : {"attn_k.weight", "attn_v.weight"}) {
      w.remove_tensor(b + t);
      w.add_tensor(b + t, {32, 32}, pattern(32 * 32, 0));
    }
  }
  w.write(dir / "plain.gguf");
  const Model m = load_gguf((dir / "plain.gguf").string(), quick_options());
  EXPECT_EQ(m.config.n_kv_heads, 4);
  EXPECT_DOUBLE_EQ(m.config.rope_theta, 10000.0);
  EXPECT_EQ(m.info.name, "plain");
}

// Byte-level tokens for bytes 0..255 as GPT-2 writes them (printable bytes stand for themselves,
// the rest map to U+0100 onwards).
std::vector<std::string> gpt2_byte_tokens() {
  std::vector<std::string> out;
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    const int cp = printable ? b : next++;
    std::string s;
    if (cp < 0x80) s += static_cast<char>(cp);
    else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    out.push_back(s);
  }
  return out;
}

TEST(GgufLoader, Gpt2TokenizerFromMetadata) {
  std::vector<std::string> tokens = gpt2_byte_tokens();
  const int space = 32;  // "Ġ" is byte 0x20's token
  ASSERT_EQ(tokens[space], "\xC4\xA0");
  const int ab = static_cast<int>(tokens.size());
  for (const char* t : {"ab", "\xC4\xA0" "a", "\xC4\xA0" "ab", "<|endoftext|>", "<|im_start|>", "<think>"})
    tokens.push_back(t);
  const int sp_a = ab + 1, sp_ab = ab + 2, eot = ab + 3, im_start = ab + 4, think = ab + 5;
  std::vector<int32_t> types(tokens.size(), 1);
  types[eot] = types[im_start] = 3;  // control
  types[think] = 4;                  // user-defined

  TempDir dir;
  TinySpec s;
  s.arch = "qwen2";
  GgufWriter w = tiny_writer(s);
  w.set("tokenizer.ggml.model", GgufValue::string("gpt2"));
  w.set("tokenizer.ggml.pre", GgufValue::string("qwen2"));
  w.set("tokenizer.ggml.tokens", GgufValue::strings(tokens));
  w.set("tokenizer.ggml.token_type", GgufValue::i32s(types));
  w.set("tokenizer.ggml.merges", GgufValue::strings({"a b", "\xC4\xA0 a", "\xC4\xA0 ab"}));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(eot));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(eot));
  w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(false));
  w.remove("tokenizer.ggml.scores");
  const int64_t v = static_cast<int64_t>(tokens.size());
  w.remove_tensor("token_embd.weight");
  w.remove_tensor("output.weight");
  w.add_tensor("token_embd.weight", {v, 32}, pattern(v * 32, 1));
  w.write(dir / "bpe.gguf");

  const Model m = load_gguf((dir / "bpe.gguf").string(), quick_options());
  EXPECT_EQ(m.config.vocab_size, v);
  EXPECT_TRUE(m.config.tied_embeddings);
  EXPECT_EQ(m.config.bos_id, eot);
  EXPECT_EQ(m.config.eos_id, eot);
  EXPECT_EQ(m.tokenizer->eos_id(), eot);
  EXPECT_FALSE(m.tokenizer->add_bos());
  EXPECT_EQ(m.tokenizer->vocab_size(), v);
  EXPECT_EQ(m.tokenizer->encode("ab ab"), (std::vector<int>{ab, sp_ab}));
  EXPECT_EQ(m.tokenizer->encode("<|im_start|>ab a"), (std::vector<int>{im_start, ab, sp_a}));
  EXPECT_EQ(m.tokenizer->decode({ab, sp_ab, sp_a}), "ab ab a");
  // Control tokens are cut out verbatim and hidden when decoding; user-defined ones are content.
  EXPECT_EQ(m.tokenizer->encode("<think>ab"), (std::vector<int>{think, ab}));
  EXPECT_EQ(m.tokenizer->decode({im_start, think, ab}), "<think>ab");
  EXPECT_EQ(m.tokenizer->decode({im_start, ab}, /*render_special=*/true), "<|im_start|>ab");

  // A merge naming a token the vocabulary lacks: the tokenizer's error, naming the file.
  w.set("tokenizer.ggml.merges", GgufValue::strings({"a b", "x y"}));
  w.write(dir / "bad-merge.gguf");
  expect_input_error(dir / "bad-merge.gguf", "embedded tokenizer");
  w.set("tokenizer.ggml.merges", GgufValue::strings({"ab"}));
  w.write(dir / "bad-merge.gguf");
  expect_input_error(dir / "bad-merge.gguf", "merge \"ab\" has no space");
}

TEST(GgufLoader, Qwen3VocabularyTokenizesLikeTokenizerJson) {
  // A tiny qwen3 model carrying the real Qwen3 vocabulary the way convert_hf_to_gguf stores it
  // (tokens by id, "left right" merges, special added tokens as control, the others as
  // user-defined, pre "qwen2"); its tokenizer must agree with the tokenizer.json loader.
  KVB_REQUIRE_DATA(json_path, "models/qwen3-tokenizer/tokenizer.json");
  nlohmann::json j;
  std::ifstream(json_path) >> j;
  std::vector<std::string> tokens(j["model"]["vocab"].size() + j["added_tokens"].size());
  std::vector<int32_t> types(tokens.size(), 1);
  for (const auto& [text, id] : j["model"]["vocab"].items()) tokens.at(id.get<size_t>()) = text;
  for (const auto& t : j["added_tokens"]) {
    tokens.at(t["id"].get<size_t>()) = t["content"].get<std::string>();
    types.at(t["id"].get<size_t>()) = t["special"].get<bool>() ? 3 : 4;
  }
  std::vector<std::string> merges;
  for (const auto& m : j["model"]["merges"])
    merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());

  TinySpec s;
  s.arch = "qwen3";
  s.dim = 8;
  s.heads = 2;
  s.kv_heads = 1;
  s.ffn = 8;
  s.layers = 1;
  s.tied = true;
  GgufWriter w = tiny_writer(s);
  w.set("tokenizer.ggml.model", GgufValue::string("gpt2"));
  w.set("tokenizer.ggml.pre", GgufValue::string("qwen2"));
  w.set("tokenizer.ggml.tokens", GgufValue::strings(tokens));
  w.set("tokenizer.ggml.token_type", GgufValue::i32s(types));
  w.set("tokenizer.ggml.merges", GgufValue::strings(merges));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(151645));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(151643));
  w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(false));
  w.remove("tokenizer.ggml.scores");
  const int64_t v = static_cast<int64_t>(tokens.size());
  w.remove_tensor("token_embd.weight");
  w.add_tensor("token_embd.weight", {v, 8}, std::vector<float>(v * 8, 0.25f));
  TempDir dir;
  w.write(dir / "qwen3-vocab.gguf");

  const Model m = load_gguf((dir / "qwen3-vocab.gguf").string(), quick_options());
  const auto hf = load_hf_tokenizer(json_path.string());
  EXPECT_EQ(m.config.vocab_size, 151669);
  EXPECT_EQ(m.tokenizer->vocab_size(), 151669);
  EXPECT_EQ(m.tokenizer->eos_id(), 151645);
  EXPECT_FALSE(m.tokenizer->add_bos());
  for (const char* text :
       {"Hello world's   test\n\n  x", "12345 abc \xE4\xBD\xA0\xE5\xA5\xBD",
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
        "def f(x):\n    return x**2  # square\n\n\tprint('ok')\n", "$\\frac{m}{n}$ where $m+n=77$."}) {
    const auto ids = m.tokenizer->encode(text);
    EXPECT_EQ(ids, hf->encode(text)) << text;
    EXPECT_EQ(m.tokenizer->decode(ids), hf->decode(ids)) << text;
    EXPECT_EQ(m.tokenizer->decode(ids, true), hf->decode(ids, true)) << text;
  }
}

// ---- bad input -----------------------------------------------------------------------------

TEST(GgufLoaderErrors, TruncatedAnywhere) {
  TempDir dir;
  const GgufWriter w = tiny_writer({});
  const std::vector<uint8_t> full = w.serialize();
  const size_t data_start = w.data_start();
  const size_t tokens_at = find_bytes(full, "\xE2\x96\x81" "ab");  // inside the token list
  struct Cut {
    size_t at;
    const char* where;
  };
  const Cut cuts[] = {{0, "empty"},
                      {3, "inside the magic"},
                      {6, "inside the version"},
                      {20, "inside the counts"},
                      {30, "inside the first key's length"},
                      {40, "inside the first key"},
                      {tokens_at + 2, "inside the token list"},
                      {data_start - 9, "inside the tensor infos"},
                      {data_start, "at the data section"},
                      {data_start + 100, "inside the first tensor"},
                      {full.size() - 1, "one byte short"}};
  for (const Cut& c : cuts) {
    SCOPED_TRACE(c.where);
    ASSERT_LT(c.at, full.size());
    expect_bytes_error(dir, std::vector<uint8_t>(full.begin(), full.begin() + c.at));
  }
  // And many other lengths (a stride that is prime to every field size): no prefix may load or crash.
  for (size_t n = 0; n < full.size(); n += (n < data_start ? 7 : 1009)) {
    test::write_bytes(dir / "cut.gguf", std::vector<uint8_t>(full.begin(), full.begin() + n));
    EXPECT_THROW(load_gguf((dir / "cut.gguf").string(), quick_options()), InputError) << "cut at " << n;
  }
}

TEST(GgufLoaderErrors, WrongMagic) {
  TempDir dir;
  std::vector<uint8_t> bytes = tiny_writer({}).serialize();
  bytes[3] = 'X';
  expect_bytes_error(dir, bytes, "not a GGUF file");
}

TEST(GgufLoaderErrors, UnsupportedVersions) {
  TempDir dir;
  GgufWriter w = tiny_writer({});
  w.version = 1;
  expect_bytes_error(dir, w.serialize(), "version 1");
  w.version = 4;
  expect_bytes_error(dir, w.serialize(), "unsupported GGUF version 4");
  w.version = 0x03000000;  // a big-endian v3 file read little-endian
  expect_bytes_error(dir, w.serialize(), "big-endian");
}

TEST(GgufLoaderErrors, StringLengthPastTheEnd) {
  TempDir dir;
  const std::vector<uint8_t> good = tiny_writer({}).serialize();
  const std::string key = "general.name";
  const size_t len_at = find_bytes(good, key) + key.size() + 4;  // after the key and its type tag
  for (uint64_t len : {uint64_t(good.size()), uint64_t(1) << 62, ~uint64_t(0)}) {
    std::vector<uint8_t> bad = good;
    poke<uint64_t>(bad, len_at, len);
    expect_bytes_error(dir, bad, "general.name");
  }
  // A key's own length.
  std::vector<uint8_t> bad = good;
  poke<uint64_t>(bad, 24, uint64_t(1) << 40);
  expect_bytes_error(dir, bad, "metadata key");
}

TEST(GgufLoaderErrors, ArrayCountPastTheEnd) {
  TempDir dir;
  GgufWriter w = tiny_writer({});
  w.set("test.nested", GgufValue::array(GgufType::Array, {GgufValue::strings({"x", "y"})}));
  const std::vector<uint8_t> good = w.serialize();
  const std::string tokens_key = "tokenizer.ggml.tokens";
  const size_t tokens_count_at = find_bytes(good, tokens_key) + tokens_key.size() + 4 + 4;
  for (uint64_t count : {uint64_t(1) << 60, uint64_t(good.size()), ~uint64_t(0)}) {
    std::vector<uint8_t> bad = good;
    poke<uint64_t>(bad, tokens_count_at, count);
    expect_bytes_error(dir, bad, "tokenizer.ggml.tokens");
  }
  const std::string scores_key = "tokenizer.ggml.scores";  // an array of scalars
  std::vector<uint8_t> bad = good;
  poke<uint64_t>(bad, find_bytes(good, scores_key) + scores_key.size() + 8, uint64_t(1) << 61);
  expect_bytes_error(dir, bad, "tokenizer.ggml.scores");
  // The inner array of a nested array: key, type, outer element type and count, inner element type.
  const std::string nested_key = "test.nested";
  bad = good;
  poke<uint64_t>(bad, find_bytes(good, nested_key) + nested_key.size() + 4 + 4 + 8 + 4, uint64_t(1) << 59);
  expect_bytes_error(dir, bad, "test.nested");
  // Header counts.
  bad = good;
  poke<uint64_t>(bad, 16, uint64_t(1) << 50);  // metadata entries
  expect_bytes_error(dir, bad, "metadata entries");
  bad = good;
  poke<uint64_t>(bad, 8, uint64_t(1) << 50);  // tensors
  expect_bytes_error(dir, bad, "tensors");
}

TEST(GgufLoaderErrors, DeeplyNestedArrays) {
  TempDir dir;
  GgufValue v = GgufValue::array(GgufType::U8, {});
  for (int i = 0; i < 20; ++i) v = GgufValue::array(GgufType::Array, {v});
  GgufWriter w = tiny_writer({});
  w.set("test.deep", v);
  expect_bytes_error(dir, w.serialize(), "nested");
}

TEST(GgufLoaderErrors, TensorShapeDisagreesWithConfig) {
  TempDir dir;
  GgufWriter w = tiny_writer({});
  w.remove_tensor("blk.1.attn_k.weight");
  w.add_tensor("blk.1.attn_k.weight", {24, 32}, pattern(24 * 32, 0));  // kv_dim is 16
  w.write(dir / "m.gguf");
  expect_input_error(dir / "m.gguf", "blk.1.attn_k.weight");

  // A token list that disagrees with the embedding rows.
  w = tiny_writer({});
  std::vector<std::string> tokens = kSpmTokens;
  tokens.push_back("extra");
  std::vector<float> scores = kSpmScores;
  scores.push_back(0);
  std::vector<int32_t> types = kSpmTypes;
  types.push_back(1);
  w.set("tokenizer.ggml.tokens", GgufValue::strings(tokens));
  w.set("tokenizer.ggml.scores", GgufValue::f32s(scores));
  w.set("tokenizer.ggml.token_type", GgufValue::i32s(types));
  w.write(dir / "m.gguf");
  expect_input_error(dir / "m.gguf", "token_embd.weight");
}

TEST(GgufLoaderErrors, MissingTensorAndKeys) {
  TempDir dir;
  GgufWriter w = tiny_writer({});
  w.remove_tensor("blk.1.ffn_gate.weight");
  w.write(dir / "m.gguf");
  expect_input_error(dir / "m.gguf", "layer 1");

  w = tiny_writer({});
  w.remove("llama.block_count");
  w.write(dir / "m.gguf");
  expect_input_error(dir / "m.gguf", "llama.block_count");

  w = tiny_writer({});
  w.set("llama.block_count", GgufValue::string("two"));
  w.write(dir / "m.gguf");
  expect_input_error(dir / "m.gguf", "llama.block_count");

  w = tiny_writer({});
  w.remove("general.architecture");
  w.write(dir / "m.gguf");
  expect_input_error(dir / "m.gguf", "general.architecture");

  w = tiny_writer({});
  w.set("tokenizer.ggml.scores", GgufValue::f32s({0, 1}));
  w.write(dir / "m.gguf");
  expect_input_error(dir / "m.gguf", "tokenizer.ggml.scores");

  w = tiny_writer({});
  w.remove("tokenizer.ggml.tokens");
  w.write(dir / "m.gguf");
  expect_input_error(dir / "m.gguf", "no embedded tokenizer");

  w = tiny_writer({});
  w.set("tokenizer.ggml.model", GgufValue::string("bert"));
  w.write(dir / "m.gguf");
  expect_input_error(dir / "m.gguf", "bert");

  w = tiny_writer({});
  w.set("llama.block_count", GgufValue::u64(uint64_t(1) << 32 | 2));  // would wrap to 2 as an int
  w.write(dir / "m.gguf");
  expect_input_error(dir / "m.gguf", "llama.block_count");
}

TEST(GgufLoaderErrors, UnknownArchitecture) {
  TempDir dir;
  GgufWriter w = tiny_writer({});
  w.set("general.architecture", GgufValue::string("gptneox"));
  w.write(dir / "m.gguf");
  expect_input_error(dir / "m.gguf", "unsupported architecture \"gptneox\"");
}

TEST(GgufLoaderErrors, UnsupportedTensorType) {
  TempDir dir;
  GgufWriter w = tiny_writer({});
  w.remove_tensor("blk.0.attn_q.weight");
  w.add_raw_tensor("blk.0.attn_q.weight", {32, 32}, 12, std::vector<uint8_t>(32 * 32, 0));  // Q4_K
  w.write(dir / "m.gguf");
  expect_input_error(dir / "m.gguf", "tensor blk.0.attn_q.weight has ggml type 12");
}

TEST(GgufLoaderErrors, TensorDataOutsideTheFile) {
  TempDir dir;
  for (uint64_t offset : {uint64_t(1) << 40, ~uint64_t(0) - 31}) {
    GgufWriter w = tiny_writer({});
    w.tensor("blk.1.ffn_down.weight").offset = offset;
    w.write(dir / "m.gguf");
    expect_input_error(dir / "m.gguf", "tensor blk.1.ffn_down.weight data");
  }
  GgufWriter w = tiny_writer({});
  w.tensor("output_norm.weight").offset = 4;  // not a multiple of the alignment
  w.write(dir / "m.gguf");
  expect_input_error(dir / "m.gguf", "alignment");

  w = tiny_writer({});
  w.tensor("output_norm.weight").ne = {uint64_t(1) << 62, 8};  // element count overflows
  w.write(dir / "m.gguf");
  expect_input_error(dir / "m.gguf", "output_norm.weight");

  w = tiny_writer({});
  w.tensor("output_norm.weight").ne = {2, 2, 2, 2, 2};
  w.write(dir / "m.gguf");
  expect_input_error(dir / "m.gguf", "5 dimensions");

  w = tiny_writer({});
  w.set("general.alignment", GgufValue::u32(24));
  w.write(dir / "m.gguf");
  expect_input_error(dir / "m.gguf", "general.alignment");
}

TEST(GgufLoaderErrors, DuplicateKeysAndTensors) {
  TempDir dir;
  // Rename blk.0.attn_norm.weight to blk.1.attn_norm.weight in place (same length).
  std::vector<uint8_t> bytes = tiny_writer({}).serialize();
  bytes[find_bytes(bytes, "blk.0.attn_norm.weight") + 4] = '1';
  expect_bytes_error(dir, bytes, "tensor blk.1.attn_norm.weight appears twice");

  // Rename a placeholder key to llama.block_count (same length).
  GgufWriter w = tiny_writer({});
  w.set("llama.xxxxx_count", GgufValue::u32(2));
  bytes = w.serialize();
  std::memcpy(bytes.data() + find_bytes(bytes, "llama.xxxxx_count"), "llama.block_count", 17);
  expect_bytes_error(dir, bytes, "llama.block_count appears twice");
}

TEST(GgufLoaderErrors, RandomCorruptionNeverCrashes) {
  // Bytes of the header, metadata and tensor infos replaced at random: every file must either
  // load or end in an InputError naming it (never a crash, hang or huge allocation).
  TempDir dir;
  const GgufWriter w = tiny_writer({});
  const std::vector<uint8_t> good = w.serialize();
  const size_t region = w.data_start();
  std::mt19937 rng(1234);
  std::uniform_int_distribution<size_t> pos(0, region - 1);
  std::uniform_int_distribution<int> byte(0, 255), howmany(1, 4);
  int errors = 0;
  for (int iter = 0; iter < 250; ++iter) {
    std::vector<uint8_t> bad = good;
    for (int k = howmany(rng); k > 0; --k) bad[pos(rng)] = static_cast<uint8_t>(byte(rng));
    test::write_bytes(dir / "fuzz.gguf", bad);
    try {
      load_gguf((dir / "fuzz.gguf").string(), quick_options());
    } catch (const InputError& e) {
      ++errors;
      ASSERT_THAT(e.what(), HasSubstr((dir / "fuzz.gguf").string()));
    }
  }
  EXPECT_GT(errors, 0);
}

TEST(GgufLoaderErrors, LoadModelDispatchesGguf) {
  TempDir dir;
  tiny_writer({}).write(dir / "m.gguf");
  EXPECT_EQ(load_model((dir / "m.gguf").string(), quick_options()).info.format, "gguf");
}

// A benchmark must not publish numbers computed from NaN: a weight that is NaN or Inf (in any
// stored type) is refused at load, an infinite RoPE base too; finite weights whose activations
// overflow stop the run at the first non-finite logits with exit 3, naming the sequence.
TEST(GgufLoaderErrors, NonFiniteWeightsAndRopeBaseAreRefused) {
  TempDir dir;
  for (const uint32_t type : {test::kGgmlF32, test::kGgmlF16, test::kGgmlBF16}) {
    GgufWriter w = tiny_writer({});
    std::vector<float> values = pattern(32 * 32, 5);
    values[77] = type == test::kGgmlF16 ? std::numeric_limits<float>::infinity() : std::nanf("");
    w.replace_tensor("blk.0.attn_q.weight", {32, 32}, values, type);
    w.write(dir / "nan.gguf");
    expect_input_error(dir / "nan.gguf", "tensor blk.0.attn_q.weight holds a non-finite value");
    expect_input_error(dir / "nan.gguf", "at element 77");
  }
  GgufWriter w = tiny_writer({});
  w.set("llama.rope.freq_base", GgufValue::f32(std::numeric_limits<float>::infinity()));
  w.write(dir / "inf.gguf");
  expect_input_error(dir / "inf.gguf", "rope theta inf must be finite");
}

TEST(CliRun, OverflowingActivationsStopTheRunWithExitThree) {
  TempDir dir;
  GgufWriter w = tiny_writer({});
  // Finite weights, but q = 1e30 * x: the attention scores overflow to inf, the softmax to NaN.
  w.replace_tensor("blk.0.attn_q.weight", {32, 32}, std::vector<float>(32 * 32, 1e30f));
  w.replace_tensor("blk.0.attn_k.weight", {16, 32}, std::vector<float>(16 * 32, 1e30f));
  w.write(dir / "overflow.gguf");
  for (const char* mode : {"generate", "replay"}) {
    const test::CommandResult r = test::run_kvbench(std::string("run -q -m ") + (dir / "overflow.gguf").string() +
                                                    " --mode " + mode + " -p \"ab a\" -n 4 --method full --out " +
                                                    (dir / mode).string());
    EXPECT_EQ(r.exit_code, 3) << mode << "\n" << r.output;
    EXPECT_THAT(r.output, HasSubstr("non-finite logits")) << mode;
  }
}

}  // namespace
}  // namespace kvb
