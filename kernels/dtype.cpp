#include "kernels/dtype.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/bf16.hpp"

namespace kvb {

const char* to_string(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::Q8_0: return "Q8_0";
  }
  return "?";
}

const char* lower_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::Q8_0: return "q8_0";
  }
  return "?";
}

uint64_t storage_bytes(DType t, uint64_t count) {
  switch (t) {
    case DType::F32: return count * 4;
    case DType::F16:
    case DType::BF16: return count * 2;
    case DType::Q8_0: return count / kQ8BlockElems * kQ8BlockBytes;
  }
  return 0;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ff;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f16_from_f32(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return sign | 0x7e00u;     // NaN (quiet)
  if (ax >= 0x477ff000u) return sign | 0x7c00u;    // >= 65520 rounds to infinity
  if (ax < 0x38800000u) {                          // below 2^-14: an f16 subnormal (or zero)
    // Adding 0.5 leaves the value's bits in units of 2^-24, the f16 subnormal step, rounded to
    // nearest even by the fp32 addition itself.
    float a;
    std::memcpy(&a, &ax, 4);
    const float t = a + 0.5f;
    uint32_t tb;
    std::memcpy(&tb, &t, 4);
    return sign | static_cast<uint16_t>(tb - 0x3f000000u);
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits to nearest even.
  ax += 0xc8000fffu + ((ax >> 13) & 1u);
  return sign | static_cast<uint16_t>(ax >> 13);
}

void dequantize(float* out, DType t, const uint8_t* data, uint64_t count) {
  switch (t) {
    case DType::F32:
      std::memcpy(out, data, count * 4);
      return;
    case DType::F16:
    case DType::BF16:
      for (uint64_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, data + 2 * i, 2);
        out[i] = t == DType::BF16 ? float_from_bf16(h) : f16_to_f32(h);
      }
      return;
    case DType::Q8_0:
      for (uint64_t b = 0; b < count / kQ8BlockElems; ++b) {
        const uint8_t* block = data + b * kQ8BlockBytes;
        uint16_t h;
        std::memcpy(&h, block, 2);
        const float scale = f16_to_f32(h);
        for (int i = 0; i < kQ8BlockElems; ++i)
          out[b * kQ8BlockElems + i] = scale * static_cast<int8_t>(block[2 + i]);
      }
      return;
  }
}

void round_to(float* values, uint64_t count, DType t) {
  if (t == DType::BF16)
    for (uint64_t i = 0; i < count; ++i) values[i] = float_from_bf16(bf16_from_float(values[i]));
  else if (t == DType::F16)
    for (uint64_t i = 0; i < count; ++i) values[i] = f16_to_f32(f16_from_f32(values[i]));
}

void quantize(uint8_t* out, DType t, const float* values, uint64_t count) {
  switch (t) {
    case DType::F32:
      std::memcpy(out, values, count * 4);
      return;
    case DType::F16:
    case DType::BF16:
      for (uint64_t i = 0; i < count; ++i) {
        const uint16_t h = t == DType::BF16 ? bf16_from_float(values[i]) : f16_from_f32(values[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      return;
    case DType::Q8_0:
      for (uint64_t b = 0; b < count / kQ8BlockElems; ++b) {
        const float* x = values + b * kQ8BlockElems;
        uint8_t* block = out + b * kQ8BlockBytes;
        float amax = 0;
        for (int i = 0; i < kQ8BlockElems; ++i) amax = std::max(amax, std::fabs(x[i]));
        const float d = amax / 127.0f;
        const float inv = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t h = f16_from_f32(d);
        std::memcpy(block, &h, 2);
        for (int i = 0; i < kQ8BlockElems; ++i)
          block[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(x[i] * inv)));
      }
      return;
  }
}

}  // namespace kvb
