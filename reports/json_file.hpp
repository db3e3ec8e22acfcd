#pragma once
// Result files are written atomically: a temporary file in the same folder, flushed, then
// renamed over the target, so a reader never sees half a file.
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace kvb {

void write_file_atomic(const std::filesystem::path& path, const std::string& content);
void write_json_atomic(const std::filesystem::path& path, const nlohmann::json& doc);

}  // namespace kvb
