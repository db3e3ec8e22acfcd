// The Hugging Face folder loader: tiny Llama / Qwen2 / Qwen3 folders written by the test are
// loaded and run through the engine, and the logits must match an independent double-precision
// reference forward pass on the values written; corrupt folders must end in InputError naming
// the file at fault.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "engine/model.hpp"
#include "kernels/bf16.hpp"
#include "engine/rope.hpp"
#include "engine/transformer.hpp"
#include "engine/weights.hpp"
#include "tests/hf_model_writer.hpp"
#include "tests/reference_forward.hpp"
#include "tests/test_support.hpp"
#include "util/errors.hpp"

namespace kvb::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Runs `fn` and checks it throws InputError whose message contains every one of `needles`.
void expect_input_error(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  try {
    fn();
  } catch (const InputError& e) {
    const std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "message lacks \"" << n << "\": " << msg;
    return;
  } catch (const std::exception& e) {
    FAIL() << "expected InputError, got another exception: " << e.what();
  }
  FAIL() << "expected InputError, nothing was thrown";
}

std::vector<int> test_tokens(int vocab, int count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> dist(0, vocab - 1);
  std::vector<int> t(count);
  for (int& x : t) x = dist(rng);
  return t;
}

// ---------------------------------------------------------------------------------------------
// Logits against the reference.

struct LogitsCase {
  std::string name;
  HfTinySpec spec;
};
// gtest prints a failing parameter with this instead of a byte dump.
void PrintTo(const LogitsCase& c, std::ostream* os) { *os << c.name; }

HfTinySpec llama() { return HfTinySpec{}; }  // hidden 48, 6 heads / 2 kv heads, head_dim 8

HfTinySpec qwen2() {
  HfTinySpec s;
  s.architecture = "Qwen2ForCausalLM";
  s.heads = 4;
  s.kv_heads = 4;  // head_dim 12, no GQA
  s.rope_theta = 1e6;
  s.rms_eps = 1e-6;
  return s;
}

HfTinySpec qwen3() {
  HfTinySpec s;
  s.architecture = "Qwen3ForCausalLM";
  s.heads = 6;
  s.kv_heads = 2;
  s.head_dim = 16;  // explicit and unlike hidden / heads = 8, as in real Qwen3 models
  s.rope_theta = 1e6;
  s.rms_eps = 1e-6;
  return s;
}

