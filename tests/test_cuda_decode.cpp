// The CUDA decode path end to end against the CPU one: the same replay through run_decode on both
// backends, for every method, on synthetic:tiny and stories260K. The CPU model's weights are
// rounded to bf16 and its caches store bf16 keys and values (DecodeOptions::kv_dtype), so what
// differs is summation order: the compression schedule must be identical (events, evicted slots,
// KV bytes held per step, scaled from fp32 to bf16 slots), the absolute positions kept at every
// event nearly so, and the replayed tokens' log-probabilities, argmaxes and retained attention mass
// close. Skips where no GPU answers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "engine/cuda_calibration.hpp"
#include "engine/cuda_transformer.hpp"
#include "engine/decode_backend.hpp"
#include "engine/decode_loop.hpp"
#include "run/gpu_session.hpp"
#include "engine/methods/calibration.hpp"
#include "engine/model.hpp"
#include "test_support.hpp"

namespace kvb {
namespace {

#ifdef KVBENCH_HAVE_CUDA

class CudaDecode : public ::kvb::test::GpuTest {};

// Three sequences with prompts of different lengths and a continuation each (from the model's
// own greedy decoding on the CPU, so the replay follows likely tokens).
std::vector<DecodeRequest> make_requests(const Model& m, int steps) {
  std::vector<DecodeRequest> requests;
  const std::vector<std::vector<int>> prompts = {{1, 5, 9, 14, 2, 7, 3, 30, 11, 4, 8, 22, 13, 6, 2, 1, 19, 40, 3, 9, 9},
                                                 {1, 3, 3, 7, 12, 18, 25, 2, 4, 6, 8, 10, 31},
                                                 {1, 44, 2, 9, 17, 5, 5, 5, 12, 20, 8, 8, 3, 1, 6, 60, 33}};
  for (size_t i = 0; i < prompts.size(); ++i) {
    DecodeRequest r;
    r.id = "s" + std::to_string(i);
    r.prompt = prompts[i];
    for (int& t : r.prompt) t %= m.config.vocab_size;
    r.max_new_tokens = steps;
    requests.push_back(r);
  }
  DecodeOptions gen;
  gen.mode = RunMode::Generate;
  gen.batch_size = 3;
  const DecodeOutput g = run_decode(m, requests, gen);
  for (size_t i = 0; i < requests.size(); ++i) requests[i].forced = g.sequences[i].tokens;
  return requests;
}

std::vector<PolicyConfig> gpu_methods(const Model& m, const std::vector<DecodeRequest>& requests) {
  TokenSequences sequences;
  for (const DecodeRequest& r : requests) {
    sequences.push_back(r.prompt);
    sequences.back().insert(sequences.back().end(), r.forced.begin(), r.forced.end());
  }
  auto stats = std::make_shared<const QueryStats>(calibrate_query_stats(m, sequences));
  std::vector<PolicyConfig> out;
  for (Method method : every_method()) {
    PolicyConfig p;
    p.method = method;
    if (traits(method).budgeted) {
      p.budget = 28;
      p.divide_length = 8;
      p.stats = stats;
    }
    out.push_back(p);
  }
  PolicyConfig global = out[1];
  global.tri.selection = TriSelection::Global;
  out.push_back(global);
  PolicyConfig per_layer = out[1];
  per_layer.tri.selection = TriSelection::PerLayerHead;
  per_layer.tri.scoring.aggregation = TriAggregation::Max;
  out.push_back(per_layer);
  PolicyConfig every_step = out[5];  // H2O as published
  every_step.trigger = Trigger::EveryStep;
  out.push_back(every_step);
  PolicyConfig in_cache = out[4];  // StreamingLLM with its positions within the cache
  in_cache.trigger = Trigger::EveryStep;
  in_cache.streaming_positions = StreamingPositions::Cache;
  out.push_back(in_cache);
  return out;
}

// Every compression event of a replay: (sequence, event) -> the sorted positions per segment.
using KeptLogs = std::map<std::pair<std::string, int64_t>, std::vector<std::vector<int32_t>>>;

void record_kept(DecodeOptions& opt, KeptLogs& log) {
  opt.on_kept = [&log](const std::string& id, const KeptEvent& e) {
    auto& segments = log[{id, e.event}];
    for (std::vector<int32_t> p : e.positions) {
      std::sort(p.begin(), p.end());
      segments.push_back(std::move(p));
    }
  };
}

// The kept sets of the two backends: the same events, and (keys ordered within bf16 and fp32
// summation order) the same positions in nearly every (layer, KV head).
void expect_same_kept(const KeptLogs& cpu, const KeptLogs& gpu) {
  ASSERT_EQ(cpu.size(), gpu.size()) << "compression events";
  size_t segments = 0, identical = 0, positions = 0, shared = 0;
  for (const auto& [key, a] : cpu) {
    const auto it = gpu.find(key);
    ASSERT_NE(it, gpu.end()) << "event " << key.second << " of " << key.first << " missing on the GPU";
    ASSERT_EQ(a.size(), it->second.size());
    for (size_t s = 0; s < a.size(); ++s) {
      const auto& x = a[s];
      const auto& y = it->second[s];
      std::vector<int32_t> both;
      std::set_intersection(x.begin(), x.end(), y.begin(), y.end(), std::back_inserter(both));
      ++segments;
      identical += x == y;
      positions += x.size();
      shared += both.size();
    }
  }
  EXPECT_GE(identical, segments - segments / 50) << identical << " of " << segments << " kept sets identical";
  EXPECT_GE(shared, positions - positions / 200) << shared << " of " << positions << " kept positions shared";
}

void expect_same_replay(Model& model) {
  test::round_weights_to_bf16(model);
  const std::vector<DecodeRequest> requests = make_requests(model, 60);
  const std::vector<PolicyConfig> methods = gpu_methods(model, requests);
  GpuSessionRequest g;
  g.batch = 3;
  g.prefill_chunk = 16;
  g.mode = RunMode::Replay;
  GpuSession session(model, requests, methods, g);
  for (size_t i = 0; i < methods.size(); ++i) {
    const PolicyConfig& p = methods[i];
    SCOPED_TRACE(run_name(p) + " " + method_parameters(p).dump());
    DecodeOptions opt;
    opt.mode = RunMode::Replay;
    opt.batch_size = session.batch_for(i);
    opt.prefill_chunk = 16;
    opt.policy = p;
    opt.kv_dtype = DType::BF16;
    KeptLogs cpu_kept, gpu_kept;
    record_kept(opt, cpu_kept);
    const DecodeOutput cpu = run_decode(model, requests, opt);
    opt.cuda = session.engine();
    record_kept(opt, gpu_kept);
    const DecodeOutput gpu = run_decode(model, requests, opt);
    EXPECT_EQ(gpu.stats.compression_events, cpu.stats.compression_events);
    EXPECT_EQ(gpu.stats.evicted_slots, cpu.stats.evicted_slots);
    if (traits(p.method).budgeted) EXPECT_GT(cpu.stats.evicted_slots, 0) << "the test must make the method evict";
    expect_same_kept(cpu_kept, gpu_kept);
    ASSERT_EQ(gpu.sequences.size(), cpu.sequences.size());
    // Where two kept sets differ (scores within summation order of each other) the caches drift
    // apart: mean gaps are held tight, the worst step loosely.
    int steps = 0, same_argmax = 0, retained_steps = 0;
    double logprob_gap = 0, logprob_gap_sum = 0, retained_gap_sum = 0;
    for (size_t s = 0; s < cpu.sequences.size(); ++s) {
      const SequenceOutcome& a = cpu.sequences[s];
      const SequenceOutcome& b = gpu.sequences[s];
      ASSERT_EQ(a.target_logprob.size(), b.target_logprob.size());
      ASSERT_EQ(a.kv_bytes.size(), b.kv_bytes.size());
      ASSERT_EQ(a.retained_mass.size(), b.retained_mass.size());  // measured on both (budgeted methods)
      for (size_t t = 0; t < a.retained_mass.size(); ++t, ++retained_steps)
        retained_gap_sum += std::fabs(a.retained_mass[t] - b.retained_mass[t]);
      for (size_t t = 0; t < a.target_logprob.size(); ++t) {
        ASSERT_FALSE(std::isnan(b.target_logprob[t]));
        EXPECT_EQ(b.kv_bytes[t] * 2, a.kv_bytes[t]) << "sequence " << s << " step " << t;  // bf16 vs fp32 slot bytes
        const double gap = std::fabs(a.target_logprob[t] - b.target_logprob[t]);
        logprob_gap = std::max(logprob_gap, gap);
        logprob_gap_sum += gap;
        same_argmax += a.predicted[t] == b.predicted[t];
        EXPECT_GE(b.kl[t], 0.0f);
        ++steps;
      }
    }
    EXPECT_LT(logprob_gap_sum / steps, 0.02) << "mean |log p_cpu - log p_gpu| of the replayed tokens";
    EXPECT_LT(logprob_gap, 0.5) << "largest |log p_cpu - log p_gpu| of a replayed token";
    if (retained_steps > 0) EXPECT_LT(retained_gap_sum / retained_steps, 0.01) << "mean |retained mass cpu - gpu|";
    EXPECT_GE(same_argmax, steps - steps / 20) << same_argmax << " of " << steps << " argmaxes agree";
  }
}

TEST_F(CudaDecode, SyntheticTinyReplayMatchesCpu) {
  Model m = load_model("synthetic:tiny,seed=9");
  expect_same_replay(m);
}

TEST_F(CudaDecode, Stories260KReplayMatchesCpu) {
  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  Model m = load_model(bin.string());
  expect_same_replay(m);
}

TEST_F(CudaDecode, CalibrationOnTheGpuMatchesCpu) {
  Model m = load_model("synthetic:qwen3-0.6b,seed=4");
  test::round_weights_to_bf16(m);
  TokenSequences sequences = {{}, {}};
  for (int i = 0; i < 700; ++i) sequences[0].push_back((i * 37 + 11) % m.config.vocab_size);  // two chunks
  for (int i = 0; i < 90; ++i) sequences[1].push_back((i * 53 + 5) % m.config.vocab_size);
  const QueryStats cpu = calibrate_query_stats(m, sequences);
  CudaEngineShape shape;
  shape.max_batch_tokens = kCalibrationChunk;
  shape.max_capacity = 700;
  shape.kv_pool_bytes = cuda_cache_bytes(m.config, 1, 700);
  CudaTransformer engine(m, shape);
  const QueryStats gpu = calibrate_query_stats(engine, m, sequences);
  ASSERT_EQ(gpu.token_count, cpu.token_count);
  ASSERT_EQ(gpu.heads.size(), cpu.heads.size());
  for (size_t i = 0; i < cpu.heads.size(); ++i)
    for (size_t f = 0; f < cpu.heads[i].q_abs_mean.size(); ++f) {
      const double scale = 1e-2 + 2e-2 * cpu.heads[i].q_abs_mean[f];
      ASSERT_NEAR(gpu.heads[i].q_mean_real[f], cpu.heads[i].q_mean_real[f], scale) << "head " << i << " f " << f;
      ASSERT_NEAR(gpu.heads[i].q_mean_imag[f], cpu.heads[i].q_mean_imag[f], scale) << "head " << i << " f " << f;
      ASSERT_NEAR(gpu.heads[i].q_abs_mean[f], cpu.heads[i].q_abs_mean[f], scale) << "head " << i << " f " << f;
    }
}

TEST_F(CudaDecode, BatchAutoFillsTheDeviceAndThroughputRuns) {
  LoadOptions config_only;
  config_only.config_only = true;
  const Model m = load_model("synthetic:qwen3-0.6b", config_only);
  std::vector<DecodeRequest> requests(1);
  requests[0].id = "t";
  requests[0].prompt.assign(100, 7);
  requests[0].forced.assign(300, 9);
  requests[0].max_new_tokens = 300;
  std::vector<PolicyConfig> methods(2);
  methods[1].method = Method::Streaming;
  methods[1].budget = 64;
  methods[1].divide_length = 32;
  GpuSessionRequest g;
  g.batch = 0;
  g.mode = RunMode::Throughput;
  GpuSession session(m, requests, methods, g);
  // A 64-slot cache holds far fewer bytes than a 400-slot one: many more sequences fit.
  EXPECT_GT(session.batch_for(1), session.batch_for(0));
  EXPECT_GT(session.batch_for(0), 1);
  DecodeOptions opt;
  opt.mode = RunMode::Throughput;
  opt.cuda = session.engine();
  opt.policy = methods[1];
  opt.batch_size = std::min(session.batch_for(1), 64);  // a bounded slice of the auto batch keeps the test short
  const std::vector<DecodeRequest> batch(opt.batch_size, requests[0]);
  const DecodeOutput out = run_decode(m, batch, opt);
  EXPECT_EQ(out.stats.decode_tokens, int64_t(opt.batch_size) * 299);
  EXPECT_GT(out.stats.compression_events, 0);
}

#else

TEST(CudaDecode, BuiltWithoutCuda) { GTEST_SKIP() << "this build has no CUDA backend"; }

#endif

}  // namespace
}  // namespace kvb
