#pragma once
// Internal to workloads/: the graders behind grade_answer() (workloads/grading.cpp).
// Each returns a Grade whose `predicted` and `note` may still hold raw model text; grade_answer
// makes them valid UTF-8 and caps their length.
#include <string>

#include "workloads/grading.hpp"

namespace kvb::workloads {

// AIME / MATH-500 answers (workloads/math_answer.cpp).
Grade grade_math(const std::string& text, const std::string& reference);

// How two normalised math answers are equal, if they are (workloads/math_compare.cpp).
enum class MathMatch { None, Text, Number, Elements };
MathMatch match_math_answers(const std::string& normalised_a, const std::string& normalised_b);

// True when `reference` parses as a DFS answer object {current_node, stack, visited_nodes}.
bool is_dfs_answer(const std::string& reference);
// DFS state-query answers (workloads/dfs_answer.cpp). Throws InputError when `reference` is not
// a DFS answer object.
Grade grade_dfs(const std::string& text, const std::string& reference);

// Whole-output sequence answers, word by word (workloads/sequence_answer.cpp).
Grade grade_sequence(const std::string& text, const std::string& reference);

}  // namespace kvb::workloads