std::vector<LogitsCase> logits_cases() {
  std::vector<LogitsCase> cases;
  auto add = [&](std::string name, HfTinySpec s, uint64_t seed) {
    s.seed = seed;
    cases.push_back({std::move(name), std::move(s)});
  };
  {
    add("LlamaF32Default", llama(), 11);
  }
  {
    HfTinySpec s = llama();
    s.rope_scaling = {{"rope_type", "linear"}, {"factor", 2.0}};
    s.tied = true;
    s.dtype = "BF16";
    s.shards = 3;
    add("LlamaBf16LinearTiedSharded", s, 12);
  }
  {
    HfTinySpec s = llama();
    s.heads = 4;
    s.kv_heads = 4;
    s.head_dim = 16;  // q_dim 64 != hidden 48
    // Wavelengths of head_dim 16 span 6..20000: with a 512 context some are kept, one is
    // blended and the rest are divided by the factor.
    s.rope_scaling = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                      {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 512}};
    s.shards = 2;
    add("LlamaF32Llama3Sharded", s, 13);
  }
  {
    HfTinySpec s = llama();
    s.rope_scaling = {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 256}};
    s.tied = true;
    s.dtype = "F16";
    add("LlamaF16YarnTied", s, 14);
  }
  {
    HfTinySpec s = llama();
    s.attention_bias = true;  // q/k/v biases, zero o_proj bias
    s.rope_scaling = {{"rope_type", "default"}};
    add("LlamaF32AttentionBias", s, 15);
  }
  {
    HfTinySpec s = llama();
    s.head_dim = 16;
    s.heads = 4;
    s.kv_heads = 1;
    // DeepSeek-style attention factor: ratio of two mscales; yarn's range over head_dim 16.
    s.rope_scaling = {{"rope_type", "yarn"}, {"factor", 8.0}, {"original_max_position_embeddings", 1024},
                      {"mscale", 1.0}, {"mscale_all_dim", 0.5}};
    add("LlamaF32YarnMscale", s, 16);
  }
  {
    HfTinySpec s = qwen2();
    s.tied = true;
    add("Qwen2F32DefaultTied", s, 21);
  }
  {
    HfTinySpec s = qwen2();
    s.kv_heads = 2;
    // Legacy "type" key, no original_max_position_embeddings (falls back to max_position_embeddings).
    s.rope_scaling = {{"type", "yarn"}, {"factor", 2.0}, {"beta_fast", 16.0}};
    s.max_positions = 4096;
    s.dtype = "BF16";
    s.shards = 2;
    add("Qwen2Bf16YarnSharded", s, 22);
  }
  {
    HfTinySpec s = qwen2();
    s.rope_scaling = {{"type", "linear"}, {"factor", 4.0}};
    s.dtype = "F16";
    add("Qwen2F16Linear", s, 23);
  }
  {
    add("Qwen3F32Default", qwen3(), 31);
  }
  {
    HfTinySpec s = qwen3();
    s.rope_scaling = {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 512},
                      {"attention_factor", 1.2}, {"beta_fast", 24.0}, {"beta_slow", 2.0}};
    s.tied = true;
    s.dtype = "BF16";
    s.shards = 4;
    add("Qwen3Bf16YarnTiedSharded", s, 32);
  }
  {
    HfTinySpec s = qwen3();
    s.rope_scaling = {{"rope_type", "llama3"}, {"factor", 16.0}, {"low_freq_factor", 2.0},
                      {"high_freq_factor", 8.0}, {"original_max_position_embeddings", 2048}};
    s.rope_theta = 10000.0;
    s.tied = true;
    add("Qwen3F32Llama3Tied", s, 33);
  }
  {
    HfTinySpec s = qwen3();
    s.rope_scaling = {{"type", "linear"}, {"factor", 3.0}};
    s.dtype = "F16";
    s.shards = 2;
    add("Qwen3F16LinearSharded", s, 34);
  }
  return cases;
}

class HfLoaderLogits : public ::testing::TestWithParam<LogitsCase> {};

TEST_P(HfLoaderLogits, MatchReference) {
  const LogitsCase& c = GetParam();
  TempDir dir;
  const fs::path folder = dir / "tiny-model";
  const HfTinyModel written = write_hf_model(folder, c.spec);
  LoadOptions opt;
  opt.hash_files = false;
  const Model model = load_hf_dir(folder.string(), opt);

  // The frequencies the engine uses must be Hugging Face's (checked on their own first, so a
  // RoPE mistake is reported as such rather than as a logits mismatch).
  const ReferenceRope rope = reference_rope(c.spec);
  const std::vector<double> inv_freq = rope_inv_freq(model.config);
  ASSERT_EQ(inv_freq.size(), rope.inv_freq.size());
  for (size_t i = 0; i < inv_freq.size(); ++i)
    EXPECT_NEAR(inv_freq[i], rope.inv_freq[i], 1e-12 + 1e-9 * rope.inv_freq[i]) << "inv_freq[" << i << "]";
  EXPECT_NEAR(rope_attention_scale(model.config), rope.attention_factor, 1e-12);

  const std::vector<int> tokens = test_tokens(c.spec.vocab, 26, c.spec.seed);
  const std::vector<float> got = compute_all_logits(model, tokens);
  const std::vector<double> want = reference_logits(written, tokens);
  ASSERT_EQ(got.size(), want.size());
  // Tolerance: the engine runs in fp32 on exactly the values written (bf16/f16 decode to fp32
  // exactly), so the only difference is fp32 rounding through 3 layers, ~1e-6 of the logit scale.
  // 1e-4 of max(1, max |logit|) leaves a wide margin while any semantic slip (RoPE pairing,
  // GQA mapping, a missing bias or norm) moves logits by 1e-2 or more.
  double max_ref = 0.0, max_diff = 0.0;
  size_t worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(want[i]));
    const double d = std::fabs(double(got[i]) - want[i]);
    if (d > max_diff) max_diff = d, worst = i;
  }
  const double rel = max_diff / std::max(1.0, max_ref);
  EXPECT_LT(rel, 1e-4) << "worst at token " << worst / c.spec.vocab << " vocab " << worst % c.spec.vocab
                       << ": engine " << got[worst] << ", reference " << want[worst] << " (max |ref| " << max_ref
                       << ")";
  // Guard against a vacuous pass (all-zero logits on both sides).
  EXPECT_GT(max_ref, 0.5);
}

