// tokenizer.json (model, vocab, merges, added tokens, normalizer, pre-tokenizer, post-processor),
// then an encode and a decode of a fixed text with special tokens and bytes beyond ASCII.
#include "engine/tokenizers/byte_bpe_tokenizer.hpp"
#include "fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = kvb::fuzz::scratch_file("tokenizer.json", kvb::fuzz::as_text(data, size));
  kvb::fuzz::expect_clean(path, [&] {
    auto tok = kvb::load_hf_tokenizer(path);
    (void)tok->decode(tok->encode("<|im_start|>user\nWhat is 2+2? \xc3\xa9\xe4\xb8\xad  \t123 don't<|im_end|>"));
  });
  return 0;
}
