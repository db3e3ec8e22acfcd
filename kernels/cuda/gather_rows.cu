// out[i] = rows[index[i]] for bf16 rows of head_dim: a grid-stride copy, 32 bits (two bf16) at a
// time when head_dim is even and both pointers are 4-byte aligned (always true of cudaMalloc'd
// caches), 16 bits otherwise. Consecutive threads copy consecutive words of a row: coalesced.
// out must not overlap rows.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/compression_cuda.hpp"
#include "kernels/cuda/ops_cuda.hpp"

namespace kvb::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 8192;

template <class Word>
__global__ void gather_rows_kernel(Word* __restrict__ out, const Word* __restrict__ rows,
                                   const int32_t* __restrict__ index, int n, int words_per_row) {
  const size_t total = size_t(n) * words_per_row;
  for (size_t e = size_t(blockIdx.x) * kThreads + threadIdx.x; e < total; e += size_t(gridDim.x) * kThreads) {
    const size_t i = e / words_per_row, c = e % words_per_row;
    out[e] = rows[size_t(index[i]) * words_per_row + c];
  }
}

}  // namespace

void gather_rows(bf16* out, const bf16* rows, const int32_t* index, int n, int head_dim) {
  if (n <= 0 || head_dim <= 0) return;
  const bool wide = head_dim % 2 == 0 && reinterpret_cast<uintptr_t>(out) % 4 == 0 &&
                    reinterpret_cast<uintptr_t>(rows) % 4 == 0;
  const int words = wide ? head_dim / 2 : head_dim;
  const size_t total = size_t(n) * words;
  const int blocks = static_cast<int>(std::min<size_t>((total + kThreads - 1) / kThreads, kMaxBlocks));
  if (wide)
    gather_rows_kernel<<<blocks, kThreads>>>(reinterpret_cast<uint32_t*>(out), reinterpret_cast<const uint32_t*>(rows),
                                             index, n, words);
  else
    gather_rows_kernel<<<blocks, kThreads>>>(out, rows, index, n, words);
  check(cudaGetLastError(), "gather_rows launch");
}

}  // namespace kvb::cuda