INSTANTIATE_TEST_SUITE_P(Hf, HfLoaderLogits, ::testing::ValuesIn(logits_cases()),
                         [](const ::testing::TestParamInfo<LogitsCase>& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// Config, identity and tokenizer.

TEST(HfLoader, ReadsConfigAndIdentity) {
  TempDir dir;
  const fs::path folder = dir / "my-qwen3";
  HfTinySpec s = qwen3();
  s.dtype = "BF16";
  s.shards = 2;
  s.rope_scaling = {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 512}};
  write_hf_model(folder, s);
  const Model m = load_hf_dir(folder.string(), {});
  const ModelConfig& c = m.config;
  EXPECT_EQ(c.arch, Arch::Qwen3);
  EXPECT_EQ(c.n_layers, 3);
  EXPECT_EQ(c.dim, 48);
  EXPECT_EQ(c.n_heads, 6);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.ffn_dim, 40);
  EXPECT_EQ(c.vocab_size, 97);
  EXPECT_EQ(c.max_seq_len, 2048);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-6f);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rope_pairing, RopePairing::Half);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_id, 2);  // first of the list
  EXPECT_EQ(c.rope_scaling.type, RopeScalingType::Yarn);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position, 512);
  EXPECT_DOUBLE_EQ(c.rope_scaling.beta_fast, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.beta_slow, 1.0);
  EXPECT_NEAR(c.rope_scaling.attention_factor, 0.1 * std::log(4.0) + 1.0, 1e-12);

  EXPECT_EQ(m.info.format, "hf");
  EXPECT_EQ(m.info.name, "my-qwen3");
  EXPECT_EQ(m.info.stored_dtype, "BF16");
  EXPECT_FALSE(m.info.synthetic);
  // config.json, the index, two shards; hashed by default.
  ASSERT_EQ(m.info.files.size(), 4u);
  EXPECT_EQ(fs::path(m.info.files[0].path).filename(), "config.json");
  EXPECT_EQ(fs::path(m.info.files[1].path).filename(), "model.safetensors.index.json");
  EXPECT_EQ(fs::path(m.info.files[2].path).filename(), "model-00001-of-00002.safetensors");
  EXPECT_EQ(fs::path(m.info.files[3].path).filename(), "model-00002-of-00002.safetensors");
  for (const auto& f : m.info.files) {
    EXPECT_GT(f.bytes, 0u) << f.path;
    EXPECT_EQ(f.sha256.size(), 64u) << f.path;
  }
}

// generation_config.json: the sampling the model ships and its stop tokens, checked as read.
// The chat template: tokenizer_config.json's string or "default" entry, chat_template.jinja
// winning over both; the special-token texts as strings or AddedToken objects.
TEST(HfLoader, ChatTemplateFromTokenizerConfigOrJinjaFile) {
  TempDir dir;
  const fs::path folder = dir / "chat";
  write_hf_model(folder, llama());
  EXPECT_TRUE(load_model(folder.string()).chat_template.text.empty());
  write_text(folder / "tokenizer_config.json",
             R"({"bos_token": {"content": "<s>", "__type": "AddedToken"}, "eos_token": "</s>", "unk_token": null,
                 "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})");
  Model m = load_model(folder.string());
  EXPECT_EQ(m.chat_template.text, "D");
  EXPECT_EQ(m.chat_template.special_tokens.at("bos_token"), "<s>");
  EXPECT_EQ(m.chat_template.special_tokens.at("eos_token"), "</s>");
  EXPECT_EQ(m.chat_template.special_tokens.count("unk_token"), 0u);
  write_text(folder / "chat_template.jinja", "J");
  m = load_model(folder.string());
  EXPECT_EQ(m.chat_template.text, "J");
  EXPECT_EQ(fs::path(m.chat_template.origin).filename(), "chat_template.jinja");
  fs::remove(folder / "chat_template.jinja");
  for (const char* bad : {R"({"chat_template": 3})", R"({"chat_template": [{"name": "tool_use", "template": "T"}]})",
                          R"({"bos_token": 5})", R"({"chat_template": )"}) {
    write_text(folder / "tokenizer_config.json", bad);
    try {
      load_model(folder.string());
      ADD_FAILURE() << "accepted " << bad;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("tokenizer_config.json"), std::string::npos) << e.what();
    }
  }
}

