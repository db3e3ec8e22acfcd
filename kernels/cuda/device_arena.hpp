#pragma once
// The one device allocation of the CUDA backend: sized by a counting pass of the layout code
// (kernels/device_carver.hpp), allocated once, then carved by a second pass of the same code over
// its base; nothing is allocated inside the decode loop.
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/ops_cuda.hpp"

namespace kvb::cuda {

class DeviceArena {
 public:
  DeviceArena() = default;
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;
  ~DeviceArena() { device_free(base_); }

  // RuntimeFailure naming `what` and the free memory when it does not fit.
  void allocate(size_t bytes, const char* what) {
    base_ = static_cast<uint8_t*>(device_alloc_bytes(bytes, what));
    bytes_ = bytes;
  }
  uint8_t* base() const { return base_; }
  size_t bytes() const { return bytes_; }

 private:
  uint8_t* base_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace kvb::cuda
