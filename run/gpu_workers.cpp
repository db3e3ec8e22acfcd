#include "run/gpu_workers.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "kernels/gpu_info.hpp"
#include "reports/result_outputs.hpp"
#include "reports/table.hpp"
#include "run/merge.hpp"
#include "util/errors.hpp"
#include "util/json_fields.hpp"

extern char** environ;

namespace kvb {

namespace fs = std::filesystem;

namespace {

struct Worker {
  int gpu = 0;
  pid_t pid = -1;
  int exit_code = -1;  // -1 while running
  fs::path shard_dir, log;
  int64_t units = 0;   // from its manifest, once written
};

// Sequences journalled so far (lines naming a sequence), for the progress line.
int64_t journalled(const fs::path& journal) {
  std::ifstream in(journal);
  int64_t n = 0;
  for (std::string line; std::getline(in, line);) n += line.find("\"sequence\"") != std::string::npos;
  return n;
}

int64_t manifest_units(const fs::path& manifest) {
  std::ifstream in(manifest);
  if (!in) return 0;
  try {
    std::stringstream text;
    text << in.rdbuf();
    const nlohmann::json m = parse_json(text.view(), manifest.string());
    int64_t n = 0;
    for (const auto& [run, units] : m.at("units").at("owned").items()) n += static_cast<int64_t>(units.size());
    return n;
  } catch (const std::exception&) {
    return 0;
  }
}

pid_t spawn(const std::vector<std::string>& args, const fs::path& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) fail_runtime("--device: cannot start a worker: {}", std::strerror(rc));
  return pid;
}

// The last line of a worker's log that is kvbench's (its error, when it failed).
std::string last_kvbench_line(const fs::path& log) {
  std::ifstream in(log);
  std::string last;
  for (std::string line; std::getline(in, line);)
    if (line.rfind("kvbench: ", 0) == 0) last = line.substr(9);
  return last;
}

}  // namespace

std::optional<std::vector<int>> worker_gpus(const std::string& device) {
  if (device != "cuda:all" && (device.rfind("cuda:", 0) != 0 || device.find(',') == std::string::npos)) return std::nullopt;
  const GpuQuery q = query_gpus();
  if (q.gpus.empty()) fail_input("--device {}: no GPU answered ({})", device, q.why_none);
  std::vector<int> gpus;
  if (device == "cuda:all") {
    for (const GpuInfo& g : q.gpus) gpus.push_back(g.index);
    return gpus;
  }
  std::string list = device.substr(5);
  for (size_t at = 0; at <= list.size();) {
    const size_t comma = std::min(list.find(',', at), list.size());
    const std::string item = list.substr(at, comma - at);
    size_t used = 0;
    int index = -1;
    try {
      index = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || index < 0) fail_input("--device {}: expected cuda:all or cuda:I,J,...", device);
    if (index >= static_cast<int>(q.gpus.size())) fail_input("--device {}: this machine has {} GPU(s)", device, q.gpus.size());
    if (std::find(gpus.begin(), gpus.end(), index) != gpus.end()) fail_input("--device {}: GPU {} named twice", device, index);
    gpus.push_back(index);
    at = comma + 1;
  }
  return gpus;
}

std::vector<std::string> worker_command_line(const std::vector<std::string>& argv, int index, int count, int gpu,
                                             const std::string& sweep) {
  std::vector<std::string> out(argv.begin(), argv.begin() + std::min<size_t>(2, argv.size()));
  const std::vector<std::string> valued = {"--device", "--out", "-o", "--shard", "--format"};
  for (size_t i = 2; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    const std::string name = a.substr(0, a.find('='));
    if (a == "-q" || a == "--quiet") continue;
    if (a.size() > 2 && a.rfind("-o", 0) == 0 && a[2] != '-') continue;  // -oDIR
    if (std::find(valued.begin(), valued.end(), name) != valued.end()) {
      if (a.find('=') == std::string::npos) ++i;  // and its value
      continue;
    }
    out.push_back(a);
  }
  out.insert(out.end(), {"--device", fmt::format("cuda:{}", gpu), "--shard", fmt::format("{}/{}", index, count), "--out",
                         sweep, "-q"});
  return out;
}