TEST(HfLoader, GenerationConfigGivesSamplingDefaultsAndStopTokens) {
  TempDir dir;
  const fs::path folder = dir / "gen";
  write_hf_model(folder, llama());
  write_text(folder / "generation_config.json",
             R"({"do_sample": true, "temperature": 0.6, "top_p": 0.95, "top_k": 20, "eos_token_id": [2, 7], "bos_token_id": 1,
                 "transformers_version": "4.51.0"})");
  const Model m = load_model(folder.string());
  ASSERT_TRUE(m.generation.temperature && m.generation.top_p && m.generation.top_k);
  EXPECT_FLOAT_EQ(*m.generation.temperature, 0.6f);
  EXPECT_FLOAT_EQ(*m.generation.top_p, 0.95f);
  EXPECT_EQ(*m.generation.top_k, 20);
  EXPECT_FALSE(m.generation.min_p);
  EXPECT_EQ(m.generation.eos_ids, (std::vector<int>{2, 7}));
  EXPECT_TRUE(is_stop_token(m, 7));
  EXPECT_FALSE(is_stop_token(m, 8));
  EXPECT_EQ(fs::path(m.generation.source).filename(), "generation_config.json");
  for (const char* bad : {R"({"temperature": -1})", R"({"top_p": "high"})", R"({"top_k": -3})",
                          R"({"eos_token_id": [500]})", R"([1, 2])", R"({"temperature": )"}) {
    write_text(folder / "generation_config.json", bad);
    try {
      load_model(folder.string());
      ADD_FAILURE() << "accepted " << bad;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("generation_config.json"), std::string::npos) << e.what();
    }
  }
}

TEST(HfLoader, FolderWithoutTokenizerTakesIdsOnly) {
  TempDir dir;
  const fs::path folder = dir / "no-tokenizer";
  write_hf_model(folder, llama());
  const Model m = load_model(folder.string());
  EXPECT_EQ(m.info.format, "hf");
  ASSERT_TRUE(m.tokenizer);
  EXPECT_EQ(m.tokenizer->kind(), "none");
  EXPECT_EQ(m.tokenizer->vocab_size(), 97);
  EXPECT_EQ(m.tokenizer->bos_id(), 1);
  EXPECT_EQ(m.tokenizer->eos_id(), 2);
  EXPECT_EQ(m.tokenizer->decode({5, 17, 96}), "<5><17><96>");
  EXPECT_EQ(m.tokenizer->decode({1, 5, 2}), "<5>");
  EXPECT_EQ(m.tokenizer->decode({1, 5, 2}, true), "<1><5><2>");
  expect_input_error([&] { m.tokenizer->encode("hello"); },
                     {folder.string(), "no tokenizer.json", "prompt_ids"});
  ASSERT_EQ(m.info.files.size(), 2u);  // config.json + model.safetensors
  EXPECT_EQ(m.info.stored_dtype, "F32");
}

// A byte-level BPE tokenizer.json of `n_tokens` entries: "a", "b", "Ġ", "ab", then fillers.
json tiny_tokenizer_json(int n_tokens) {
  json vocab = json::object();
  const std::vector<std::string> base = {"a", "b", "\u0120", "ab"};
  for (int i = 0; i < n_tokens; ++i) vocab[i < 4 ? base[i] : "t" + std::to_string(i)] = i;
  return {{"version", "1.0"},
          {"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b"}}}}};
}

