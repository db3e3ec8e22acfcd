// 1-D max pooling, stride 1, padded to n outputs (cpu::max_pool): one thread per output, which
// scans in[max(0, j-r) .. min(n-1, j+r)] in ascending order keeping the first maximum, exactly
// like std::max_element (no 0 or -inf padding enters). Neighbouring threads read overlapping
// windows: L1 serves the reuse; the radius is small (3 for SnapKV's kernel of 7).
#include <cuda_runtime.h>

#include "kernels/cuda/compression_cuda.hpp"
#include "kernels/cuda/ops_cuda.hpp"

namespace kvb::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void max_pool_kernel(float* __restrict__ out, const float* __restrict__ in, int n, int radius) {
  const int j = blockIdx.x * kThreads + threadIdx.x;
  if (j >= n) return;
  const int lo = max(0, j - radius), hi = min(n - 1, j + radius);
  float m = in[lo];
  for (int i = lo + 1; i <= hi; ++i) {
    const float v = in[i];
    if (m < v) m = v;
  }
  out[j] = m;
}

}  // namespace

void max_pool(float* out, const float* in, int n, int radius) {
  if (n <= 0) return;
  radius = radius < 0 ? 0 : (radius > n ? n : radius);  // no overflow in j + radius
  max_pool_kernel<<<(n + kThreads - 1) / kThreads, kThreads>>>(out, in, n, radius);
  check(cudaGetLastError(), "max_pool launch");
}

}  // namespace kvb::cuda
