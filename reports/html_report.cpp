#include "reports/html_report.hpp"

#include <map>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "reports/markup.hpp"
#include "reports/svg_chart.hpp"
#include "reports/table.hpp"

namespace kvb {

using nlohmann::json;

namespace {

std::string run_name(const json& run) {
  return run["budget"].is_null() ? run["method"].get<std::string>()
                                 : fmt::format("{}@{}", run["method"].get<std::string>(), run["budget"].get<int>());
}

// Splits one CSV line (fields may be double-quoted, with "" for a quote).
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"') out.back() += '"', ++i;
    else if (c == '"') quoted = !quoted;
    else if (c == ',' && !quoted) out.emplace_back();
    else out.back() += c;
  }
  return out;
}

// Per run and step index: the mean over sequences of KV bytes and KL, and the share of sequences
// whose argmax agreed with full attention.
struct StepSeries {
  std::map<int, double> kv_sum, kl_sum, agree_sum;
  std::map<int, int> count, replay_count;
};

std::map<std::string, StepSeries> read_steps(const std::string& csv) {
  std::map<std::string, StepSeries> out;
  std::istringstream in(csv);
  std::string line;
  if (!std::getline(in, line)) return out;
  const std::vector<std::string> head = csv_fields(line);
  auto column = [&](const char* name) {
    const auto it = std::find(head.begin(), head.end(), name);
    return it == head.end() ? -1 : int(it - head.begin());
  };
  const int method = column("method"), budget = column("budget"), step = column("step"), kv = column("kv_bytes"),
            kl = column("kl"), full_argmax = column("full_argmax"), method_argmax = column("method_argmax");
  if (method < 0 || budget < 0 || step < 0 || kv < 0) return out;
  while (std::getline(in, line)) {
    const std::vector<std::string> f = csv_fields(line);
    if (f.size() < head.size()) continue;
    const std::string name = f[budget] == "0" ? f[method] : f[method] + "@" + f[budget];
    StepSeries& s = out[name];
    const int i = std::stoi(f[step]);
    s.kv_sum[i] += f[kv].empty() ? 0.0 : std::stod(f[kv]);
    ++s.count[i];
    if (kl >= 0 && !f[kl].empty()) {
      s.kl_sum[i] += std::stod(f[kl]);
      s.agree_sum[i] += f[full_argmax] == f[method_argmax];
      ++s.replay_count[i];
    }
  }
  return out;
}

// Mean of `sum / count` over a trailing window of `smooth` steps.
Series step_series(const std::string& name, const std::map<int, double>& sum, const std::map<int, int>& count,
                   double scale, int smooth) {
  Series s{name, {}};
  std::vector<std::pair<int, double>> v;
  for (const auto& [i, total] : sum) v.push_back({i, total / count.at(i) * scale});
  double window = 0;
  for (size_t k = 0; k < v.size(); ++k) {
    window += v[k].second;
    if (k >= size_t(smooth)) window -= v[k - smooth].second;
    s.points.push_back({double(v[k].first), window / double(std::min(k + 1, size_t(smooth)))});
  }
  return s;
}

// One colour per method (in the order they first appear) and one dash style per budget of it, so
// the runs of a method read as a family.
void style_by_method(const json& doc, std::vector<Series>& series) {
  std::map<std::string, int> color, budgets_seen;
  for (const json& run : doc["runs"]) color.try_emplace(run["method"].get<std::string>(), int(color.size()));
  for (Series& s : series) {
    const std::string method = s.name.substr(0, s.name.find('@'));
    const auto c = color.find(method);
    s.color = c == color.end() ? -1 : c->second;
    s.dash = budgets_seen[method]++;
  }
}

}  // namespace

