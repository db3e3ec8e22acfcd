// grade_answer(): picks the grader for the reference's kind and makes its output safe to store.
// The generated text is untrusted model output; whatever it holds, grading returns a Grade.
#include <string_view>

#include "util/errors.hpp"
#include "workloads/grading_parts.hpp"

namespace kvb {
namespace {

constexpr size_t kMaxPredictedBytes = 512;
constexpr size_t kMaxNoteBytes = 1024;

// Valid UTF-8 of at most about `max_bytes` bytes, invalid bytes replaced by U+FFFD and a cut
// marked by "...". Model output decoded token by token can hold broken UTF-8, and result files
// must always serialise (nlohmann::json::dump throws on invalid UTF-8).
std::string printable(std::string_view s, size_t max_bytes) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (out.size() >= max_bytes) {
      out += "...";
      break;
    }
    auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = byte(i);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (byte(i + k) & 0xC0) == 0x80;
    if (ok && len > 1) {  // no overlong forms, surrogates or code points past U+10FFFF
      uint32_t cp = c & (0x7F >> len);
      for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (byte(i + k) & 0x3F);
      static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMin[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (!ok) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    out.append(s.substr(i, len));
    i += len;
  }
  return out;
}

}  // namespace

std::optional<AnswerKind> parse_answer_kind(const std::string& name) {
  if (name == "auto") return AnswerKind::Auto;
  if (name == "math") return AnswerKind::Math;
  if (name == "dfs-state") return AnswerKind::DfsState;
  if (name == "sequence") return AnswerKind::Sequence;
  return std::nullopt;
}

Grade grade_answer(const std::string& generated_text, const std::string& reference, AnswerKind kind) {
  if (reference.find_first_not_of(" \t\r\n") == std::string::npos) fail_input("reference answer is empty");
  if (kind == AnswerKind::Auto) kind = workloads::is_dfs_answer(reference) ? AnswerKind::DfsState : AnswerKind::Math;
  Grade g;
  try {
    g = kind == AnswerKind::DfsState   ? workloads::grade_dfs(generated_text, reference)
        : kind == AnswerKind::Sequence ? workloads::grade_sequence(generated_text, reference)
                                       : workloads::grade_math(generated_text, reference);
  } catch (const InputError&) {
    throw;  // the reference is unusable: the workload is at fault, not the output
  } catch (const std::exception& e) {
    // Not expected (the graders are written not to throw; the fuzz test checks it), but one odd
    // output must not end a long generate run.
    g = Grade{};
    g.reference = reference;
    g.note = std::string("grading failed: ") + e.what();
  }
  g.predicted = printable(g.predicted, kMaxPredictedBytes);
  g.note = printable(g.note, kMaxNoteBytes);
  return g;
}

}  // namespace kvb
