// tokenizer_config.json as a chat-template source (--prompt-template FILE.json): the template
// string or list, and the special-token texts.
#include "formats/chat_template_source.hpp"
#include "fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = kvb::fuzz::scratch_file("tokenizer_config.json", kvb::fuzz::as_text(data, size));
  kvb::fuzz::expect_clean(path, [&] { (void)kvb::read_chat_template_file(path); });
  return 0;
}