TEST(HfLoader, FolderWithTokenizerJson) {
  TempDir dir;
  const fs::path folder = dir / "with-tokenizer";
  write_hf_model(folder, qwen2());
  write_text(folder / "tokenizer.json", tiny_tokenizer_json(90).dump());
  const Model m = load_hf_dir(folder.string(), {});
  ASSERT_TRUE(m.tokenizer);
  EXPECT_EQ(m.tokenizer->kind(), "hf-bpe");
  EXPECT_EQ(m.tokenizer->encode("ab"), std::vector<int>{3});
  ASSERT_EQ(m.info.files.size(), 3u);  // config.json, model.safetensors, tokenizer.json
  EXPECT_EQ(fs::path(m.info.files[2].path).filename(), "tokenizer.json");

  // More tokens than embedding rows: ids could index past the table.
  write_text(folder / "tokenizer.json", tiny_tokenizer_json(120).dump());
  expect_input_error([&] { load_hf_dir(folder.string(), {}); }, {(folder / "tokenizer.json").string(), "vocab_size"});
}

TEST(HfLoader, RefusesWhenMemoryIsShort) {
  TempDir dir;
  write_hf_model(dir.path(), llama());
  LoadOptions opt;
  opt.available_bytes = 1000;  // far below the ~90 KB of fp32 weights
  expect_input_error([&] { load_hf_dir(dir.path().string(), opt); }, {dir.path().string()});
}

TEST(HfLoader, WriterHalfCodecsAgreeWithEngine) {
  // The writer's codecs are independent of the engine's; check they agree on every pattern so
  // a logits mismatch in an F16/BF16 case cannot come from the test's own encoding.
  for (uint32_t h = 0; h < 65536; ++h) {
    const double a = decode_f16(uint16_t(h)), b = f16_to_f32(uint16_t(h));
    if (std::isnan(a)) {
      EXPECT_TRUE(std::isnan(b)) << h;
      continue;
    }
    ASSERT_EQ(a, b) << "f16 " << h;
    ASSERT_EQ(decode_bf16(uint16_t(h)), float_from_bf16(uint16_t(h))) << "bf16 " << h;
    if (std::isfinite(a)) ASSERT_EQ(encode_f16(float(a)), h) << "f16 round trip " << h;
  }
  EXPECT_EQ(encode_f16(1.0f + 1.0f / 2048), 0x3c00);  // tie rounds to even
  EXPECT_EQ(encode_f16(1.0f + 3.0f / 2048), 0x3c02);
  EXPECT_EQ(encode_bf16(1.0f + 1.0f / 256), 0x3f80);
  EXPECT_EQ(encode_bf16(1.0f + 3.0f / 256), 0x3f82);
}

// ---------------------------------------------------------------------------------------------
// Bad input: every failure is an InputError naming the file at fault.

class HfLoaderErrors : public ::testing::Test {
 protected:
  void SetUp() override { folder_ = dir_ / "model"; }
  // Writes a valid folder first; tests then break one thing.
  void write(HfTinySpec s = llama()) { write_hf_model(folder_, s); }
  void edit_config(const std::function<void(json&)>& f) {
    json c = json::parse(read_text(folder_ / "config.json"));
    f(c);
    write_text(folder_ / "config.json", c.dump(2));
  }
  void edit_header(const std::string& file, const std::function<void(json&)>& f) {
    json h = read_safetensors_header(folder_ / file);
    f(h);
    rewrite_safetensors_header(folder_ / file, h);
  }
  void expect_error(const std::vector<std::string>& needles) {
    expect_input_error([&] { load_hf_dir(folder_.string(), options()); }, needles);
  }
  static LoadOptions options() {
    LoadOptions o;
    o.hash_files = false;
    return o;
  }
  std::string path(const std::string& name) const { return (folder_ / name).string(); }

  TempDir dir_;
  fs::path folder_;
};

