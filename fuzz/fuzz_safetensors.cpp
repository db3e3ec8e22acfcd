// safetensors: the 8-byte header length, the JSON header (dtypes, shapes, offsets, metadata).
#include "engine/safetensors_file.hpp"
#include "fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = kvb::fuzz::scratch_file("model.safetensors", kvb::fuzz::as_text(data, size));
  kvb::fuzz::expect_clean(path, [&] { (void)kvb::SafetensorsFile(path); });
  return 0;
}
