#pragma once
// Subcommands: each registers its flags on the app and returns the action to run when chosen.
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace kvb::cli {

using Action = std::function<int()>;

Action add_run_command(CLI::App& app, const std::vector<std::string>& argv);
Action add_info_command(CLI::App& app);
Action add_calibrate_command(CLI::App& app);
Action add_capacity_command(CLI::App& app);
Action add_report_command(CLI::App& app);
// Commands of the design's contract whose capability is not built yet: they say so and exit 2.
void add_planned_command(CLI::App& app, const std::string& name, const std::string& description,
                         const std::string& issue, Action& action);

}  // namespace kvb::cli
