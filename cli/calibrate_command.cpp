// `kvbench calibrate`: TriAttention query statistics for a model, measured on a text file or a
// workload, written in kvbench's safetensors format (docs/calibration.md).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "engine/methods/calibration.hpp"
#include "kernels/cpu/thread_pool.hpp"
#include "util/errors.hpp"
#include "util/mapped_file.hpp"

namespace kvb::cli {

namespace fs = std::filesystem;

namespace {

struct CalibrateFlags {
  std::string model;
  std::string tokenizer;
  std::string text;
  std::string workload;
  std::string out;
  int64_t max_tokens = 32768;
  int threads = 0;
  bool quiet = false;
};

// Refuses an --out that cannot be written before any work is done (the statistics of a large
// model take long to measure); creates its folder when missing, as `run` does for its --out.
void check_out_writable(const fs::path& out) {
  std::error_code ec;
  if (fs::is_directory(out, ec)) fail_input("--out {}: is a directory; expected a file name", out.string());
  const fs::path dir = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  fs::create_directories(dir, ec);
  if (ec) fail_input("--out {}: cannot create folder {}: {}", out.string(), dir.string(), ec.message());
  if (::access(dir.c_str(), W_OK) != 0)
    fail_input("--out {}: folder {} is not writable", out.string(), dir.string());
}

// The --text file's bytes; InputError naming the flag and the file.
std::string read_text_file(const std::string& path) {
  try {
    MappedFile file(path);
    return std::string(reinterpret_cast<const char*>(file.data()), file.size());
  } catch (const InputError& e) {
    fail_input("--text {}", e.what());
  }
}

int execute(const CalibrateFlags& f) {
  const auto started = std::chrono::steady_clock::now();
  if (f.text.empty() == f.workload.empty()) fail_input("calibrate: give exactly one of --text FILE or --workload FILE");
  if (f.max_tokens <= 0) fail_input("--max-tokens {}: must be a positive integer", f.max_tokens);
  if (f.threads < 0) fail_input("--threads {}: must be >= 0", f.threads);
  check_out_writable(f.out);
  auto progress = [&f](const std::string& line) {
    if (!f.quiet) std::fprintf(stderr, "kvbench: %s\n", line.c_str());
  };

  // Read the input before loading the model, so that a bad file is reported at once.
  std::string text;
  Workload workload;
  if (!f.text.empty()) {
    text = read_text_file(f.text);
    if (text.empty()) fail_input("--text {}: the file is empty", f.text);
  } else {
    workload = f.workload.rfind("builtin:", 0) == 0 ? builtin_workload(f.workload.substr(8)) : load_workload(f.workload);
  }

  cpu::ThreadPool::instance().set_threads(f.threads);
  LoadOptions lo;
  lo.tokenizer_path = f.tokenizer;
  lo.hash_files = false;  // the statistics record the --model string, not file hashes
  // An upper bound on the one cache row calibration holds, for the memory check (every tokenizer
  // emits at most one token per byte, plus BOS and a dummy prefix).
  lo.kv_slots = f.text.empty() ? f.max_tokens : std::min<int64_t>(f.max_tokens, int64_t(text.size()) + 2);
  progress(fmt::format("loading {}", f.model));
  const Model model = load_model(f.model, lo);

  const TokenSequences sequences = !f.text.empty()
                                       ? calibration_sequences_from_text(model, text, f.max_tokens)
                                       : calibration_sequences_from_workload(model, workload, f.max_tokens);
  if (sequences.empty())
    fail_input("{} {}: no tokens to calibrate on", f.text.empty() ? "--workload" : "--text",
               f.text.empty() ? f.workload : f.text);
  const QueryStats stats = calibrate_query_stats(model, sequences, progress);
  write_query_stats(f.out, stats);

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("calibrated %s: %lld tokens in %zu sequence(s), %d layers x %d heads, median R %.3f -> %s (%.1f s)\n",
              f.model.c_str(), static_cast<long long>(*stats.token_count), sequences.size(), stats.n_layers,
              stats.n_heads, median_head_concentration(stats), f.out.c_str(), seconds);
  return 0;
}

}  // namespace

Action add_calibrate_command(CLI::App& app) {
  auto f = std::make_shared<CalibrateFlags>();
  CLI::App* cmd = app.add_subcommand("calibrate", "measure TriAttention query statistics for a model -> stats file");
  cmd->add_option("--model,-m", f->model,
                  "model: llama2.c .bin, .gguf, Hugging Face folder, or synthetic:<preset>[,seed=N]")
      ->required();
  cmd->add_option("--tokenizer", f->tokenizer, "llama2.c tokenizer file (default: beside the model)");
  cmd->add_option("--text", f->text, "calibration text file (one sequence, tokenized with the model's tokenizer)");
  cmd->add_option("--workload,-w", f->workload,
                  "workload file (or builtin:stories): each item's prompt + recorded continuation is a sequence");
  cmd->add_option("--out,-o", f->out, "statistics file to write (kvbench safetensors format)")->required();
  cmd->add_option("--max-tokens", f->max_tokens, "calibration tokens in all")->capture_default_str();
  cmd->add_option("--threads", f->threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd->add_flag("--quiet,-q", f->quiet, "no progress lines on stderr");
  return [f] { return execute(*f); };
}

}  // namespace kvb::cli
