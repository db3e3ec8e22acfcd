#pragma once
// Internal to workloads/: the readers behind load_workload(), one per file format. Each takes the
// whole file's bytes (already read by load_workload, which also fills source and sha256) and
// throws InputError naming `path` (and the line or element) on bad input.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "util/errors.hpp"
#include "workloads/workload.hpp"

namespace kvb::workloads {

// JSONL, one item per line (docs/workloads.md).
Workload parse_jsonl(const std::string& path, std::string_view text);

// A recorded DeepSeek-R1 trace: a DCMP container holding one MessagePack map.
Workload parse_r1_trace(const std::string& path, std::string_view bytes);

// True when `doc` looks like a DFS state-query set: a JSON array whose first element is an
// object with a "graph" field.
bool is_dfs_set(const nlohmann::json& doc);
// Turns a DFS state-query set into items with a prompt built here (workloads/dfs.cpp).
Workload parse_dfs_set(const std::string& path, const nlohmann::json& doc);

// Raises InputError("<where>: <message>"), where `where` names the file and the line or element.
struct LocatedError {
  std::string where;
  template <typename... Args>
  [[noreturn]] void operator()(fmt::format_string<Args...> f, Args&&... args) const {
    fail_input("{}: {}", where, fmt::format(f, std::forward<Args>(args)...));
  }
};

// A JSON string as is, a number as its shortest text ("70", "0.5"); nullopt for anything else.
// Answers and ids arrive as either in the real datasets.
std::optional<std::string> scalar_to_string(const nlohmann::json& v);

}  // namespace kvb::workloads
