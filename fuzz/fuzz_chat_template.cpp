// A chat template (Jinja): parsed, then rendered with a conversation of every message kind the
// project's prompts use. Parse and render failures are InputErrors naming the template.
#include "formats/jinja_template.hpp"
#include "fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nlohmann::ordered_json context = nlohmann::ordered_json::parse(R"({
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                 {"role": "assistant", "content": "<think>4</think>4"}, {"role": "user", "content": "x"}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "enable_thinking": false})");
  kvb::TemplateLimits limits;
  limits.max_steps = 200'000;  // keeps each input fast; the real limits are tested in tests/
  limits.max_output_bytes = 1u << 20;
  kvb::fuzz::expect_clean("fuzz.jinja", [&] {
    const kvb::ChatTemplate t = kvb::ChatTemplate::parse(std::string(kvb::fuzz::as_text(data, size)), "fuzz.jinja", limits);
    (void)t.render(context);
  });
  return 0;
}
