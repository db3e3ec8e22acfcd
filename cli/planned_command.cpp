#include <cstdio>

#include "cli/commands.hpp"

namespace kvb::cli {

void add_planned_command(CLI::App& app, const std::string& name, const std::string& description,
                         const std::string& issue, Action& action) {
  CLI::App* cmd = app.add_subcommand(name, description + " (not implemented yet)");
  cmd->allow_extras();
  cmd->callback([&action, name, issue] {
    action = [name, issue] {
      std::fprintf(stderr, "kvbench: %s is not implemented yet (planned in %s)\n", name.c_str(), issue.c_str());
      return 2;
    };
  });
}

}  // namespace kvb::cli
