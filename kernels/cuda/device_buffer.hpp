#pragma once
// An owning device allocation of `count` elements of T, with host copies for tests and uploads.
#include <cstddef>
#include <utility>
#include <vector>

#include "kernels/cuda/ops_cuda.hpp"

namespace kvb::cuda {

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(size_t count, const char* what)
      : ptr_(static_cast<T*>(device_alloc_bytes(count * sizeof(T), what))), count_(count) {}
  explicit DeviceBuffer(const std::vector<T>& host, const char* what = "buffer") : DeviceBuffer(host.size(), what) {
    upload(host);
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(count_, o.count_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { device_free(ptr_); }

  T* get() const { return ptr_; }
  size_t size() const { return count_; }
  void upload(const std::vector<T>& host) { copy_to_device_bytes(ptr_, host.data(), host.size() * sizeof(T)); }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    copy_to_host_bytes(host.data(), ptr_, count_ * sizeof(T));
    return host;
  }
  // Every byte set to `value` (0xff makes fp32 NaN: poison outputs before a test).
  void fill(int value) { fill_bytes(ptr_, value, count_ * sizeof(T)); }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

}  // namespace kvb::cuda
