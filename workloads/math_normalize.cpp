// Normalisation of math answers: the canonical text that two ways of writing the same answer
// share ("\dfrac12" and "\frac{1}{2}", "10,\!080" and "10080", "30^\circ" and "30").
// The rules are listed in docs/workloads.md ("Grading"); the steps below apply them in order.
// Runs on model output, so the work is bounded: text over 4 KB is left as it is (a few steps are
// quadratic), recursion goes to a fixed depth, and there is no std::regex (it can overflow the stack).
#include <algorithm>
#include <optional>
#include <string_view>

#include "workloads/answer_text.hpp"
#include "workloads/grading.hpp"

namespace kvb {
using namespace workloads::text;
namespace {

constexpr int kMaxFracDepth = 8;          // nesting of \frac / \sqrt arguments rewritten
constexpr size_t kMaxAnswerBytes = 4096;  // longer text is left as it is

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  for (size_t p = s.find(from); p != npos; p = s.find(from, i)) {
    out.append(s, i, p - i);
    out += to;
    i = p + from.size();
  }
  out.append(s, i);
  s = std::move(out);
}

// Replaces the LaTeX command \name: a word command (\left, but not \leftarrow) or a one-symbol
// command (\, \! \$). Backslash pairs are copied whole, so "\\left" (a line break, then "left")
// and "\\," stay as they are.
void replace_command(std::string& s, std::string_view name, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != '\\') {
      out += s[i++];
      continue;
    }
    size_t after = i + 1 + name.size();
    bool longer = is_letter(name.back()) && after < s.size() && is_letter(s[after]);
    if (starts_with_at(s, i + 1, name) && !longer) {
      out += to;
      i = after;
    } else {
      out.append(s, i, 2);
      i += 2;
    }
  }
  s = std::move(out);
}

// Steps, in the order normalize_math_answer applies them.

// Commands whose argument is plain text: unwrapped ("\text{(C)}" -> "(C)"), or dropped when they
// are a trailing unit ("5.4 \text{ cents}", "864 \mbox{ inches}^2").
constexpr std::string_view kTextCommands[] = {"text",   "textbf", "textit", "textrm", "textsf",
                                              "textnormal", "mbox", "mathrm", "mathbf", "mathit",
                                              "mathsf", "operatorname"};

bool is_words(std::string_view s) {
  s = trim(s);
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return is_letter(c) || is_space(c) || c == '.' || c == '/';
  });
}

// Nothing but an exponent ("^2", "^{3}") and a period may follow a unit.
bool is_unit_tail(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  if (s.empty()) return true;
  if (s[0] != '^') return false;
  s.remove_prefix(1);
  if (s.size() == 1) return is_digit(s[0]);
  return s.size() == 3 && s[0] == '{' && is_digit(s[1]) && s[2] == '}';
}

void unwrap_text_commands(std::string& s) {
  size_t i = 0;
  while ((i = s.find('\\', i)) != npos) {
    size_t name_end = i + 1;
    while (name_end < s.size() && is_letter(s[name_end])) ++name_end;
    std::string_view name(s.data() + i + 1, name_end - i - 1);
    size_t open = name_end;
    while (open < s.size() && is_space(s[open])) ++open;
    bool is_text = std::find(std::begin(kTextCommands), std::end(kTextCommands), name) != std::end(kTextCommands);
    size_t end = (is_text && open < s.size() && s[open] == '{') ? group_end(s, open) : npos;
    if (end == npos) {
      i = std::max(name_end, i + 2);
      continue;
    }
    std::string content = s.substr(open + 1, end - open - 2);
    bool after_something = !trim(std::string_view(s).substr(0, i)).empty();
    if (after_something && is_words(content) && is_unit_tail(std::string_view(s).substr(end))) {
      s.erase(i);  // a unit: drop it with its exponent
    } else {
      s.replace(i, end - i, content);  // scan the content again: it may hold more commands
    }
  }
}

// Plain unit words after a number ("90 degrees", "12 square units"); single letters such as "m"
// are left alone, they are more often variables.
constexpr std::string_view kUnitWords[] = {
    "degree", "degrees", "cm", "mm", "km", "inch", "inches", "ft", "feet", "foot", "yard", "yards",
    "meter", "meters", "metre", "metres", "unit", "units", "square", "sq", "cubic", "cent", "cents",
    "dollar", "dollars", "hour", "hours", "minute", "minutes", "second", "seconds", "day", "days",
    "mph", "percent"};

