#pragma once
// One device allocation carved into aligned pieces: the CUDA backend sizes everything it will need
// (weights, KV cache, workspace) up front, allocates once, and never allocates inside the decode
// loop. The same layout code runs twice: before allocate() take() only counts bytes (and returns
// null), after it take() hands out the pieces in the same order.
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/ops_cuda.hpp"

namespace kvb::cuda {

class DeviceArena {
 public:
  static constexpr size_t kAlign = 256;

  DeviceArena() = default;
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;
  ~DeviceArena() { device_free(base_); }

  template <class T>
  T* take(size_t count) {
    const size_t bytes = (count * sizeof(T) + kAlign - 1) / kAlign * kAlign;
    if (!base_) {
      planned_ += bytes;
      return nullptr;
    }
    T* p = reinterpret_cast<T*>(base_ + used_);
    used_ += bytes;
    if (used_ > planned_) check(2 /* cudaErrorMemoryAllocation */, "arena: more taken than was planned");
    return p;
  }

  size_t planned_bytes() const { return planned_; }
  bool allocated() const { return base_ != nullptr; }
  // Allocates what the planning pass counted (RuntimeFailure naming `what` and the free memory when
  // it does not fit); take() then hands out pieces from the start.
  void allocate(const char* what) {
    base_ = static_cast<uint8_t*>(device_alloc_bytes(planned_, what));
    used_ = 0;
  }

 private:
  uint8_t* base_ = nullptr;
  size_t planned_ = 0, used_ = 0;
};

}  // namespace kvb::cuda
