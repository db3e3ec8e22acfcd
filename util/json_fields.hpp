#pragma once
// Reading untrusted JSON (model configs, file headers, result files): every problem is an
// InputError naming the file (`where`) and the key.
//
// Nesting depth is capped at kMaxJsonDepth before anything is built: nlohmann parses without
// recursion, but dump(), copies and comparisons of a value recurse once per level, so a 200 KB
// file of 100,000 nested brackets would overflow the stack. The deepest real file kvbench reads
// (tokenizer.json, a DFS set) nests 5 levels; result.json about 8.
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kvb {

constexpr size_t kMaxJsonDepth = 64;
// A parsed document takes ~10-20x its text in memory (a node per number): the largest real JSON
// kvbench reads is a tokenizer.json of ~35 MB, a long sweep's result.json ~100 MB.
constexpr uint64_t kMaxJsonFileBytes = uint64_t(512) << 20;

// Parses a whole file; InputError "<path>: ..." when it cannot be read, is larger than
// kMaxJsonFileBytes, is not JSON or nests deeper than kMaxJsonDepth.
nlohmann::json read_json_file(const std::string& path);

// Parses `text` (one document); InputError "<where>: not valid JSON: ..." (one line) or
// "<where>: JSON nested deeper than 64 levels".
nlohmann::json parse_json(std::string_view text, const std::string& where);

// As parse_json, but a value that is not JSON or nests too deep is returned as discarded
// (is_discarded()) instead of thrown: for text a model wrote, where not-JSON is an answer.
nlohmann::json parse_json_or_discarded(std::string_view text);

// InputError "<where>: JSON nested deeper than 64 levels (at byte N)" when it does; for
// readers that parse with their own SAX handler.
void check_json_depth(std::string_view text, const std::string& where);

// The offset of the first bracket that opens level max_depth + 1, or npos when `text` nests at
// most max_depth levels (strings and their escapes are skipped; the text need not be valid JSON).
size_t json_too_deep_at(std::string_view text, size_t max_depth = kMaxJsonDepth);

// A value for an error message, bounded whatever the value: numbers and booleans as written,
// strings quoted (util/quote.hpp), containers by type and size ("an array of 3 elements").
std::string describe(const nlohmann::json& v);

// The value of `key`, or nullptr when absent or null (HF configs write "rope_scaling": null).
const nlohmann::json* find_key(const nlohmann::json& obj, std::string_view key);

// The value at a '/'-separated path of object keys ("decode/step_latency_ms/p50"), or nullptr
// when a key is missing or the value is null.
const nlohmann::json* find_path(const nlohmann::json& obj, std::string_view path);

// An integer value; also accepts integral floats (some exporters write 4096.0).
int64_t as_int64(const nlohmann::json& v, const std::string& where, std::string_view key);

}  // namespace kvb
