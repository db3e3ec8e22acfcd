#include "engine/weight_stream.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/bf16.hpp"
#include "util/errors.hpp"

namespace kvb {

uint64_t device_tensor_bytes(const std::vector<int64_t>& shape) {
  uint64_t count = 1;
  for (int64_t d : shape) count *= static_cast<uint64_t>(d);
  return count * (shape.size() == 2 ? sizeof(bf16) : sizeof(float));
}

void stage_for_device(const RawTensor& raw, const std::vector<int64_t>& shape, std::span<uint8_t> buffer_a,
                      std::span<uint8_t> buffer_b, const StagedPiece& emit) {
  const std::span<uint8_t> buffers[2] = {buffer_a, buffer_b};
  const uint8_t* src = raw.data;
  int which = 0;
  if (shape.size() != 2) {  // a vector: fp32, pieces of whole Q8_0 blocks when it is stored so
    uint64_t count = 1;
    for (int64_t d : shape) count *= static_cast<uint64_t>(d);
    const uint64_t granule = raw.dtype == DType::Q8_0 ? kQ8BlockElems : 1;
    for (uint64_t done = 0; done < count;) {
      const std::span<uint8_t> buf = buffers[which];
      const uint64_t n = std::min<uint64_t>(count - done, buf.size() / sizeof(float) / granule * granule);
      if (n == 0) fail_runtime("weight streaming: a staging buffer of {} bytes holds no {} fp32 values", buf.size(), granule);
      dequantize(reinterpret_cast<float*>(buf.data()), raw.dtype, src + storage_bytes(raw.dtype, done), n);
      emit(buf.data(), done * sizeof(float), n * sizeof(float));
      done += n;
      which ^= 1;
    }
    return;
  }
  const uint64_t rows = static_cast<uint64_t>(shape[0]), in = static_cast<uint64_t>(shape[1]);
  const uint64_t src_row = storage_bytes(raw.dtype, in), dst_row = in * sizeof(bf16);
  std::vector<float> wide(raw.dtype == DType::BF16 ? 0 : in);
  for (uint64_t done = 0; done < rows;) {
    const std::span<uint8_t> buf = buffers[which];
    const uint64_t n = std::min<uint64_t>(rows - done, buf.size() / dst_row);
    if (n == 0) fail_runtime("weight streaming: a staging buffer of {} bytes cannot hold a row of {} bf16", buf.size(), in);
    if (raw.dtype == DType::BF16) {
      std::memcpy(buf.data(), src + done * src_row, n * dst_row);
    } else {
      for (uint64_t r = 0; r < n; ++r) {
        dequantize(wide.data(), raw.dtype, src + (done + r) * src_row, in);
        for (uint64_t i = 0; i < in; ++i) {
          const bf16 b = bf16_from_float(wide[i]);
          std::memcpy(buf.data() + r * dst_row + i * sizeof(bf16), &b, sizeof b);
        }
      }
    }
    emit(buf.data(), done * dst_row, n * dst_row);
    done += n;
    which ^= 1;
  }
}

}  // namespace kvb
