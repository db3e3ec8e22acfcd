#include "run/shard_manifest.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "reports/json_file.hpp"
#include "util/errors.hpp"
#include "run/result.hpp"
#include "util/json_fields.hpp"

namespace kvb {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr int kManifestVersion = 1;
constexpr const char* kManifest = "manifest.json";
constexpr const char* kComplete = "shard-complete.json";

}  // namespace

void write_shard_manifest(const std::string& dir, const ShardManifest& m) {
  json owned = json::object();
  for (const auto& [run, units] : m.owned) {
    json list = json::array();
    for (const auto& [item, draw] : units) list.push_back({item, draw});
    owned[run] = std::move(list);
  }
  write_json_atomic(fs::path(dir) / kManifest,
                    {{"kvbench_shard", kManifestVersion},
                     {"shard", {{"index", m.place.index}, {"count", m.place.count}, {"placed_by", m.place.placed_by}}},
                     {"fingerprint", m.fingerprint},
                     {"command_line", m.command_line},
                     {"inputs", m.inputs},
                     {"result_header", m.result_header},
                     {"weights_bytes", m.weights_bytes},
                     {"runs", m.runs},
                     {"units", {{"total", m.total_units}, {"expected_tokens", m.expected_tokens},
                                {"total_expected_tokens", m.total_expected_tokens}, {"owned", owned}}}});
}

bool has_shard_manifest(const std::string& dir) { return fs::is_regular_file(fs::path(dir) / kManifest); }

ShardManifest read_shard_manifest(const std::string& dir) {
  const fs::path path = fs::path(dir) / kManifest;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_input("merge: {}: no {} (not a shard's folder)", dir, kManifest);
  std::stringstream text;
  text << in.rdbuf();
  ShardManifest m;
  try {
    const json j = parse_json(text.view(), path.string());
    if (j.value("kvbench_shard", 0) != kManifestVersion)
      fail_input("merge: {}: not a kvbench shard manifest (version {})", path.string(), kManifestVersion);
    const json& s = j.at("shard");
    m.place = {s.at("index").get<int>(), s.at("count").get<int>(), s.at("placed_by").get<std::string>()};
    if (m.place.count < 1 || m.place.index < 0 || m.place.index >= m.place.count)
      fail_input("merge: {}: shard {} does not exist", path.string(), m.place.text());
    m.fingerprint = j.at("fingerprint");
    m.command_line = j.at("command_line").get<std::vector<std::string>>();
    m.inputs = j.at("inputs");
    m.result_header = j.at("result_header");
    m.weights_bytes = j.at("weights_bytes").get<uint64_t>();
    m.runs = j.at("runs");
    const json& u = j.at("units");
    m.total_units = u.at("total").get<int64_t>();
    m.expected_tokens = u.at("expected_tokens").get<int64_t>();
    m.total_expected_tokens = u.at("total_expected_tokens").get<int64_t>();
    for (const auto& [run, list] : u.at("owned").items())
      for (const json& unit : list) m.owned[run].insert({unit.at(0).get<int>(), unit.at(1).get<int>()});
  } catch (const json::exception& e) {
    fail_input("merge: {}: malformed ({})", path.string(), e.what());
  }
  return m;
}

void mark_shard_complete(const std::string& dir, const ShardPlace& place) {
  write_json_atomic(fs::path(dir) / kComplete, {{"shard", place.text()}, {"finished_at", utc_timestamp()}});
}

bool shard_is_complete(const std::string& dir) { return fs::is_regular_file(fs::path(dir) / kComplete); }

}  // namespace kvb