int run_workers(const std::vector<std::string>& argv, const std::vector<int>& gpus, const std::string& sweep,
                const std::vector<std::string>& formats, bool quiet) {
  std::error_code ec;
  fs::create_directories(sweep, ec);
  if (ec) fail_input("--out {}: cannot create directory: {}", sweep, ec.message());
  const int n = static_cast<int>(gpus.size());
  std::vector<Worker> workers(n);
  // Ctrl-C reaches the workers (one process group); this process waits for them to write.
  std::signal(SIGINT, SIG_IGN);
  for (int i = 0; i < n; ++i) {
    Worker& w = workers[i];
    w.gpu = gpus[i];
    w.shard_dir = fs::path(sweep) / fmt::format("shard-{}-of-{}", i, n);
    w.log = fs::path(sweep) / fmt::format("worker-{}.log", i);
    w.pid = spawn(worker_command_line(argv, i, n, w.gpu, sweep), w.log);
  }
  auto say = [&](const std::string& line) {
    if (!quiet) std::fprintf(stderr, "kvbench: %s\n", line.c_str());
  };
  say(fmt::format("{} worker(s), one per GPU ({}), logs in {}/worker-I.log", n, fmt::join(gpus, ", "), sweep));
  auto last_line = std::chrono::steady_clock::now();
  for (int running = n; running > 0;) {
    for (Worker& w : workers) {
      if (w.exit_code >= 0) continue;
      int status = 0;
      if (waitpid(w.pid, &status, WNOHANG) == w.pid) {
        w.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        --running;
      }
    }
    const auto now = std::chrono::steady_clock::now();
    if (running == 0 || now - last_line > std::chrono::seconds(10)) {
      std::string line;
      for (Worker& w : workers) {
        if (w.units == 0) w.units = manifest_units(w.shard_dir / "manifest.json");
        line += fmt::format("{}cuda:{} {}/{}{}", line.empty() ? "" : ", ", w.gpu, journalled(w.shard_dir / "journal.jsonl"),
                            w.units, w.exit_code < 0 ? "" : w.exit_code == 0 ? " done" : fmt::format(" exit {}", w.exit_code));
      }
      say("units: " + line);
      last_line = now;
    }
    if (running > 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::signal(SIGINT, SIG_DFL);

  const bool all_refused = std::all_of(workers.begin(), workers.end(), [](const Worker& w) { return w.exit_code == 2; });
  if (all_refused) fail_input("{}", last_kvbench_line(workers[0].log));
  const auto failed = std::find_if(workers.begin(), workers.end(), [](const Worker& w) { return w.exit_code != 0; });
  MergeOptions options;
  options.folders = {sweep};
  options.allow_partial = failed != workers.end();
  options.command_line = argv;
  MergeResult merged;
  try {
    merged = merge_shards(options, say);
  } catch (const InputError& e) {
    if (failed == workers.end()) throw;
    fail_runtime("worker {} (cuda:{}) exited with {} ({}); nothing could be merged: {}", failed - workers.begin(),
                 failed->gpu, failed->exit_code, last_kvbench_line(failed->log), e.what());
  }
  const fs::path result_path = write_result_outputs(sweep, merged.document, merged.steps_csv, formats);
  std::fputs(render_summary_table(merged.document).c_str(), stdout);
  std::printf("\nresult: %s%s\n", result_path.string().c_str(), merged.partial ? " (partial)" : "");
  if (failed == workers.end()) return 0;
  const bool interrupted = std::all_of(workers.begin(), workers.end(), [](const Worker& w) { return w.exit_code == 0 || w.exit_code == 130; });
  if (interrupted) {
    std::fprintf(stderr, "kvbench: interrupted; partial result written\n");
    return 130;
  }
  std::fprintf(stderr, "kvbench: worker %d (cuda:%d) exited with %d (%s; see %s); partial result written\n",
               static_cast<int>(failed - workers.begin()), failed->gpu, failed->exit_code,
               last_kvbench_line(failed->log).c_str(), failed->log.c_str());
  return 3;
}

}  // namespace kvb
