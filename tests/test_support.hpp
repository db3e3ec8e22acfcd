#pragma once
// Shared helpers for the test suite: where the real test data lives, temporary folders, and
// running the kvbench binary.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/kv_cache.hpp"
#include "engine/methods/kv_method.hpp"

namespace kvb {
struct Model;
}

namespace kvb::test {

// A fixture for tests that need a GPU: skips with the reason where none answers.
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override;
};

// ../shared/data beside the project (override with KVBENCH_DATA); nullopt when absent.
inline std::optional<std::filesystem::path> shared_data_dir() {
  std::filesystem::path dir;
  if (const char* env = std::getenv("KVBENCH_DATA"); env && *env) dir = env;
  else dir = std::filesystem::path(KVBENCH_SOURCE_DIR) / ".." / "shared" / "data";
  if (std::filesystem::is_directory(dir)) return std::filesystem::canonical(dir);
  return std::nullopt;
}

// Path of a file under the shared data folder, or skips the test saying what is missing.
#define KVB_REQUIRE_DATA(var, relative)                                                        \
  std::filesystem::path var;                                                                   \
  do {                                                                                         \
    auto kvb_dir_ = ::kvb::test::shared_data_dir();                                            \
    if (!kvb_dir_) GTEST_SKIP() << "shared test data not found (set KVBENCH_DATA or provide " \
                                   "../shared/data)";                                          \
    var = *kvb_dir_ / (relative);                                                              \
    if (!std::filesystem::exists(var)) GTEST_SKIP() << "test data file missing: " << var;     \
  } while (0)

// A fresh temporary directory removed at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kvbench-test-XXXXXX").string();
    char* p = mkdtemp(tmpl.data());
    if (!p) throw std::runtime_error("mkdtemp failed");
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// zlib deflate of `data`: window_bits -15 for a raw stream (zip entries), 31 for gzip.
std::string deflate_bytes(const std::string& data, int window_bits);

// Rounds the weights the CUDA backend stores in bf16 (embedding, classifier, every matrix) to
// bf16 in place, so a CPU run computes with the GPU's weights.
void round_weights_to_bf16(Model& model);

// Runs `method` over the CPU compression ops of `cache` after a forward that appended to row
// progress.seq, as the decode loop does; returns the slots evicted from that row.
int64_t compress_row(KvMethod& method, KvCache& cache, const RowProgress& progress);

// What a forward recording window queries stores for the token at `pos` of (layer, seq): its
// post-RoPE queries `rotated` ([n_heads][head_dim]) in the cache's query window.
void record_window_query(KvCache& cache, int layer, int seq, int pos, const float* rotated);

// Runs the built kvbench binary with `args` (a shell-quoted string) and captures its output.
// `run` without --device gets --device cpu, so a test means the same on a machine with a GPU;
// `run` without -m (and not resuming) gets -m synthetic:tiny, the suite's fast random-weight
// model, so that tests of the machinery do not depend on the bundled model's training.
CommandResult run_kvbench(const std::string& args);
// The same with the model left to kvbench's default (builtin:dfs-reasoner) unless args name one.
CommandResult run_kvbench_default_model(const std::string& args);

// DIR/result.json, parsed.
nlohmann::json read_result(const std::filesystem::path& dir);
// The last line of output that starts with "kvbench:" (the one-line error).
std::string error_line(const std::string& output);
// A file's lines, each with its newline.
std::vector<std::string> file_lines(const std::filesystem::path& path);
// What a generate run decided, sequence by sequence and run by run: tokens, how each ended, its
// grade, and the accuracy block (timings left out: they differ between sessions).
nlohmann::json decisions(const nlohmann::json& result);

}  // namespace kvb::test
