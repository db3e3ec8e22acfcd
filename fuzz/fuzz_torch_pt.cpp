// A .pt statistics file: the zip archive (central directory, zip64, stored and deflated
// entries, CRCs) and the pickle in it, through read_query_stats.
#include "engine/methods/query_stats.hpp"
#include "fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = kvb::fuzz::scratch_file("stats.pt", kvb::fuzz::as_text(data, size));
  kvb::fuzz::expect_clean(path, [&] { (void)kvb::read_query_stats(path); });
  return 0;
}
