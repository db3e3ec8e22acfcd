// Sequence answers (the bundled DFS reasoner's move traces, models/dfs-reasoner): the reference
// is a whole output, compared word by word (words split on ASCII white space, so spacing does
// not matter). Correct only when every word matches and nothing follows; the prefix fraction is
// how many leading words match, over the reference's word count. Linear in both texts.
#include <fmt/format.h>

#include <string_view>
#include <vector>

#include "workloads/grading_parts.hpp"

namespace kvb::workloads {
namespace {

std::vector<std::string_view> words_of(std::string_view s) {
  std::vector<std::string_view> out;
  constexpr std::string_view kSpace = " \t\r\n\f\v";
  for (size_t i = s.find_first_not_of(kSpace); i != std::string_view::npos; i = s.find_first_not_of(kSpace, i)) {
    const size_t end = std::min(s.size(), s.find_first_of(kSpace, i));
    out.push_back(s.substr(i, end - i));
    i = end;
  }
  return out;
}

}  // namespace

Grade grade_sequence(const std::string& text, const std::string& reference) {
  const std::vector<std::string_view> got = words_of(text), want = words_of(reference);
  size_t same = 0;
  while (same < got.size() && same < want.size() && got[same] == want[same]) ++same;
  Grade g;
  g.reference = reference;
  g.extracted = !got.empty();
  g.predicted = text;
  g.prefix_fraction = double(same) / double(want.size());
  g.correct = same == want.size() && got.size() == want.size();
  if (g.correct) g.note = fmt::format("all {} words match", want.size());
  else if (same == want.size()) g.note = fmt::format("all {} words match, then {} more", want.size(), got.size() - same);
  else if (same == got.size()) g.note = fmt::format("stopped after {} of {} words", same, want.size());
  else g.note = fmt::format("first {} of {} words match; word {} differs", same, want.size(), same + 1);
  return g;
}

}  // namespace kvb::workloads
