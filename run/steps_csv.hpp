#pragma once
// steps.csv: one row per decoded position of every sequence of every run, the per-step series
// behind the summary numbers (too long for result.json on real traces).
#include <string>
#include <vector>

#include "run/result.hpp"

namespace kvb {

std::string render_steps_csv(const std::vector<MethodRun>& runs, RunMode mode);

}  // namespace kvb