TEST_F(HfLoaderErrors, MalformedConfig) {
  write();
  write_text(folder_ / "config.json", "{\"hidden_size\": 48, ");
  expect_error({path("config.json"), "JSON"});
}

TEST_F(HfLoaderErrors, MissingConfig) {
  write();
  fs::remove(folder_ / "config.json");
  expect_error({folder_.string(), "config.json"});
}

TEST_F(HfLoaderErrors, UnknownArchitecture) {
  write();
  edit_config([](json& c) { c["architectures"] = {"MistralForCausalLM"}; });
  expect_error({path("config.json"), "MistralForCausalLM"});
}

TEST_F(HfLoaderErrors, MissingAndIllTypedKeys) {
  write();
  edit_config([](json& c) { c.erase("hidden_size"); });
  expect_error({path("config.json"), "hidden_size"});
  edit_config([](json& c) {
    c["hidden_size"] = 48;
    c["num_hidden_layers"] = "three";
  });
  expect_error({path("config.json"), "num_hidden_layers"});
  edit_config([](json& c) {
    c["num_hidden_layers"] = 3;
    c["tie_word_embeddings"] = "no";
  });
  expect_error({path("config.json"), "tie_word_embeddings"});
}

TEST_F(HfLoaderErrors, UnsupportedRopeScaling) {
  write();
  for (const char* type : {"dynamic", "longrope"}) {
    edit_config([&](json& c) { c["rope_scaling"] = {{"rope_type", type}, {"factor", 2.0}}; });
    expect_error({path("config.json"), type});
  }
  edit_config([](json& c) { c["rope_scaling"] = {{"rope_type", "linear"}}; });  // no factor
  expect_error({path("config.json"), "factor"});
}

TEST_F(HfLoaderErrors, HeaderLengthPastTheEnd) {
  write();
  std::string bytes = read_text(folder_ / "model.safetensors");
  const uint64_t n = bytes.size();  // 8 more than the file can hold after the length field
  for (int i = 0; i < 8; ++i) bytes[i] = char((n >> (8 * i)) & 0xff);
  write_text(folder_ / "model.safetensors", bytes);
  expect_error({path("model.safetensors"), "header length"});
}

TEST_F(HfLoaderErrors, ShortAndGarbageFiles) {
  write();
  write_text(folder_ / "model.safetensors", "abc");
  expect_error({path("model.safetensors"), "too short"});
  std::string junk(8, '\0');
  junk[0] = 5;
  write_text(folder_ / "model.safetensors", junk + "{oops");
  expect_error({path("model.safetensors"), "JSON"});
}

TEST_F(HfLoaderErrors, DataOffsetsPastTheEnd) {
  write();
  edit_header("model.safetensors", [](json& h) {
    h["model.norm.weight"]["data_offsets"] = {uint64_t(1) << 40, (uint64_t(1) << 40) + 192};
  });
  expect_error({path("model.safetensors"), "model.norm.weight", "past the end"});
}

TEST_F(HfLoaderErrors, DataOffsetsReversed) {
  write();
  edit_header("model.safetensors", [](json& h) {
    auto& o = h["model.norm.weight"]["data_offsets"];
    o = {o[1], o[0]};
  });
  expect_error({path("model.safetensors"), "model.norm.weight"});
}

TEST_F(HfLoaderErrors, TruncatedFile) {
  write();
  std::string bytes = read_text(folder_ / "model.safetensors");
  bytes.resize(bytes.size() - 100);
  write_text(folder_ / "model.safetensors", bytes);
  expect_error({path("model.safetensors"), "past the end"});
}

TEST_F(HfLoaderErrors, ByteCountDisagreesWithShape) {
  write();
  edit_header("model.safetensors", [](json& h) { h["model.norm.weight"]["shape"] = {47}; });
  expect_error({path("model.safetensors"), "model.norm.weight", "bytes"});
}

TEST_F(HfLoaderErrors, TensorShapeDisagreesWithConfig) {
  write();
  edit_config([](json& c) { c["intermediate_size"] = 41; });
  expect_error({path("model.safetensors"), "model.layers.0.mlp.gate_proj.weight", "shape"});
}

