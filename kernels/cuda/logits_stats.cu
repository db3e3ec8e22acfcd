// Logits statistics for replay: one block per row, two strided passes over the row(s), each closed
// by a block reduction (warp shuffles, then one warp over the per-warp partials):
//   1. max and argmax of method (and full); ties go to the lower token id, as the CPU's argmax
//      (first strictly greater) does;
//   2. in double: S = sum exp(x - max) for each row (log-sum-exp = max + log S) and, with a reference,
//      T = sum exp(full - max_f) * (full - method). Then
//        KL(full || method) = sum p_full * (logp_full - logp_method)
//                           = sum p_full * ((full - method) - (lse_f - lse_m))
//                           = T / S_f - (lse_f - lse_m)            (the p_full sum to 1)
//      which needs no third pass. Identical rows give T = 0 and equal lse, so exactly 0; a token with
//      p_full = 0 adds nothing (no 0 * inf).
// The row is read twice; it is at most ~600 KB, so the second pass mostly hits L2.
//
// Everything after pass 1 is double, exp included, like the CPU's compare_logits: with fp32 expf the
// 1-ulp error of each exponential (~6e-8) moves lse_f - lse_m, hence KL, by ~1e-8 absolute, which is
// percent-level on the small KLs of near-lossless methods. The price is FP64 throughput: a 152k vocab
// row with a reference is ~300k double exps, some 60 us on one H100 SM (rows run on separate SMs).
// Only the scalars of LogitStats are written; a target outside [0, vocab) gives NaN log-probs.
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/ops_cuda.hpp"

namespace kvb::cuda {

namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;

struct ArgMax {
  float v;
  int i;
};

struct Sums {
  double s_m, s_f, t;
};

__device__ __forceinline__ float shfl(float v, int off) { return __shfl_xor_sync(0xffffffffu, v, off); }
__device__ __forceinline__ int shfl(int v, int off) { return __shfl_xor_sync(0xffffffffu, v, off); }
__device__ __forceinline__ double shfl(double v, int off) { return __shfl_xor_sync(0xffffffffu, v, off); }
__device__ __forceinline__ ArgMax shfl(ArgMax v, int off) { return {shfl(v.v, off), shfl(v.i, off)}; }
__device__ __forceinline__ Sums shfl(Sums v, int off) { return {shfl(v.s_m, off), shfl(v.s_f, off), shfl(v.t, off)}; }

// The better of two candidates: larger value, or the lower id among equal values. NaN logits are
// never taken (the CPU's strict > never takes them either, except a NaN at id 0).
struct TakeMax {
  __device__ ArgMax operator()(ArgMax x, ArgMax y) const { return (y.v > x.v || (y.v == x.v && y.i < x.i)) ? y : x; }
};
struct AddSums {
  __device__ Sums operator()(Sums x, Sums y) const { return {x.s_m + y.s_m, x.s_f + y.s_f, x.t + y.t}; }
};

// Every thread of the block must call this (it synchronises); all get the block's result.
template <class T, class Op>
__device__ T block_reduce(T v, T identity, Op op) {
  __shared__ T partial[kWarps];
  __shared__ T result;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int off = 16; off > 0; off >>= 1) v = op(v, shfl(v, off));
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kWarps ? partial[lane] : identity;
    for (int off = 16; off > 0; off >>= 1) v = op(v, shfl(v, off));
    if (lane == 0) result = v;
  }
  __syncthreads();
  const T r = result;
  __syncthreads();  // the next call of the same instantiation reuses partial and result
  return r;
}

__global__ void __launch_bounds__(kThreads)
    logits_stats_kernel(LogitStats* out, const float* method, const float* full, const int32_t* targets, int vocab) {
  const int64_t row = blockIdx.x;
  const float* m = method + row * vocab;
  const float* f = full ? full + row * vocab : nullptr;  // uniform over the block: the branches below are too

  // Pass 1: max and argmax. Each thread walks its ids upwards, so within a thread the first of equal
  // values is kept; the reduction keeps the lowest id across threads.
  const ArgMax none{-INFINITY, INT_MAX};
  ArgMax am = none, af = none;
  for (int j = threadIdx.x; j < vocab; j += kThreads) {
    am = TakeMax{}(am, ArgMax{m[j], j});
    if (f) af = TakeMax{}(af, ArgMax{f[j], j});
  }
  am = block_reduce(am, none, TakeMax{});
  if (f) af = block_reduce(af, none, TakeMax{});
  if (am.i == INT_MAX) am.i = 0;  // every logit NaN: the CPU's argmax answers 0
  if (af.i == INT_MAX) af.i = 0;

  // Pass 2: the softmax denominators and, with a reference, T.
  const double max_m = am.v, max_f = af.v;
  Sums s{0.0, 0.0, 0.0};
  for (int j = threadIdx.x; j < vocab; j += kThreads) {
    const double mj = m[j];
    s.s_m += exp(mj - max_m);
    if (f) {
      const double fj = f[j];
      const double e = exp(fj - max_f);
      s.s_f += e;
      if (e > 0.0) s.t += e * (fj - mj);
    }
  }
  s = block_reduce(s, Sums{0.0, 0.0, 0.0}, AddSums{});
  if (threadIdx.x != 0) return;

  const double lse_m = max_m + log(s.s_m);
  const int32_t target = targets[row];
  const bool target_ok = target >= 0 && target < vocab;
  const double method_logprob = target_ok ? static_cast<double>(m[target]) - lse_m : static_cast<double>(NAN);
  LogitStats* o = out + row;
  o->method_logprob = static_cast<float>(method_logprob);
  o->method_argmax = am.i;
  if (!f) {
    o->full_logprob = static_cast<float>(method_logprob);
    o->full_argmax = am.i;
    o->kl = 0.0f;
    return;
  }
  const double lse_f = max_f + log(s.s_f);
  const double kl = s.t / s.s_f - (lse_f - lse_m);
  o->full_logprob = static_cast<float>(target_ok ? static_cast<double>(f[target]) - lse_f : static_cast<double>(NAN));
  o->full_argmax = af.i;
  o->kl = static_cast<float>(kl > 0.0 ? kl : 0.0);  // rounding can leave -1e-17 for near-identical rows
}

}  // namespace

void logits_stats(LogitStats* out, const float* method, const float* full, const int32_t* targets, int rows,
                  int vocab) {
  if (rows <= 0 || vocab <= 0) return;
  logits_stats_kernel<<<rows, kThreads>>>(out, method, full, targets, vocab);
  KVB_CUDA_LAUNCH_CHECK();
}

}  // namespace kvb::cuda
