// Grading what a model wrote: the input is split at the first NUL into the generated text and the
// reference; graded as a DFS state (JSON), as a math answer (\boxed{}, normalisation,
// comparison) and as a word sequence. Whatever the generated text holds, grading returns a Grade; the one error allowed
// is the documented InputError for an unusable reference (empty, or not a DFS answer object),
// which the workload loader reports with the file and item.
#include "fuzz/fuzz_support.hpp"
#include "workloads/grading.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = kvb::fuzz::as_text(data, size);
  const size_t nul = input.find('\0');
  const std::string text(input.substr(0, nul));
  const std::string reference(nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1));
  for (kvb::AnswerKind kind : {kvb::AnswerKind::Math, kvb::AnswerKind::DfsState, kvb::AnswerKind::Sequence,
                              kvb::AnswerKind::Auto})
    kvb::fuzz::expect_clean("", [&] { (void)kvb::grade_answer(text, reference, kind); });
  return 0;
}
