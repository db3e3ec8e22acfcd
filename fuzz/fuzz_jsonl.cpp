// A JSONL workload and a DFS state-query set (.json), both through load_workload.
#include "fuzz/fuzz_support.hpp"
#include "workloads/workload.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (const char* name : {"workload.jsonl", "workload.json"}) {
    const std::string path = kvb::fuzz::scratch_file(name, kvb::fuzz::as_text(data, size));
    kvb::fuzz::expect_clean(path, [&] { (void)kvb::load_workload(path); });
  }
  return 0;
}