void strip_unit_words(std::string& s) {
  std::string_view v = trim(s);
  if (v.size() >= 2 && v[v.size() - 2] == '^' && is_digit(v.back())) v.remove_suffix(2);  // "cm^2"
  size_t cut = v.size();
  int words = 0;
  while (words < 2) {  // "12 square units"
    size_t end = cut;
    while (end > 0 && is_space(v[end - 1])) --end;
    size_t start = end;
    while (start > 0 && is_letter(v[start - 1])) --start;
    if (start == end || start == 0 || !is_space(v[start - 1])) break;  // a separate word only
    std::string word = lower_ascii(v.substr(start, end - start));
    if (std::find(std::begin(kUnitWords), std::end(kUnitWords), word) == std::end(kUnitWords)) break;
    cut = start;
    ++words;
  }
  std::string_view before = trim(v.substr(0, cut));
  if (words > 0 && !before.empty() && (is_digit(before.back()) || before.back() == '}')) s = std::string(before);
}

// "x = 5", "y_1 = 2", "\theta = 30", "x \in [-2,7]" -> the right-hand side. Only a single
// (subscripted) letter or one command name may stand on the left, so that an equation such as
// "5x - 7y + 11z + 4 = 0" stays whole.
void strip_assignment(std::string& s) {
  size_t i = 0;
  if (!s.empty() && is_letter(s[0])) {
    i = 1;
  } else if (s.size() > 1 && s[0] == '\\' && is_letter(s[1])) {
    i = 1;
    while (i < s.size() && is_letter(s[i])) ++i;
  } else {
    return;
  }
  if (i < s.size() && s[i] == '_') {
    ++i;
    if (i < s.size() && s[i] == '{') i = group_end(s, i);
    else ++i;
    if (i == npos || i > s.size()) return;
  }
  while (i < s.size() && is_space(s[i])) ++i;
  size_t rhs = npos;
  if (starts_with_at(s, i, "=")) rhs = i + 1;
  else if (starts_with_at(s, i, "\\in") && (i + 3 >= s.size() || !is_letter(s[i + 3]))) rhs = i + 3;
  if (rhs == npos) return;
  std::string_view right = trim(std::string_view(s).substr(rhs));
  if (right.empty() || right.find('=') != npos) return;  // "x = y = 5", "x=5, y=3": leave as is
  s = std::string(right);
}

// "1,000", "-12,345.5": a number with thousands separators (no spaces: "10, 100" is a list).
bool is_thousands_number(std::string_view s) {
  if (!s.empty() && s[0] == '-') s.remove_prefix(1);
  size_t lead = 0;
  while (lead < s.size() && is_digit(s[lead])) ++lead;
  if (lead == 0 || lead > 3) return false;
  size_t i = lead, groups = 0;
  while (i + 4 <= s.size() && s[i] == ',' && is_digit(s[i + 1]) && is_digit(s[i + 2]) && is_digit(s[i + 3])) {
    i += 4;
    ++groups;
  }
  if (groups == 0) return false;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && is_digit(s[i])) ++i;
  }
  return i == s.size();
}

// One macro argument at s[i]: a {group} (its content), a \command or one character; moves i past
// it. nullopt at the end of the text or for a group that never closes.
std::optional<std::string_view> read_argument(std::string_view s, size_t& i) {
  while (i < s.size() && is_space(s[i])) ++i;
  if (i >= s.size()) return std::nullopt;
  size_t start = i;
  if (s[i] == '{') {
    size_t end = group_end(s, i);
    if (end == npos) return std::nullopt;
    i = end;
    return s.substr(start + 1, end - start - 2);
  }
  if (s[i] == '\\') {
    ++i;
    if (i < s.size() && !is_letter(s[i])) ++i;
    while (i < s.size() && is_letter(s[i])) ++i;
    return s.substr(start, i - start);
  }
  ++i;
  return s.substr(start, 1);
}

