#pragma once
// Answer extraction and grading for `kvbench run --mode generate`: did a method's generated text
// reach the reference answer? Two kinds of answer:
//   Math      AIME / MATH-500 style: the last \boxed{...} in the text, normalised and compared as
//             text, as a number (relative tolerance 1e-4) or element-wise as a tuple, interval,
//             set or list. There is no symbolic algebra (no sympy-style "x+1 == 1+x").
//   DfsState  the DFS state-query set: a JSON object {current_node, stack, visited_nodes} after
//             the last "Answer:".
//   Sequence  a whole output compared word by word (the bundled DFS reasoner's move traces):
//             exact match, and the fraction of the reference's words matched before the first
//             difference.
// The rules are documented in docs/workloads.md ("Grading").
//
// The generated text is untrusted: nothing in it makes grading throw, crash or take more than
// linear-ish time. Only an unusable *reference* is an error (InputError).
#include <optional>
#include <string>

namespace kvb {

enum class AnswerKind {
  Math,
  DfsState,
  Sequence,
  Auto,  // DfsState when the reference parses as a DFS answer object, else Math
};

struct Grade {
  bool correct = false;
  bool extracted = false;  // an answer was found in the generated text (and, for DFS, parsed)
  std::string predicted;   // the answer as found (DFS: the parsed object, compact); valid UTF-8, capped in length
  std::string reference;   // the reference as given
  std::string note;        // how it matched, or why it did not (one line)
  // Sequence answers: the leading words that match, over the reference's word count (0..1).
  std::optional<double> prefix_fraction;
};

// Parses a workload's "grading" field: "auto", "math", "dfs-state" or "sequence"; nullopt otherwise.
std::optional<AnswerKind> parse_answer_kind(const std::string& name);

// Grades `generated_text` against `reference`. Throws InputError only when the reference itself
// is unusable: empty, or not a DFS answer object when `kind` is DfsState.
Grade grade_answer(const std::string& generated_text, const std::string& reference,
                   AnswerKind kind = AnswerKind::Auto);

// Content of the last complete \boxed{...} or \fbox{...} (braces balanced, \{ and \} skipped),
// also the brace-less form "\boxed 5". Empty and unclosed boxes (a truncated output) are passed
// over in favour of the box before them. nullopt when there is none.
std::optional<std::string> extract_last_boxed(const std::string& text);

// Canonical text of a math answer (see docs/workloads.md "Grading"): no spaces, `$`, \left/\right,
// spacing commands, degrees, percent signs, \text wrappers or trailing unit words; \dfrac and
// \tfrac become \frac, \frac12 becomes \frac{1}{2}; a leading "x =" goes, as do a trailing period,
// thousands separators and leading zeros of an integer.
std::string normalize_math_answer(std::string s);

// True when two math answers are the same after normalisation: as text, as numbers (relative
// tolerance 1e-4), or element by element (tuples and intervals in order; sets, unions and bare
// comma lists in any order).
bool math_answers_equal(const std::string& a, const std::string& b);

}  // namespace kvb
