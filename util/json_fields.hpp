#pragma once
// Reading untrusted JSON (model configs, file headers, result files): every problem is an
// InputError naming the file (`where`) and the key.
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kvb {

// Parses a whole file; InputError "<path>: ..." when it cannot be read or is not JSON.
nlohmann::json read_json_file(const std::string& path);

// The value of `key`, or nullptr when absent or null (HF configs write "rope_scaling": null).
const nlohmann::json* find_key(const nlohmann::json& obj, std::string_view key);

// The value at a '/'-separated path of object keys ("decode/step_latency_ms/p50"), or nullptr
// when a key is missing or the value is null.
const nlohmann::json* find_path(const nlohmann::json& obj, std::string_view path);

// An integer value; also accepts integral floats (some exporters write 4096.0).
int64_t as_int64(const nlohmann::json& v, const std::string& where, std::string_view key);

}  // namespace kvb
