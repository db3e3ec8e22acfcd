// Grading what a model wrote (untrusted text, never an error): the input is split at the first
// NUL into the generated text and the reference; graded as a DFS state (JSON) and as a math
// answer (\boxed{}, normalisation, comparison).
#include "fuzz/fuzz_support.hpp"
#include "workloads/grading.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = kvb::fuzz::as_text(data, size);
  const size_t nul = input.find('\0');
  const std::string text(input.substr(0, nul));
  const std::string reference(nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1));
  for (kvb::AnswerKind kind : {kvb::AnswerKind::Math, kvb::AnswerKind::DfsState, kvb::AnswerKind::Auto})
    (void)kvb::grade_answer(text, reference, kind);
  return 0;
}
