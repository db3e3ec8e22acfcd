#pragma once
// CUDA versions of the ops in kernels/ops.hpp, same semantics, device pointers, fp32 for now
// (bf16 storage comes with the CUDA backend). Errors throw RuntimeFailure naming the op.
#include <cstddef>
#include <cstdint>

namespace kvb::cuda {

// y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight, per row of n (y may alias x)
void rmsnorm(float* y, const float* x, const float* weight, int rows, int n, float eps);

// Minimal device memory helpers for ops and their tests.
float* device_alloc(size_t count, const char* what);
void device_free(float* p);
void copy_to_device(float* dst, const float* src, size_t count);
void copy_to_host(float* dst, const float* src, size_t count);
void synchronize(const char* what);

// Throws RuntimeFailure("CUDA <what>: <error string>") unless err is cudaSuccess. Kernels (.cu)
// report through this: fmt, which builds the messages, does not compile under nvcc in C++20.
void check(int err, const char* what);

}  // namespace kvb::cuda
