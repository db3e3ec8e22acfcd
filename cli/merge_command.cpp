// kvbench merge SHARD_DIR... --out DIR: the shards of one sweep (kvbench run --shard, or placed
// by Slurm, MPI, torchrun or a Kubernetes Indexed Job) joined into one result (run/merge.hpp).
// Exit 0 merged, 2 shards that are not one complete sweep (or --allow-partial was not given).
#include <cstdio>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "reports/result_outputs.hpp"
#include "reports/table.hpp"
#include "run/merge.hpp"
#include "util/errors.hpp"

namespace kvb::cli {

namespace {

namespace fs = std::filesystem;

struct MergeFlags {
  MergeOptions options;
  std::string out;
  bool no_hash = false;
  bool quiet = false;
  std::vector<std::string> formats;
};

int execute(MergeFlags& f) {
  f.options.hash_files = !f.no_hash;
  auto progress = [&f](const std::string& line) {
    if (!f.quiet) std::fprintf(stderr, "kvbench: %s\n", line.c_str());
  };
  const MergeResult r = merge_shards(f.options, progress);
  std::error_code ec;
  fs::create_directories(f.out, ec);
  if (ec) fail_input("--out {}: cannot create directory: {}", f.out, ec.message());
  const fs::path result_path = write_result_outputs(f.out, r.document, r.steps_csv, f.formats);
  std::fputs(render_summary_table(r.document).c_str(), stdout);
  std::printf("\nresult: %s%s\n", result_path.string().c_str(), r.partial ? " (partial)" : "");
  return 0;
}

}  // namespace

Action add_merge_command(CLI::App& app, const std::vector<std::string>& argv) {
  auto f = std::make_shared<MergeFlags>();
  f->options.command_line = argv;
  CLI::App* cmd = app.add_subcommand("merge", "join the shards of a sweep into one result (docs/cluster.md)");
  cmd->add_option("shards", f->options.folders, "the shards' folders (SWEEP/shard-I-of-N), or the sweep folder SWEEP")
      ->required();
  cmd->add_option("--out,-o", f->out, "output directory for the merged result.json")->required();
  cmd->add_flag("--allow-partial", f->options.allow_partial,
                "merge what the shards given have finished; the result is marked partial and names what is missing");
  cmd->add_flag("--no-hash", f->no_hash, "do not check the model files read again against the shards' sha256");
  cmd->add_flag("--quiet,-q", f->quiet, "no progress lines on stderr");
  add_format_option(*cmd, f->formats);
  return [f] { return execute(*f); };
}

}  // namespace kvb::cli
