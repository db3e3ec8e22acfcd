// load_workload(): reads a file, decides its format and hands it to the reader in
// workloads/{jsonl,r1_trace,dfs}.cpp; plus the two workloads that need no file.
#include "workloads/workload.hpp"

#include <array>
#include <string_view>

#include "util/errors.hpp"
#include "util/mapped_file.hpp"
#include "util/sha256.hpp"
#include "workloads/formats.hpp"
#include "util/json_fields.hpp"

namespace kvb {
namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

char first_non_space(std::string_view text) {
  for (char c : text) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return c;
  }
  return '\0';
}

}  // namespace

std::optional<std::string> workloads::scalar_to_string(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number()) return v.dump();  // integers exactly; floats in shortest round-trip form
  return std::nullopt;
}

Workload load_workload(const std::string& path) {
  MappedFile file(path);
  std::string_view bytes(reinterpret_cast<const char*>(file.data()), file.size());

  Workload w;
  // The traces are named .msgpack(.gz); also sniff the magic so a renamed trace still loads.
  if (ends_with(path, ".msgpack") || ends_with(path, ".msgpack.gz") || bytes.starts_with("DCMP")) {
    w = workloads::parse_r1_trace(path, bytes);
  } else if (first_non_space(bytes) == '[') {
    // A whole-file JSON array: the DFS state-query sets. Anything else starting with '[' is
    // left to the JSONL reader, whose line-level message ("not a JSON object") says what is wrong.
    nlohmann::json doc = parse_json_or_discarded(bytes);
    if (workloads::is_dfs_set(doc)) w = workloads::parse_dfs_set(path, doc);
    else w = workloads::parse_jsonl(path, bytes);
  } else {
    w = workloads::parse_jsonl(path, bytes);  // any other extension: JSONL
  }
  w.source = path;
  w.sha256 = sha256_hex(bytes.data(), bytes.size());
  return w;
}

Workload builtin_workload(const std::string& name) {
  if (name == "stories") {
    // Openings in the style of TinyStories, which the bundled stories260K model was trained on.
    static constexpr std::array<std::string_view, 4> kOpenings = {
        "Once upon a time", "One day, a little girl named Lily", "The sun was shining and",
        "Tom and his dog"};
    Workload w;
    w.source = "builtin:stories";
    w.format = "builtin";
    for (size_t i = 0; i < kOpenings.size(); ++i) {
      WorkloadItem item;
      item.id = "story-" + std::to_string(i + 1);
      item.prompt_text = std::string(kOpenings[i]);
      w.items.push_back(std::move(item));
    }
    return w;
  }
  fail_input("unknown built-in workload '{}' (available: stories)", name);
}

Workload single_prompt_workload(const std::string& text) {
  if (text.empty()) fail_input("the prompt is empty");
  Workload w;
  w.source = "prompt";
  w.format = "prompt";
  WorkloadItem item;
  item.id = "prompt";
  item.prompt_text = text;
  w.items.push_back(std::move(item));
  return w;
}

Workload resolve_workload(const std::string& prompt, const std::string& spec) {
  if (!prompt.empty()) return single_prompt_workload(prompt);
  if (spec.empty()) return builtin_workload("stories");
  if (spec.rfind("builtin:", 0) == 0) return builtin_workload(spec.substr(8));
  return load_workload(spec);
}

}  // namespace kvb
