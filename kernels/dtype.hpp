#pragma once
// Storage types of weights, and exact conversions between them and fp32. F32, F16 and BF16 are one
// value per element; Q8_0 (GGUF's) is blocks of 32 elements along a row, each block an f16 scale d
// followed by 32 int8 q, the element being d * q. Conversions to fp32 are exact; conversions from
// fp32 round to nearest even (NaN stays NaN, f16 overflows to infinity).
#include <cstdint>

namespace kvb {

enum class DType { F32, F16, BF16, Q8_0 };
const char* to_string(DType t);   // "F32", "F16", "BF16", "Q8_0" (as GGUF and safetensors name them)
const char* lower_name(DType t);  // "f32", "f16", "bf16", "q8_0" (as kvbench's flags and reports do)

constexpr int kQ8BlockElems = 32;
constexpr int kQ8BlockBytes = 2 + kQ8BlockElems;

// Bytes for `count` elements (Q8_0: count must be a multiple of 32).
uint64_t storage_bytes(DType t, uint64_t count);

// bf16: kernels/bf16.hpp.
float f16_to_f32(uint16_t h);
uint16_t f16_from_f32(float f);

// Element i of `count` stored elements of type t, as fp32 (Q8_0: `data` starts at a block).
void dequantize(float* out, DType t, const uint8_t* data, uint64_t count);
// Stores `count` fp32 values as type t (Q8_0: count a multiple of 32; each block's scale is
// max|x| / 127 rounded to f16, each q = round(x / scale), as GGUF's reference quantiser).
void quantize(uint8_t* out, DType t, const float* values, uint64_t count);
// Rounds `count` fp32 values in place to the nearest of type t: F16 or BF16 (F32 and Q8_0, which
// is a block format and not a value type, leave them unchanged).
void round_to(float* values, uint64_t count, DType t);

}  // namespace kvb
