#include "reports/report.hpp"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "reports/html_report.hpp"
#include "reports/json_schema.hpp"
#include "reports/markup.hpp"
#include "reports/result_schema.hpp"
#include "reports/table.hpp"
#include "util/errors.hpp"
#include "util/json_fields.hpp"

namespace kvb {

using nlohmann::json;

json read_result_file(const std::string& path) {
  json doc = read_json_file(path);
  if (!doc.is_object() || !doc.contains("schema_version") || !doc.contains("runs"))
    fail_input("{}: not a kvbench result (no schema_version or runs)", path);
  if (doc["schema_version"] != kResultSchemaVersion)
    fail_input("{}: result schema version {} (this kvbench reads version {})", path, describe(doc["schema_version"]),
               kResultSchemaVersion);
  // Once, against the documented schema, before anything renders or compares it: every field a
  // renderer reads unguarded is required there with its type, so no reader meets a missing key
  // or a wrong type (const operator[] on a missing key is undefined behaviour).
  if (const std::string violation = schema_violation(doc, result_schema()); !violation.empty())
    fail_input("{}: not a valid kvbench result: {}", path, violation);
  return doc;
}

std::string render_report(const json& doc, const std::string& format, const std::filesystem::path& steps_csv_path) {
  if (format == "md") return render_summary_table(doc);
  if (format == "csv") return render_csv(doc);
  std::ifstream in(steps_csv_path);
  std::stringstream steps;
  if (in) steps << in.rdbuf();
  return render_html(doc, steps.str());
}

namespace {

// The value at a path, as CSV text; empty when it is missing.
std::string field(const json& j, const char* path) {
  const json* at = find_path(j, path);
  if (!at) return "";
  return at->is_string() ? at->get<std::string>() : at->dump();
}

}  // namespace

std::string render_csv(const json& doc) {
  std::string out =
      "model,mode,device,method,budget,sequences,prefill_tokens_per_s,decode_tokens_per_s,step_p50_ms,step_p99_ms,"
      "kv_bytes_per_sequence_mean,kv_bytes_per_sequence_peak,compression_events,ms_per_event,kl_mean,kl_p99,"
      "top1_agreement_with_full,retained_attention_mass,ppl_ratio,accuracy\n";
  for (const json& run : doc["runs"]) {
    const json& m = run["measurements"];
    out += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", csv_quote(field(doc, "model/name")),
                       field(doc, "settings/mode"), field(doc, "device/kind"), field(run, "method"),
                       field(run, "budget"), run["sequences"].size(), field(m, "prefill/tokens_per_s"),
                       field(m, "decode/tokens_per_s"), field(m, "decode/step_latency_ms/p50"),
                       field(m, "decode/step_latency_ms/p99"), field(m, "memory/kv_bytes_per_sequence_mean"),
                       field(m, "memory/kv_bytes_per_sequence_peak"), field(m, "compression/events"),
                       field(m, "compression/ms_per_event"), field(m, "fidelity/kl/mean"),
                       field(m, "fidelity/kl/p99"), field(m, "fidelity/top1_agreement_with_full"),
                       field(m, "fidelity/retained_attention_mass/mean"), field(m, "fidelity/ppl_ratio"),
                       field(m, "accuracy/accuracy"));
  }
  return out;
}

}  // namespace kvb
