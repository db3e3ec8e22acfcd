#include "reports/table.hpp"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "util/byte_size.hpp"

namespace kvb {

using nlohmann::json;

std::string markdown_table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows) {
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

namespace {

// "method@budget", or the method alone when unbounded.
std::string run_label(const json& run) {
  std::string label = run["method"].get<std::string>();
  if (!run["budget"].is_null()) label += fmt::format("@{}", run["budget"].get<int>());
  return label;
}

// Long template instantiations would widen the whole table; the result keeps the full name.
std::string short_kernel_name(const std::string& name) {
  constexpr size_t kMax = 60;
  return name.size() <= kMax ? name : name.substr(0, kMax - 3) + "...";
}

// The phase that spent most of a kernel's time, with its part of that time: "attention (92%)".
std::string main_phase(const json& kernel) {
  std::string best = "-";
  double best_ms = -1;
  for (const auto& [phase, ms] : kernel["phase_ms"].items())
    if (ms.get<double>() > best_ms) {
      best = phase;
      best_ms = ms.get<double>();
    }
  const double total = kernel["total_ms"].get<double>();
  return total > 0 ? fmt::format("{} ({:.0f}%)", best, 100 * best_ms / total) : best;
}

// --trace on a GPU: each run's kernels, heaviest first (empty when no run was traced on a GPU).
std::string gpu_kernel_table(const json& doc) {
  std::vector<std::vector<std::string>> rows;
  for (const json& run : doc["runs"]) {
    if (!run["measurements"].contains("gpu_profile")) continue;
    for (const json& k : run["measurements"]["gpu_profile"]["kernels"])
      rows.push_back({run_label(run), short_kernel_name(k["name"].get<std::string>()),
                      std::to_string(k["calls"].get<int64_t>()), fmt::format("{:.3f}", k["total_ms"].get<double>()),
                      fmt::format("{:.4f}", k["mean_ms"].get<double>()), fmt::format("{:.1f}%", 100 * k["share"].get<double>()),
                      main_phase(k)});
  }
  if (rows.empty()) return {};
  return "\n" + markdown_table({"run", "kernel", "calls", "total ms", "mean ms", "share", "main phase"}, rows);
}

}  // namespace

std::string render_summary_table(const json& doc) {
  const json& model = doc["model"];
  const bool replay = doc["settings"]["mode"] == "replay";
  // What every row shares goes above the table; the rows show what differs between methods.
  std::string out = fmt::format(
      "model {}{} ({:.2f} M parameters), device {} x{}, mode {}, {} sequence(s)\n\n", model["name"].get<std::string>(),
      model["synthetic"].get<bool>() ? " (synthetic weights)" : "", model["parameters"].get<double>() / 1e6,
      doc["device"]["kind"].get<std::string>(), doc["device"]["threads"].get<int>(), doc["settings"]["mode"].get<std::string>(),
      doc["runs"].empty() ? 0 : doc["runs"][0]["sequences"].size());
  double full_peak = 0;  // per-sequence KV peak of full attention (the run without a budget), when it ran
  for (const json& run : doc["runs"])
    if (run["budget"].is_null()) full_peak = run["measurements"]["memory"]["kv_bytes_per_sequence_peak"].get<double>();
  std::vector<std::string> head = {"method", "KV/seq peak", "KV saved", "decode t/s", "step p50 ms", "step p99 ms",
                                   "events", "ms/event"};
  const bool throughput = doc["settings"]["mode"] == "throughput";
  if (throughput) head.push_back("TTFT p50 ms");
  if (replay) head.insert(head.end(), {"KL mean", "KL p99", "top-1 vs full", "retained attn", "PPL ratio"});
  bool has_accuracy = false;
  for (const json& run : doc["runs"]) has_accuracy = has_accuracy || run["measurements"].contains("accuracy");
  if (has_accuracy) head.insert(head.end(), {"correct", "accuracy [95% CI]", "vs full [95% CI]", "tokens/answer"});
  // Sequence-graded answers (docs/workloads.md) also say how far each answer was right.
  bool has_prefix = false;
  for (const json& run : doc["runs"])
    has_prefix = has_prefix || (run["measurements"].contains("accuracy") &&
                                run["measurements"]["accuracy"].contains("prefix_fraction_mean"));
  if (has_prefix) head.push_back("correct prefix");
  std::vector<std::vector<std::string>> rows;
  for (const json& run : doc["runs"]) {
    const json& m = run["measurements"];
    const std::string method = run_label(run);
    const double peak = m["memory"]["kv_bytes_per_sequence_peak"].get<double>();
    std::vector<std::string> r = {
        method,
        human_bytes(peak),
        full_peak > 0 ? fmt::format("{:.0f}%", 100.0 * (1.0 - peak / full_peak)) : "-",
        fmt::format("{:.1f}", m["decode"]["tokens_per_s"].get<double>()),
        fmt::format("{:.3f}", m["decode"]["step_latency_ms"]["p50"].get<double>()),
        fmt::format("{:.3f}", m["decode"]["step_latency_ms"]["p99"].get<double>()),
        std::to_string(m["compression"]["events"].get<int64_t>()),
        m["compression"]["events"].get<int64_t>() > 0 ? fmt::format("{:.3f}", m["compression"]["ms_per_event"].get<double>())
                                                      : "-"};
    if (throughput)  // a merged or hand-edited document may mix modes: a run without the section shows "-"
      r.push_back(m.contains("throughput")
                      ? fmt::format("{:.3f}", m["throughput"]["time_to_first_token_ms"]["p50"].get<double>())
                      : "-");
    if (replay) {
      if (m.contains("fidelity") && !m["fidelity"].empty()) {
        const json& f = m["fidelity"];
        r.push_back(fmt::format("{:.5f}", f["kl"]["mean"].get<double>()));
        r.push_back(fmt::format("{:.5f}", f["kl"]["p99"].get<double>()));
        r.push_back(fmt::format("{:.4f}", f["top1_agreement_with_full"].get<double>()));
        r.push_back(f.contains("retained_attention_mass")
                        ? fmt::format("{:.4f}", f["retained_attention_mass"]["mean"].get<double>())
                        : "1 (all)");
        r.push_back(fmt::format("{:.4f}", f["ppl_ratio"].get<double>()));
      } else {
        r.insert(r.end(), {"-", "-", "-", "-", "-"});
      }
    }
    if (has_accuracy && m.contains("accuracy")) {
      const json& a = m["accuracy"];
      auto points = [](const json& ci) { return fmt::format("[{:.1f}, {:.1f}]", 100 * ci[0].get<double>(), 100 * ci[1].get<double>()); };
      r.push_back(fmt::format("{}/{}", a["correct"].get<int64_t>(), a["total"].get<int64_t>()));
      r.push_back(fmt::format("{:.1f}% {}{}", 100 * a["accuracy"].get<double>(), points(a["ci95"]),
                              a["draws"].get<int>() > 1 ? fmt::format(" avg@{}", a["draws"].get<int>()) : ""));
      r.push_back(a.contains("vs_full") ? fmt::format("{:+.1f} {} {}", 100 * a["vs_full"]["difference"].get<double>(),
                                                      points(a["vs_full"]["ci95"]), a["vs_full"]["verdict"].get<std::string>())
                                        : "-");
      r.push_back(fmt::format("{:.0f}", a["answer_tokens"]["mean"].get<double>()));
    } else if (has_accuracy) {
      r.insert(r.end(), {"-", "-", "-", "-"});
    }
    if (has_prefix)
      r.push_back(m.contains("accuracy") && m["accuracy"].contains("prefix_fraction_mean")
                      ? fmt::format("{:.1f}%", 100 * m["accuracy"]["prefix_fraction_mean"].get<double>())
                      : "-");
    rows.push_back(std::move(r));
  }
  out += markdown_table(head, rows);
  // --trace: where the time went, per run (the heaviest ops first).
  std::vector<std::vector<std::string>> ops;
  for (const json& run : doc["runs"]) {
    if (!run["measurements"].contains("profile")) continue;
    for (const json& op : run["measurements"]["profile"])
      ops.push_back({run_label(run), op["name"].get<std::string>(), std::to_string(op["calls"].get<int64_t>()),
                     fmt::format("{:.3f}", op["total_ms"].get<double>()), fmt::format("{:.4f}", op["mean_ms"].get<double>()),
                     fmt::format("{:.1f}%", 100 * op["share"].get<double>())});
  }
  if (!ops.empty()) out += "\n" + markdown_table({"run", "op", "calls", "total ms", "mean ms", "share"}, ops);
  out += gpu_kernel_table(doc);
  // A throttled GPU makes every timing above suspect: say so under the tables (older results have no telemetry).
  const json& telemetry = doc["device"].value("gpu_telemetry", json::object());
  if (telemetry.contains("warning") && telemetry["warning"].is_string())
    out += "\nwarning: " + telemetry["warning"].get<std::string>() + "\n";
  return out;
}

}  // namespace kvb
