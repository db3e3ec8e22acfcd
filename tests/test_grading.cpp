// Answer extraction and grading: hand-checked math and DFS cases, every real AIME / MATH-500 /
// DFS reference graded against itself, and fuzzed model output (random and truncated text) that
// must never make grading throw, crash or stall.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "tests/test_support.hpp"
#include "util/errors.hpp"
#include "workloads/grading.hpp"
#include "workloads/workload.hpp"

namespace kvb {
namespace {

using nlohmann::json;

Grade math(const std::string& text, const std::string& reference) {
  return grade_answer(text, reference, AnswerKind::Math);
}

bool boxed_matches(const std::string& predicted, const std::string& reference) {
  return math("The answer is $\\boxed{" + predicted + "}$.", reference).correct;
}

// ---------------------------------------------------------------------------------------------
// Extraction

TEST(GradingExtract, LastBoxedWithNestedBraces) {
  EXPECT_EQ(extract_last_boxed("so $\\boxed{\\frac{1}{\\sqrt{2}}}$ done"), "\\frac{1}{\\sqrt{2}}");
  EXPECT_EQ(extract_last_boxed("first \\boxed{1}, then \\boxed{2}, finally \\boxed{3}."), "3");
  EXPECT_EQ(extract_last_boxed("\\fbox{42}"), "42");
  EXPECT_EQ(extract_last_boxed("\\boxed{1} and later \\fbox{7}"), "7");
  EXPECT_EQ(extract_last_boxed("\\fbox{7} and later \\boxed{ 8 }"), "8");
  EXPECT_EQ(extract_last_boxed("\\boxed{\\{1,2\\}}"), "\\{1,2\\}");  // escaped braces do not count
  EXPECT_EQ(extract_last_boxed("$\\boxed 5$"), "5");
  EXPECT_EQ(extract_last_boxed("\\boxed {12}"), "12");
}

TEST(GradingExtract, NoAnswer) {
  EXPECT_EQ(extract_last_boxed(""), std::nullopt);
  EXPECT_EQ(extract_last_boxed("no box here"), std::nullopt);
  EXPECT_EQ(extract_last_boxed("\\boxed{}"), std::nullopt);
  EXPECT_EQ(extract_last_boxed("\\boxedsymbol{3}"), std::nullopt);

  Grade g = math("I think it is about twelve", "12");
  EXPECT_FALSE(g.extracted);
  EXPECT_FALSE(g.correct);
  EXPECT_NE(g.note.find("no answer found"), std::string::npos) << g.note;
}

TEST(GradingExtract, TruncatedLastBoxFallsBackToTheOneBefore) {
  EXPECT_EQ(extract_last_boxed("\\boxed{3} ... \\boxed{\\frac{1}{2"), "3");
  EXPECT_EQ(extract_last_boxed("\\boxed{\\frac{1}{2"), std::nullopt);
}

TEST(GradingExtract, AnswerLineFallback) {
  EXPECT_TRUE(math("Work...\nFinal answer: 42", "42").correct);
  EXPECT_TRUE(math("Work...\n**Answer:** $\\frac{1}{2}$\n", "\\frac12").correct);
  EXPECT_TRUE(math("So the answer is 70. Done.", "070").correct);
  Grade g = math("The answer is 41.", "42");
  EXPECT_TRUE(g.extracted);
  EXPECT_FALSE(g.correct);
  EXPECT_EQ(g.predicted, "41.");
  // A box wins over an answer line.
  EXPECT_TRUE(math("\\boxed{5}\nFinal answer: 6", "5").correct);
}

// ---------------------------------------------------------------------------------------------
// Normalisation and comparison

TEST(GradingMath, Normalisation) {
  EXPECT_EQ(normalize_math_answer(" \\dfrac{1}{2} "), "\\frac{1}{2}");
  EXPECT_EQ(normalize_math_answer("\\tfrac12"), "\\frac{1}{2}");
  EXPECT_EQ(normalize_math_answer("\\frac 59"), "\\frac{5}{9}");
  EXPECT_EQ(normalize_math_answer("\\frac9{19}"), "\\frac{9}{19}");
  EXPECT_EQ(normalize_math_answer("\\frac{270}7\\text{ degrees}"), "\\frac{270}{7}");
  EXPECT_EQ(normalize_math_answer("11\\sqrt2"), "11\\sqrt{2}");
  EXPECT_EQ(normalize_math_answer("\\left( 3, \\frac{\\pi}{2} \\right)"), "(3,\\frac{\\pi}{2})");
  EXPECT_EQ(normalize_math_answer("10,\\!080"), "10080");
  EXPECT_EQ(normalize_math_answer("11,\\! 111,\\! 111,\\! 100"), "11111111100");
  EXPECT_EQ(normalize_math_answer("\\$32,\\!348"), "32348");
  EXPECT_EQ(normalize_math_answer("90^\\circ"), "90");
  EXPECT_EQ(normalize_math_answer("864 \\mbox{ inches}^2"), "864");
  EXPECT_EQ(normalize_math_answer("\\text{(C)}"), "C");
  EXPECT_EQ(normalize_math_answer("x \\in [-2,7]"), "[-2,7]");
  EXPECT_EQ(normalize_math_answer("y = 2x + 3"), "2x+3");
  EXPECT_EQ(normalize_math_answer("5x - 7y + 11z + 4 = 0"), "5x-7y+11z+4=0");  // an equation stays
  EXPECT_EQ(normalize_math_answer("025"), "25");
  EXPECT_EQ(normalize_math_answer("-007"), "-7");
  EXPECT_EQ(normalize_math_answer("0"), "0");
  EXPECT_EQ(normalize_math_answer("3, 5, 7"), "3,5,7");  // a list, not a number
  EXPECT_EQ(normalize_math_answer("4210_{5}"), "4210_5");
  EXPECT_EQ(normalize_math_answer("\\boxed{12}."), "12");
  EXPECT_EQ(normalize_math_answer("\\begin{bmatrix} 1 \\\\ 2 \\end{bmatrix}"), "\\begin{pmatrix}1\\\\2\\end{pmatrix}");
}

TEST(GradingMath, EquivalentForms) {
  // Fractions and decimals, numerically.
  EXPECT_TRUE(boxed_matches("0.5", "\\frac{1}{2}"));
  EXPECT_TRUE(boxed_matches("\\frac12", "\\frac{1}{2}"));
  EXPECT_TRUE(boxed_matches("1/2", "\\dfrac{1}{2}"));
  EXPECT_TRUE(boxed_matches("-\\frac{3}{8}", "-0.375"));
  EXPECT_TRUE(boxed_matches("\\frac{-3}{8}", "-\\frac{3}{8}"));
  EXPECT_TRUE(boxed_matches("137.5", "137 \\frac{1}{2}"));  // mixed number
  EXPECT_TRUE(boxed_matches("0.0000672", ".0000672"));
  EXPECT_TRUE(boxed_matches("6.72 \\times 10^{-5}", ".0000672"));
  EXPECT_TRUE(boxed_matches("18.9", "\\$18.90"));
  // Integers.
  EXPECT_TRUE(boxed_matches("70", "070"));
  EXPECT_TRUE(boxed_matches("070", "70"));
  EXPECT_TRUE(boxed_matches("1,000", "1000"));
  EXPECT_TRUE(boxed_matches("1000", "1,000"));
  EXPECT_TRUE(boxed_matches("10080", "10,\\!080"));
  EXPECT_TRUE(boxed_matches("58500", "58,500"));
  EXPECT_TRUE(boxed_matches("70.0", "70"));
  // Units, degrees, percent, text.
  EXPECT_TRUE(boxed_matches("30", "30^\\circ"));
  EXPECT_TRUE(boxed_matches("30^{\\circ}", "30^\\circ"));
  EXPECT_TRUE(boxed_matches("30 degrees", "30^\\circ"));
  EXPECT_TRUE(boxed_matches("30\xC2\xB0", "30^\\circ"));
  EXPECT_TRUE(boxed_matches("25\\%", "25"));
  EXPECT_TRUE(boxed_matches("5.4", "5.4 \\text{ cents}"));
  EXPECT_TRUE(boxed_matches("5.4\\text{ cents}", "5.4"));
  EXPECT_TRUE(boxed_matches("15", "15\\mbox{ cm}^2"));
  EXPECT_TRUE(boxed_matches("864 \\text{ square inches}", "864 \\mbox{ inches}^2"));
  EXPECT_TRUE(boxed_matches("12 square units", "12"));
  EXPECT_TRUE(boxed_matches("\\frac{270}{7}", "\\frac{270}7\\text{ degrees}"));
  EXPECT_TRUE(boxed_matches("C", "\\text{(C)}"));
  EXPECT_TRUE(boxed_matches("(C)", "\\text{(C)}"));
  EXPECT_TRUE(boxed_matches("\\textbf{(C)}", "\\text{(C)}"));
  EXPECT_TRUE(boxed_matches("Evelyn", "\\text{Evelyn}"));
  EXPECT_TRUE(boxed_matches("\\text{East}", "\\text{east}"));
  // Assignments, spacing, LaTeX variants.
  EXPECT_TRUE(boxed_matches("x = 5", "x=5"));
  EXPECT_TRUE(boxed_matches("5", "x=5"));
  EXPECT_TRUE(boxed_matches("-2x", "y = -2x"));
  EXPECT_TRUE(boxed_matches("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"));
  EXPECT_TRUE(boxed_matches("2\\sqrt{5}", "2 \\sqrt{5}"));
  EXPECT_TRUE(boxed_matches("11\\sqrt{2}", "11\\sqrt2"));
  EXPECT_TRUE(boxed_matches("12\\pi", "12 \\pi"));
  EXPECT_TRUE(boxed_matches("4210_5", "4210_{5}"));
  EXPECT_TRUE(boxed_matches("p-q", "p - q"));
  EXPECT_TRUE(boxed_matches("6 - 5i", "6-5i"));
  // Tuples, intervals, sets, lists.
  EXPECT_TRUE(boxed_matches("(2, 4)", "(2,4)"));
  EXPECT_TRUE(boxed_matches("(1.5, -13)", "\\left( \\frac{3}{2}, -13 \\right)"));
  EXPECT_TRUE(boxed_matches("(-\\infty,0]", "(-\\infty, 0]"));
  EXPECT_TRUE(boxed_matches("(0.6, \\frac83]", "\\left(\\frac{3}{5},\\frac{8}{3}\\right]"));
  EXPECT_TRUE(boxed_matches("(3,\\infty)\\cup(-\\infty,2)", "(-\\infty, 2) \\cup (3, \\infty)"));
  EXPECT_TRUE(boxed_matches("1, -2", "-2,1"));
  EXPECT_TRUE(boxed_matches("7, 5, 3", "3, 5, 7"));
  EXPECT_TRUE(boxed_matches("\\{-2, 1\\pm\\sqrt{5}\\}", "\\{1\\pm\\sqrt{5},-2\\}"));
  EXPECT_TRUE(boxed_matches("\\{-2, 1 + \\sqrt{5}, 1 - \\sqrt{5}\\}", "\\{1\\pm\\sqrt{5},-2\\}"));  // \pm: two elements
  EXPECT_TRUE(boxed_matches("1 - \\sqrt{19}, 1 + \\sqrt{19}", "1 \\pm \\sqrt{19}"));
  EXPECT_TRUE(boxed_matches("3 \\pm 2\\sqrt2", "3 \\pm 2 \\sqrt{2}"));
  EXPECT_TRUE(boxed_matches("\\begin{pmatrix} 0.2 \\\\ -3.6 \\end{pmatrix}",
                            "\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}"));
  EXPECT_TRUE(boxed_matches("\\begin{bmatrix} -1 & 0 \\\\ 0 & -1 \\end{bmatrix}",
                            "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}"));
  EXPECT_TRUE(math_answers_equal("\\frac{3}{2}", "1.5"));
}

TEST(GradingMath, WrongAnswersStayWrong) {
  EXPECT_FALSE(boxed_matches("0.33", "\\frac{1}{3}"));  // 1% off, tolerance is 1e-4 relative
  EXPECT_TRUE(boxed_matches("0.333333", "\\frac{1}{3}"));
  EXPECT_FALSE(boxed_matches("71", "70"));
  EXPECT_FALSE(boxed_matches("700", "70"));
  EXPECT_FALSE(boxed_matches("(3,4)", "(3,4]"));  // open vs half-open interval
  EXPECT_FALSE(boxed_matches("(4,2)", "(2,4)"));  // a tuple is ordered
  EXPECT_FALSE(boxed_matches("(1,2,3)", "(1,2)"));
  EXPECT_FALSE(boxed_matches("1,2", "1,2,3"));
  EXPECT_FALSE(boxed_matches("\\frac{1}{2}", "\\frac{1}{3}"));
  EXPECT_FALSE(boxed_matches("\\sqrt{3}", "\\sqrt{2}"));
  EXPECT_FALSE(boxed_matches("B", "\\text{(C)}"));
  EXPECT_FALSE(boxed_matches("c", "C"));  // single letters are case-sensitive
  EXPECT_FALSE(boxed_matches("0", "1"));
  EXPECT_FALSE(boxed_matches("-5", "5"));
  EXPECT_FALSE(boxed_matches("x+1", "1+x"));  // no symbolic algebra
  EXPECT_FALSE(boxed_matches("10,100", "10, 100"));
  EXPECT_FALSE(boxed_matches("1 + \\sqrt{19}", "1 \\pm \\sqrt{19}"));  // one of the two
  EXPECT_FALSE(boxed_matches("1 + \\sqrt{19}, 1 + \\sqrt{19}", "1 \\pm \\sqrt{19}"));
  EXPECT_FALSE(boxed_matches("34\\%", "\\frac{17}{50}"));  // no percent-to-fraction rescaling  // "10,100" is ten thousand one hundred
  Grade g = math("\\boxed{0.33}", "\\frac{1}{3}");
  EXPECT_TRUE(g.extracted);
  EXPECT_EQ(g.predicted, "0.33");
  EXPECT_EQ(g.reference, "\\frac{1}{3}");
  EXPECT_NE(g.note.find("wrong"), std::string::npos) << g.note;
}

TEST(GradingMath, GradeFields) {
  Grade g = grade_answer("We get $\\boxed{\\dfrac{14}{3}}$.", "\\frac{14}{3}");
  EXPECT_TRUE(g.correct);
  EXPECT_TRUE(g.extracted);
  EXPECT_EQ(g.predicted, "\\dfrac{14}{3}");
  EXPECT_EQ(g.reference, "\\frac{14}{3}");
  EXPECT_NE(g.note.find("correct"), std::string::npos) << g.note;
  g = grade_answer("\\boxed{4.666}", "\\frac{14}{3}");
  EXPECT_FALSE(g.correct);  // 1.4e-4 relative
  g = grade_answer("\\boxed{4.6667}", "\\frac{14}{3}");  // 7e-6 relative
  EXPECT_TRUE(g.correct);
  EXPECT_NE(g.note.find("number"), std::string::npos) << g.note;
}

TEST(GradingMath, UnusableReferenceIsAnInputError) {
  EXPECT_THROW(grade_answer("\\boxed{1}", ""), InputError);
  EXPECT_THROW(grade_answer("\\boxed{1}", "  \n"), InputError);
  EXPECT_THROW(grade_answer("Answer: {}", "42", AnswerKind::DfsState), InputError);
}

// ---------------------------------------------------------------------------------------------
// DFS answers

const std::string kDfsRef = R"({"current_node":3,"stack":[0,2,3],"visited_nodes":[0,1,2,3]})";

TEST(GradingDfs, AutoDetectsTheKind) {
  Grade g = grade_answer("Answer: {\"current_node\": 3, \"stack\": [0, 2, 3], \"visited_nodes\": [0, 1, 2, 3]}", kDfsRef);
  EXPECT_TRUE(g.correct) << g.note;
  EXPECT_TRUE(g.extracted);
  EXPECT_EQ(g.predicted, kDfsRef);
  EXPECT_EQ(g.reference, kDfsRef);
  // A math reference that happens to parse as JSON (a number, an array) is still math.
  EXPECT_NE(grade_answer("\\boxed{70}", "70").note.find("normalisation"), std::string::npos);
  EXPECT_TRUE(grade_answer("\\boxed{[1, 2]}", "[1,2]").correct);
  EXPECT_FALSE(grade_answer("\\boxed{(1, 2)}", "[1,2]").correct);
}

TEST(GradingDfs, Correct) {
  // Visited nodes are a set: order and repeats do not matter. Whitespace and extra keys neither.
  EXPECT_TRUE(grade_answer("step 1 ...\nAnswer: {\"visited_nodes\": [3, 2, 1, 0, 0], \"stack\": [0, 2, 3], "
                           "\"current_node\": 3, \"note\": \"done\"}\n", kDfsRef).correct);
  // The last "Answer:" wins over drafts before it.
  EXPECT_TRUE(grade_answer("Answer: {\"current_node\": 2, \"stack\": [0, 2], \"visited_nodes\": [0, 2]}\n"
                           "Wait, one more step.\nAnswer: {\"current_node\": 3, \"stack\": [0, 2, 3], "
                           "\"visited_nodes\": [0, 1, 2, 3]}", kDfsRef).correct);
  // Markdown around it, a code fence, a pretty-printed object.
  EXPECT_TRUE(grade_answer("**Answer:**\n```json\n{\n  \"current_node\": 3,\n  \"stack\": [0, 2, 3],\n"
                           "  \"visited_nodes\": [0, 1, 2, 3]\n}\n```", kDfsRef).correct);
  // No "Answer:": the last object holding "current_node".
  EXPECT_TRUE(grade_answer("state {\"current_node\": 2, \"stack\": [0,2], \"visited_nodes\": [0,2]} then "
                           "{\"current_node\": 3, \"stack\": [0,2,3], \"visited_nodes\": [0,1,2,3]}", kDfsRef).correct);
  // Python-dict quoting and node ids written as strings.
  EXPECT_TRUE(grade_answer("Answer: {'current_node': 3, 'stack': [0, 2, 3], 'visited_nodes': [0, 1, 2, 3]}", kDfsRef).correct);
  EXPECT_TRUE(grade_answer("Answer: {\"current_node\": \"3\", \"stack\": [0, 2, 3], \"visited_nodes\": [0, 1, 2, 3]}", kDfsRef).correct);
  // "answer:" in any case.
  EXPECT_TRUE(grade_answer("FINAL ANSWER: {\"current_node\": 3, \"stack\": [0, 2, 3], \"visited_nodes\": [0, 1, 2, 3]}", kDfsRef).correct);
}

TEST(GradingDfs, Wrong) {
  Grade g = grade_answer("Answer: {\"current_node\": 2, \"stack\": [0, 2], \"visited_nodes\": [0, 1, 2, 3]}", kDfsRef);
  EXPECT_TRUE(g.extracted);
  EXPECT_FALSE(g.correct);
  EXPECT_NE(g.note.find("current_node 2 (expected 3)"), std::string::npos) << g.note;
  EXPECT_NE(g.note.find("stack [0,2] (expected [0,2,3])"), std::string::npos) << g.note;
  EXPECT_EQ(g.note.find("visited_nodes"), std::string::npos) << g.note;

  // The stack is a list: order matters.
  g = grade_answer("Answer: {\"current_node\": 3, \"stack\": [2, 0, 3], \"visited_nodes\": [0, 1, 2, 3]}", kDfsRef);
  EXPECT_FALSE(g.correct);
  EXPECT_NE(g.note.find("stack"), std::string::npos) << g.note;
  g = grade_answer("Answer: {\"current_node\": 3, \"stack\": [0, 2, 3], \"visited_nodes\": [0, 2, 3]}", kDfsRef);
  EXPECT_FALSE(g.correct);
  EXPECT_NE(g.note.find("visited_nodes [0,2,3] (expected [0,1,2,3])"), std::string::npos) << g.note;
}

// After the last backtrack the stack is empty and current_node is null (5 real reference answers).
TEST(GradingDfs, FinishedSearchHasNullCurrentNode) {
  const std::string ref = R"({"current_node":null,"stack":[],"visited_nodes":[0,1,2]})";
  Grade g = grade_answer("Answer: {\"current_node\": null, \"stack\": [], \"visited_nodes\": [2, 1, 0]}", ref);
  EXPECT_TRUE(g.correct) << g.note;
  EXPECT_EQ(g.predicted, R"({"current_node":null,"stack":[],"visited_nodes":[2,1,0]})");  // as written, compact
  EXPECT_TRUE(grade_answer("Answer: {'current_node': None, 'stack': [], 'visited_nodes': [0, 1, 2]}", ref).correct);
  g = grade_answer("Answer: {\"current_node\": 0, \"stack\": [0], \"visited_nodes\": [0, 1, 2]}", ref);
  EXPECT_TRUE(g.extracted);
  EXPECT_FALSE(g.correct);
  EXPECT_NE(g.note.find("current_node 0 (expected null)"), std::string::npos) << g.note;
  g = grade_answer("Answer: {\"current_node\": null, \"stack\": [], \"visited_nodes\": [0, 1, 2]}", kDfsRef);
  EXPECT_FALSE(g.correct);
  EXPECT_NE(g.note.find("current_node null (expected 3)"), std::string::npos) << g.note;
}

TEST(GradingDfs, Malformed) {
  struct Case {
    std::string text, note;
  };
  const Case cases[] = {
      {"I could not finish.", "no JSON answer object"},
      {"Answer: {\"current_node\": 3, \"stack\": [0, 2, 3], \"visited_no", "not closed"},
      {"Answer: {\"current_node\": 3, \"stack\": [0, 2, 3,], \"visited_nodes\": [0]}", "not valid JSON"},
      {"Answer: {\"current_node\": 3, \"stack\": [0, 2, 3]}", "no \"visited_nodes\""},
      {"Answer: {\"current_node\": [3], \"stack\": [0, 2, 3], \"visited_nodes\": [0]}", "\"current_node\" is not an integer"},
      {"Answer: {\"current_node\": true, \"stack\": [0, 2, 3], \"visited_nodes\": [0]}", "\"current_node\" is not an integer"},
      {"Answer: {\"current_node\": 3, \"stack\": \"0 2 3\", \"visited_nodes\": [0]}", "\"stack\" is not a list"},
      {"Answer: {\"current_node\": 3, \"stack\": [0], \"visited_nodes\": [0.5]}", "\"visited_nodes\" is not a list"},
      {"Answer: {\"current_node\": 99999999999999999999999, \"stack\": [0], \"visited_nodes\": [0]}", "not an integer"},
  };
  for (const Case& c : cases) {
    Grade g = grade_answer(c.text, kDfsRef, AnswerKind::DfsState);
    EXPECT_FALSE(g.extracted) << c.text;
    EXPECT_FALSE(g.correct) << c.text;
    EXPECT_NE(g.note.find("malformed"), std::string::npos) << g.note;
    EXPECT_NE(g.note.find(c.note), std::string::npos) << c.text << "\n  note: " << g.note;
  }
}

// ---------------------------------------------------------------------------------------------
// Real data: every reference grades as correct against itself.

void expect_self_graded(const std::filesystem::path& file, size_t expected_items) {
  Workload w = load_workload(file.string());
  ASSERT_EQ(w.items.size(), expected_items);
  for (const WorkloadItem& item : w.items) {
    ASSERT_TRUE(item.answer.has_value()) << item.id;
    const std::string& ans = *item.answer;
    Grade g = grade_answer("Reasoning...\nFinal answer: $\\boxed{" + ans + "}$", ans);
    EXPECT_TRUE(g.correct) << file.filename() << " " << item.id << ": " << ans << " -> " << g.note;
    EXPECT_EQ(g.predicted, ans);
    // Also as the bare answer line and as the (normalised) reference itself.
    EXPECT_TRUE(grade_answer("The answer is " + ans + "\n", ans).correct) << item.id << ": " << ans;
    EXPECT_TRUE(math_answers_equal(normalize_math_answer(ans), ans)) << item.id << ": " << ans;
  }
}

TEST(GradingRealData, Aime24SelfCheck) {
  KVB_REQUIRE_DATA(path, "workloads/aime24/aime24.jsonl");
  expect_self_graded(path, 30);
}

TEST(GradingRealData, Aime25SelfCheck) {
  KVB_REQUIRE_DATA(path, "workloads/aime25/aime25.jsonl");
  expect_self_graded(path, 30);
}

TEST(GradingRealData, Math500SelfCheck) {
  KVB_REQUIRE_DATA(path, "workloads/math500/math.jsonl");
  expect_self_graded(path, 500);
}

// Hand-written equivalent forms of real MATH-500 answers, as a model might write them.
TEST(GradingRealData, Math500Variants) {
  KVB_REQUIRE_DATA(path, "workloads/math500/math.jsonl");
  Workload w = load_workload(path.string());
  std::set<std::string> answers;
  for (const WorkloadItem& item : w.items) answers.insert(*item.answer);
  const std::pair<const char*, const char*> variants[] = {
      {"\\frac{14}{3}", "\\dfrac{14}{3}"},
      {"\\frac{14}{3}", "14/3"},
      {"\\text{(C)}", "C"},
      {"p - q", "p-q"},
      {"\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\frac{\\pi}{2})"},
      {"\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac\\pi2)"},
      {"10,\\!080", "10080"},
      {"10,\\!080", "10,080"},
      {"11,\\! 111,\\! 111,\\! 100", "11111111100"},
      {"\\$32,\\!348", "32348"},
      {"\\$32,\\!348", "\\$32,348"},
      {"\\frac 34", "0.75"},
      {"\\frac9{19}", "\\frac{9}{19}"},
      {"\\frac{270}7\\text{ degrees}", "\\frac{270}{7}^\\circ"},
      {"864 \\mbox{ inches}^2", "864"},
      {"15\\mbox{ cm}^2", "15 \\text{cm}^2"},
      {"5.4 \\text{ cents}", "5.4"},
      {"137 \\frac{1}{2}", "137.5"},
      {"1\\frac{4}{5}", "\\frac{9}{5}"},
      {"(-\\infty, 2) \\cup (3, \\infty)", "(-\\infty,2)\\cup(3,\\infty)"},
      {"x \\in [-2,7]", "[-2, 7]"},
      {"x=5", "5"},
      {"y = 2x + 3", "y=2x+3"},
      {"3, 5, 7", "3,5,7"},
      {"1,-2", "-2, 1"},
      {"\\{1\\pm\\sqrt{5},-2\\}", "\\{-2, 1 \\pm \\sqrt{5}\\}"},
      {"\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}", "\\begin{pmatrix} \\frac{1}{5} \\\\ -\\frac{18}{5} \\end{pmatrix}"},
      {"90^\\circ", "90"},
      {"120^\\circ", "120^{\\circ}"},
      {".0000672", "0.0000672"},
      {"\\sqrt{5}", "\\sqrt5"},
      {"\\text{Evelyn}", "Evelyn"},
      {"4210_{5}", "4210_5"},
      {"\\$18.90", "18.90"},
      {"\\dfrac{17}{50}", "0.34"},
  };
  for (const auto& [reference, variant] : variants) {
    if (!answers.count(reference)) {
      ADD_FAILURE() << "not a MATH-500 answer (any more?): " << reference;
      continue;
    }
    Grade g = grade_answer(std::string("... so $\\boxed{") + variant + "}$.", reference);
    EXPECT_TRUE(g.correct) << reference << " vs " << variant << ": " << g.note;
  }
}

TEST(GradingRealData, DfsSelfCheck) {
  KVB_REQUIRE_DATA(dir, "workloads/dfs");
  size_t files = 0, cases = 0;
  std::mt19937 rng(7);
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    Workload w = load_workload(entry.path().string());
    ++files;
    for (const WorkloadItem& item : w.items) {
      ASSERT_TRUE(item.answer.has_value());
      const std::string& ref = *item.answer;
      ++cases;
      Grade g = grade_answer("Let me simulate.\nAnswer: " + ref + "\n", ref);
      EXPECT_NE(g.note.find("current_node, stack and visited_nodes match"), std::string::npos) << g.note;
      EXPECT_TRUE(g.correct) << entry.path().filename() << " " << item.id << ": " << g.note;
      EXPECT_EQ(g.predicted, ref);
      // Pretty-printed, visited nodes shuffled: still correct.
      json j = json::parse(ref);
      auto visited = j["visited_nodes"].get<std::vector<int>>();
      std::shuffle(visited.begin(), visited.end(), rng);
      j["visited_nodes"] = visited;
      g = grade_answer("Answer:\n" + j.dump(2), ref);
      EXPECT_TRUE(g.correct) << item.id << ": " << g.note;
      // One more node on the stack: wrong.
      j["stack"].push_back(-1);
      EXPECT_FALSE(grade_answer("Answer: " + j.dump(), ref).correct) << item.id;
    }
  }
  EXPECT_EQ(files, 15u);
  EXPECT_GT(cases, 800u);
}

// ---------------------------------------------------------------------------------------------
// Untrusted output: never throws, always returns storable text, stays fast.

bool valid_utf8(const std::string& s) {
  try {
    (void)json(s).dump();
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

void expect_graded_safely(const std::string& text, const std::string& reference) {
  Grade g;
  ASSERT_NO_THROW(g = grade_answer(text, reference)) << text;
  EXPECT_EQ(g.note.find("grading failed"), std::string::npos) << g.note;
  EXPECT_TRUE(valid_utf8(g.predicted));
  EXPECT_TRUE(valid_utf8(g.note));
  EXPECT_LE(g.predicted.size(), 520u);
  if (!g.extracted) EXPECT_FALSE(g.correct);
}

TEST(GradingFuzz, RandomText) {
  const std::vector<std::string> pieces = {
      "\\boxed{", "\\fbox{", "\\boxed", "{", "}", "\\{", "\\}", "\\frac", "\\dfrac", "\\sqrt", "\\text{",
      "\\left(", "\\right]", "\\!", "\\,", "\\\\", "\\", "$", "^", "_", "^\\circ", "\\%", "(", ")", "[", "]",
      ",", ".", "-", "/", "=", " ", "\n", "0", "7", "070", "1,000", "e", "x", "\\in", "\\cup", "\\pm",
      "\\begin{pmatrix}", "\\end{pmatrix}", "&", "Answer:", "answer is", "Final answer:", "\"current_node\"",
      "\"stack\"", "\"visited_nodes\"", ":", "\"", "'", "null", "1e999", "99999999999999999999",
      "\xff", "\xc3", "\xe2\x88\x92", "\xC2\xB0", "cm", " degrees", "\x01"};
  const std::vector<std::string> references = {"70", "\\frac{1}{2}", "(3,4]", "\\{1,2\\}", "3, 5, 7", kDfsRef,
                                                "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\text{(C)}"};
  std::mt19937 rng(12345);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string text;
    int n = std::uniform_int_distribution<int>(0, 60)(rng);
    for (int k = 0; k < n; ++k) text += pieces[rng() % pieces.size()];
    if (rng() % 4 == 0) {  // raw random bytes too
      for (int k = 0; k < 20; ++k) text += char(rng() % 256);
    }
    expect_graded_safely(text, references[iter % references.size()]);
    ASSERT_NO_THROW(normalize_math_answer(text));
    ASSERT_NO_THROW(extract_last_boxed(text));
    if (HasFatalFailure()) return;
  }
}

TEST(GradingFuzz, TruncatedOutputs) {
  const std::string math_out = "We have $x = \\dfrac{1}{2}$, so \\boxed{\\left(3, \\frac{\\pi}{2}\\right)} ... "
                               "Final answer: $\\boxed{\\{1\\pm\\sqrt{5},-2\\}}$.";
  const std::string dfs_out = "Step 1: visit 2.\nAnswer: {\"current_node\": 3, \"stack\": [0, 2, 3], "
                              "\"visited_nodes\": [0, 1, 2, 3]}\n";
  for (size_t len = 0; len <= math_out.size(); ++len) {
    expect_graded_safely(math_out.substr(0, len), "\\{1\\pm\\sqrt{5},-2\\}");
  }
  EXPECT_TRUE(grade_answer(math_out, "\\{1\\pm\\sqrt{5},-2\\}").correct);
  for (size_t len = 0; len <= dfs_out.size(); ++len) {
    Grade g = grade_answer(dfs_out.substr(0, len), kDfsRef);
    EXPECT_EQ(g.correct, len >= dfs_out.size() - 1) << len;  // the newline is optional
    expect_graded_safely(dfs_out.substr(0, len), kDfsRef);
  }
}

TEST(GradingFuzz, InvalidUtf8InTheAnswerIsReplaced) {
  Grade g = grade_answer("\\boxed{7\xff\xfe}", "7");
  EXPECT_TRUE(g.extracted);
  EXPECT_FALSE(g.correct);
  EXPECT_TRUE(valid_utf8(g.predicted));
  EXPECT_EQ(g.predicted, "7\xEF\xBF\xBD\xEF\xBF\xBD");
  // A very long answer is cut.
  g = grade_answer("\\boxed{" + std::string(100000, '9') + "}", "9");
  EXPECT_FALSE(g.correct);
  EXPECT_LE(g.predicted.size(), 520u);
}

// ---------------------------------------------------------------------------------------------
// Sequence answers (the bundled DFS reasoner's move traces)

Grade sequence(const std::string& text, const std::string& reference) {
  return grade_answer(text, reference, AnswerKind::Sequence);
}

TEST(GradingSequence, ExactMatchIsEveryWordAndNothingMore) {
  const std::string ref = "u3 # v3 5 u5 3";
  Grade g = sequence("u3 # v3 5 u5 3", ref);
  EXPECT_TRUE(g.correct);
  EXPECT_TRUE(g.extracted);
  EXPECT_EQ(g.prefix_fraction, 1.0);
  EXPECT_EQ(g.note, "all 6 words match");
  // Spacing does not matter; words do.
  EXPECT_TRUE(sequence("  u3  #\nv3\t5 u5 3 \n", ref).correct);
  // Extra words after a full match: not correct, yet the whole reference was reproduced.
  g = sequence("u3 # v3 5 u5 3 s3", ref);
  EXPECT_FALSE(g.correct);
  EXPECT_EQ(g.prefix_fraction, 1.0);
  EXPECT_EQ(g.note, "all 6 words match, then 1 more");
}

TEST(GradingSequence, PrefixFractionCountsLeadingWordsOverTheReference) {
  const std::string ref = "a b c d";
  Grade g = sequence("a b x d", ref);
  EXPECT_FALSE(g.correct);
  EXPECT_DOUBLE_EQ(*g.prefix_fraction, 0.5);
  EXPECT_EQ(g.note, "first 2 of 4 words match; word 3 differs");
  g = sequence("a b c", ref);  // cut short (a length cap)
  EXPECT_DOUBLE_EQ(*g.prefix_fraction, 0.75);
  EXPECT_EQ(g.note, "stopped after 3 of 4 words");
  g = sequence("", ref);
  EXPECT_FALSE(g.extracted);
  EXPECT_DOUBLE_EQ(*g.prefix_fraction, 0.0);
  EXPECT_DOUBLE_EQ(*sequence("ab c d", ref).prefix_fraction, 0.0);  // a word is compared whole
  // Only sequence grading reports a prefix.
  EXPECT_FALSE(math("\\boxed{4}", "4").prefix_fraction.has_value());
  EXPECT_THROW(sequence("a", " \n "), InputError);
}

TEST(GradingSequence, NamesOfTheKinds) {
  EXPECT_EQ(parse_answer_kind("sequence"), AnswerKind::Sequence);
  EXPECT_EQ(parse_answer_kind("math"), AnswerKind::Math);
  EXPECT_EQ(parse_answer_kind("dfs-state"), AnswerKind::DfsState);
  EXPECT_EQ(parse_answer_kind("auto"), AnswerKind::Auto);
  EXPECT_FALSE(parse_answer_kind("Sequence").has_value());
}

TEST(GradingFuzz, HostileLongInputsStayFast) {
  const std::vector<std::string> inputs = {
      [] { std::string s; for (int i = 0; i < 20000; ++i) s += "\\boxed{"; return s; }(),
      std::string(200000, '{'),
      [] { std::string s; for (int i = 0; i < 20000; ++i) s += "{\"current_node\": "; return s; }(),
      [] { std::string s = "\\boxed{"; for (int i = 0; i < 20000; ++i) s += "1,"; return s + "}"; }(),
      [] { std::string s = "\\boxed{"; for (int i = 0; i < 5000; ++i) s += "(\\frac"; return s + "}"; }(),
      [] { std::string s = "\\boxed{"; for (int i = 0; i < 200; ++i) s += "\\{1,\\{2,"; return s + "}"; }(),
      "Answer: " + std::string(100000, '[') + "Answer:" + std::string(100000, '{'),
      [] { std::string s = "Final answer: "; for (int i = 0; i < 20000; ++i) s += "\\text{"; return s; }(),
      [] { std::string s = "\\boxed{"; for (int i = 0; i < 500; ++i) s += "\\text{a}"; return s + "}"; }(),
  };
  for (const std::string& text : inputs) {
    auto start = std::chrono::steady_clock::now();
    expect_graded_safely(text, "\\{1,2\\}");
    expect_graded_safely(text, kDfsRef);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 2.0) << text.substr(0, 40);
    start = std::chrono::steady_clock::now();
    (void)normalize_math_answer(text);
    (void)normalize_math_answer(text.substr(0, 4000));
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 1.0) << text.substr(0, 40);
  }
}

}  // namespace
}  // namespace kvb
