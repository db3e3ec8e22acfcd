#include "reports/table.hpp"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

namespace kvb {

using nlohmann::json;

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024.0 && u < 4) {
    b /= 1024.0;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", b) : fmt::format("{:.2f} {}", b, units[u]);
}

namespace {

std::string markdown(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(head.size());
  for (size_t i = 0; i < head.size(); ++i) width[i] = head[i].size();
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s = "|";
    for (size_t i = 0; i < cells.size(); ++i) s += fmt::format(" {:>{}} |", cells[i], width[i]);
    return s + "\n";
  };
  std::string out = line(head) + "|";
  for (size_t w : width) out += std::string(w + 1, '-') + ":|";
  out += "\n";
  for (const auto& r : rows) out += line(r);
  return out;
}

}  // namespace

std::string render_summary_table(const json& doc) {
  const json& model = doc["model"];
  const bool replay = doc["settings"]["mode"] == "replay";
  std::vector<std::string> head = {"model", "params", "device", "mode", "method", "seqs", "prefill t/s",
                                   "decode t/s", "step p50 ms", "step p99 ms", "KV peak", "RSS"};
  if (replay) head.insert(head.end(), {"PPL", "KL mean", "KL p99", "top-1 vs full", "PPL ratio"});
  bool has_accuracy = false;
  for (const json& run : doc["runs"]) has_accuracy = has_accuracy || run["measurements"].contains("accuracy");
  if (has_accuracy) head.push_back("correct");
  std::vector<std::vector<std::string>> rows;
  for (const json& run : doc["runs"]) {
    const json& m = run["measurements"];
    std::string method = run["method"].get<std::string>();
    if (!run["budget"].is_null()) method += fmt::format("@{}", run["budget"].get<int>());
    std::vector<std::string> r = {
        model["name"].get<std::string>() + (model["synthetic"].get<bool>() ? " (synthetic)" : ""),
        fmt::format("{:.2f} M", model["parameters"].get<double>() / 1e6),
        fmt::format("{} x{}", doc["device"]["kind"].get<std::string>(), doc["device"]["threads"].get<int>()),
        doc["settings"]["mode"].get<std::string>(),
        method,
        std::to_string(run["sequences"].size()),
        fmt::format("{:.1f}", m["prefill"]["tokens_per_s"].get<double>()),
        fmt::format("{:.1f}", m["decode"]["tokens_per_s"].get<double>()),
        fmt::format("{:.3f}", m["decode"]["step_latency_ms"]["p50"].get<double>()),
        fmt::format("{:.3f}", m["decode"]["step_latency_ms"]["p99"].get<double>()),
        human_bytes(m["memory"]["kv_bytes_peak"].get<double>()),
        human_bytes(m["memory"]["peak_rss_bytes"].get<double>())};
    if (replay) {
      if (m.contains("fidelity") && !m["fidelity"].empty()) {
        const json& f = m["fidelity"];
        r.push_back(fmt::format("{:.3f}", m["replay"]["ppl"].get<double>()));
        r.push_back(fmt::format("{:.5f}", f["kl"]["mean"].get<double>()));
        r.push_back(fmt::format("{:.5f}", f["kl"]["p99"].get<double>()));
        r.push_back(fmt::format("{:.4f}", f["top1_agreement_with_full"].get<double>()));
        r.push_back(fmt::format("{:.4f}", f["ppl_ratio"].get<double>()));
      } else {
        r.insert(r.end(), {"-", "-", "-", "-", "-"});
      }
    }
    if (has_accuracy) {
      r.push_back(m.contains("accuracy") ? fmt::format("{}/{}", m["accuracy"]["correct"].get<int64_t>(),
                                                       m["accuracy"]["total"].get<int64_t>())
                                         : "-");
    }
    rows.push_back(std::move(r));
  }
  return markdown(head, rows);
}

}  // namespace kvb
