#pragma once
// Files kvbench writes are written atomically: a temporary file in the same folder, written,
// fsync'ed and closed (each checked: a full disk may only say so at fsync or close), then renamed
// over the target, so a reader never sees half a file and an interrupted write leaves the old one.
// Errors: InputError when the temporary cannot be created (a flag's folder), RuntimeFailure when
// a write, fsync, close or rename fails; the temporary is removed either way.
#include <filesystem>
#include <string>

namespace kvb {

void write_file_atomic(const std::filesystem::path& path, const std::string& content);

}  // namespace kvb
