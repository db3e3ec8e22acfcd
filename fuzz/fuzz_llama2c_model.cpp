// llama2.c checkpoint (the 7-int header and the fp32 tensors after it), with a fixed valid
// tokenizer beside it so the run reaches the weights.
#include "engine/model.hpp"
#include "fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = kvb::fuzz::scratch_file("model.bin", kvb::fuzz::as_text(data, size));
  kvb::LoadOptions options;
  options.hash_files = false;
  options.available_bytes = uint64_t(1) << 30;
  options.tokenizer_path = kvb::fuzz::scratch_dir() + "/none.bin";  // absent: refused after the header
  kvb::fuzz::expect_clean("", [&] { (void)kvb::load_llama2c(path, options); });
  return 0;
}
