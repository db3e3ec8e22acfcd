// Every CUDA op against its CPU op on random inputs of awkward sizes, outputs poisoned first so
// an unwritten element fails. Skips where no GPU answers.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/gpu_info.hpp"
#include "test_support.hpp"
#include "kernels/ops.hpp"
#ifdef KVBENCH_HAVE_CUDA
#include "kernels/cuda/device_buffer.hpp"
#include "kernels/cuda/ops_cuda.hpp"
#endif

namespace kvb {
namespace {

#ifdef KVBENCH_HAVE_CUDA

class CudaOps : public ::kvb::test::GpuTest {};

std::vector<float> random_vector(size_t n, std::mt19937& rng, float lo = -2.0f, float hi = 2.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST_F(CudaOps, RmsnormMatchesCpu) {
  std::mt19937 rng(1234);
  for (auto [rows, n] : std::vector<std::pair<int, int>>{{1, 1}, {3, 7}, {5, 64}, {17, 255}, {2, 257}, {9, 4096}, {1, 5121}}) {
    auto x = random_vector(size_t(rows) * n, rng);
    auto w = random_vector(n, rng, 0.5f, 1.5f);
    std::vector<float> expected(x.size());
    cpu::rmsnorm(expected.data(), x.data(), w.data(), rows, n, 1e-5f);

    cuda::DeviceBuffer<float> dx(x), dw(w), dy(x.size(), "y");
    dy.fill(0xff);  // NaN: an element the kernel does not write fails below
    cuda::rmsnorm(dy.get(), dx.get(), dw.get(), rows, n, 1e-5f);
    cuda::synchronize("rmsnorm test");
    const std::vector<float> got = dy.download();
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_FALSE(std::isnan(got[i])) << "unwritten or NaN at " << i << " (rows " << rows << ", n " << n << ")";
      ASSERT_NEAR(got[i], expected[i], 1e-5f * std::max(1.0f, std::fabs(expected[i])))
          << "at " << i << " (rows " << rows << ", n " << n << ")";
    }
  }
}

#else

TEST(CudaOps, BuiltWithoutCuda) { GTEST_SKIP() << "this build has no CUDA backend (nvcc not found at configure time)"; }

#endif

}  // namespace
}  // namespace kvb
