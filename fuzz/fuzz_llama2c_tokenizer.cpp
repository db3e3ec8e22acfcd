// The first two bytes: the model's vocabulary size (little-endian); then a llama2.c
// tokenizer.bin (max token length, then score + length + bytes per piece), then an
// encode and a decode of a fixed text with whatever it loaded.
#include "engine/tokenizers/spm_tokenizer.hpp"
#include "fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int vocab = data[0] | (data[1] << 8);  // the vocabulary size the model would declare
  const std::string path = kvb::fuzz::scratch_file("tokenizer.bin", kvb::fuzz::as_text(data + 2, size - 2));
  kvb::fuzz::expect_clean(path, [&] {
    auto tok = kvb::load_llama2c_tokenizer(path, vocab);
    (void)tok->decode(tok->encode("Once upon a time, \xe2\x96\x81 there\nwas <0x0A> a cat."));
  });
  return 0;
}
