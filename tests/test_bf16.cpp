// kvb::bf16_from_float / float_from_bf16 (kernels/bf16.hpp), the host side of every bf16 weight and
// KV-cache value and the reference the CUDA conversions are compared with bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>

#include "kernels/bf16.hpp"

namespace kvb {
namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

bool bf16_is_nan(bf16 b) { return (b & 0x7f80u) == 0x7f80u && (b & 0x7fu) != 0; }

TEST(Bf16, ExactValuesConvertBothWays) {
  EXPECT_EQ(bf16_from_float(1.0f), 0x3f80);
  EXPECT_EQ(bf16_from_float(-3.0f), 0xc040);
  EXPECT_EQ(bf16_from_float(0.0f), 0x0000);
  EXPECT_EQ(float_from_bf16(0x3f80), 1.0f);
  EXPECT_EQ(float_from_bf16(0xc040), -3.0f);
  EXPECT_EQ(float_from_bf16(0x4049), 3.140625f);
}

TEST(Bf16, HalfwayCasesRoundToEven) {
  // 1 + 2^-8 lies halfway between 1 (0x3f80, even) and 1 + 2^-7 (0x3f81): down to the even one.
  EXPECT_EQ(bf16_from_float(from_bits(0x3f808000u)), 0x3f80);
  // Halfway between 0x3f81 (odd) and 0x3f82 (even): up.
  EXPECT_EQ(bf16_from_float(from_bits(0x3f818000u)), 0x3f82);
  // Either side of halfway goes to the nearer one.
  EXPECT_EQ(bf16_from_float(from_bits(0x3f807fffu)), 0x3f80);
  EXPECT_EQ(bf16_from_float(from_bits(0x3f808001u)), 0x3f81);
  // Negative values round the magnitude the same way.
  EXPECT_EQ(bf16_from_float(from_bits(0xbf808000u)), 0xbf80);
  EXPECT_EQ(bf16_from_float(from_bits(0xbf818000u)), 0xbf82);
  // A carry out of the mantissa moves to the next binade: 2 - 2^-8 is halfway between 0x3fff (odd)
  // and 2.0 (0x4000).
  EXPECT_EQ(bf16_from_float(from_bits(0x3fff8000u)), 0x4000);
  EXPECT_EQ(float_from_bf16(0x4000), 2.0f);
}

TEST(Bf16, NanStaysNan) {
  const uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu, 0xffffffffu,
                           0x7f80ffffu, 0x7fa00000u, 0x7f810000u};
  for (uint32_t u : nans) {
    const bf16 b = bf16_from_float(from_bits(u));
    EXPECT_TRUE(bf16_is_nan(b)) << std::hex << "float bits 0x" << u << " gave 0x" << b;
    EXPECT_EQ(b & 0x8000u, (u >> 16) & 0x8000u) << std::hex << "sign of 0x" << u;
    EXPECT_NE(b & 0x40u, 0u) << std::hex << "quiet bit of 0x" << u;  // quiet NaN
    EXPECT_TRUE(std::isnan(float_from_bf16(b)));
  }
  // The signalling NaN whose payload sits only in the dropped low bits must not become infinity.
  EXPECT_EQ(bf16_from_float(from_bits(0x7f800001u)), 0x7fc0);
  EXPECT_EQ(bf16_from_float(std::numeric_limits<float>::quiet_NaN()), 0x7fc0);
}

