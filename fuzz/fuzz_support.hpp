#pragma once
// What every libFuzzer harness (fuzz/fuzz_*.cpp) shares. A parser's only allowed outcomes on any
// input are success or kvb::InputError (exit 2: one line naming the file); anything else — another
// exception, a crash, a sanitizer report, a leak, a timeout or more memory than libFuzzer's
// -rss_limit_mb — is a finding. Most parsers read files, so the input is written to a scratch
// file first (in a directory of this process under $TMPDIR, removed at exit).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/errors.hpp"

namespace kvb::fuzz {

// Writes `bytes` to <scratch dir>/<name> and returns its path.
std::string scratch_file(const std::string& name, std::string_view bytes);

// The scratch directory itself (for parsers that read a folder).
const std::string& scratch_dir();

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Runs `parse`; an InputError is an expected outcome and must be one line that names `file`.
template <typename F>
void expect_clean(const std::string& file, F&& parse) {
  try {
    parse();
  } catch (const InputError& e) {
    const std::string_view what = e.what();
    if (what.find('\n') != std::string_view::npos || (!file.empty() && what.find(file) == std::string_view::npos))
      __builtin_trap();  // a message that splits or does not say which file
  }
}

}  // namespace kvb::fuzz
