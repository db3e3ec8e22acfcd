// Math answers (AIME, MATH-500): find the model's final answer and grade it against the reference.
// The rules follow the usual MATH/AIME evaluation used by TriAttention and R-KV: the last
// \boxed{}, string normalisation (math_normalize.cpp), then a numeric or element-wise comparison
// (math_compare.cpp).
//
// Everything here runs on model output, so every scan is bounded: no std::regex (its recursion
// can overflow the stack on long inputs), and only the last few boxes are looked at.
#include <algorithm>
#include <optional>
#include <vector>

#include "workloads/grading_parts.hpp"
#include "workloads/answer_text.hpp"

namespace kvb {
using namespace workloads::text;
namespace {

constexpr size_t kMaxBoxesTried = 16;  // unclosed boxes passed over before giving up

// The content of the box whose command ends at s[i] ("\boxed" has just been read), or nullopt
// when it is empty or never closes.
std::optional<std::string> box_content(std::string_view s, size_t i) {
  if (i < s.size() && is_letter(s[i])) return std::nullopt;  // a longer command, e.g. \boxedsymbol
  while (i < s.size() && is_space(s[i])) ++i;
  std::string_view content;
  if (i < s.size() && s[i] == '{') {
    size_t end = group_end(s, i);
    if (end == npos) return std::nullopt;
    content = s.substr(i + 1, end - i - 2);
  } else {
    // "\boxed 5": TeX takes the next token; take up to the next space, `$` or `}`.
    size_t end = i;
    while (end < s.size() && !is_space(s[end]) && s[end] != '$' && s[end] != '}') ++end;
    content = s.substr(i, end - i);
  }
  content = trim(content);
  if (content.empty()) return std::nullopt;
  return std::string(content);
}

// Fallback when there is no box: the rest of the last line holding "answer:" or "answer is"
// ("Final answer: 42", "**Answer:** 42", "so the answer is 42."), up to the end of its sentence.
std::optional<std::string> answer_line(const std::string& text) {
  std::string lower = lower_ascii(text);
  size_t at = npos, len = 0;
  for (std::string_view marker : {"answer:", "answer is"}) {
    size_t p = lower.rfind(marker);
    if (p != npos && (at == npos || p > at)) at = p, len = marker.size();
  }
  if (at == npos) return std::nullopt;
  auto clean = [](std::string_view line) {
    if (size_t stop = line.find(". "); stop != npos) line = line.substr(0, stop);
    line = trim(line);
    while (!line.empty() && (line.front() == '*' || line.front() == ':')) line = trim(line.substr(1));  // markdown bold
    while (!line.empty() && line.back() == '*') line = trim(line.substr(0, line.size() - 1));
    return line;
  };
  // The rest of the marker's line, or the next line when the answer stands on its own line.
  size_t start = at + len;
  for (int lines = 0; lines < 2 && start <= text.size(); ++lines) {
    size_t end = std::min(text.find('\n', start), text.size());
    std::string_view line = clean(std::string_view(text).substr(start, end - start));
    if (!line.empty()) return std::string(line);
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> extract_last_boxed(const std::string& text) {
  std::vector<std::pair<size_t, size_t>> boxes;  // (position, command length)
  for (std::string_view cmd : {"\\boxed", "\\fbox"}) {
    for (size_t p = text.find(cmd); p != npos; p = text.find(cmd, p + 1)) boxes.emplace_back(p, cmd.size());
  }
  std::sort(boxes.begin(), boxes.end(), std::greater<>());
  for (size_t k = 0; k < boxes.size() && k < kMaxBoxesTried; ++k) {
    if (auto content = box_content(text, boxes[k].first + boxes[k].second)) return content;
  }
  return std::nullopt;
}

namespace workloads {

Grade grade_math(const std::string& text, const std::string& reference) {
  Grade g;
  g.reference = reference;
  std::string source = "\\boxed{}";
  auto found = extract_last_boxed(text);
  if (!found) {
    found = answer_line(text);
    source = "the answer line";
  }
  if (!found) {
    g.note = "no answer found: no \\boxed{} and no \"answer:\" / \"answer is\" line";
    return g;
  }
  g.extracted = true;
  g.predicted = *found;
  std::string pred = normalize_math_answer(*found), ref = normalize_math_answer(reference);
  MathMatch m = pred.empty() ? MathMatch::None : match_math_answers(pred, ref);
  g.correct = m != MathMatch::None;
  switch (m) {
    case MathMatch::Text: g.note = "correct: same text after normalisation"; break;
    case MathMatch::Number: g.note = "correct: same number within relative tolerance 1e-4"; break;
    case MathMatch::Elements: g.note = "correct: same elements"; break;
    case MathMatch::None: g.note = "wrong: normalised \"" + pred + "\" vs reference \"" + ref + "\""; break;
  }
  g.note += " (answer from " + source + ")";
  return g;
}

}  // namespace workloads
}  // namespace kvb
