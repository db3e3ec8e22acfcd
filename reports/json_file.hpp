#pragma once
// Result files are written atomically (util/atomic_file.hpp): a reader never sees half a file.
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "util/atomic_file.hpp"

namespace kvb {

void write_json_atomic(const std::filesystem::path& path, const nlohmann::json& doc);

}  // namespace kvb
