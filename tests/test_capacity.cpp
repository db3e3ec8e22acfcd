// Capacity planning: the device memory model by hand on a small config, and the command.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "run/capacity.hpp"
#include "engine/model.hpp"
#include "kernels/gpu_info.hpp"
#include "test_support.hpp"
#include "util/byte_size.hpp"
#include "util/errors.hpp"

namespace kvb::test {
namespace {

ModelConfig small_config() {
  ModelConfig c = synthetic_preset_config("tiny");
  return c;
}

// One sequence's cache as the engine lays it out, by hand: keys and values (bf16), positions and
// lengths (int32), H2O's slot scores and SnapKV's query window (fp32), each array 256-byte aligned.
uint64_t aligned(uint64_t bytes) { return (bytes + 255) / 256 * 256; }
uint64_t cache_by_hand(const ModelConfig& c, uint64_t slots_per_head, bool scores, int window) {
  const uint64_t heads = uint64_t(c.n_layers) * c.n_kv_heads, slots = heads * slots_per_head;
  return 2 * aligned(slots * c.head_dim * 2) + aligned(slots * 4) + aligned(heads * 4) + (scores ? aligned(slots * 4) : 0) +
         (window > 0 ? aligned(uint64_t(c.n_layers) * c.q_dim() * window * 4) : 0);
}

TEST(Capacity, KvBytesPerSequenceFollowTheMethodsPeak) {
  const ModelConfig c = small_config();
  DeviceMemoryModel mem;
  mem.device_bytes = 1ull << 30;
  PolicyConfig full;
  PolicyConfig tri;
  tri.method = Method::TriAttention;
  tri.budget = 100;
  tri.divide_length = 28;
  const CapacityPlan f = plan_capacity(c, full, 1000, 10, mem);
  EXPECT_EQ(f.slots_per_head, 1000);
  EXPECT_EQ(f.kv_bytes_per_sequence, cache_by_hand(c, 1000, false, 0));
  const CapacityPlan t = plan_capacity(c, tri, 1000, 10, mem);
  EXPECT_EQ(t.slots_per_head, 128);  // budget + divide length
  EXPECT_EQ(t.kv_bytes_per_sequence, cache_by_hand(c, 128, false, 0));
  PolicyConfig h2o = tri;
  h2o.method = Method::H2O;
  EXPECT_EQ(plan_capacity(c, h2o, 1000, 10, mem).kv_bytes_per_sequence, cache_by_hand(c, 128, true, 0));
  PolicyConfig snap = tri;
  snap.method = Method::SnapKV;
  EXPECT_EQ(plan_capacity(c, snap, 1000, 10, mem).kv_bytes_per_sequence, cache_by_hand(c, 128, false, 8));
  // A prompt longer than budget + divide length is held whole; a short context never reaches the budget.
  // TriAttention never compresses at the prefill, so the first decode token joins that prompt.
  EXPECT_EQ(plan_capacity(c, tri, 1000, 300, mem).slots_per_head, 301);
  PolicyConfig streaming = tri;
  streaming.method = Method::Streaming;
  EXPECT_EQ(plan_capacity(c, streaming, 1000, 300, mem).slots_per_head, 300);
  streaming.trigger = Trigger::EveryStep;
  EXPECT_EQ(plan_capacity(c, streaming, 1000, 10, mem).slots_per_head, 101);  // budget + the new token
  EXPECT_EQ(plan_capacity(c, tri, 50, 10, mem).slots_per_head, 50);
  // What fits is what the engine's own layout says: n sequences fit, n + 1 do not.
  EXPECT_EQ(t.usable_bytes, uint64_t(0.9 * double(1ull << 30)));
  for (const PolicyConfig& p : {full, tri}) {
    const CapacityPlan plan = plan_capacity(c, p, 1000, 10, mem);
    const int cap = static_cast<int>(plan.slots_per_head);
    auto bytes = [&](int n) {
      return engine_fixed_bytes(c, c.tied_embeddings, engine_shape_for(c, {p}, n, cap, mem.prefill_chunk)) +
             cuda_cache_bytes(c, n, cap, cache_extras(p));
    };
    ASSERT_GT(plan.max_sequences, 0);
    EXPECT_LE(bytes(int(plan.max_sequences)), plan.usable_bytes);
    EXPECT_GT(bytes(int(plan.max_sequences) + 1), plan.usable_bytes);
  }
  EXPECT_GT(t.max_sequences, f.max_sequences);
  // Weights as the engine holds them: bf16 matrices, fp32 norms.
  EXPECT_GE(t.weight_bytes, uint64_t(c.parameter_count()) * 2);
  EXPECT_LT(t.weight_bytes, uint64_t(c.parameter_count()) * 2 + (1u << 20));
}

TEST(Capacity, NothingFitsWhenTheWeightsDoNot) {
  DeviceMemoryModel mem;
  mem.device_bytes = 1ull << 30;  // 1 GiB against 16 GB of bf16 weights
  EXPECT_EQ(plan_capacity(synthetic_preset_config("qwen3-8b"), PolicyConfig{}, 1024, 0, mem).max_sequences, 0);
}

TEST(Capacity, BadInputIsAnInputError) {
  DeviceMemoryModel mem;
  mem.device_bytes = 1ull << 30;
  PolicyConfig snap;
  snap.method = Method::SnapKV;
  snap.budget = 8;  // not above the observation window
  EXPECT_THROW(plan_capacity(small_config(), snap, 100, 0, mem), InputError);
  EXPECT_THROW(plan_capacity(small_config(), PolicyConfig{}, 0, 0, mem), InputError);
  EXPECT_THROW(plan_capacity(small_config(), PolicyConfig{}, 10, 11, mem), InputError);
  mem.usable_fraction = 1.5;
  EXPECT_THROW(plan_capacity(small_config(), PolicyConfig{}, 10, 0, mem), InputError);
}

TEST(ByteSize, ParsesUnitsAndRefusesNonsense) {
  EXPECT_EQ(parse_byte_size("80GiB", "--gpu-memory"), 80ull << 30);
  EXPECT_EQ(parse_byte_size("80 gb", "--gpu-memory"), 80000000000ull);
  EXPECT_EQ(parse_byte_size("1.5KiB", "--gpu-memory"), 1536u);
  EXPECT_EQ(parse_byte_size("4096", "--gpu-memory"), 4096u);
  for (const char* bad : {"", "GiB", "80 parsecs", "-1GiB", "0", "nan"})
    EXPECT_THROW(parse_byte_size(bad, "--gpu-memory"), InputError) << bad;
}

TEST(CliCapacity, PlansForAGivenMemoryWithoutLoadingWeights) {
  // synthetic:qwen3-8b would need 32 GB to generate; capacity reads only its config.
  CommandResult r = run_kvbench("capacity --gpu-memory 80GiB --context 32768 --method full,triattention --budget 3072 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto doc = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  ASSERT_EQ(doc["methods"].size(), 2u);
  const auto& full = doc["methods"][0];
  const auto& tri = doc["methods"][1];
  // Qwen3-8B: 36 layers x 8 KV heads x (128 x 2 x 2 + 4) bytes per token, and the lengths.
  EXPECT_EQ(full["kv_bytes_per_sequence"].get<uint64_t>(), 32768ull * 36 * 8 * 516 + 1280);
  EXPECT_EQ(tri["slots_per_head"], 3200);
  EXPECT_GT(tri["max_sequences"].get<int64_t>(), 8 * full["max_sequences"].get<int64_t>());
}

TEST(CliCapacity, WithoutAGpuAsksForGpuMemory) {
  if (!query_gpus().gpus.empty()) GTEST_SKIP() << "a GPU answers here: capacity uses it";
  CommandResult r = run_kvbench("capacity --context 1024");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--gpu-memory"), std::string::npos) << r.output;
}

TEST(CliCapacity, BadFlagsExitTwo) {
  for (const char* args : {"capacity --gpu-memory lots", "capacity --gpu-memory 80GiB --context 0",
                           "capacity --gpu-memory 80GiB --method snapkv --budget 4", "capacity --gpu-memory 80GiB -m /nonexistent"}) {
    CommandResult r = run_kvbench(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
  }
}

}  // namespace
}  // namespace kvb::test
