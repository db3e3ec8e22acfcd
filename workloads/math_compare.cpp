// Comparison of two normalised math answers: as text, as numbers (relative tolerance 1e-4), or
// element by element (matrices, tuples, intervals, sets, unions, lists of solutions).
//
// Unlike the TriAttention / R-KV scripts there is deliberately no symbolic step (sympy /
// latex2sympy): "x+1" and "1+x", or "\sqrt{8}" and "2\sqrt{2}", are different answers here. That
// can only under-count (an answer written in an unusual equivalent form), and it keeps grading
// deterministic, fast, dependency-free and safe on untrusted text.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <string_view>
#include <vector>

#include "workloads/grading_parts.hpp"
#include "workloads/answer_text.hpp"

namespace kvb {
namespace workloads {
using namespace text;
namespace {

constexpr int kMaxDepth = 8;             // nesting of \frac / tuple elements looked into
constexpr size_t kMaxElements = 64;      // longest tuple / list compared element by element
constexpr size_t kMaxStructured = 2000;  // longest answer compared element by element (quadratic)
constexpr double kRelativeTolerance = 1e-4;

// A plain decimal: "12", "-0.5", ".35625", "6.72e-5".
std::optional<double> parse_decimal(std::string_view s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  size_t digits = 0;
  while (i < s.size() && is_digit(s[i])) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && is_digit(s[i])) ++i, ++digits;
  }
  if (digits == 0) return std::nullopt;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    size_t e = i + 1;
    if (e < s.size() && (s[e] == '-' || s[e] == '+')) ++e;
    size_t first = e;
    while (e < s.size() && is_digit(s[e])) ++e;
    if (e == first) return std::nullopt;
    i = e;
  }
  if (i != s.size()) return std::nullopt;
  if (s[0] == '+') s.remove_prefix(1);
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// The value of a normalised answer that is a number: a decimal, "a/b", "\frac{a}{b}" (also
// "-\frac..." and mixed numbers "1\frac{4}{5}" = 9/5, as MATH writes them), "6.72\times10^{-5}".
std::optional<double> parse_number(std::string_view s, int depth = 0) {
  if (s.empty() || depth > kMaxDepth) return std::nullopt;
  double sign = 1;
  if (s[0] == '-' || s[0] == '+') {
    sign = s[0] == '-' ? -1 : 1;
    s.remove_prefix(1);
  }
  if (size_t f = s.find("\\frac{"); f != npos) {
    std::string_view whole = s.substr(0, f);
    if (!whole.empty() && !std::all_of(whole.begin(), whole.end(), is_digit)) return std::nullopt;
    size_t k = f + 5;
    size_t num_end = group_end(s, k);
    if (num_end == npos || num_end >= s.size() || s[num_end] != '{') return std::nullopt;
    size_t den_end = group_end(s, num_end);
    if (den_end != s.size()) return std::nullopt;
    auto num = parse_number(s.substr(k + 1, num_end - k - 2), depth + 1);
    auto den = parse_number(s.substr(num_end + 1, den_end - num_end - 2), depth + 1);
    if (!num || !den || *den == 0) return std::nullopt;
    double w = whole.empty() ? 0 : *parse_decimal(whole);
    return sign * (w + *num / *den);
  }
  if (size_t slash = s.find('/'); slash != npos) {
    auto num = parse_decimal(s.substr(0, slash));
    auto den = parse_decimal(s.substr(slash + 1));
    if (!num || !den || *den == 0) return std::nullopt;
    return sign * *num / *den;
  }
  for (std::string_view times : {"\\times10^", "\\cdot10^"}) {
    if (size_t t = s.find(times); t != npos) {
      auto mantissa = parse_decimal(s.substr(0, t));
      std::string_view e = s.substr(t + times.size());
      if (e.size() >= 2 && e.front() == '{' && e.back() == '}') e = e.substr(1, e.size() - 2);
      auto exponent = parse_decimal(e);
      bool whole_exponent = exponent && *exponent == std::floor(*exponent) && std::fabs(*exponent) <= 300;
      if (!mantissa || !whole_exponent) return std::nullopt;
      return sign * *mantissa * std::pow(10.0, *exponent);
    }
  }
  auto v = parse_decimal(s);
  if (!v) return std::nullopt;
  return sign * *v;
}

bool close_enough(double a, double b) {
  return std::fabs(a - b) <= kRelativeTolerance * std::max(std::fabs(a), std::fabs(b));
}

// Splits at `sep` where no bracket is open. (, [, { and \{ open; ), ], } and \} close, so an
// interval such as "(3,4]" counts as one bracket pair.
std::vector<std::string_view> split_top_level(std::string_view s, std::string_view sep) {
  std::vector<std::string_view> parts;
  long depth = 0;
  size_t start = 0, i = 0;
  while (i < s.size()) {
    if (depth == 0 && starts_with_at(s, i, sep) &&
        !(sep[0] == '\\' && is_letter(sep.back()) && i + sep.size() < s.size() && is_letter(s[i + sep.size()]))) {
      parts.push_back(s.substr(start, i - start));
      i += sep.size();
      start = i;
      continue;
    }
    char c = s[i];
    if (c == '\\' && i + 1 < s.size()) {
      if (s[i + 1] == '{') ++depth;
      if (s[i + 1] == '}') --depth;
      i += 2;
      continue;
    }
    if (c == '(' || c == '[' || c == '{') ++depth;
    if (c == ')' || c == ']' || c == '}') --depth;
    ++i;
  }
  parts.push_back(s.substr(start));
  return parts;
}

MathMatch match_normalised(const std::string& a, const std::string& b, int depth);

// The normalised elements of a list. In an unordered list (a set of solutions) an element with
// one \pm stands for two: "1\pm\sqrt{5}" is "1+\sqrt{5}" and "1-\sqrt{5}".
std::vector<std::string> list_elements(const std::vector<std::string_view>& parts, bool ordered) {
  std::vector<std::string> out;
  for (std::string_view part : parts) {
    if (out.size() > kMaxElements) break;
    std::string e = normalize_math_answer(std::string(part));
    size_t pm = ordered ? npos : e.find("\\pm");
    bool one_pm = pm != npos && e.find("\\pm", pm + 3) == npos && !(pm + 3 < e.size() && is_letter(e[pm + 3]));
    if (one_pm) {
      out.push_back(e.substr(0, pm) + "+" + e.substr(pm + 3));
      out.push_back(e.substr(0, pm) + "-" + e.substr(pm + 3));
    } else {
      out.push_back(std::move(e));
    }
  }
  return out;
}

// Element-wise: in order for tuples, intervals and matrices; in any order for sets and lists.
bool elements_match(const std::vector<std::string_view>& a, const std::vector<std::string_view>& b,
                    bool ordered, int depth) {
  if (a.size() > kMaxElements || b.size() > kMaxElements) return false;
  std::vector<std::string> na = list_elements(a, ordered), nb = list_elements(b, ordered);
  if (na.size() != nb.size() || na.size() > kMaxElements) return false;
  if (ordered) {
    for (size_t i = 0; i < na.size(); ++i) {
      if (match_normalised(na[i], nb[i], depth + 1) == MathMatch::None) return false;
    }
    return true;
  }
  std::vector<bool> used(nb.size(), false);
  for (const std::string& x : na) {
    bool found = false;
    for (size_t j = 0; j < nb.size() && !found; ++j) {
      if (!used[j] && match_normalised(x, nb[j], depth + 1) != MathMatch::None) used[j] = found = true;
    }
    if (!found) return false;
  }
  return true;
}

bool wrapped(std::string_view s, std::string_view open, std::string_view close) {
  return s.size() >= open.size() + close.size() && s.starts_with(open) && s.ends_with(close);
}

std::string_view inner(std::string_view s, size_t open, size_t close) {
  return s.substr(open, s.size() - open - close);
}

// One bracket pair around the whole text: "(1,2)", "(3,4]"; not "(0,9)\\cup(9,36)" or "(a+5)(b+2)".
bool is_bracketed(std::string_view s) {
  if (s.size() < 2 || (s.front() != '(' && s.front() != '[') || (s.back() != ')' && s.back() != ']')) return false;
  long depth = 0;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
      continue;
    }
    if (s[i] == '(' || s[i] == '[' || s[i] == '{') ++depth;
    if (s[i] == ')' || s[i] == ']' || s[i] == '}') --depth;
    if (depth <= 0) return false;  // the first bracket closed before the end
  }
  return true;
}

