// CPU matmul, y = x . w^T, over weights in their stored type (kernels/dtype.hpp). Decode reads
// every weight once per token, so it is bound by memory bandwidth: a weight stays in the bytes the
// file stored (2 for F16/BF16, 34/32 for Q8_0) and is widened to fp32 in a register, inside the dot
// product. Eight-lane fp32 accumulators (simd.hpp); four weight rows share each load of an input
// row. F16 uses the F16C conversion where the target has it; BF16 is a 16-bit widening shift.
//
// Not used: AVX-512 (off with GCC 12, CMakeLists.txt), AVX-512-BF16 and AVX-VNNI dot products.
// The latter two round or quantise the activations (bf16 or int8), which changes what is measured;
// here activations and sums stay fp32 for every weight type.
#include <cstddef>
#include <cstring>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "kernels/bf16.hpp"
#include "kernels/cpu/parallel.hpp"
#include "kernels/cpu/simd.hpp"
#include "kernels/ops.hpp"

namespace kvb::cpu {

namespace {

// Below this many multiply-adds, a parallel region costs more than it saves (measured on a
// 2-core machine: a wake-up is a few microseconds, one core does ~1e4 MACs per microsecond).
constexpr int64_t kParallelMinWork = int64_t(1) << 17;

typedef uint16_t u16x8 __attribute__((vector_size(16)));
typedef uint32_t u32x8 __attribute__((vector_size(32)));
typedef int8_t i8x8 __attribute__((vector_size(8)));

// One weight row of each type: load(i) is elements i..i+7 as fp32, at(i) element i.
struct F32Row {
  static constexpr int kElemBytes = 4;
  const uint8_t* p;
  f32x8 load(int i) const { return load8(reinterpret_cast<const float*>(p) + i); }
  float at(int i) const {
    float v;
    std::memcpy(&v, p + 4 * size_t(i), 4);
    return v;
  }
};

struct Bf16Row {
  static constexpr int kElemBytes = 2;
  const uint8_t* p;
  f32x8 load(int i) const {
#if defined(__AVX2__)
    // One widening load (vpmovzxwd ymm, m128) and a shift: GCC 12 builds the generic form below
    // from two 128-bit halves and an insert, three shuffles that bound the loop on one port.
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * size_t(i))));
    return reinterpret_cast<f32x8>(_mm256_slli_epi32(w, 16));
#else
    u16x8 h;
    std::memcpy(&h, p + 2 * size_t(i), sizeof h);
    return reinterpret_cast<f32x8>(__builtin_convertvector(h, u32x8) << 16);
#endif
  }
  float at(int i) const {
    uint16_t h;
    std::memcpy(&h, p + 2 * size_t(i), 2);
    return float_from_bf16(h);
  }
};

struct F16Row {
  static constexpr int kElemBytes = 2;
  const uint8_t* p;
  f32x8 load(int i) const {
#if defined(__F16C__)
    return reinterpret_cast<f32x8>(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * size_t(i)))));
#else
    f32x8 v;
    for (int k = 0; k < 8; ++k) v[k] = at(i + k);
    return v;
#endif
  }
  float at(int i) const {
    uint16_t h;
    std::memcpy(&h, p + 2 * size_t(i), 2);
    return f16_to_f32(h);
  }
};

// hsum8 of four vectors at once, each summed in exactly hsum8's order ((v0+v4) + (v1+v5)) +
// ((v2+v6) + (v3+v7)), so the bits are hsum8's: fold the halves, transpose, add. A third of the
// shuffles of four hsum8 (which GCC builds from scalar adds), which matters where rows are short
// (attention scores over head_dim 8, stories260K).
[[gnu::always_inline]] inline void hsum8x4(f32x8 s0, f32x8 s1, f32x8 s2, f32x8 s3, float* out) {
#if defined(__AVX__)
  auto fold = [](f32x8 v) {
    const __m256 m = reinterpret_cast<__m256>(v);
    return _mm_add_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  };
  __m128 a = fold(s0), b = fold(s1), c = fold(s2), d = fold(s3);
  _MM_TRANSPOSE4_PS(a, b, c, d);
  _mm_storeu_ps(out, _mm_add_ps(_mm_add_ps(a, b), _mm_add_ps(c, d)));
#else
  out[0] = hsum8(s0);
  out[1] = hsum8(s1);
  out[2] = hsum8(s2);
  out[3] = hsum8(s3);
#endif
}

