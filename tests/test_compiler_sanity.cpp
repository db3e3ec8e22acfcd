// The compiler flags kvbench is built with must compute plain arithmetic right. GCC 12 with
// -march=native on AVX-512 machines miscompiled this loop (SLP vectorization turned the four
// results into four copies of the first); CMakeLists.txt turns AVX-512 off for such compilers.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace kvb::test {
namespace {

TEST(CompilerSanity, ExpOfASmallConstantVector) {
  std::vector<double> x = {0.4, 0.4, 0.0, 0.0};
  std::vector<double> p(4);
  double z = 0;
  for (size_t i = 0; i < 4; ++i) z += p[i] = std::exp(x[i] - 0.4);
  EXPECT_DOUBLE_EQ(p[0], 1.0);
  EXPECT_DOUBLE_EQ(p[1], 1.0);
  EXPECT_NEAR(p[2], std::exp(-0.4), 1e-15);
  EXPECT_NEAR(p[3], std::exp(-0.4), 1e-15);
  EXPECT_NEAR(z, 2.0 + 2.0 * std::exp(-0.4), 1e-14);
}

}  // namespace
}  // namespace kvb::test
