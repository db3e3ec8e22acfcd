// TriAttention query statistics: the official .pt files (zip + pickle, read without torch),
// kvbench's safetensors format, validation against model configs, and hostile inputs.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "engine/methods/query_stats.hpp"
#include "engine/methods/torch_pt_reader.hpp"
#include "engine/methods/zip_reader.hpp"
#include "engine/model.hpp"
#include "test_support.hpp"
#include "tests/torch_pt_writer.hpp"
#include "util/errors.hpp"

namespace kvb {
namespace {

using test::FakeStatsOptions;
using test::PickleOut;
using test::ZipEntryIn;
using test::fake_stats_pt;
using test::fake_value;
using test::make_zip;

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_file(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Expects InputError whose message names `path`; `context` says which case failed.
void expect_input_error(const std::function<void()>& f, const std::string& path, const std::string& context = "") {
  try {
    f();
    ADD_FAILURE() << "no InputError " << context;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what() << " " << context;
  }
}
#define EXPECT_INPUT_ERROR_NAMING(stmt, path, ...) expect_input_error([&] { stmt; }, path, ##__VA_ARGS__)

// The energy-weighted concentration of one head: sum_f |qbar_f| / sum_f qabs_f.
double head_concentration(const HeadStats& h) {
  double num = 0, den = 0;
  for (size_t f = 0; f < h.q_abs_mean.size(); ++f) {
    num += std::hypot(double(h.q_mean_real[f]), double(h.q_mean_imag[f]));
    den += h.q_abs_mean[f];
  }
  return num / den;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

void expect_same_stats(const QueryStats& a, const QueryStats& b) {
  EXPECT_EQ(a.n_layers, b.n_layers);
  EXPECT_EQ(a.n_heads, b.n_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.rope_style, b.rope_style);
  EXPECT_EQ(a.model_name, b.model_name);
  EXPECT_EQ(a.model_source, b.model_source);
  EXPECT_EQ(a.n_kv_heads, b.n_kv_heads);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rope_scaling_type, b.rope_scaling_type);
  EXPECT_EQ(a.rope_scaling_factor, b.rope_scaling_factor);
  EXPECT_EQ(a.token_count, b.token_count);
  ASSERT_EQ(a.heads.size(), b.heads.size());
  for (size_t i = 0; i < a.heads.size(); ++i) {
    EXPECT_EQ(a.heads[i].q_mean_real, b.heads[i].q_mean_real) << "head " << i;
    EXPECT_EQ(a.heads[i].q_mean_imag, b.heads[i].q_mean_imag) << "head " << i;
    EXPECT_EQ(a.heads[i].q_abs_mean, b.heads[i].q_abs_mean) << "head " << i;
  }
}

// ---------------------------------------------------------------------------------------------
// Official files.

TEST(QueryStats, ReadsOfficialQwen3File) {
  KVB_REQUIRE_DATA(path, "calibration/qwen3_8b.for_aime24.pt");
  const auto t0 = std::chrono::steady_clock::now();
  const QueryStats qs = read_query_stats(path.string());
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("read %s in %.1f ms\n", path.filename().c_str(), ms);

  EXPECT_EQ(qs.format, "torch-pt");
  EXPECT_EQ(qs.n_layers, 36);
  EXPECT_EQ(qs.n_heads, 32);
  EXPECT_EQ(qs.head_dim, 128);
  EXPECT_EQ(qs.n_freqs(), 64);
  EXPECT_EQ(qs.rope_style, "half");
  EXPECT_EQ(qs.model_name, "Qwen/Qwen3-8B");
  EXPECT_FALSE(qs.rope_theta.has_value());
  ASSERT_EQ(qs.heads.size(), 36u * 32u);

  std::vector<double> concentration;
  for (int l = 0; l < qs.n_layers; ++l)
    for (int h = 0; h < qs.n_heads; ++h) {
      const HeadStats& hs = qs.at(l, h);
      ASSERT_EQ(hs.q_mean_real.size(), 64u);
      ASSERT_EQ(hs.q_mean_imag.size(), 64u);
      ASSERT_EQ(hs.q_abs_mean.size(), 64u);
      for (int f = 0; f < 64; ++f) {
        ASSERT_TRUE(std::isfinite(hs.q_mean_real[f]) && std::isfinite(hs.q_mean_imag[f]));
        // |mean z| <= mean |z|: a real property of the data, so a lane mix-up would show here.
        ASSERT_LE(std::hypot(hs.q_mean_real[f], hs.q_mean_imag[f]), hs.q_abs_mean[f] * (1 + 1e-5f));
      }
      concentration.push_back(head_concentration(hs));
    }
  // shared/spec/triattention.md section 1: median energy-weighted R ~0.74 for this file.
  const double med = median(concentration);
  EXPECT_GT(med, 0.6);
  EXPECT_LT(med, 0.85);

  // Values decoded independently (Python pickle with stub classes) from the same file.
  EXPECT_FLOAT_EQ(qs.at(0, 0).q_mean_real[0], -0.08001524209976196f);
  EXPECT_FLOAT_EQ(qs.at(0, 0).q_mean_real[2], 0.32113420963287354f);
  EXPECT_FLOAT_EQ(qs.at(0, 0).q_abs_mean[63], 1.3435852527618408f);
  EXPECT_FLOAT_EQ(qs.at(35, 31).q_mean_imag[0], -1.0974102020263672f);
  EXPECT_FLOAT_EQ(qs.at(35, 31).q_mean_imag[1], 0.8858851194381714f);
}

TEST(QueryStats, OfficialQwen3FileMatchesOnlyQwen3Shapes) {
  KVB_REQUIRE_DATA(path, "calibration/qwen3_8b.for_aime24.pt");
  const std::string p = path.string();
  const QueryStats qs = read_query_stats(p);
  EXPECT_NO_THROW(check_stats_match_model(qs, synthetic_preset_config("qwen3-8b"), p, "synthetic:qwen3-8b"));
  try {
    check_stats_match_model(qs, synthetic_preset_config("llama3-8b"), p, "synthetic:llama3-8b");
    ADD_FAILURE() << "llama3-8b accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()),
              p + ": stats are for 36 layers x 32 heads x head_dim 128, model synthetic:llama3-8b has 32 x 32 x 128");
  }
  EXPECT_INPUT_ERROR_NAMING(check_stats_match_model(qs, synthetic_preset_config("qwen3-0.6b"), p), p);
}

TEST(QueryStats, ReadsOfficialDsLlamaFile) {
  KVB_REQUIRE_DATA(path, "calibration/ds_llama8b.for_aime24.pt");
  const std::string p = path.string();
  const QueryStats qs = read_query_stats(p);
  EXPECT_EQ(qs.n_layers, 32);
  EXPECT_EQ(qs.n_heads, 32);
  EXPECT_EQ(qs.head_dim, 128);
  EXPECT_EQ(qs.model_name, "deepseek-ai/DeepSeek-R1-Distill-Llama-8B");
  EXPECT_FLOAT_EQ(qs.at(0, 0).q_mean_real[0], 0.4916003942489624f);
  EXPECT_FLOAT_EQ(qs.at(31, 31).q_mean_imag[2], 0.04891907796263695f);
  EXPECT_NO_THROW(check_stats_match_model(qs, synthetic_preset_config("llama3-8b"), p));
  EXPECT_INPUT_ERROR_NAMING(check_stats_match_model(qs, synthetic_preset_config("qwen3-8b"), p), p);
  EXPECT_INPUT_ERROR_NAMING(check_stats_match_model(qs, synthetic_preset_config("qwen2-7b"), p), p);
}

TEST(QueryStats, AimeFilesDiffer) {
  KVB_REQUIRE_DATA(a, "calibration/qwen3_8b.for_aime24.pt");
  KVB_REQUIRE_DATA(b, "calibration/qwen3_8b.for_aime25.pt");
  const QueryStats qa = read_query_stats(a.string()), qb = read_query_stats(b.string());
  ASSERT_EQ(qa.heads.size(), qb.heads.size());
  EXPECT_NE(qa.at(3, 5).q_abs_mean, qb.at(3, 5).q_abs_mean);
}

// ---------------------------------------------------------------------------------------------
// Round trip through kvbench's format.

TEST(QueryStats, RoundTripOfficialFile) {
  KVB_REQUIRE_DATA(path, "calibration/qwen3_8b.for_aime24.pt");
  test::TempDir dir;
  QueryStats qs = read_query_stats(path.string());
  qs.model_source = "synthetic:qwen3-8b";
  qs.n_kv_heads = 8;
  qs.rope_theta = 1e6;
  qs.rope_scaling_type = "none";
  qs.token_count = 32768;
  const std::string out = (dir / "qwen3.stats.safetensors").string();
  write_query_stats(out, qs);
  const QueryStats back = read_query_stats(out);
  EXPECT_EQ(back.format, "kvbench-safetensors");
  EXPECT_EQ(back.source_path, out);
  expect_same_stats(qs, back);
  EXPECT_NO_THROW(check_stats_match_model(back, synthetic_preset_config("qwen3-8b"), out));
}

TEST(QueryStats, RoundTripAllMetadata) {
  test::TempDir dir;
  QueryStats qs = read_query_stats_pt([&] {
    const auto p = dir / "fake.pt";
    write_file(p, fake_stats_pt({}));
    return p.string();
  }());
  EXPECT_EQ(qs.n_layers, 2);
  EXPECT_EQ(qs.n_heads, 2);
  EXPECT_EQ(qs.head_dim, 8);
  EXPECT_EQ(qs.model_name, "fake/model");
  EXPECT_FLOAT_EQ(qs.at(1, 0).q_abs_mean[3], fake_value(1, 0, 2, 3));
  EXPECT_FLOAT_EQ(qs.at(0, 1).q_mean_imag[2], fake_value(0, 1, 1, 2));
  qs.rope_style = "interleaved";
  qs.model_source = "/models/fake";
  qs.n_kv_heads = 1;
  qs.rope_theta = 500000.0 / 3;  // not a short decimal: must still read back exactly
  qs.rope_scaling_type = "llama3";
  qs.rope_scaling_factor = 8.0;
  qs.token_count = 123456789012;
  const std::string out = (dir / "fake.safetensors").string();
  write_query_stats(out, qs);
  const QueryStats back = read_query_stats(out);
  expect_same_stats(qs, back);
  // No stray temporary file is left beside the output.
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
}

TEST(QueryStats, ReadsDeflatedArchive) {
  test::TempDir dir;
  const auto p = dir / "deflated.pt";
  FakeStatsOptions o;
  o.deflate = true;
  o.layers = 3;
  write_file(p, fake_stats_pt(o));
  const QueryStats qs = read_query_stats(p.string());
  EXPECT_EQ(qs.n_layers, 3);
  EXPECT_FLOAT_EQ(qs.at(2, 1).q_mean_real[1], fake_value(2, 1, 0, 1));
}

TEST(QueryStats, ReadsOtherMetadataValueTypes) {
  test::TempDir dir;
  const auto p = dir / "meta.pt";
  PickleOut m;
  m.s.clear();
  m.str("rope_theta");
  m.op('G');  // BINFLOAT, big-endian 1e6
  for (uint8_t b : {0x41, 0x2e, 0x84, 0x80, 0x00, 0x00, 0x00, 0x00}) m.s += static_cast<char>(b);
  m.str("rope_type");
  m.op('\x8c');  // SHORT_BINUNICODE
  m.s += static_cast<char>(7);
  m.s += "default";
  m.str("num_traces");
  m.s += std::string("\x8a\x02\x00\x01", 4);  // LONG1 256
  m.str("dtype");
  m.op('N');
  m.str("use_chat_template");
  m.op('\x88');
  m.str("attn_implementation");
  m.s += std::string("M\x10\x00", 3);  // BININT2
  FakeStatsOptions o;
  o.extra_metadata = m.s;
  write_file(p, fake_stats_pt(o));
  const QueryStats qs = read_query_stats(p.string());
  ASSERT_TRUE(qs.rope_theta.has_value());
  EXPECT_EQ(*qs.rope_theta, 1e6);
  EXPECT_EQ(qs.rope_scaling_type, "none");
}

// Writes an archive of `entries` to `path`: reading it must be an InputError naming the file and
// saying `needle`.
void expect_refused(const std::string& path, const std::vector<ZipEntryIn>& entries, const std::string& needle) {
  write_file(path, make_zip(entries));
  try {
    read_query_stats(path);
    ADD_FAILURE() << "accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(QueryStats, SurvivesCyclesDeepNestingAndProtocol4) {
  test::TempDir dir;
  const std::string p = (dir / "odd.pt").string();
  auto refused_with = [&](const std::string& pkl, const std::string& needle) {
    expect_refused(p, {{"a/data.pkl", pkl}}, needle);
  };
  // A list that contains itself.
  refused_with(std::string("\x80\x02]q\x00h\x00" "a.", 9), "top-level object is a list");
  // 200000 nested lists: nothing in the reader recurses over the input.
  std::string deep = "\x80\x02" + std::string(200000, ']') + std::string(199999, 'a') + ".";
  refused_with(deep, "top-level object is a list");
  // Protocol 4 framing and memoization: {"stats": {}}.
  std::string p4 = "\x80\x04\x95";
  const uint64_t frame = 12;
  p4.append(reinterpret_cast<const char*>(&frame), 8);
  p4 += "}\x94\x8c\x05stats\x94}\x94s.";
  refused_with(p4, "no heads");
}

// Bombs: a deflated data.pkl of millions of NONE opcodes (an object each), a pickle over the size
// limit, and storages that together inflate past the archive's read budget are refused before
// the memory is asked for, each one InputError naming the file.
TEST(QueryStats, PickleAndStorageBombsAreRefused) {
  test::TempDir dir;
  const std::string p = (dir / "bomb.pt").string();
  auto refused_with = [&](const std::vector<ZipEntryIn>& entries, const std::string& needle) {
    expect_refused(p, entries, needle);
  };
  refused_with({{"a/data.pkl", "\x80\x02" + std::string(3u << 20, 'N') + ".", true}}, "objects (the limit)");
  std::string gets("\x80\x02Nq\x00", 5);  // None, memoized; then millions of references to it
  for (int k = 0; k < 2200000; ++k) gets += std::string("h\x00", 2);
  refused_with({{"a/data.pkl", gets + ".", true}}, "values on the stack (the limit)");
  refused_with({{"a/data.pkl", std::string(65u << 20, 'N'), true}}, "larger than");
  // Three storages of 90 MiB of zeros each (about 90 KB deflated each): past 256 MiB in all.
  using namespace std::string_literals;
  std::string pkl = "\x80\x02("s;
  std::vector<ZipEntryIn> entries;
  for (int k = 0; k < 3; ++k) {
    const std::string key = std::to_string(k);  // one digit or two: BINUNICODE of its length
    pkl += "(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX"s + char(key.size()) + "\x00\x00\x00"s + key +
           "X\x03\x00\x00\x00" "cpuJ\x00\x00\x68\x01tQ"s;  // 90 Mi / 4 floats
    entries.push_back({"a/data/" + key, std::string(90u << 20, '\0'), true});
  }
  pkl += "t.";
  entries.insert(entries.begin(), {"a/data.pkl", pkl});
  refused_with(entries, "reads from one archive");
}

TEST(QueryStats, WriterRefusesIncompleteStats) {
  test::TempDir dir;
  QueryStats qs;
  qs.n_layers = 1;
  qs.n_heads = 2;
  qs.head_dim = 4;
  qs.heads.resize(2);
  qs.heads[0] = {{1, 2}, {3, 4}, {5, 6}};
  const std::string out = (dir / "x.safetensors").string();
  EXPECT_INPUT_ERROR_NAMING(write_query_stats(out, qs), out);
  EXPECT_FALSE(std::filesystem::exists(out));
}

// ---------------------------------------------------------------------------------------------
// Validation against a model.

TEST(QueryStats, ChecksRopeAndCompleteness) {
  QueryStats qs;
  qs.n_layers = 2;
  qs.n_heads = 4;
  qs.head_dim = 4;
  qs.heads.assign(8, HeadStats{{1, 2}, {0, 0}, {3, 3}});
  ModelConfig c;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.rope_theta = 10000.0;
  c.rope_pairing = RopePairing::Half;
  const std::string p = "stats.safetensors";
  EXPECT_NO_THROW(check_stats_match_model(qs, c, p));

  QueryStats relabelled = qs;  // statistics are per frequency: the lane pairing they were measured in is not checked
  relabelled.rope_style = "interleaved";
  EXPECT_NO_THROW(check_stats_match_model(relabelled, c, p));
  QueryStats bad = qs;
  bad.rope_theta = 500000.0;
  EXPECT_INPUT_ERROR_NAMING(check_stats_match_model(bad, c, p), p);
  bad = qs;
  bad.rope_scaling_type = "yarn";
  EXPECT_INPUT_ERROR_NAMING(check_stats_match_model(bad, c, p), p);
  bad = qs;
  bad.n_kv_heads = 4;
  EXPECT_INPUT_ERROR_NAMING(check_stats_match_model(bad, c, p), p);
  bad = qs;
  bad.heads[5] = HeadStats{};
  try {
    check_stats_match_model(bad, c, p);
    ADD_FAILURE() << "missing head accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("layer 1 head 1"), std::string::npos) << e.what();
  }

  // Recorded scaling that matches is accepted; a different factor is not.
  ModelConfig l3 = c;
  l3.rope_scaling.type = RopeScalingType::Llama3;
  l3.rope_scaling.factor = 8.0;
  QueryStats scaled = qs;
  scaled.rope_theta = 10000.0;
  scaled.rope_scaling_type = "llama3";
  scaled.rope_scaling_factor = 8.0;
  EXPECT_NO_THROW(check_stats_match_model(scaled, l3, p));
  scaled.rope_scaling_factor = 32.0;
  EXPECT_INPUT_ERROR_NAMING(check_stats_match_model(scaled, l3, p), p);
}

// ---------------------------------------------------------------------------------------------
// Hostile inputs: always InputError naming the file, never a crash, hang or huge allocation.

TEST(QueryStats, TruncatedOfficialFile) {
  KVB_REQUIRE_DATA(path, "calibration/ds_llama8b.for_aime24.pt");
  const std::string full = read_file(path);
  test::TempDir dir;
  const std::string p = (dir / "cut.pt").string();
  std::vector<size_t> cuts = {0, 1, 3, 4, 21, 22, 29, 30, 100, full.size() - 1, full.size() - 21, full.size() - 22,
                              full.size() - 23, full.size() - 56, full.size() - 80};
  for (size_t k = 1; k < 64; ++k) cuts.push_back(full.size() * k / 64);
  for (size_t cut : cuts) {
    write_file(p, full.substr(0, cut));
    EXPECT_INPUT_ERROR_NAMING(read_query_stats(p), p, "cut at " + std::to_string(cut));
  }
}

TEST(QueryStats, TruncatedFakeFile) {
  const std::string full = fake_stats_pt({});
  test::TempDir dir;
  const std::string p = (dir / "cut.pt").string();
  // Every byte near the ends (headers, end records), every 5th in between.
  for (size_t cut = 0; cut < full.size(); cut += (cut < 128 || cut + 256 > full.size()) ? 1 : 5) {
    write_file(p, full.substr(0, cut));
    EXPECT_INPUT_ERROR_NAMING(read_query_stats(p), p, "cut at " + std::to_string(cut));
  }
}

TEST(QueryStats, FlippedBytesInOfficialFileFailTheCrc) {
  KVB_REQUIRE_DATA(path, "calibration/qwen3_8b.for_aime24.pt");
  const std::string full = read_file(path);
  test::TempDir dir;
  const std::string p = (dir / "flipped.pt").string();
  // data.pkl is the first entry; its bytes start after the 30-byte local header, name and extra.
  uint16_t name_len, extra_len;
  std::memcpy(&name_len, full.data() + 26, 2);
  std::memcpy(&extra_len, full.data() + 28, 2);
  const size_t begin = 30 + name_len + extra_len;
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 20; ++trial) {
    std::string bytes = full;
    const size_t at = begin + rng() % 370000;
    bytes[at] = static_cast<char>(bytes[at] ^ (1 + rng() % 255));
    write_file(p, bytes);
    EXPECT_INPUT_ERROR_NAMING(read_query_stats(p), p, "flip at " + std::to_string(at));
  }
}

// The same flips with the CRC made valid again, so they reach the pickle interpreter. A flip
// may still leave a well-formed file (a changed model name, say); then it must read normally.
TEST(QueryStats, FlippedPickleBytesNeverCrash) {
  KVB_REQUIRE_DATA(path, "calibration/qwen3_8b.for_aime24.pt");
  test::TempDir dir;
  const std::string p = (dir / "flipped.pt").string();
  // Rebuild the archive from its entries so the pickle can be changed freely.
  const ZipArchive zip(path.string());
  std::vector<ZipEntryIn> entries;
  for (const ZipArchive::Entry& e : zip.entries()) entries.push_back({e.name, std::string(zip.read(e))});
  ASSERT_EQ(entries[0].name, "qwen3_8b/data.pkl");
  const std::string pickle = entries[0].data;
  std::mt19937 rng(42);
  int refused = 0;
  const int trials = 200;
  for (int trial = 0; trial < trials; ++trial) {
    std::string bytes = pickle;
    const int flips = 1 + trial % 3;
    for (int k = 0; k < flips; ++k) {
      const size_t at = rng() % bytes.size();
      bytes[at] = static_cast<char>(bytes[at] ^ (1 + rng() % 255));
    }
    entries[0].data = bytes;
    write_file(p, make_zip(entries));
    try {
      const QueryStats qs = read_query_stats(p);
      EXPECT_EQ(qs.heads.size(), static_cast<size_t>(qs.n_layers) * qs.n_heads);
    } catch (const InputError& e) {
      ++refused;
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(refused, trials / 2);  // most random flips break the structure
}

TEST(QueryStats, RandomGarbagePickles) {
  test::TempDir dir;
  const std::string p = (dir / "garbage.pt").string();
  std::mt19937 rng(7);
  // Bytes drawn from the opcodes the interpreter knows, so runs get deep into it.
  const std::string ops = "(.JKMNQRXabcehj]qrstu})G\x80\x85\x86\x87\x88\x89\x8a\x8c\x94\x95";
  for (int trial = 0; trial < 300; ++trial) {
    std::string pkl = "\x80\x02";
    const int n = 1 + rng() % 200;
    for (int k = 0; k < n; ++k) pkl += rng() % 3 ? ops[rng() % ops.size()] : static_cast<char>(rng() % 4);
    write_file(p, make_zip({{"a/data.pkl", pkl}, {"a/data/0", std::string(64, '\0')}}));
    EXPECT_INPUT_ERROR_NAMING(read_query_stats(p), p);
  }
}

TEST(QueryStats, RefusesUnknownGlobal) {
  test::TempDir dir;
  const std::string p = (dir / "evil.pt").string();
  FakeStatsOptions o;
  o.extra_global_module = "os";
  write_file(p, fake_stats_pt(o));
  try {
    read_query_stats(p);
    ADD_FAILURE() << "unknown global accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("os.system"), std::string::npos) << e.what();
  }
  o.extra_global_module.clear();
  o.storage_global = "DoubleStorage";  // known to torch, but not float32
  write_file(p, fake_stats_pt(o));
  EXPECT_INPUT_ERROR_NAMING(read_query_stats(p), p);
}

TEST(QueryStats, RefusesStorageShorterThanNumel) {
  test::TempDir dir;
  const std::string p = (dir / "short.pt").string();
  FakeStatsOptions o;
  o.storage_numel_claim = 5;  // the storages hold 4 floats
  write_file(p, fake_stats_pt(o));
  try {
    read_query_stats(p);
    ADD_FAILURE() << "short storage accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("claims 5 float32 elements"), std::string::npos) << e.what();
  }
  // A tensor asking for more elements than its (honest) storage holds.
  o.storage_numel_claim = 3;
  write_file(p, fake_stats_pt(o));
  EXPECT_INPUT_ERROR_NAMING(read_query_stats(p), p);
}

TEST(QueryStats, RefusesCentralDirectoryPastTheEnd) {
  test::TempDir dir;
  const std::string p = (dir / "cd.pt").string();
  std::string bytes = fake_stats_pt({});
  // End record: cd size at -10, cd offset at -6 (no comment).
  uint32_t huge = static_cast<uint32_t>(bytes.size() + 1000);
  std::string b1 = bytes;
  std::memcpy(b1.data() + b1.size() - 6, &huge, 4);
  write_file(p, b1);
  EXPECT_INPUT_ERROR_NAMING(read_query_stats(p), p);
  std::string b2 = bytes;
  std::memcpy(b2.data() + b2.size() - 10, &huge, 4);
  write_file(p, b2);
  EXPECT_INPUT_ERROR_NAMING(read_query_stats(p), p);
  // Saturated fields demand zip64 records that are not there.
  std::string b3 = bytes;
  const uint32_t sat = 0xFFFFFFFF;
  std::memcpy(b3.data() + b3.size() - 6, &sat, 4);
  write_file(p, b3);
  EXPECT_INPUT_ERROR_NAMING(read_query_stats(p), p);
  // An entry count far beyond what the directory can hold.
  std::string b4 = bytes;
  const uint16_t many = 60000;
  std::memcpy(b4.data() + b4.size() - 12, &many, 2);
  std::memcpy(b4.data() + b4.size() - 14, &many, 2);
  write_file(p, b4);
  EXPECT_INPUT_ERROR_NAMING(read_query_stats(p), p);
}

TEST(QueryStats, RefusesCorruptSafetensors) {
  test::TempDir dir;
  QueryStats qs = read_query_stats_pt([&] {
    const auto p = dir / "fake.pt";
    write_file(p, fake_stats_pt({}));
    return p.string();
  }());
  const std::string good = (dir / "good.safetensors").string();
  write_query_stats(good, qs);
  const std::string full = read_file(good);
  const std::string p = (dir / "bad.safetensors").string();
  for (size_t cut = 0; cut < full.size(); cut += 7) {
    write_file(p, full.substr(0, cut));
    EXPECT_INPUT_ERROR_NAMING(read_query_stats(p), p, "cut at " + std::to_string(cut));
  }
  // Wrong format tag.
  std::string other = full;
  const size_t at = other.find("kvbench-query-stats");
  ASSERT_NE(at, std::string::npos);
  other[at] = 'X';
  write_file(p, other);
  EXPECT_INPUT_ERROR_NAMING(read_query_stats(p), p);
  // A NaN in the data.
  std::string nan = full;
  const float v = NAN;
  std::memcpy(nan.data() + nan.size() - 4, &v, 4);
  write_file(p, nan);
  EXPECT_INPUT_ERROR_NAMING(read_query_stats(p), p);
  // Missing file.
  EXPECT_INPUT_ERROR_NAMING(read_query_stats((dir / "none.pt").string()), "none.pt");
}

}  // namespace
}  // namespace kvb
