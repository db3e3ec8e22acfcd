// GGUF: header, metadata of every type, tensor table, the embedded tokenizer and chat template,
// and the weights (F32/F16/BF16/Q8_0 converted and checked), through load_gguf.
#include "engine/model.hpp"
#include "fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = kvb::fuzz::scratch_file("model.gguf", kvb::fuzz::as_text(data, size));
  kvb::LoadOptions options;
  options.hash_files = false;
  options.available_bytes = uint64_t(1) << 30;  // the memory check refuses what would not fit in 1 GiB
  kvb::fuzz::expect_clean(path, [&] { (void)kvb::load_gguf(path, options); });
  return 0;
}
