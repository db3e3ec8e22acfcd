// A recorded R1 trace: the DCMP container, its gzip stream and the MessagePack in it, then the
// trace's fields, through load_workload (".msgpack.gz" is read as a trace whatever its bytes).
#include "fuzz/fuzz_support.hpp"
#include "workloads/workload.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = kvb::fuzz::scratch_file("trace.msgpack.gz", kvb::fuzz::as_text(data, size));
  kvb::fuzz::expect_clean(path, [&] { (void)kvb::load_workload(path); });
  return 0;
}
