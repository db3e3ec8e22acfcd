// The CUDA forward pass against the CPU one, end to end: same tokens through both (a chunked
// prefill of two sequences, then decode steps of both together), logits compared. The CPU model's
// weights are rounded to bf16 first, so what differs is only accumulation order and the bf16 KV
// cache. Skips where no GPU answers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/model.hpp"
#include "engine/transformer.hpp"
#include "kernels/gpu_info.hpp"
#include "test_support.hpp"
#include "tests/hf_model_writer.hpp"
#ifdef KVBENCH_HAVE_CUDA
#include "engine/cuda_transformer.hpp"
#include "kernels/cuda/ops_cuda.hpp"
#endif

namespace kvb::test {
namespace {

#ifdef KVBENCH_HAVE_CUDA

// Feeds the same batches to both engines and checks every logits row. `device_model` is what the
// GPU engine is built from: the model itself, or a config-only synthetic model whose weights the
// device generates.
void expect_same_logits(Model& model, const Model& device_model) {
  test::round_weights_to_bf16(model);
  const int vocab = model.config.vocab_size, chunk = 16;
  const std::vector<std::vector<int>> prompts = {{1, 5, 9, 14, 2, 7, 3, 30, 11, 4, 8, 22, 13, 6, 2, 1, 19, 40, 3},
                                                 {1, 3, 3, 7}};
  const int steps = 40, capacity = 64;
  Transformer cpu(model, chunk);
  KvCache cache(model.config, 2, capacity);
  CudaEngineShape shape;
  shape.max_batch_tokens = chunk;
  shape.max_sequences = 2;
  shape.max_capacity = capacity;
  shape.kv_pool_bytes = cuda_cache_bytes(model.config, 2, capacity);
  CudaTransformer gpu(device_model, shape);
  CudaKvCache gpu_cache = gpu.make_cache(2, capacity, 0);
  auto gpu_forward = [&](const std::vector<BatchToken>& b, float* host) {
    const int rows = gpu.forward(b, gpu_cache, gpu.method_logits());
    cuda::copy_to_host_bytes(host, gpu.method_logits(), sizeof(float) * size_t(rows) * vocab);
  };
  std::vector<float> want(size_t(chunk) * vocab), got(size_t(chunk) * vocab);
  int compared = 0, same_argmax = 0;
  double worst = 0;
  auto compare = [&](int rows) {
    for (int r = 0; r < rows; ++r) {
      const float* a = want.data() + size_t(r) * vocab;
      const float* b = got.data() + size_t(r) * vocab;
      float scale = 0;
      for (int i = 0; i < vocab; ++i) {
        ASSERT_FALSE(std::isnan(b[i])) << "row " << r << " logit " << i;
        scale = std::max(scale, std::fabs(a[i]));
        worst = std::max(worst, double(std::fabs(a[i] - b[i])));
      }
      same_argmax += std::max_element(a, a + vocab) - a == std::max_element(b, b + vocab) - b;
      ++compared;
      EXPECT_LT(worst, 0.05 * std::max(1.0f, scale)) << "row " << r;
    }
  };
  std::vector<BatchToken> batch;
  std::vector<int> next(2);
  for (int s = 0; s < 2; ++s) {
    const std::vector<int>& p = prompts[s];
    for (size_t at = 0; at < p.size(); at += chunk) {
      batch.clear();
      for (size_t i = at; i < std::min(p.size(), at + chunk); ++i)
        batch.push_back(BatchToken{s, int(i), p[i], i + 1 == p.size()});
      cpu.forward(batch, cache, want.data());
      gpu_forward(batch, got.data());
    }
    compare(1);
    next[s] = int(std::max_element(want.begin(), want.begin() + vocab) - want.begin());
  }
  for (int step = 0; step < steps; ++step) {
    batch.clear();
    for (int s = 0; s < 2; ++s) batch.push_back(BatchToken{s, int(prompts[s].size()) + step, next[s], true});
    cpu.forward(batch, cache, want.data());
    gpu_forward(batch, got.data());
    compare(2);
    for (int s = 0; s < 2; ++s)
      next[s] = int(std::max_element(want.begin() + size_t(s) * vocab, want.begin() + size_t(s + 1) * vocab) -
                    (want.begin() + size_t(s) * vocab));
  }
  EXPECT_GE(same_argmax, compared - 2) << "argmax agreement " << same_argmax << "/" << compared;
  for (int l = 0; l < model.config.n_layers; ++l)
    for (int h = 0; h < model.config.n_kv_heads; ++h) {
      EXPECT_EQ(gpu_cache.length(l, 0, h), cache.length(l, 0, h));
      EXPECT_EQ(gpu_cache.length(l, 1, h), cache.length(l, 1, h));
    }
}

class CudaTransformerTest : public ::kvb::test::GpuTest {};

TEST_F(CudaTransformerTest, SyntheticTinyMatchesCpu) {
  Model m = load_model("synthetic:tiny,seed=5");
  expect_same_logits(m, m);
}

TEST_F(CudaTransformerTest, WeightsGeneratedOnTheDeviceMatchTheHostGenerator) {
  Model host = load_model("synthetic:qwen3-0.6b,seed=3");
  LoadOptions config_only;
  config_only.config_only = true;
  const Model device = load_model("synthetic:qwen3-0.6b,seed=3", config_only);
  ASSERT_TRUE(device.weights.layers.empty());
  expect_same_logits(host, device);
}

TEST_F(CudaTransformerTest, Stories260KMatchesCpu) {
  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  Model m = load_model(bin.string());
  expect_same_logits(m, m);
}

TEST_F(CudaTransformerTest, WeightsStreamedFromTheFilesMatchTheCpu) {
  // A bf16 and a sharded f16 Qwen3 checkpoint, loaded without weights: the engine streams them from
  // the safetensors through its staging buffers (engine/weight_stream.hpp).
  for (const char* dtype : {"BF16", "F16"}) {
    TempDir dir;
    HfTinySpec spec;
    spec.architecture = "Qwen3ForCausalLM";
    spec.dtype = dtype;
    spec.shards = std::string(dtype) == "F16" ? 3 : 1;
    write_hf_model(dir.path(), spec);
    Model host = load_model(dir.path().string());
    LoadOptions skip;
    skip.skip_weights = true;
    const Model streamed = load_model(dir.path().string(), skip);
    ASSERT_TRUE(streamed.weights.layers.empty());
    expect_same_logits(host, streamed);
  }
}

TEST_F(CudaTransformerTest, Qwen3ShapesMatchCpu) {
  // q_norm / k_norm, GQA 2, half pairing: a small Qwen3-style synthetic model.
  Model m = load_model("synthetic:qwen3-0.6b,seed=2");
  expect_same_logits(m, m);
}

#else

TEST(CudaTransformerTest, BuiltWithoutCuda) { GTEST_SKIP() << "this build has no CUDA backend"; }

#endif

}  // namespace
}  // namespace kvb::test