TEST(Bf16, InfinityStaysInfinity) {
  EXPECT_EQ(bf16_from_float(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(bf16_from_float(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(float_from_bf16(0x7f80), std::numeric_limits<float>::infinity());
  EXPECT_EQ(float_from_bf16(0xff80), -std::numeric_limits<float>::infinity());
}

TEST(Bf16, OverflowRoundsToInfinity) {
  const float max = std::numeric_limits<float>::max();  // 0x7f7fffff: above bf16's largest finite
  EXPECT_EQ(bf16_from_float(max), 0x7f80);
  EXPECT_EQ(bf16_from_float(-max), 0xff80);
  // bf16's largest finite value is 0x7f7f; halfway above it (odd mantissa) rounds to infinity,
  // just below halfway stays finite.
  EXPECT_EQ(bf16_from_float(from_bits(0x7f7f7fffu)), 0x7f7f);
  EXPECT_EQ(bf16_from_float(from_bits(0x7f7f8000u)), 0x7f80);
  EXPECT_EQ(bf16_from_float(from_bits(0x7f7f0000u)), 0x7f7f);
  EXPECT_TRUE(std::isfinite(float_from_bf16(0x7f7f)));
}

TEST(Bf16, NegativeZeroKeepsItsSign) {
  EXPECT_EQ(bf16_from_float(-0.0f), 0x8000);
  const float z = float_from_bf16(0x8000);
  EXPECT_EQ(z, 0.0f);
  EXPECT_TRUE(std::signbit(z));
  EXPECT_FALSE(std::signbit(float_from_bf16(0x0000)));
  // A tiny negative value rounds to negative zero, not positive.
  EXPECT_EQ(bf16_from_float(-std::numeric_limits<float>::denorm_min()), 0x8000);
}

TEST(Bf16, SubnormalsRoundLikeNormals) {
  EXPECT_EQ(bf16_from_float(from_bits(0x00000001u)), 0x0000);  // float's smallest subnormal
  EXPECT_EQ(bf16_from_float(from_bits(0x00010000u)), 0x0001);  // bf16's smallest subnormal, exact
  EXPECT_EQ(bf16_from_float(from_bits(0x00008000u)), 0x0000);  // halfway to 0x0001: to even (0)
  EXPECT_EQ(bf16_from_float(from_bits(0x00018000u)), 0x0002);  // halfway, odd below: up
  EXPECT_EQ(bf16_from_float(from_bits(0x00008001u)), 0x0001);
  EXPECT_EQ(bf16_from_float(from_bits(0x007fffffu)), 0x0080);  // largest subnormal rounds to the smallest normal
  EXPECT_EQ(float_from_bf16(0x0001), std::ldexp(1.0f, -133));
  EXPECT_EQ(float_from_bf16(0x8001), -std::ldexp(1.0f, -133));
}

TEST(Bf16, EveryBf16RoundTrips) {
  for (uint32_t b = 0; b <= 0xffffu; ++b) {
    const float f = float_from_bf16(static_cast<bf16>(b));
    EXPECT_EQ(bits_of(f), b << 16) << std::hex << "0x" << b;
    if (bf16_is_nan(static_cast<bf16>(b))) {
      EXPECT_TRUE(bf16_is_nan(bf16_from_float(f))) << std::hex << "0x" << b;
    } else {
      EXPECT_EQ(bf16_from_float(f), b) << std::hex << "0x" << b;
    }
  }
}

// For random finite bit patterns, the result is the nearer of the two bf16 values around the float
// (compared in double, where both distances are exact), the even one on a tie.
TEST(Bf16, RandomFloatsRoundToNearestEven) {
  std::mt19937 rng(77);
  std::uniform_int_distribution<uint32_t> bits;
  for (int n = 0; n < 1'000'000; ++n) {
    const uint32_t u = bits(rng);
    const float f = from_bits(u);
    if (!std::isfinite(f)) continue;
    const bf16 got = bf16_from_float(f);
    const uint32_t below = u >> 16;  // truncation: the neighbour towards zero
    const uint32_t above = below + 1;  // away from zero (may be infinity)
    const double d_below = std::fabs(double(f) - double(float_from_bf16(static_cast<bf16>(below))));
    const double away = double(float_from_bf16(static_cast<bf16>(above)));
    // Infinity is where the next binade would start: 2^128 as a finite stand-in for distances.
    const double away_value = std::isinf(away) ? std::copysign(std::ldexp(1.0, 128), away) : away;
    const double d_above = std::fabs(double(f) - away_value);
    uint32_t want;
    if (d_below < d_above) want = below;
    else if (d_above < d_below) want = above;
    else want = (below & 1u) == 0 ? below : above;
    ASSERT_EQ(got, want) << std::hex << "float bits 0x" << u;
  }
}

}  // namespace
}  // namespace kvb
