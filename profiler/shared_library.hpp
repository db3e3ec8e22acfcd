#pragma once
// A vendor library loaded at run time (dlopen), so kvbench starts where it is absent: CUPTI and
// NVML. Entry points are bound by name into typed function pointers; the first one missing is
// remembered so the caller can say which in its one-line reason. Never unloaded: CUPTI and NVML
// keep hooks in the driver for the life of the process.
#include <dlfcn.h>

#include <initializer_list>
#include <string>

namespace kvb::profiler {

class SharedLibrary {
 public:
  // The first of `names` that loads (empty names are skipped).
  explicit SharedLibrary(std::initializer_list<const char*> names) {
    for (const char* name : names)
      if (*name && (handle_ = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
  }
  bool loaded() const { return handle_ != nullptr; }

  // Binds `fn` to the entry point `name`; returns whether it exists.
  template <class Fn>
  bool try_bind(const char* name, Fn& fn) {
    fn = reinterpret_cast<Fn>(dlsym(handle_, name));
    return fn != nullptr;
  }
  // try_bind(), remembering `name` when it is the first entry point missing.
  template <class Fn>
  bool bind(const char* name, Fn& fn) {
    if (try_bind(name, fn)) return true;
    if (missing_.empty()) missing_ = name;
    return false;
  }
  // The first entry point bind() did not find; empty when all were.
  const std::string& missing() const { return missing_; }

 private:
  void* handle_ = nullptr;
  std::string missing_;
};

}  // namespace kvb::profiler