// Four dot products of length n in one pass: each load of b feeds four independent FMA chains,
// and each chain keeps eight lanes in a register until one horizontal sum at the end.
//
// `next` (or nullptr) is where the next four rows start: they are prefetched, in step, while these
// are read. Rows are short (2 KB for 1024 bf16 weights) and four of them are four streams, each
// too short for the hardware prefetcher to ramp up: without this a bf16 decode read 18 GB/s where
// the machine streams 24 (docs/perf-notes.md).
template <class Row>
[[gnu::always_inline]] inline void dot4(Row a0, Row a1, Row a2, Row a3, const float* b, int n, float* out,
                                        const uint8_t* next) {
  f32x8 s0 = splat8(0), s1 = s0, s2 = s0, s3 = s0;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const f32x8 bv = load8(b + i);
    if (next)  // the next rows' bytes in proportion: 4 rows x 8 elements per step
      for (int k = 0; k < 32 * Row::kElemBytes; k += 64) __builtin_prefetch(next + size_t(i) * 4 * Row::kElemBytes + k);
    s0 += a0.load(i) * bv;
    s1 += a1.load(i) * bv;
    s2 += a2.load(i) * bv;
    s3 += a3.load(i) * bv;
  }
  float t[4];
  hsum8x4(s0, s1, s2, s3, t);
  float t0 = t[0], t1 = t[1], t2 = t[2], t3 = t[3];
  for (; i < n; ++i) {
    t0 += a0.at(i) * b[i];
    t1 += a1.at(i) * b[i];
    t2 += a2.at(i) * b[i];
    t3 += a3.at(i) * b[i];
  }
  out[0] = t0;
  out[1] = t1;
  out[2] = t2;
  out[3] = t3;
}

template <class Row>
[[gnu::always_inline]] inline float dot(Row a, const float* b, int n) {
  f32x8 s = splat8(0);
  int i = 0;
  for (; i + 8 <= n; i += 8) s += a.load(i) * load8(b + i);
  float t = hsum8(s);
  for (; i < n; ++i) t += a.at(i) * b[i];
  return t;
}

// A Q8_0 block's f16 scale (F16C's scalar conversion where available: the portable one branches).
[[gnu::always_inline]] inline float q8_scale(const uint8_t* block) {
  uint16_t h;
  std::memcpy(&h, block, 2);
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  return f16_to_f32(h);
#endif
}

// Q8_0: a block's 32 int8 times x in fp32, then one multiply by the block's scale.
struct Q8Row {
  const uint8_t* p;
};

// Eight int8 as fp32. GCC 12 turns the generic form into eight scalar conversions.
[[gnu::always_inline]] inline f32x8 widen_q8(const uint8_t* q) {
#if defined(__AVX2__)
  return reinterpret_cast<f32x8>(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q)))));
#else
  i8x8 v;
  std::memcpy(&v, q, sizeof v);
  return __builtin_convertvector(v, f32x8);
#endif
}

[[gnu::always_inline]] inline f32x8 q8_block_dot(const uint8_t* block, f32x8 x0, f32x8 x1, f32x8 x2, f32x8 x3) {
  const uint8_t* q = block + 2;
  const f32x8 t = widen_q8(q) * x0 + widen_q8(q + 8) * x1 + widen_q8(q + 16) * x2 + widen_q8(q + 24) * x3;
  return t * splat8(q8_scale(block));
}

