#pragma once
// The two kinds of failure kvbench reports, mapped to exit codes by cli/main.cpp:
//   InputError     bad input or usage (a file, a flag)          -> exit 2
//   RuntimeFailure the run itself failed (out of memory, device) -> exit 3
// Messages name the file or flag and what is wrong, and are one line by construction: each is
// passed through one_line() (util/quote.hpp), so a newline or escape code that a file smuggled
// into a message (a GGUF key, a tensor name) is shown escaped wherever the message goes: the
// terminal, a result file's notes, a journal.
#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <string_view>

#include "util/quote.hpp"

namespace kvb {

struct InputError : std::runtime_error {
  explicit InputError(std::string_view message) : std::runtime_error(one_line(message)) {}
};

struct RuntimeFailure : std::runtime_error {
  explicit RuntimeFailure(std::string_view message) : std::runtime_error(one_line(message)) {}
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
