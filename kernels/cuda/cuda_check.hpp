#pragma once
// Error checks of the CUDA backend, after nvbench's and ggml's: KVB_CUDA_CHECK(call) throws
// RuntimeFailure "CUDA error <name> (<description>) in <call> at <file>:<line>" unless the runtime
// call returned cudaSuccess; KVB_CUDA_LAUNCH_CHECK() does the same for the last kernel launch
// (a bad configuration shows at once; a fault inside the kernel shows at the next synchronising
// call, which is checked too). A caller's bad argument is not a CUDA error: fail_argument throws
// RuntimeFailure "CUDA <op>: <what>" (the host code validated its input before, so reaching one is a
// bug). Usable from .cu files (the messages are built on the host, where fmt compiles).
namespace kvb::cuda {

[[noreturn]] void fail_call(int err, const char* call, const char* file, int line);
[[noreturn]] void fail_argument(const char* op, const char* what);

inline void check_call(int err, const char* call, const char* file, int line) {
  if (err != 0) fail_call(err, call, file, line);
}

}  // namespace kvb::cuda

#define KVB_CUDA_CHECK(call) ::kvb::cuda::check_call(static_cast<int>(call), #call, __FILE__, __LINE__)
#define KVB_CUDA_LAUNCH_CHECK() \
  ::kvb::cuda::check_call(static_cast<int>(cudaGetLastError()), "kernel launch", __FILE__, __LINE__)
