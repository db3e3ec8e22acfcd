// Seeds for the fuzz harnesses (fuzz/): a valid file of each binary format, written by the same
// writers the tests use, so a campaign starts from inputs that reach deep into each parser. Each
// seed must load cleanly here (a writer and its parser that drift apart fail this test).
// scripts/fuzz.sh runs this test with KVBENCH_FUZZ_SEEDS=DIR to keep the seeds it writes, as
// DIR/<harness>/<seed>; otherwise they go to a temporary folder.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include <fmt/format.h>

#include "engine/methods/query_stats.hpp"
#include "engine/model.hpp"
#include "engine/safetensors_file.hpp"
#include "engine/tokenizers/spm_tokenizer.hpp"
#include "tests/gguf_writer.hpp"
#include "tests/hf_model_writer.hpp"
#include "tests/test_support.hpp"
#include "tests/torch_pt_writer.hpp"
#include "workloads/workload.hpp"

namespace kvb::test {
namespace {

namespace fs = std::filesystem;

void put(std::string& s, const void* p, size_t n) { s.append(static_cast<const char*>(p), n); }

// A llama2.c tokenizer.bin: max piece length, then (score, length, bytes) per piece.
std::string llama2c_tokenizer(const std::vector<std::string>& pieces) {
  std::string out;
  int32_t max_len = 0;
  for (const std::string& p : pieces) max_len = std::max<int32_t>(max_len, static_cast<int32_t>(p.size()));
  put(out, &max_len, 4);
  for (size_t i = 0; i < pieces.size(); ++i) {
    const float score = -static_cast<float>(i);
    const int32_t len = static_cast<int32_t>(pieces[i].size());
    put(out, &score, 4);
    put(out, &len, 4);
    out += pieces[i];
  }
  return out;
}

// A llama2.c checkpoint: the 7-int header, then every fp32 tensor in run.c's order.
std::string llama2c_model(int dim, int ffn, int layers, int heads, int kv_heads, int vocab, int seq) {
  std::string out;
  const int32_t header[7] = {dim, ffn, layers, heads, kv_heads, vocab, seq};
  put(out, header, sizeof(header));
  const int64_t head = dim / heads, kv = int64_t(kv_heads) * head;
  const int64_t floats = int64_t(vocab) * dim + layers * (dim + int64_t(dim) * dim + 2 * dim * kv + int64_t(dim) * dim +
                                                        dim + 3 * int64_t(dim) * ffn) + dim + seq * head;
  for (int64_t i = 0; i < floats; ++i) {
    const float v = 0.01f * static_cast<float>((i * 7919) % 101 - 50);
    put(out, &v, 4);
  }
  return out;
}

std::string dcmp_trace(char compression) {
  const nlohmann::json doc = {{"qid", 7}, {"prompt", "<|User|>2+2?<|Assistant|><think>"},
                              {"trace", {{"token_ids", {10, 20, 30, 151643}}}}, {"ground_truth", "4"}};
  const std::vector<uint8_t> msgpack = nlohmann::json::to_msgpack(doc);
  std::string body(msgpack.begin(), msgpack.end());
  if (compression == 'G') body = deflate_bytes(body, 16 + 15);
  return std::string("DCMP\x01", 5) + compression + body;
}

TEST(FuzzSeeds, EveryWriterSeedLoadsCleanly) {
  TempDir tmp;
  const char* env = std::getenv("KVBENCH_FUZZ_SEEDS");
  const fs::path out = env && *env ? fs::path(env) : tmp / "seeds";
  auto seed = [&](const std::string& harness, const std::string& name, const std::string& bytes) {
    fs::create_directories(out / harness);
    const fs::path p = out / harness / name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p.string();
  };
  LoadOptions options;
  options.hash_files = false;

  const std::string gguf = seed("gguf", "tiny-llama.gguf", [&] {
    GgufWriter w = tiny_writer({});
    w.set("tokenizer.chat_template", GgufValue::string("{% for m in messages %}{{ m.content }}{% endfor %}"));
    w.replace_tensor("blk.0.ffn_down.weight", {32, 64}, pattern(32 * 64, 1), kGgmlQ8_0);  // every stored type once
    w.replace_tensor("blk.1.attn_q.weight", {32, 32}, pattern(32 * 32, 2), kGgmlF16);
    w.replace_tensor("blk.1.attn_k.weight", {16, 32}, pattern(16 * 32, 3), kGgmlBF16);
    const std::vector<uint8_t> b = w.serialize();
    return std::string(b.begin(), b.end());
  }());
  EXPECT_NO_THROW(load_gguf(gguf, options));

  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) pieces.push_back(fmt::format("<0x{:02X}>", b));
  for (const char* p : {" ", "a", "b", "ab", " a", " ab", "ba", "aa", "bb", "aab"}) pieces.push_back(p);
  const std::string tok = llama2c_tokenizer(pieces);
  // The harness reads the vocabulary size from the first two bytes (little-endian).
  const std::string vocab_prefix = {char(pieces.size() & 0xff), char(pieces.size() >> 8)};
  seed("llama2c_tokenizer", "tokenizer", vocab_prefix + tok);
  const std::string tok_path = seed("llama2c_model", "tokenizer.bin.not-a-seed", tok);
  EXPECT_NO_THROW(load_llama2c_tokenizer(tok_path, static_cast<int>(pieces.size())));
  fs::remove(tok_path);
  const std::string model = seed("llama2c_model", "tiny.bin", llama2c_model(8, 16, 1, 2, 2, 269, 32));
  LoadOptions with_tok = options;
  with_tok.tokenizer_path = (tmp / "tok.bin").string();
  std::ofstream(with_tok.tokenizer_path, std::ios::binary) << tok;
  EXPECT_NO_THROW(load_llama2c(model, with_tok));

  HfTinySpec spec;
  spec.dtype = "BF16";
  write_hf_model(tmp / "hf", spec);
  const std::string st = seed("safetensors", "model.safetensors", read_text(tmp / "hf" / "model.safetensors"));
  EXPECT_NO_THROW(SafetensorsFile{st});
  const std::string sep = "\n--8<--\n";
  seed("hf_folder", "config-only", read_text(tmp / "hf" / "config.json"));
  seed("hf_folder", "all-four", read_text(tmp / "hf" / "config.json") + sep +
                                    R"({"metadata": {"total_size": 1}, "weight_map": {"model.norm.weight": "a.safetensors"}})" +
                                    sep + R"({"temperature": 0.6, "top_p": 0.95, "eos_token_id": [1, 2]})" + sep +
                                    R"({"bos_token": "<s>", "eos_token": {"content": "</s>"}, "chat_template": "{{ messages[0].content }}"})");

  for (const bool deflate : {false, true}) {
    FakeStatsOptions o;
    o.deflate = deflate;
    const std::string pt = seed("torch_pt", deflate ? "stats-deflated.pt" : "stats.pt", fake_stats_pt(o));
    EXPECT_NO_THROW(read_query_stats(pt));
  }
  for (const char c : {'N', 'G'}) {
    const std::string p = seed("dcmp", std::string("trace-") + c + ".msgpack.gz", dcmp_trace(c));
    EXPECT_NO_THROW(load_workload(p));
  }

  const CommandResult run = run_kvbench("run -q --method full,streaming --budget 16 --divide-length 8 -n 24 --out " +
                                        (tmp / "run").string());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  seed("result_json", "result.json", read_text(tmp / "run" / "result.json"));
}

}  // namespace
}  // namespace kvb::test
