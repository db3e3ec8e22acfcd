// Capacity planning: the device memory model by hand on a small config, and the command.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/capacity.hpp"
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

TEST(Capacity, KvBytesPerSequenceFollowTheMethodsPeak) {
  const ModelConfig c = small_config();
  DeviceMemoryModel mem;
  mem.device_bytes = 1ull << 30;
  PolicyConfig full;
  PolicyConfig tri;
  tri.method = "triattention";
  tri.budget = 100;
  tri.divide_length = 28;
  const uint64_t slot = uint64_t(c.head_dim) * 2 * 2 + 4;  // bf16 key + value, int32 position
  EXPECT_EQ(device_bytes_per_slot(c, tri), slot);
  PolicyConfig h2o = tri;
  h2o.method = "h2o";
  EXPECT_EQ(device_bytes_per_slot(c, h2o), slot + 4);  // + the accumulated attention score
  const CapacityPlan f = plan_capacity(c, full, 1000, 10, mem);
  EXPECT_EQ(f.slots_per_head, 1000);
  EXPECT_EQ(f.kv_bytes_per_sequence, 1000 * slot * c.n_layers * c.n_kv_heads);
  const CapacityPlan t = plan_capacity(c, tri, 1000, 10, mem);
  EXPECT_EQ(t.slots_per_head, 128);  // budget + divide length
  EXPECT_EQ(t.kv_bytes_per_sequence, 128 * slot * c.n_layers * c.n_kv_heads);
  // A prompt longer than budget + divide length is held whole; a short context never reaches the budget.
  // TriAttention never compresses at the prefill, so the first decode token joins that prompt.
  EXPECT_EQ(plan_capacity(c, tri, 1000, 300, mem).slots_per_head, 301);
  PolicyConfig streaming = tri;
  streaming.method = "streaming";
  EXPECT_EQ(plan_capacity(c, streaming, 1000, 300, mem).slots_per_head, 300);
  EXPECT_EQ(plan_capacity(c, tri, 50, 10, mem).slots_per_head, 50);
  // Weights in bf16; the sequences that fit are what is left after weights and shared scratch.
  EXPECT_EQ(t.weight_bytes, uint64_t(c.parameter_count()) * 2);
  const uint64_t per_sequence = t.kv_bytes_per_sequence + t.activation_bytes_per_sequence;
  EXPECT_EQ(t.max_sequences, int64_t((t.usable_bytes - t.weight_bytes - t.shared_bytes) / per_sequence));
  EXPECT_GT(t.max_sequences, f.max_sequences);
  EXPECT_EQ(t.usable_bytes, uint64_t(0.9 * double(1ull << 30)));
  // SnapKV's per-sequence query ring: every layer's queries of the last observation window.
  PolicyConfig snap = tri;
  snap.method = "snapkv";
  const CapacityPlan s = plan_capacity(c, snap, 1000, 10, mem);
  EXPECT_EQ(s.activation_bytes_per_sequence - t.activation_bytes_per_sequence,
            uint64_t(c.n_layers) * c.q_dim() * snap.observation_window * 4);
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
  snap.method = "snapkv";
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
  // Qwen3-8B: 36 layers x 8 KV heads x (128 x 2 x 2 + 4) bytes per token.
  EXPECT_EQ(full["kv_bytes_per_sequence"].get<uint64_t>(), 32768ull * 36 * 8 * 516);
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