bool is_all_letters(std::string_view s) { return std::all_of(s.begin(), s.end(), is_letter); }

MathMatch match_normalised(const std::string& a, const std::string& b, int depth) {
  if (a == b) return MathMatch::Text;
  // Word answers ("East", "east"); single letters stay case-sensitive (variables, choices).
  if (a.size() > 1 && is_all_letters(a) && lower_ascii(a) == lower_ascii(b)) return MathMatch::Text;
  auto x = parse_number(a), y = parse_number(b);
  if (x && y) return close_enough(*x, *y) ? MathMatch::Number : MathMatch::None;
  // Structure is only looked into for answer-sized text: element matching is quadratic.
  if (depth >= kMaxDepth || a.size() > kMaxStructured || b.size() > kMaxStructured) return MathMatch::None;

  constexpr std::string_view kBegin = "\\begin{pmatrix}", kEnd = "\\end{pmatrix}";
  if (wrapped(a, kBegin, kEnd) && wrapped(b, kBegin, kEnd)) {
    auto rows_a = split_top_level(inner(a, kBegin.size(), kEnd.size()), "\\\\");
    auto rows_b = split_top_level(inner(b, kBegin.size(), kEnd.size()), "\\\\");
    if (rows_a.size() != rows_b.size() || rows_a.size() > kMaxElements) return MathMatch::None;
    for (size_t r = 0; r < rows_a.size(); ++r) {
      if (!elements_match(split_top_level(rows_a[r], "&"), split_top_level(rows_b[r], "&"), true, depth)) {
        return MathMatch::None;
      }
    }
    return MathMatch::Elements;
  }
  if (wrapped(a, "\\{", "\\}") && wrapped(b, "\\{", "\\}")) {  // sets
    return elements_match(split_top_level(inner(a, 2, 2), ","), split_top_level(inner(b, 2, 2), ","), false, depth)
               ? MathMatch::Elements : MathMatch::None;
  }
  // Tuples and intervals: the same brackets, elements in order ("(3,4]" is not "(3,4)").
  if (is_bracketed(a) && is_bracketed(b) && a.front() == b.front() && a.back() == b.back() &&
      elements_match(split_top_level(inner(a, 1, 1), ","), split_top_level(inner(b, 1, 1), ","), true, depth)) {
    return MathMatch::Elements;
  }
  // Unions of intervals and bare lists of solutions ("1,-2"): any order.
  for (std::string_view sep : {"\\cup", ","}) {
    auto pa = split_top_level(a, sep), pb = split_top_level(b, sep);
    if (pa.size() > 1 || pb.size() > 1) {
      return elements_match(pa, pb, false, depth) ? MathMatch::Elements : MathMatch::None;
    }
  }
  return MathMatch::None;
}

}  // namespace

MathMatch match_math_answers(const std::string& normalised_a, const std::string& normalised_b) {
  return match_normalised(normalised_a, normalised_b, 0);
}

}  // namespace workloads

bool math_answers_equal(const std::string& a, const std::string& b) {
  using workloads::MathMatch;
  return workloads::match_math_answers(normalize_math_answer(a), normalize_math_answer(b)) != MathMatch::None;
}

}  // namespace kvb
