#include "tests/test_support.hpp"

#include "engine/model.hpp"
#include "kernels/bf16.hpp"
#include "kernels/cpu/compression_cpu.hpp"
#include "kernels/gpu_info.hpp"

#include <sys/wait.h>

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

namespace kvb::test {

void GpuTest::SetUp() {
  const GpuQuery q = query_gpus();
  if (q.gpus.empty()) GTEST_SKIP() << "no GPU: " << q.why_none;
}

int64_t compress_row(KvMethod& method, KvCache& cache, const RowProgress& progress) {
  const std::unique_ptr<CompressionOps> ops = make_cpu_compression_ops(cache.storage());
  int64_t evicted = 0;
  method.compress(*ops, std::span<const RowProgress>(&progress, 1), std::span<int64_t>(&evicted, 1));
  return evicted;
}

void record_window_query(KvCache& cache, int layer, int seq, int pos, const float* rotated) {
  const KvGeometry& g = cache.geometry();
  const size_t group_floats = size_t(g.group) * g.head_dim;
  for (int h = 0; h < g.n_kv_heads; ++h)
    std::copy(rotated + h * group_floats, rotated + (h + 1) * group_floats,
              cache.window_queries(seq, layer, h) + size_t(pos % g.window) * group_floats);
}

void round_weights_to_bf16(Model& m) {
  auto round = [](Tensor& t) {
    if (!t.empty()) t = stored_tensor(t.shape, to_f32(t), DType::BF16);
  };
  round(m.weights.token_embedding);
  round(m.weights.classifier);
  for (LayerWeights& l : m.weights.layers)
    for (Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) round(*t);
}

std::string deflate_bytes(const std::string& data, int window_bits) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, data.size()) + 64, '\0');  // + room for a gzip header
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

namespace {

// `run` without --device would take a GPU where one answers: tests pin the CPU so that what
// they check does not depend on the machine (GPU tests name --device cuda).
std::string pin_device(std::string args) {
  if (args.rfind("run", 0) == 0 && args.find("--device") == std::string::npos) args.insert(3, " --device cpu");
  return args;
}

CommandResult run_command_line(const std::string& args) {
  CommandResult r;
  const std::string cmd = std::string("'") + KVBENCH_BINARY + "' " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) r.output.append(buf, n);
  int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

}  // namespace

CommandResult run_kvbench(const std::string& args) {
  std::string full = pin_device(args);
  const bool names_model = full.find(" -m ") != std::string::npos || full.find(" -m=") != std::string::npos ||
                           full.find("--model") != std::string::npos || full.find("--resume") != std::string::npos;
  if (full.rfind("run", 0) == 0 && !names_model) full.insert(3, " -m synthetic:tiny");
  return run_command_line(full);
}

CommandResult run_kvbench_default_model(const std::string& args) { return run_command_line(pin_device(args)); }

nlohmann::json read_result(const std::filesystem::path& dir) {
  std::ifstream in(dir / "result.json");
  return nlohmann::json::parse(in);
}

// The last line of output that starts with "kvbench:" (the one-line error).
std::string error_line(const std::string& output) {
  std::string last;
  size_t at = 0;
  while (at < output.size()) {
    size_t end = output.find('\n', at);
    std::string line = output.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (line.rfind("kvbench: ", 0) == 0) last = line;
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return last;
}

std::vector<std::string> file_lines(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line + "\n");
  return lines;
}

// What a generate run decided, sequence by sequence and run by run: tokens, how each ended, its
// grade, and the accuracy block (timings left out: they differ between sessions).
nlohmann::json decisions(const nlohmann::json& result) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& run : result["runs"]) {
    nlohmann::json seqs = nlohmann::json::array();
    for (const auto& s : run["sequences"])
      seqs.push_back({s["id"], s["item"], s["draw"], s["token_ids"], s["stop_reason"], s["grade"]});
    nlohmann::json acc = run["measurements"]["accuracy"];
    acc.erase("seconds_per_correct");
    out.push_back({run["method"], run["budget"], seqs, acc,
                   run["measurements"]["memory"]["kv_bytes_per_sequence_mean"],
                   run["measurements"]["memory"]["kv_bytes_per_sequence_peak"]});
  }
  return out;
}

}  // namespace kvb::test