// Braces every \frac and \sqrt argument ("\frac12" -> "\frac{1}{2}", "\frac 59" -> "\frac{5}{9}",
// "11\sqrt2" -> "11\sqrt{2}") and drops braces around a one-character exponent or subscript
// ("4210_{5}" -> "4210_5", "x^{2}" -> "x^2").
std::string brace_arguments(std::string_view s, int depth) {
  if (depth > kMaxFracDepth) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == '\\') {
      size_t j = i + 1;
      while (j < s.size() && is_letter(s[j])) ++j;
      std::string_view name = s.substr(i + 1, j - i - 1);
      if (name.empty()) {  // \{, \\, \, ...: copy the pair
        out.append(s.substr(i, 2));
        i += 2;
        continue;
      }
      if (name != "frac" && name != "sqrt") {
        out.append(s.substr(i, j - i));
        i = j;
        continue;
      }
      std::string rebuilt = "\\" + std::string(name);
      size_t k = j;
      bool ok = true;
      if (name == "sqrt" && k < s.size() && s[k] == '[') {  // \sqrt[3]{x}
        size_t close = s.find(']', k);
        ok = close != npos;
        if (ok) rebuilt.append(s.substr(k, close - k + 1)), k = close + 1;
      }
      for (int arg = 0; ok && arg < (name == "frac" ? 2 : 1); ++arg) {
        auto a = read_argument(s, k);
        ok = a.has_value();
        if (ok) rebuilt += "{" + brace_arguments(*a, depth + 1) + "}";
      }
      if (!ok) {  // truncated: keep the rest as written
        out.append(s.substr(i));
        break;
      }
      out += rebuilt;
      i = k;
      continue;
    }
    if ((c == '^' || c == '_') && i + 3 < s.size() && s[i + 1] == '{' && s[i + 3] == '}' &&
        s[i + 2] != '\\' && s[i + 2] != '{' && s[i + 2] != '}') {
      out += c;
      out += s[i + 2];
      i += 4;
      continue;
    }
    out += c;
    ++i;
  }
  return out;
}

}  // namespace

std::string normalize_math_answer(std::string s) {
  s = std::string(trim(s));
  // Longer text is not an answer; leaving it as is keeps the worst case (a hostile output full
  // of unclosed groups) fast: some steps below are quadratic in the length.
  if (s.size() > kMaxAnswerBytes) return s;
  while (!s.empty() && s.back() == '.') s.pop_back();  // "\boxed{12}."
  for (std::string_view box : {"\\boxed", "\\fbox"}) {  // an answer given with its box
    if (s.starts_with(box) && s.size() > box.size() && s[box.size()] == '{' && group_end(s, box.size()) == s.size()) {
      s = std::string(trim(std::string_view(s).substr(box.size() + 1, s.size() - box.size() - 2)));
    }
  }
  // Unicode a model may write instead of LaTeX: minus sign, degree sign, pi.
  replace_all(s, "\xE2\x88\x92", "-");
  replace_all(s, "\xC2\xB0", "");
  replace_all(s, "\xCF\x80", "\\pi ");
  // Math delimiters and dollar signs (also "\$18.90").
  for (std::string_view d : {"(", ")", "[", "]", "$"}) replace_command(s, d, "");
  replace_all(s, "$", "");
  for (std::string_view cmd : {"left", "right", "displaystyle", "bigl", "bigr", "Bigl", "Bigr", "big", "Big"}) {
    replace_command(s, cmd, "");
  }
  unwrap_text_commands(s);
  // \! is a negative space used as "10,\!080" / "11,\! 111": glue what follows to the comma.
  replace_command(s, "!", "\x01");
  for (size_t p = s.find('\x01'); p != npos; p = s.find('\x01', p)) {
    size_t q = p + 1;
    while (q < s.size() && is_space(s[q])) ++q;
    s.erase(p, q - p);
  }
  replace_all(s, "{,}", ",");
  for (std::string_view sp : {",", ";", ":", " "}) replace_command(s, sp, " ");
  replace_all(s, "~", " ");
  replace_command(s, "qquad", " ");
  replace_command(s, "quad", " ");
  s = std::string(trim(s));
  strip_assignment(s);
  strip_unit_words(s);
  s = std::string(trim(s));
  if (is_thousands_number(s)) replace_all(s, ",", "");

  s.erase(std::remove_if(s.begin(), s.end(), is_space), s.end());
  for (std::string_view deg : {"^{\\circ}", "^\\circ", "\\circ"}) replace_all(s, deg, "");
  replace_all(s, "\\%", "");
  replace_all(s, "%", "");
  replace_command(s, "dfrac", "\\frac");
  replace_command(s, "tfrac", "\\frac");
  s = brace_arguments(s, 0);
  replace_command(s, "leq", "\\le");
  replace_command(s, "geq", "\\ge");
  replace_command(s, "neq", "\\ne");
  replace_all(s, "{bmatrix}", "{pmatrix}");
  while (!s.empty() && s.back() == '.') s.pop_back();
  // Multiple choice: "(C)", "\text{(C)}" and "C" are the same answer.
  if (s.size() == 3 && s[0] == '(' && is_letter(s[1]) && s[2] == ')') s = s.substr(1, 1);
  // Integers: "070" is 70 (AIME answers are written with three digits).
  size_t sign = (!s.empty() && s[0] == '-') ? 1 : 0;
  if (s.size() > sign + 1 && s[sign] == '0' && std::all_of(s.begin() + sign, s.end(), is_digit)) {
    size_t first = s.find_first_not_of('0', sign);
    s.erase(sign, (first == npos ? s.size() - 1 : first) - sign);
  }
  return s;
}

}  // namespace kvb
