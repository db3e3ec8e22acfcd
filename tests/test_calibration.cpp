// `kvbench calibrate`: TriAttention query statistics measured from a model's pre-RoPE queries
// (engine/methods/calibration.*, cli/calibrate_command.cpp). Layer 0's queries depend only on the
// token (its input is the embedding), so they can be computed from the weights independently of
// the engine; deeper layers are checked through invariants and chunking.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <complex>
#include <fstream>
#include <string>
#include <vector>

#include "engine/kv_cache.hpp"
#include "engine/methods/calibration.hpp"
#include "engine/methods/query_stats.hpp"
#include "engine/model.hpp"
#include "engine/transformer.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

namespace kvb {
namespace {

void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

// Some prose, long enough to span several 512-token prefill chunks with the byte tokenizer.
std::string sample_text(size_t bytes) {
  const std::string s =
      "Once upon a time, a little fox found a shiny stone by the river. She carried it home and showed "
      "it to her brother, who said it was the moon that had fallen into the water. ";
  std::string out;
  while (out.size() < bytes) out += s;
  out.resize(bytes);
  return out;
}

// Token `token`'s pre-RoPE queries at layer 0 ([n_heads * head_dim]), computed in double from the
// weights as Hugging Face's attention does: rmsnorm(embedding) * attn_norm, times Wq^T, plus the
// q bias, then Qwen3's per-head q_norm. Shares nothing with the engine's forward.
std::vector<double> layer0_query(const Model& m, int token) {
  const ModelConfig& c = m.config;
  const LayerWeights& lw = m.weights.layers[0];
  const std::vector<float> embedding = to_f32(m.weights.token_embedding), wq = to_f32(lw.wq);
  const float* e = embedding.data() + size_t(token) * c.dim;
  double ss = 0;
  for (int i = 0; i < c.dim; ++i) ss += double(e[i]) * e[i];
  const double inv = 1.0 / std::sqrt(ss / c.dim + c.norm_eps);
  std::vector<double> xn(c.dim);
  for (int i = 0; i < c.dim; ++i) xn[i] = e[i] * inv * lw.attn_norm.f32()[i];
  std::vector<double> q(c.q_dim());
  for (int o = 0; o < c.q_dim(); ++o) {
    double acc = c.qkv_bias ? lw.bq.f32()[o] : 0.0;
    for (int i = 0; i < c.dim; ++i) acc += double(wq[size_t(o) * c.dim + i]) * xn[i];
    q[o] = acc;
  }
  if (c.qk_norm)
    for (int h = 0; h < c.n_heads; ++h) {
      double hs = 0;
      for (int d = 0; d < c.head_dim; ++d) hs += q[h * c.head_dim + d] * q[h * c.head_dim + d];
      const double hinv = 1.0 / std::sqrt(hs / c.head_dim + c.norm_eps);
      for (int d = 0; d < c.head_dim; ++d) q[h * c.head_dim + d] *= hinv * lw.q_norm.f32()[d];
    }
  return q;
}

// z_f of head h of a query vector, paired as `pairing` pairs lanes.
std::complex<double> pair_of(const std::vector<double>& q, int head_dim, int h, int f, RopePairing pairing) {
  const double* x = q.data() + size_t(h) * head_dim;
  const int F = head_dim / 2;
  return pairing == RopePairing::Half ? std::complex<double>(x[f], x[f + F]) : std::complex<double>(x[2 * f], x[2 * f + 1]);
}

// Expects layer 0's statistics to be the mean of z and |z| over the layer-0 queries of `tokens`.
void expect_layer0_matches(const QueryStats& qs, const Model& m, const std::vector<int>& tokens) {
  const ModelConfig& c = m.config;
  std::vector<std::vector<double>> queries;
  for (int t : tokens) queries.push_back(layer0_query(m, t));
  for (int h = 0; h < c.n_heads; ++h)
    for (int f = 0; f < c.head_dim / 2; ++f) {
      std::complex<double> mean = 0;
      double abs_mean = 0;
      for (const auto& q : queries) {
        mean += pair_of(q, c.head_dim, h, f, c.rope_pairing);
        abs_mean += std::abs(pair_of(q, c.head_dim, h, f, c.rope_pairing));
      }
      mean /= double(queries.size());
      abs_mean /= double(queries.size());
      const HeadStats& s = qs.at(0, h);
      EXPECT_NEAR(s.q_mean_real[f], mean.real(), 1e-4) << "head " << h << " f " << f;
      EXPECT_NEAR(s.q_mean_imag[f], mean.imag(), 1e-4) << "head " << h << " f " << f;
      EXPECT_NEAR(s.q_abs_mean[f], abs_mean, 1e-4) << "head " << h << " f " << f;
    }
}

// A tiny config for driving the accumulator by hand: 1 layer, 1 head, head_dim 4.
ModelConfig one_head_config(RopePairing pairing) {
  ModelConfig c = synthetic_preset_config("tiny");
  c.n_layers = 1;
  c.n_heads = 1;
  c.n_kv_heads = 1;
  c.head_dim = 4;
  c.rope_pairing = pairing;
  return c;
}

TEST(Calibration, AccumulatorReadsHalfAndInterleavedLanes) {
  // x = (1, 2, 3, 4): half pairs (x0 + i x2, x1 + i x3), interleaved (x0 + i x1, x2 + i x3).
  const float x[4] = {1, 2, 3, 4};
  QueryStatsAccumulator half(one_head_config(RopePairing::Half));
  half.on_query(0, 0, 0, x);
  const QueryStats h = half.stats();
  EXPECT_EQ(h.rope_style, "half");
  EXPECT_EQ(h.heads[0].q_mean_real, (std::vector<float>{1, 2}));
  EXPECT_EQ(h.heads[0].q_mean_imag, (std::vector<float>{3, 4}));
  EXPECT_FLOAT_EQ(h.heads[0].q_abs_mean[0], std::sqrt(10.0f));
  EXPECT_FLOAT_EQ(h.heads[0].q_abs_mean[1], std::sqrt(20.0f));

  QueryStatsAccumulator inter(one_head_config(RopePairing::Interleaved));
  inter.on_query(0, 0, 0, x);
  const QueryStats i = inter.stats();
  EXPECT_EQ(i.rope_style, "interleaved");
  EXPECT_EQ(i.heads[0].q_mean_real, (std::vector<float>{1, 3}));
  EXPECT_EQ(i.heads[0].q_mean_imag, (std::vector<float>{2, 4}));
  EXPECT_FLOAT_EQ(i.heads[0].q_abs_mean[0], std::sqrt(5.0f));
  EXPECT_FLOAT_EQ(i.heads[0].q_abs_mean[1], 5.0f);
}

TEST(Calibration, AccumulatorAveragesWithEqualWeight) {
  // Two opposite queries: the complex mean cancels, the mean modulus does not.
  const float a[4] = {3, 0, 4, 0}, b[4] = {-3, 0, -4, 0};
  QueryStatsAccumulator acc(one_head_config(RopePairing::Half));
  acc.on_query(0, 0, 0, a);
  acc.on_query(0, 0, 1, b);
  const QueryStats qs = acc.stats();
  EXPECT_EQ(acc.token_count(), 2);
  EXPECT_EQ(qs.token_count, 2);
  EXPECT_FLOAT_EQ(qs.heads[0].q_mean_real[0], 0.0f);
  EXPECT_FLOAT_EQ(qs.heads[0].q_mean_imag[0], 0.0f);
  EXPECT_FLOAT_EQ(qs.heads[0].q_abs_mean[0], 5.0f);
  EXPECT_DOUBLE_EQ(head_concentration(qs.heads[0]), 0.0);
}

TEST(Calibration, AccumulatorWithoutTokensIsAnInputError) {
  QueryStatsAccumulator acc(one_head_config(RopePairing::Half));
  EXPECT_THROW(acc.stats(), InputError);
  EXPECT_THROW(calibrate_query_stats(load_model("synthetic:tiny"), TokenSequences{}), InputError);
}

TEST(Calibration, SingleTokenStatsEqualTheQueryComputedFromTheWeights) {
  const Model m = load_model("synthetic:tiny");
  const QueryStats qs = calibrate_query_stats(m, {{65}});
  EXPECT_EQ(qs.token_count, 1);
  EXPECT_EQ(qs.n_layers, m.config.n_layers);
  EXPECT_EQ(qs.n_heads, m.config.n_heads);
  EXPECT_EQ(qs.head_dim, m.config.head_dim);
  EXPECT_EQ(qs.model_source, "synthetic:tiny");
  expect_layer0_matches(qs, m, {65});
}

TEST(Calibration, MeansOverEveryTokenOfEverySequence) {
  // Layer 0's query of a token does not depend on its position or sequence, so the statistics
  // over {7, 200} and {65} are the plain mean over the three tokens' queries.
  const Model m = load_model("synthetic:tiny");
  const QueryStats qs = calibrate_query_stats(m, {{7, 200}, {65}});
  EXPECT_EQ(qs.token_count, 3);
  expect_layer0_matches(qs, m, {7, 200, 65});
}

TEST(Calibration, QueryIsTakenAfterBiasAndQNorm) {
  // tiny turned into a Qwen2/Qwen3 hybrid: a q bias and a per-head q_norm that both change the query.
  Model m = load_model("synthetic:tiny");
  m.config.qkv_bias = true;
  m.config.qk_norm = true;
  const int hd = m.config.head_dim;
  for (LayerWeights& lw : m.weights.layers) {
    std::vector<float> bq(m.config.q_dim()), q_norm(hd);
    for (int i = 0; i < m.config.q_dim(); ++i) bq[i] = 0.3f * float((i % 5) - 2);
    for (int d = 0; d < hd; ++d) q_norm[d] = 0.5f + 0.25f * d;
    lw.bq = f32_tensor({m.config.q_dim()}, bq);
    lw.bk = f32_tensor({m.config.kv_dim()}, std::vector<float>(m.config.kv_dim(), 0.1f));
    lw.bv = f32_tensor({m.config.kv_dim()}, std::vector<float>(m.config.kv_dim(), 0.0f));
    lw.q_norm = f32_tensor({hd}, q_norm);
    lw.k_norm = f32_tensor({hd}, std::vector<float>(hd, 1.0f));
  }
  const QueryStats qs = calibrate_query_stats(m, {{65, 66}});
  expect_layer0_matches(qs, m, {65, 66});
}

TEST(Calibration, PairingOfTheModelChoosesTheLanes) {
  // Layer 0's pre-RoPE query does not depend on the pairing; the statistics must read it in the
  // pairs the model rotates.
  Model m = load_model("synthetic:tiny");
  for (RopePairing p : {RopePairing::Half, RopePairing::Interleaved}) {
    m.config.rope_pairing = p;
    const QueryStats qs = calibrate_query_stats(m, {{65}});
    EXPECT_EQ(qs.rope_style, to_string(p));
    expect_layer0_matches(qs, m, {65});
  }
  // And the two really differ (otherwise the test above could not tell them apart).
  m.config.rope_pairing = RopePairing::Half;
  const QueryStats half = calibrate_query_stats(m, {{65}});
  m.config.rope_pairing = RopePairing::Interleaved;
  const QueryStats inter = calibrate_query_stats(m, {{65}});
  EXPECT_NE(half.at(0, 0).q_mean_real, inter.at(0, 0).q_mean_real);
}

// Rows of a [heads * head_dim, in] projection moved from interleaved lanes (2f, 2f+1) to half lanes
// (f, f + head_dim/2) within every head: what converting a checkpoint between the two RoPE
// conventions does to wq and wk.
void interleaved_rows_to_half(Tensor& w, int heads, int head_dim) {
  const int64_t in = w.shape[1];
  const std::vector<float> src = to_f32(w);
  std::vector<float> dst = src;
  for (int h = 0; h < heads; ++h)
    for (int f = 0; f < head_dim / 2; ++f)
      for (int lane = 0; lane < 2; ++lane) {
        const int64_t from = int64_t(h) * head_dim + 2 * f + lane, to = int64_t(h) * head_dim + f + lane * head_dim / 2;
        std::copy_n(src.begin() + from * in, in, dst.begin() + to * in);
      }
  w = stored_tensor(w.shape, dst, w.dtype);  // a permutation: exact in any type
}

TEST(Calibration, StatsAreTheSameWhicheverWayTheModelPairsItsLanes) {
  // stories260K pairs lanes interleaved; the same model converted to half pairing computes the
  // same logits, and its statistics -- indexed by frequency -- are the same numbers. So a stats
  // file's pairing label does not have to match the model's (official files say "half").
  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  const Model inter = load_model(bin.string());
  Model half = load_model(bin.string());
  ASSERT_EQ(inter.config.rope_pairing, RopePairing::Interleaved);
  half.config.rope_pairing = RopePairing::Half;
  for (LayerWeights& l : half.weights.layers) {
    interleaved_rows_to_half(l.wq, half.config.n_heads, half.config.head_dim);
    interleaved_rows_to_half(l.wk, half.config.n_kv_heads, half.config.head_dim);
  }
  std::vector<int> tokens;
  for (int i = 0; i < 300; ++i) tokens.push_back((i * 29 + 3) % inter.config.vocab_size);
  const std::vector<float> a = compute_all_logits(inter, tokens), b = compute_all_logits(half, tokens);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-3f + 1e-4f * std::fabs(a[i])) << "logit " << i;

