// z-score in place (cpu::zscore): x = (x - mean) / max(population std, 1e-6).
//
// One block of 1024 threads whatever n (a score vector of one head: a few thousand values).
// Two passes in double, like the CPU: each thread sums a strided slice, the block reduces the
// partial sums in a fixed order (block_reduce), so the mean and the variance are reproducible
// bit for bit; the third pass writes (x - mean) / std rounded to fp32.
#include <cuda_runtime.h>

#include "kernels/cuda/compression_common.cuh"
#include "kernels/cuda/compression_cuda.hpp"

namespace kvb::cuda {

namespace {

using namespace compression_detail;

constexpr int kThreads = 1024;

__global__ void __launch_bounds__(kThreads) zscore_kernel(float* x, int n) {
  __shared__ double buf[32];
  double s = 0.0;
  for (int i = threadIdx.x; i < n; i += kThreads) s += x[i];
  const double mean = block_reduce(s, 0.0, SumOp{}, buf) / n;
  double v = 0.0;
  for (int i = threadIdx.x; i < n; i += kThreads) {
    const double dx = x[i] - mean;
    v += dx * dx;
  }
  const double sd = fmax(sqrt(block_reduce(v, 0.0, SumOp{}, buf) / n), 1e-6);
  // Every read of the passes above happened before block_reduce's barriers; each thread now
  // rewrites only the elements it reads.
  for (int i = threadIdx.x; i < n; i += kThreads) x[i] = static_cast<float>((x[i] - mean) / sd);
}

}  // namespace

void zscore(float* x, int n) {
  if (n <= 0) return;
  zscore_kernel<<<1, kThreads>>>(x, n);
  check(cudaGetLastError(), "zscore launch");
}

}  // namespace kvb::cuda
