#pragma once
// Lays pieces out in one device allocation: take<T>(n) hands out the next 256-byte aligned piece
// of n elements. A carver over no base only counts (every take returns null), so the same layout
// code that hands an allocation out also says, on any machine, how many bytes it needs: the CUDA
// engine allocates with it and `kvbench capacity` / `--batch auto` plan with it.
#include <cstddef>
#include <cstdint>

namespace kvb {

class DeviceCarver {
 public:
  static constexpr size_t kAlign = 256;

  explicit DeviceCarver(uint8_t* base = nullptr) : base_(base) {}

  template <class T>
  T* take(size_t count) {
    const size_t bytes = (count * sizeof(T) + kAlign - 1) / kAlign * kAlign;
    T* p = base_ ? reinterpret_cast<T*>(base_ + used_) : nullptr;
    used_ += bytes;
    return p;
  }
  size_t used() const { return used_; }
  bool counting() const { return base_ == nullptr; }

 private:
  uint8_t* base_;
  size_t used_ = 0;
};

}  // namespace kvb