[[gnu::always_inline]] inline void dot4(Q8Row a0, Q8Row a1, Q8Row a2, Q8Row a3, const float* b, int n, float* out,
                                        const uint8_t* next) {
  f32x8 s0 = splat8(0), s1 = s0, s2 = s0, s3 = s0;
  for (int blk = 0; blk < n / kQ8BlockElems; ++blk) {
    const float* xb = b + size_t(blk) * kQ8BlockElems;
    if (next)  // four rows' blocks: 136 bytes per step
      for (int k = 0; k < 4 * kQ8BlockBytes; k += 64) __builtin_prefetch(next + size_t(blk) * 4 * kQ8BlockBytes + k);
    const f32x8 x0 = load8(xb), x1 = load8(xb + 8), x2 = load8(xb + 16), x3 = load8(xb + 24);
    const size_t at = size_t(blk) * kQ8BlockBytes;
    s0 += q8_block_dot(a0.p + at, x0, x1, x2, x3);
    s1 += q8_block_dot(a1.p + at, x0, x1, x2, x3);
    s2 += q8_block_dot(a2.p + at, x0, x1, x2, x3);
    s3 += q8_block_dot(a3.p + at, x0, x1, x2, x3);
  }
  hsum8x4(s0, s1, s2, s3, out);
}

[[gnu::always_inline]] inline float dot(Q8Row a, const float* b, int n) {
  f32x8 s = splat8(0);
  for (int blk = 0; blk < n / kQ8BlockElems; ++blk) {
    const float* xb = b + size_t(blk) * kQ8BlockElems;
    s += q8_block_dot(a.p + size_t(blk) * kQ8BlockBytes, load8(xb), load8(xb + 8), load8(xb + 16), load8(xb + 24));
  }
  return hsum8(s);
}

template <class Row>
void matmul_rows(float* y, const float* x, const uint8_t* w, size_t row_bytes, int rows, int in, int out) {
  const int64_t work = int64_t(rows) * in * out;
  const int blocks = (out + 3) / 4;
  parallel_for(blocks, work >= kParallelMinWork, [=](int b) {
    const int o = 4 * b;
    auto row = [=](int r) { return Row{w + size_t(r) * row_bytes}; };
    if (o + 4 > out) {  // tail rows of w
      for (int oo = o; oo < out; ++oo)
        for (int r = 0; r < rows; ++r) y[size_t(r) * out + oo] = dot(row(oo), x + size_t(r) * in, in);
      return;
    }
    const Row w0 = row(o), w1 = row(o + 1), w2 = row(o + 2), w3 = row(o + 3);
    const uint8_t* next = o + 8 <= out ? w + size_t(o + 4) * row_bytes : nullptr;
    for (int r = 0; r < rows; ++r)  // later input rows find the weights in cache
      dot4(w0, w1, w2, w3, x + size_t(r) * in, in, y + size_t(r) * out + o, r == 0 ? next : nullptr);
  });
}

}  // namespace

void matmul(float* y, const float* x, const WeightMatrix& w, int rows) {
  const uint8_t* p = static_cast<const uint8_t*>(w.data);
  const size_t row_bytes = storage_bytes(w.dtype, uint64_t(w.in));
  switch (w.dtype) {
    case DType::F32: return matmul_rows<F32Row>(y, x, p, row_bytes, rows, w.in, w.out);
    case DType::BF16: return matmul_rows<Bf16Row>(y, x, p, row_bytes, rows, w.in, w.out);
    case DType::F16: return matmul_rows<F16Row>(y, x, p, row_bytes, rows, w.in, w.out);
    case DType::Q8_0: return matmul_rows<Q8Row>(y, x, p, row_bytes, rows, w.in, w.out);
  }
}

void matmul(float* y, const float* x, const float* w, int rows, int in, int out) {
  matmul(y, x, WeightMatrix{DType::F32, w, out, in}, rows);
}

void dequantize_row(float* y, const WeightMatrix& w, int row) {
  const size_t row_bytes = storage_bytes(w.dtype, uint64_t(w.in));
  dequantize(y, w.dtype, static_cast<const uint8_t*>(w.data) + size_t(row) * row_bytes, uint64_t(w.in));
}

}  // namespace kvb::cpu
