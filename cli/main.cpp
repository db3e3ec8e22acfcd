// kvbench: benchmark KV-cache compression for long chain-of-thought decoding.
// Exit codes: 0 ok, 1 a gate/regression failed, 2 bad input or usage, 3 runtime failure.
#include <csignal>
#include <cstdio>

#include <fmt/format.h>

#include "build_info.hpp"
#include "cli/commands.hpp"
#include "util/errors.hpp"
#include "util/quote.hpp"

namespace {

// Every error is one line, whatever text from a file it repeats.
void print_error(std::string_view prefix, const char* what) {
  std::fprintf(stderr, "kvbench: %.*s%s\n", static_cast<int>(prefix.size()), prefix.data(), kvb::one_line(what).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // Past a file-size limit (ulimit -f) the kernel would kill the process with SIGXFSZ, losing
  // what it measured; ignored, the write fails with EFBIG like any full disk and ends in exit 3
  // naming the file, after the journal has kept the finished sequences.
  std::signal(SIGXFSZ, SIG_IGN);
  std::vector<std::string> args;
  try {
    args = kvb::cli::expand_resume(std::vector<std::string>(argv, argv + argc));
  } catch (const kvb::InputError& e) {
    print_error("", e.what());
    return 2;
  }
  std::vector<char*> arg_pointers;
  for (std::string& a : args) arg_pointers.push_back(a.data());
  CLI::App app{"kvbench: KV-cache compression benchmark for long chain-of-thought decoding"};
  app.set_version_flag("--version", fmt::format("kvbench {} ({})", kvb::build::kVersion, kvb::build::kGitCommit));
  app.require_subcommand(1);
  kvb::cli::Action run = kvb::cli::add_run_command(app, args);
  kvb::cli::Action info = kvb::cli::add_info_command(app);
  kvb::cli::Action calibrate = kvb::cli::add_calibrate_command(app);
  kvb::cli::Action capacity = kvb::cli::add_capacity_command(app);
  kvb::cli::Action report = kvb::cli::add_report_command(app);
  kvb::cli::Action compare = kvb::cli::add_compare_command(app);
  kvb::cli::Action prompt = kvb::cli::add_prompt_command(app);
  kvb::cli::Action merge = kvb::cli::add_merge_command(app, args);
  try {
    app.parse(static_cast<int>(arg_pointers.size()), arg_pointers.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    print_error("", (std::string(e.what()) + " (see kvbench --help)").c_str());
    return 2;
  }
  try {
    if (app.got_subcommand("run")) return run();
    if (app.got_subcommand("info")) return info();
    if (app.got_subcommand("calibrate")) return calibrate();
    if (app.got_subcommand("capacity")) return capacity();
    if (app.got_subcommand("report")) return report();
    if (app.got_subcommand("compare")) return compare();
    if (app.got_subcommand("prompt")) return prompt();
    if (app.got_subcommand("merge")) return merge();
    return 2;  // unreachable: require_subcommand(1) and every subcommand is handled above
  } catch (const kvb::InputError& e) {
    print_error("", e.what());
    return 2;
  } catch (const kvb::RuntimeFailure& e) {
    print_error("", e.what());
    return 3;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "kvbench: out of host memory\n");
    return 3;
  } catch (const std::exception& e) {
    print_error("internal error: ", e.what());
    return 3;
  }
}