  const QueryStats si = calibrate_query_stats(inter, {tokens}), sh = calibrate_query_stats(half, {tokens});
  EXPECT_EQ(si.rope_style, "interleaved");
  EXPECT_EQ(sh.rope_style, "half");
  for (size_t i = 0; i < si.heads.size(); ++i)
    for (size_t f = 0; f < si.heads[i].q_abs_mean.size(); ++f) {
      ASSERT_NEAR(si.heads[i].q_mean_real[f], sh.heads[i].q_mean_real[f], 1e-5) << "head " << i << " f " << f;
      ASSERT_NEAR(si.heads[i].q_mean_imag[f], sh.heads[i].q_mean_imag[f], 1e-5) << "head " << i << " f " << f;
      ASSERT_NEAR(si.heads[i].q_abs_mean[f], sh.heads[i].q_abs_mean[f], 1e-5) << "head " << i << " f " << f;
    }
  EXPECT_NO_THROW(check_stats_match_model(sh, inter.config, "half-labelled stats"));
}

TEST(Calibration, ModulusBoundsTheMeanAndConcentrationIsInUnitRange) {
  const Model m = load_model("synthetic:tiny");
  const QueryStats qs = calibrate_query_stats(m, calibration_sequences_from_text(m, sample_text(700), 32768));
  EXPECT_EQ(qs.token_count, 701);
  for (int l = 0; l < qs.n_layers; ++l)
    for (int h = 0; h < qs.n_heads; ++h) {
      const HeadStats& s = qs.at(l, h);
      for (int f = 0; f < qs.n_freqs(); ++f) {
        const double mean_mod = std::hypot(double(s.q_mean_real[f]), double(s.q_mean_imag[f]));
        // Both are rounded to float from double sums: allow that rounding, nothing more.
        EXPECT_GE(s.q_abs_mean[f], mean_mod * (1 - 1e-6)) << l << " " << h << " " << f;
      }
      const double r = head_concentration(s);
      EXPECT_GT(r, 0.0) << l << " " << h;
      EXPECT_LT(r, 1.0) << l << " " << h;  // 701 different queries are not all parallel
    }
  const double median = median_head_concentration(qs);
  EXPECT_GT(median, 0.0);
  EXPECT_LT(median, 1.0);
}

TEST(Calibration, ChunkedPrefillMatchesOneForwardOverTheSequence) {
  // 1100 tokens take three 512-token chunks; every layer's statistics must equal those of a single
  // forward call over the whole sequence (same positions, same causal attention).
  const Model m = load_model("synthetic:tiny");
  const TokenSequences seqs = calibration_sequences_from_text(m, sample_text(1099), 32768);
  ASSERT_EQ(seqs.size(), 1u);
  ASSERT_EQ(seqs[0].size(), 1100u);
  const QueryStats chunked = calibrate_query_stats(m, seqs);

  const int n = static_cast<int>(seqs[0].size());
  KvCache cache(m.config, 1, n);
  Transformer tf(m, n);
  QueryStatsAccumulator acc(m.config);
  ForwardRecording<KvCache> record;
  record.queries = &acc;
  std::vector<BatchToken> batch;
  for (int i = 0; i < n; ++i) batch.push_back(BatchToken{0, i, seqs[0][i], false});
  tf.forward(batch, cache, nullptr, record);
  const QueryStats whole = acc.stats();

  for (int l = 0; l < m.config.n_layers; ++l)
    for (int h = 0; h < m.config.n_heads; ++h)
      for (int f = 0; f < chunked.n_freqs(); ++f) {
        EXPECT_NEAR(chunked.at(l, h).q_mean_real[f], whole.at(l, h).q_mean_real[f], 1e-4);
        EXPECT_NEAR(chunked.at(l, h).q_mean_imag[f], whole.at(l, h).q_mean_imag[f], 1e-4);
        EXPECT_NEAR(chunked.at(l, h).q_abs_mean[f], whole.at(l, h).q_abs_mean[f], 1e-4);
      }
}

TEST(Calibration, TextSequencesStartWithBosAndSplitAtTheContext) {
  Model m = load_model("synthetic:tiny");
  const int bos = m.tokenizer->bos_id();
  TokenSequences one = calibration_sequences_from_text(m, "abc", 32768);
  EXPECT_EQ(one, (TokenSequences{{bos, 'a', 'b', 'c'}}));
  EXPECT_EQ(calibration_sequences_from_text(m, "abcdef", 3), (TokenSequences{{bos, 'a', 'b'}}));

  m.config.max_seq_len = 4;  // BOS + 9 bytes = 10 tokens: windows of 4, later ones restarting with BOS
  EXPECT_EQ(calibration_sequences_from_text(m, "abcdefghi", 32768),
            (TokenSequences{{bos, 'a', 'b', 'c'}, {bos, 'd', 'e', 'f'}, {bos, 'g', 'h', 'i'}}));
  EXPECT_EQ(calibration_sequences_from_text(m, "abcdefghi", 6), (TokenSequences{{bos, 'a', 'b', 'c'}, {bos, 'd'}}));
  EXPECT_THROW(calibration_sequences_from_text(m, "", 100), InputError);
}

TEST(Calibration, WorkloadSequencesArePromptThenContinuation) {
  const Model m = load_model("synthetic:tiny");
  const int bos = m.tokenizer->bos_id();
  Workload w;
  WorkloadItem ids;
  ids.prompt_ids = {1, 2};  // verbatim: no BOS added
  ids.continuation_ids = {3, 4, 5};
  ids.continuation_text = "ignored: ids win";
  WorkloadItem text;
  text.prompt_text = "hi";
  text.continuation_text = "yo";
  WorkloadItem prompt_only;
  prompt_only.prompt_text = "z";
  w.items = {ids, text, prompt_only};
  EXPECT_EQ(calibration_sequences_from_workload(m, w, 32768),
            (TokenSequences{{1, 2, 3, 4, 5}, {bos, 'h', 'i', 'y', 'o'}, {bos, 'z'}}));
  // --max-tokens cuts the last sequence short and drops the rest.
  EXPECT_EQ(calibration_sequences_from_workload(m, w, 7), (TokenSequences{{1, 2, 3, 4, 5}, {bos, 'h'}}));
}

// ---------------------------------------------------------------------------------------------
// The command line.

TEST(CliCalibrate, WritesStatsThatReadBackAndMatchTheModel) {
  test::TempDir dir;
  const std::string text = sample_text(600);
  write_file(dir / "calib.txt", text);
  const auto out = dir / "sub" / "tiny.safetensors";  // the missing folder is created
  test::CommandResult r = test::run_kvbench("calibrate -q --model synthetic:tiny --threads 1 --text " +
                                            (dir / "calib.txt").string() + " --out " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("601 tokens"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("median R"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(out.string()), std::string::npos) << r.output;

  const QueryStats qs = read_query_stats(out.string());
  EXPECT_EQ(qs.format, "kvbench-safetensors");
  EXPECT_NO_THROW(check_stats_match_model(qs, synthetic_preset_config("tiny"), out.string(), "synthetic:tiny"));
  EXPECT_EQ(qs.model_source, "synthetic:tiny");
  EXPECT_EQ(qs.token_count, 601);  // the bytes plus BOS
  EXPECT_EQ(qs.rope_style, "half");
  EXPECT_EQ(qs.n_kv_heads, 4);
  EXPECT_EQ(qs.rope_scaling_type, "none");
  ASSERT_TRUE(qs.rope_theta.has_value());
  EXPECT_DOUBLE_EQ(*qs.rope_theta, 10000.0);
  // What the library computes for the same tokens, through the file's float32 round trip.
  const Model m = load_model("synthetic:tiny");
  const QueryStats direct = calibrate_query_stats(m, calibration_sequences_from_text(m, text, 32768));
  EXPECT_EQ(qs.at(3, 5).q_mean_real, direct.at(3, 5).q_mean_real);
  EXPECT_EQ(qs.at(3, 5).q_abs_mean, direct.at(3, 5).q_abs_mean);
  EXPECT_FALSE(std::filesystem::exists(out.string() + ".tmp"));

  // --max-tokens caps the count; a workload works too.
  r = test::run_kvbench("calibrate -q -m synthetic:tiny --max-tokens 50 --text " + (dir / "calib.txt").string() +
                        " --out " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_query_stats(out.string()).token_count, 50);
  r = test::run_kvbench("calibrate -q -m synthetic:tiny --workload builtin:stories --out " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GT(*read_query_stats(out.string()).token_count, 4);
}

TEST(CliCalibrate, BadInputExitsTwoNamingTheFlagOrFile) {
  test::TempDir dir;
  write_file(dir / "calib.txt", "some text");
  write_file(dir / "empty.txt", "");
  const std::string out = (dir / "x.safetensors").string();
  const std::string text = (dir / "calib.txt").string();
  struct Case {
    std::string args;
    std::vector<std::string> named;  // what the message must contain
  };
  const std::vector<Case> cases = {
      {"--text " + (dir / "missing.txt").string() + " --out " + out, {"--text", "missing.txt"}},
      {"--text " + (dir / "empty.txt").string() + " --out " + out, {"--text", "empty.txt", "empty"}},
      {"--text " + dir.path().string() + " --out " + out, {"--text", "not a regular file"}},
      {"--out " + out, {"--text", "--workload"}},
      {"--text " + text + " --workload builtin:stories --out " + out, {"--text", "--workload"}},
      {"--text " + text + " --out " + (dir / "calib.txt" / "x.safetensors").string(), {"--out", "calib.txt"}},
      {"--text " + text + " --out " + dir.path().string(), {"--out", "directory"}},
      {"--text " + text + " --max-tokens 0 --out " + out, {"--max-tokens"}},
      {"--text " + text, {"--out"}},
      {"--workload " + (dir / "nope.jsonl").string() + " --out " + out, {"nope.jsonl"}},
  };
  for (const Case& c : cases) {
    test::CommandResult r = test::run_kvbench("calibrate -q -m synthetic:tiny " + c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.output;
    for (const std::string& word : c.named) EXPECT_NE(r.output.find(word), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_FALSE(std::filesystem::exists(out)) << c.args;
  }
  test::CommandResult r = test::run_kvbench("calibrate -q -m synthetic:nope --text " + text + " --out " + out);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("synthetic:nope"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace kvb
