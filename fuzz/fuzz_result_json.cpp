// A result.json from another machine: validated against the schema, then (when it validates)
// rendered as markdown, CSV and HTML and compared with itself, as report and compare do.
#include "fuzz/fuzz_support.hpp"
#include "reports/compare.hpp"
#include "reports/report.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = kvb::fuzz::scratch_file("result.json", kvb::fuzz::as_text(data, size));
  kvb::fuzz::expect_clean(path, [&] {
    const nlohmann::json doc = kvb::read_result_file(path);
    for (const char* format : {"md", "csv", "html"}) (void)kvb::render_report(doc, format, "");
    (void)kvb::compare_results(doc, doc, kvb::default_metric_rules(), path, path);  // may refuse: no run in common
  });
  return 0;
}