TEST_F(HfLoaderErrors, UnsupportedDtype) {
  write();
  // I32 has F32's element size, so the byte count still checks out and the dtype is the problem.
  edit_header("model.safetensors", [](json& h) { h["model.norm.weight"]["dtype"] = "I32"; });
  expect_error({path("model.safetensors"), "model.norm.weight", "I32"});
  edit_header("model.safetensors", [](json& h) { h["model.norm.weight"]["dtype"] = "Q7_WHATEVER"; });
  expect_error({path("model.safetensors"), "model.norm.weight", "Q7_WHATEVER"});
}

TEST_F(HfLoaderErrors, MissingTensor) {
  write();
  edit_header("model.safetensors", [](json& h) { h.erase("model.layers.1.mlp.up_proj.weight"); });
  expect_error({path("model.safetensors"), "model.layers.1.mlp.up_proj.weight"});
}

TEST_F(HfLoaderErrors, MissingClassifierWhenUntied) {
  write();
  edit_header("model.safetensors", [](json& h) { h.erase("lm_head.weight"); });
  expect_error({path("model.safetensors"), "lm_head.weight"});
}

TEST_F(HfLoaderErrors, MissingShard) {
  HfTinySpec s = llama();
  s.shards = 3;
  write(s);
  fs::remove(folder_ / "model-00002-of-00003.safetensors");
  expect_error({path("model.safetensors.index.json"), "model-00002-of-00003.safetensors"});
}

TEST_F(HfLoaderErrors, ShardLacksTensorTheIndexPromises) {
  HfTinySpec s = llama();
  s.shards = 2;
  write(s);
  const json index = json::parse(read_text(folder_ / "model.safetensors.index.json"));
  const std::string shard = index["weight_map"]["model.norm.weight"];
  edit_header(shard, [](json& h) { h.erase("model.norm.weight"); });
  expect_error({path(shard), "model.norm.weight"});
}

TEST_F(HfLoaderErrors, NoWeights) {
  write();
  fs::remove(folder_ / "model.safetensors");
  expect_error({folder_.string(), "model.safetensors"});
}

TEST_F(HfLoaderErrors, NonZeroOutputBias) {
  HfTinySpec s = llama();
  s.attention_bias = true;
  write(s);
  // Point layer 0's (zero) o_proj bias at the final norm's data, which is all near 1.
  edit_header("model.safetensors", [](json& h) {
    h["model.layers.0.self_attn.o_proj.bias"]["data_offsets"] = h["model.norm.weight"]["data_offsets"];
  });
  expect_error({path("model.safetensors"), "model.layers.0.self_attn.o_proj.bias"});
}

TEST_F(HfLoaderErrors, TruncationAndCorruptionNeverCrash) {
  HfTinySpec s = llama();
  s.dtype = "BF16";
  write(s);
  const std::string good = read_text(folder_ / "model.safetensors");
  // Every cut inside the header and a spread of cuts through the data end in InputError.
  std::vector<size_t> cuts;
  for (size_t n = 0; n < 64; n += 3) cuts.push_back(n);
  for (int k = 1; k < 24; ++k) cuts.push_back(good.size() * k / 24);
  cuts.push_back(good.size() - 1);
  for (size_t cut : cuts) {
    write_text(folder_ / "model.safetensors", good.substr(0, cut));
    expect_input_error([&] { load_hf_dir(folder_.string(), options()); }, {path("model.safetensors")});
  }
  // Random byte flips in the header: the load may succeed (a flip inside a value) or fail, but
  // only ever with InputError.
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(good[i])) << (8 * i);
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::string bad = good;
    const size_t pos = std::uniform_int_distribution<size_t>(0, 8 + n - 1)(rng);
    bad[pos] = char(std::uniform_int_distribution<int>(0, 255)(rng));
    write_text(folder_ / "model.safetensors", bad);
    try {
      load_hf_dir(folder_.string(), options());
    } catch (const InputError&) {
    }
  }
}

}  // namespace
}  // namespace kvb::test
