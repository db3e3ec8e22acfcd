#pragma once
// Subcommands: each registers its flags on the app and returns the action to run when chosen.
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "run/prompt_builder.hpp"

namespace kvb::cli {

using Action = std::function<int()>;

Action add_run_command(CLI::App& app, const std::vector<std::string>& argv);
// --prompt-template, --system-prompt, --template-var (run and prompt).
void add_prompt_options(CLI::App& cmd, PromptSettings& settings);
// `kvbench run --resume DIR` alone (or with -q, --batch, --threads, --device, --format): the command line
// DIR's journal was written for, with --resume DIR and those flags; any other args as given.
std::vector<std::string> expand_resume(const std::vector<std::string>& args);
// --format md,csv,html (run and merge): reports written beside result.json.
void add_format_option(CLI::App& cmd, std::vector<std::string>& formats);
Action add_info_command(CLI::App& app);
Action add_calibrate_command(CLI::App& app);
Action add_capacity_command(CLI::App& app);
Action add_report_command(CLI::App& app);
Action add_compare_command(CLI::App& app);
Action add_prompt_command(CLI::App& app);
Action add_merge_command(CLI::App& app, const std::vector<std::string>& argv);

}  // namespace kvb::cli
