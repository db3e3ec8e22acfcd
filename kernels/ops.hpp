#pragma once
// The op interface: the same batched ops, with identical semantics, on the CPU (kernels/cpu/,
// the reference and oracle, always built) and on CUDA (kernels/cuda/, when nvcc is found).
// Matrices are row-major; a weight matrix is [out][in] (the layout of every supported format).
#include <cstdint>

#include "kernels/dtype.hpp"

namespace kvb::cpu {

// A weight matrix [out][in] in its stored type (kernels/dtype.hpp): Q8_0 blocks run along each
// row, so `in` is then a multiple of 32.
struct WeightMatrix {
  DType dtype = DType::F32;
  const void* data = nullptr;
  int out = 0, in = 0;
};

// y[r][o] = sum_i x[r][i] * w[o][i]   for r < rows, o < out
void matmul(float* y, const float* x, const float* w, int rows, int in, int out);
// The same with w in its stored type: each weight is converted to fp32 inside the dot product
// (exactly) and sums are fp32. F16 and BF16 give the bits of matmul over their fp32 values when
// `in` is a multiple of 8 (the compiler may contract the scalar tail differently). Q8_0 sums each
// block's 32 products before scaling them: equal to fp32 rounding, not bit for bit.
void matmul(float* y, const float* x, const WeightMatrix& w, int rows);

// y[in] = row `row` of w as fp32 (an embedding lookup).
void dequantize_row(float* y, const WeightMatrix& w, int row);

// y[c] = sum_r x[r] * w[r][c]   for c < n: a weighted sum of the rows of w (attention's P.V)
void weighted_row_sum(float* y, const float* x, const float* w, int rows, int n);

// y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight, per row of n (y may alias x)
void rmsnorm(float* y, const float* x, const float* weight, int rows, int n, float eps);

// gate[i] = silu(gate[i]) * up[i]
void swiglu(float* gate, const float* up, int64_t n);

// In-place softmax of n values.
void softmax(float* x, int n);

// y[i] += b[i] for each of `rows` rows of n (bias add)
void add_bias(float* y, const float* b, int rows, int n);

// One query head's attention over the `len` slots of one KV head (keys, values [len][head_dim]):
//   out[head_dim] = sum_j p_j v_j,  p = softmax_j(q.k_j / sqrt(head_dim)),
// where slots with pos[j] > qpos (the query's absolute position: causality is by position, slot
// order carries no meaning) get p_j exactly 0. p is written to probs[len] (scratch for the scores
// and an output callers may observe). With no visible slot (cannot happen in a forward: a token's
// own slot is always there) out and probs are all zeros.
void attention_head(float* out, float* probs, const float* q, const float* keys, const float* values,
                    const int32_t* pos, int len, int qpos, int head_dim);

// attention_head for the `group` query heads that share one KV head (GQA), each with exactly
// attention_head's bits: q and out [group][head_dim], probs [group][len]. The keys are read once
// for the group and the heads' P.V sums run as independent chains (one chain per head is bound by
// FMA latency when head_dim is 8).
void attention_group(float* out, float* probs, const float* q, int group, const float* keys, const float* values,
                     const int32_t* pos, int len, int qpos, int head_dim);

}  // namespace kvb::cpu
