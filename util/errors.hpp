#pragma once
// The two kinds of failure kvbench reports, mapped to exit codes by cli/main.cpp:
//   InputError     bad input or usage (a file, a flag)          -> exit 2
//   RuntimeFailure the run itself failed (out of memory, device) -> exit 3
// Messages are one line and name the file or flag and what is wrong.
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace kvb {

struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct RuntimeFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail_input(fmt::format_string<Args...> f, Args&&... args) {
  throw InputError(fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void fail_runtime(fmt::format_string<Args...> f, Args&&... args) {
  throw RuntimeFailure(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace kvb
