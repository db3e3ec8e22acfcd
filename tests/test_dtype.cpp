// Weight storage types (kernels/dtype.hpp) and the matmul over them (kernels/cpu/matmul_cpu.cpp):
// conversions against the hardware's where it has them and against exhaustive round trips; the
// matmul in each stored type against the fp32 one over the widened weights, on awkward sizes and
// misaligned data.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "kernels/dtype.hpp"
#include "kernels/ops.hpp"

namespace kvb {
namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(Dtype, EveryF16RoundTripsThroughFp32) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
    const float f = f16_to_f32(uint16_t(h));
    if (nan) {
      ASSERT_TRUE(std::isnan(f)) << h;
      ASSERT_TRUE(std::isnan(f16_to_f32(f16_from_f32(f)))) << h;
    } else {
      ASSERT_EQ(f16_from_f32(f), h) << h;
    }
  }
}

TEST(Dtype, F16RoundsToNearestEven) {
  // Halfway cases between neighbours round to the even one; values past 65520 overflow; halfway
  // between subnormals too.
  EXPECT_EQ(f16_from_f32(1.0f + 0x1p-11f), 0x3C00);                   // 1 + half an ulp: to 1
  EXPECT_EQ(f16_from_f32(1.0f + 3 * 0x1p-11f), 0x3C02);               // 1 + 1.5 ulp: to 1 + 2 ulp
  EXPECT_EQ(f16_from_f32(65519.0f), 0x7BFF);
  EXPECT_EQ(f16_from_f32(65520.0f), 0x7C00);
  EXPECT_EQ(f16_from_f32(-1e10f), 0xFC00);
  EXPECT_EQ(f16_from_f32(0x1p-25f), 0x0000);                          // half the smallest subnormal: to 0
  EXPECT_EQ(f16_from_f32(3 * 0x1p-25f), 0x0002);                      // 1.5 steps: to 2
  EXPECT_EQ(f16_from_f32(-0.0f), 0x8000);
#if defined(__F16C__)
  // And against the hardware conversion over random bit patterns of every exponent.
  std::mt19937 rng(3);
  for (int i = 0; i < 2000000; ++i) {
    const float f = from_bits(rng());
    if (std::isnan(f)) continue;
    ASSERT_EQ(f16_from_f32(f), _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT)) << f;
  }
#endif
}

// `count` random weights stored as `t`, starting one byte past an aligned address.
struct StoredWeights {
  std::vector<uint8_t> buffer;
  std::vector<float> widened;  // what they are in fp32
  const uint8_t* data() const { return buffer.data() + 1; }
};

StoredWeights random_weights(DType t, int out, int in, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> values(size_t(out) * in);
  for (float& v : values) v = d(rng);
  StoredWeights w;
  w.buffer.resize(storage_bytes(t, values.size()) + 1);
  quantize(w.buffer.data() + 1, t, values.data(), values.size());
  w.widened.resize(values.size());
  dequantize(w.widened.data(), t, w.data(), values.size());
  return w;
}

TEST(StoredMatmul, F16AndBf16GiveTheFp32MatmulOverTheirValues) {
  std::mt19937 rng(11);
  for (DType t : {DType::BF16, DType::F16, DType::F32})
    for (auto [rows, in, out] : std::vector<std::tuple<int, int, int>>{
             {1, 1, 1}, {1, 7, 5}, {3, 9, 9}, {2, 64, 172}, {5, 33, 4}, {1, 1000, 515}, {6, 256, 301}, {1, 1024, 77}}) {
      const StoredWeights w = random_weights(t, out, in, rng);
      std::vector<float> x(size_t(rows) * in);
      for (float& v : x) v = std::uniform_real_distribution<float>(-2, 2)(rng);
      std::vector<float> got(size_t(rows) * out, std::nanf("")), want(got.size(), std::nanf(""));
      cpu::matmul(got.data(), x.data(), cpu::WeightMatrix{t, w.data(), out, in}, rows);
      cpu::matmul(want.data(), x.data(), w.widened.data(), rows, in, out);
      // Bit for bit over whole 8-lane steps; a scalar tail may be contracted differently.
      const float tolerance = in % 8 == 0 ? 0.0f : 1e-6f * float(in);
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], want[i], tolerance) << lower_name(t) << " rows " << rows << " in " << in << " out " << out << " at " << i;
    }
}

TEST(StoredMatmul, Q8_0MatchesTheDequantizedMatrixToFp32Rounding) {
  std::mt19937 rng(12);
  for (auto [rows, in, out] : std::vector<std::tuple<int, int, int>>{
           {1, 32, 1}, {1, 64, 5}, {3, 96, 9}, {2, 1024, 173}, {7, 320, 64}}) {
    const StoredWeights w = random_weights(DType::Q8_0, out, in, rng);
    std::vector<float> x(size_t(rows) * in);
    for (float& v : x) v = std::uniform_real_distribution<float>(-2, 2)(rng);
    std::vector<float> got(size_t(rows) * out, std::nanf(""));
    cpu::matmul(got.data(), x.data(), cpu::WeightMatrix{DType::Q8_0, w.data(), out, in}, rows);
    for (int r = 0; r < rows; ++r)
      for (int o = 0; o < out; ++o) {
        double ref = 0, magnitude = 0;
        for (int i = 0; i < in; ++i) {
          const double p = double(x[size_t(r) * in + i]) * w.widened[size_t(o) * in + i];
          ref += p;
          magnitude += std::fabs(p);
        }
        ASSERT_NEAR(got[size_t(r) * out + o], ref, 1e-6 * magnitude + 1e-7)
            << "rows " << rows << " in " << in << " out " << out << " at " << r << "," << o;
      }
  }
}

TEST(StoredMatmul, DequantizeRowIsThatRowWidened) {
  std::mt19937 rng(13);
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::Q8_0}) {
    const int out = 5, in = 64;
    const StoredWeights w = random_weights(t, out, in, rng);
    std::vector<float> row(in);
    for (int r = 0; r < out; ++r) {
      cpu::dequantize_row(row.data(), cpu::WeightMatrix{t, w.data(), out, in}, r);
      ASSERT_EQ(row, std::vector<float>(w.widened.begin() + r * in, w.widened.begin() + (r + 1) * in)) << lower_name(t);
    }
  }
}

TEST(StoredMatmul, Q8_0QuantisesAsTheReferenceDoes) {
  // A block's scale is max|x| / 127 (as f16), each value round(x / scale): the extreme value
  // maps to +-127 and zero blocks stay zero.
  std::vector<float> x(64, 0.0f);
  for (int i = 0; i < 32; ++i) x[i] = 0.01f * float(i - 16);
  uint8_t block[2 * kQ8BlockBytes];
  quantize(block, DType::Q8_0, x.data(), 64);
  uint16_t h;
  std::memcpy(&h, block, 2);
  EXPECT_EQ(h, f16_from_f32(0.16f / 127.0f));
  EXPECT_EQ(int8_t(block[2]), -127);  // -0.16
  EXPECT_EQ(int8_t(block[2 + 16]), 0);
  std::memcpy(&h, block + kQ8BlockBytes, 2);
  EXPECT_EQ(h, 0);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(block[kQ8BlockBytes + 2 + i], 0);
}

}  // namespace
}  // namespace kvb