std::string render_html(const json& doc, const std::string& steps_csv) {
  const json& model = doc["model"];
  const std::string mode = doc["settings"]["mode"].get<std::string>();
  const bool replay = mode == "replay";
  std::string body;
  body += fmt::format("<h1>kvbench: {}</h1>\n<p class=\"meta\">{} ({:.2f} M parameters{}), workload {}, mode {}, "
                      "device {} x{}, kvbench {} ({}), {}</p>\n",
                      markup_escape(model["name"].get<std::string>()), markup_escape(model["name"].get<std::string>()),
                      model["parameters"].get<double>() / 1e6, model["synthetic"].get<bool>() ? ", synthetic weights" : "",
                      markup_escape(doc["workload"]["source"].get<std::string>()), mode,
                      doc["device"]["kind"].get<std::string>(), doc["device"]["threads"].get<int>(),
                      doc["tool"]["version"].get<std::string>(), doc["tool"]["git_commit"].get<std::string>(),
                      doc["started_at"].get<std::string>());
  body += "<pre class=\"table\">" + markup_escape(render_summary_table(doc)) + "</pre>\n";

  // Per-step charts from steps.csv.
  const std::map<std::string, StepSeries> steps = read_steps(steps_csv);
  if (steps.empty()) {
    body += "<p class=\"note\">No steps.csv beside the result: the per-step charts are left out.</p>\n";
  } else {
    std::vector<Series> kv, kl, agree;
    for (const json& run : doc["runs"]) {
      const auto it = steps.find(run_name(run));
      if (it == steps.end()) continue;
      const StepSeries& s = it->second;
      kv.push_back(step_series(run_name(run), s.kv_sum, s.count, 1.0 / (1 << 20), 1));
      if (!s.replay_count.empty() && !run["budget"].is_null()) {  // full attention against itself: nothing to draw
        kl.push_back(step_series(run_name(run), s.kl_sum, s.replay_count, 1.0, 16));
        agree.push_back(step_series(run_name(run), s.agree_sum, s.replay_count, 1.0, 16));
      }
    }
    style_by_method(doc, kv);
    style_by_method(doc, kl);
    style_by_method(doc, agree);
    body += svg_line_chart({"KV cache held per sequence over decode steps", "decode step", "MiB (mean over sequences)"}, kv);
    if (replay && !kl.empty()) {
      body += svg_line_chart({"KL(full || method) over decode steps, 16-step mean", "decode step", "nats"}, kl);
      body += svg_line_chart({"Top-1 agreement with full attention, 16-step mean", "decode step", "share of sequences"},
                             agree);
    }
  }

  // Against budget: one series per budgeted method; full attention as a flat line across them.
  std::map<std::string, Series> rate, memory;
  double lo = 0, hi = 0;
  for (const json& run : doc["runs"])
    if (!run["budget"].is_null()) {
      const double b = run["budget"].get<double>();
      lo = lo == 0 ? b : std::min(lo, b);
      hi = std::max(hi, b);
    }
  for (const json& run : doc["runs"]) {
    const std::string method = run["method"].get<std::string>();
    const json& m = run["measurements"];
    const double tps = m["decode"]["tokens_per_s"].get<double>();
    const double kvb = m["memory"]["kv_bytes_per_sequence_peak"].get<double>() / (1 << 20);
    auto& r = rate.try_emplace(method, Series{method, {}}).first->second;
    auto& k = memory.try_emplace(method, Series{method, {}}).first->second;
    if (run["budget"].is_null()) {
      r.points = {{lo, tps}, {hi, tps}};
      k.points = {{lo, kvb}, {hi, kvb}};
    } else {
      r.points.push_back({run["budget"].get<double>(), tps});
      k.points.push_back({run["budget"].get<double>(), kvb});
    }
  }
  if (hi > 0) {
    std::vector<Series> r, k;
    for (auto& [name, s] : rate) r.push_back(s);
    for (auto& [name, s] : memory) k.push_back(s);
    style_by_method(doc, r);
    style_by_method(doc, k);
    body += svg_line_chart({"Decode tokens/s against budget", "budget (tokens per layer and KV head)", "tokens/s"}, r);
    body += svg_line_chart({"KV bytes per sequence (peak) against budget", "budget (tokens per layer and KV head)", "MiB"}, k);
  }

  // Frontier: fidelity (replay) or accuracy (generate) against throughput.
  std::vector<Series> frontier;
  std::string y_label;
  for (const json& run : doc["runs"]) {
    const json& m = run["measurements"];
    double y = 0;
    if (replay && m.contains("fidelity") && m["fidelity"].contains("top1_agreement_with_full")) {
      y = m["fidelity"]["top1_agreement_with_full"].get<double>();
      y_label = "top-1 agreement with full attention";
    } else if (m.contains("accuracy")) {
      y = m["accuracy"]["accuracy"].get<double>();
      y_label = "accuracy";
    } else {
      continue;
    }
    frontier.push_back({run_name(run), {{m["decode"]["tokens_per_s"].get<double>(), y}}});
  }
  style_by_method(doc, frontier);
  if (!frontier.empty())
    body += svg_scatter_chart({fmt::format("{} against decode tokens/s", y_label), "decode tokens/s", y_label}, frontier);

  return "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>kvbench report</title>\n"
         "<style>\nbody{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}\n"
         "h1{font-size:20px}.meta{color:#555}.note{color:#a33}\n"
         "pre.table{font-size:12px;overflow-x:auto;background:#f7f7f7;padding:8px}\n"
         "svg.chart{display:block;margin:18px 0;font-size:11px}\n.plot{fill:#fff;stroke:#999}.grid{stroke:#eee}\n"
         ".title{font-size:14px;font-weight:600}.tick{fill:#555}.axis{fill:#333}.legend{fill:#333}\n"
         "</style>\n</head>\n<body>\n" +
         body + "</body>\n</html>\n";
}

}  // namespace kvb
