// The CUDA engine's weight streaming, host side (engine/weight_stream.hpp): every stored type into
// bf16 matrices and fp32 vectors, through staging buffers small enough to force many pieces, with
// the pieces alternating between the two buffers and covering the tensor exactly once; and the
// loaders' streaming mode passing every checked tensor without holding any.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "engine/model.hpp"
#include "engine/weight_stream.hpp"
#include "kernels/bf16.hpp"
#include "tests/test_support.hpp"
#include "util/errors.hpp"

namespace kvb {
namespace {

struct Streamed {
  std::vector<uint8_t> device;
  std::vector<const uint8_t*> buffers;  // which buffer each piece came in
};

Streamed stream(const RawTensor& raw, const std::vector<int64_t>& shape, size_t buffer_bytes) {
  std::vector<uint8_t> a(buffer_bytes), b(buffer_bytes);
  Streamed out;
  out.device.assign(device_tensor_bytes(shape), 0xAB);
  std::vector<bool> written(out.device.size(), false);
  stage_for_device(raw, shape, a, b, [&](const uint8_t* piece, uint64_t offset, uint64_t bytes) {
    EXPECT_LE(offset + bytes, out.device.size());
    for (uint64_t i = 0; i < bytes; ++i) {
      EXPECT_FALSE(written[offset + i]) << "byte " << offset + i << " written twice";
      written[offset + i] = true;
      out.device[offset + i] = piece[i];
    }
    out.buffers.push_back(piece);
  });
  for (size_t i = 0; i < written.size(); ++i) EXPECT_TRUE(written[i]) << "byte " << i << " never written";
  for (size_t i = 1; i < out.buffers.size(); ++i) EXPECT_NE(out.buffers[i], out.buffers[i - 1]) << "piece " << i;
  return out;
}

TEST(WeightStream, EveryTypeArrivesAsBf16MatricesAndFp32Vectors) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> d(-3.0f, 3.0f);
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::Q8_0})
    for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{{7, 64}, {1, 32}, {37}, {64}}) {
      uint64_t count = 1;
      for (int64_t s : shape) count *= uint64_t(s);
      if (t == DType::Q8_0 && shape.size() == 1 && count % 32 != 0) continue;
      std::vector<float> values(count);
      for (float& v : values) v = d(rng);
      std::vector<uint8_t> stored(storage_bytes(t, count));
      quantize(stored.data(), t, values.data(), count);
      std::vector<float> wide(count);
      dequantize(wide.data(), t, stored.data(), count);
      const RawTensor raw{"w", t, shape, stored.data(), stored.size()};
      // Buffers of one matrix row (128 bytes of bf16 for 64 columns), 3 fp32 values or one Q8_0
      // block of them: many pieces.
      const Streamed s = stream(raw, shape, shape.size() == 2 ? size_t(shape[1]) * 2 + 1 : t == DType::Q8_0 ? 140 : 12);
      for (uint64_t i = 0; i < count; ++i) {
        if (shape.size() == 2) {
          bf16 got;
          std::memcpy(&got, s.device.data() + 2 * i, 2);
          ASSERT_EQ(got, bf16_from_float(wide[i])) << lower_name(t) << " element " << i;
        } else {
          float got;
          std::memcpy(&got, s.device.data() + 4 * i, 4);
          ASSERT_EQ(got, wide[i]) << lower_name(t) << " element " << i;
        }
      }
    }
}

TEST(WeightStream, ABufferSmallerThanARowIsRefused) {
  std::vector<uint8_t> stored(storage_bytes(DType::BF16, 2 * 64));
  const RawTensor raw{"w", DType::BF16, {2, 64}, stored.data(), stored.size()};
  std::vector<uint8_t> a(100), b(100);
  EXPECT_THROW(stage_for_device(raw, {2, 64}, a, b, [](const uint8_t*, uint64_t, uint64_t) {}), RuntimeFailure);
}

TEST(WeightStream, LoadersPassEveryCheckedTensorAndHoldNone) {
  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  KVB_REQUIRE_DATA(gguf, "models/stories260K/stories260K.gguf");
  for (const std::filesystem::path& path : {bin, gguf}) {
    LoadOptions held;
    held.hash_files = false;
    const Model full = load_model(path.string(), held);
    std::vector<WeightSlot> seen;
    const WeightVisitor visit = [&](const WeightSlot& slot, const RawTensor& raw) {
      // The bytes passed are the file's, equal to what a held load keeps.
      const Tensor& kept = weight_of(full.weights, slot.role, slot.layer);
      EXPECT_EQ(to_f32(load_tensor(raw, slot.shape, "x")), to_f32(kept)) << to_string(slot.role) << " " << slot.layer;
      seen.push_back(slot);
    };
    LoadOptions streaming;
    streaming.stream_weights = &visit;
    const Model m = load_model(path.string(), streaming);
    EXPECT_TRUE(m.weights.layers.empty());
    EXPECT_EQ(m.weights.bytes(), 0u);
    EXPECT_EQ(seen.size(), weight_slots(full.config).size()) << path;
  }
}

}  // namespace
}  // namespace kvb
