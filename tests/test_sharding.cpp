// Sweeps split into shards and merged: the place a launcher gives a process, the balanced
// assignment of units, and end to end that the merged result decides what the unsharded run does.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <numeric>

#include <nlohmann/json.hpp>

#include "kernels/gpu_info.hpp"
#include "reports/report.hpp"
#include "reports/table.hpp"
#include "run/gpu_workers.hpp"
#include "run/shard_plan.hpp"
#include "tests/json_schema_check.hpp"
#include "tests/test_support.hpp"
#include "util/errors.hpp"

namespace kvb::test {
namespace {

using Env = std::map<std::string, std::string>;

std::optional<ShardPlace> place(const Env& env) {
  return shard_from_environment([&](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(ShardPlan, ParsesTheFlag) {
  const ShardPlace p = parse_shard("2/5");
  EXPECT_EQ(p.index, 2);
  EXPECT_EQ(p.count, 5);
  EXPECT_EQ(p.text(), "2/5");
  for (const char* bad : {"5/5", "1", "-1/3", "1/0", "a/3", "1/3x", "/3", ""})
    EXPECT_THROW(parse_shard(bad), InputError) << bad;
}

TEST(ShardPlan, ReadsEachLaunchersConvention) {
  struct Case {
    Env env;
    int index, count;
    std::string by;
  };
  for (const Case& c : std::vector<Case>{
           {{{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"}}, 3, 4, "OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE"},
           {{{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}}, 1, 2, "PMI_RANK/PMI_SIZE"},
           {{{"SLURM_ARRAY_TASK_ID", "7"}, {"SLURM_ARRAY_TASK_MIN", "5"}, {"SLURM_ARRAY_TASK_COUNT", "3"}}, 2, 3,
            "SLURM_ARRAY_TASK_ID"},
           {{{"SLURM_ARRAY_TASK_ID", "8"}, {"SLURM_ARRAY_TASK_MIN", "0"}, {"SLURM_ARRAY_TASK_STEP", "4"},
             {"SLURM_ARRAY_TASK_COUNT", "4"}}, 2, 4, "SLURM_ARRAY_TASK_ID"},
           {{{"SLURM_PROCID", "4"}, {"SLURM_NTASKS", "5"}}, 4, 5, "SLURM_PROCID/SLURM_NTASKS"},
           // srun -n 2 inside element 1 of a 3-element array: shard 1 * 2 + 1 of 6
           {{{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_COUNT", "3"}, {"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}},
            3, 6, "SLURM_ARRAY_TASK_ID x SLURM_PROCID/SLURM_NTASKS"},
           // a batch step of an array: SLURM_NTASKS 1 does not split it further
           {{{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_COUNT", "2"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}},
            1, 2, "SLURM_ARRAY_TASK_ID"},
           {{{"RANK", "0"}, {"WORLD_SIZE", "8"}}, 0, 8, "RANK/WORLD_SIZE"},
           {{{"JOB_COMPLETION_INDEX", "2"}, {"KVBENCH_SHARD_COUNT", "3"}}, 2, 3, "JOB_COMPLETION_INDEX/KVBENCH_SHARD_COUNT"},
           // mpirun under Slurm: MPI's ranks place the process, not the allocation's tasks
           {{{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}},
            1, 2, "OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE"},
       }) {
    const std::optional<ShardPlace> p = place(c.env);
    ASSERT_TRUE(p.has_value()) << c.by;
    EXPECT_EQ(p->index, c.index) << c.by;
    EXPECT_EQ(p->count, c.count) << c.by;
    EXPECT_EQ(p->placed_by, c.by);
  }
  // Alone (a group of one, or no launcher): not a shard.
  EXPECT_FALSE(place({}).has_value());
  EXPECT_FALSE(place({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}}).has_value());
  EXPECT_FALSE(place({{"RANK", "0"}, {"WORLD_SIZE", "1"}}).has_value());
  // Malformed places name the variable.
  for (const auto& [bad, named] : std::vector<std::pair<Env, std::string>>{
           {{{"RANK", "x"}, {"WORLD_SIZE", "2"}}, "RANK=x"},
           {{{"PMI_RANK", "2"}, {"PMI_SIZE", "2"}}, "PMI_RANK/PMI_SIZE gives shard 2 of 2"},
           {{{"SLURM_ARRAY_TASK_ID", "3"}, {"SLURM_ARRAY_TASK_MIN", "4"}, {"SLURM_ARRAY_TASK_COUNT", "2"}},
            "SLURM_ARRAY_TASK_ID=3"},
           {{{"JOB_COMPLETION_INDEX", "1"}}, "KVBENCH_SHARD_COUNT is not"}}) {
    try {
      place(bad);
      ADD_FAILURE() << named << " accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(named), std::string::npos) << e.what();
    }
  }
}

// Longest first onto the least loaded shard: every unit placed once, no shard more than the
// largest unit above another, and the same answer every time.
TEST(ShardPlan, BalancesUnitsByExpectedTokens) {
  std::vector<WorkUnit> units;
  for (int i = 0; i < 97; ++i) units.push_back({i % 4, i, 0, 100 + (i * 7919) % 900});
  for (int shards : {1, 2, 3, 5, 8}) {
    const std::vector<int> owner = assign_units(units, shards);
    ASSERT_EQ(owner, assign_units(units, shards));
    std::vector<int64_t> load(shards, 0);
    int64_t largest = 0;
    for (size_t u = 0; u < units.size(); ++u) {
      ASSERT_GE(owner[u], 0);
      ASSERT_LT(owner[u], shards);
      load[owner[u]] += units[u].expected_tokens;
      largest = std::max(largest, units[u].expected_tokens);
    }
    const auto [lo, hi] = std::minmax_element(load.begin(), load.end());
    EXPECT_LE(*hi - *lo, largest) << shards << " shards";
  }
  // By tokens, not by count: one long unit stands against many short ones.
  const std::vector<WorkUnit> skewed = {{0, 0, 0, 1000}, {0, 1, 0, 100}, {0, 2, 0, 100}, {0, 3, 0, 100}, {0, 4, 0, 100}};
  EXPECT_EQ(assign_units(skewed, 2), (std::vector<int>{0, 1, 1, 1, 1}));
}

// Sets launcher variables for the kvbench processes this test starts, and clears them after.
class LauncherEnv {
 public:
  explicit LauncherEnv(const Env& env) : env_(env) {
    for (const auto& [k, v] : env_) setenv(k.c_str(), v.c_str(), 1);
  }
  ~LauncherEnv() {
    for (const auto& [k, v] : env_) unsetenv(k.c_str());
  }

 private:
  Env env_;
};

// Each convention's variables for shard i of n.
Env launcher_env(const std::string& convention, int i, int n) {
  const std::string si = std::to_string(i), sn = std::to_string(n);
  if (convention == "ompi") return {{"OMPI_COMM_WORLD_RANK", si}, {"OMPI_COMM_WORLD_SIZE", sn}};
  if (convention == "pmi") return {{"PMI_RANK", si}, {"PMI_SIZE", sn}};
  if (convention == "slurm-array")
    return {{"SLURM_ARRAY_TASK_ID", std::to_string(10 + i)}, {"SLURM_ARRAY_TASK_MIN", "10"}, {"SLURM_ARRAY_TASK_COUNT", sn}};
  if (convention == "srun") return {{"SLURM_PROCID", si}, {"SLURM_NTASKS", sn}};
  if (convention == "torchrun") return {{"RANK", si}, {"WORLD_SIZE", sn}};
  return {{"JOB_COMPLETION_INDEX", si}, {"KVBENCH_SHARD_COUNT", sn}};  // kubernetes
}

void clear_launcher_env() {
  for (const char* v : {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "SLURM_ARRAY_TASK_ID",
                        "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_STEP", "SLURM_PROCID",
                        "SLURM_NTASKS", "RANK", "WORLD_SIZE", "JOB_COMPLETION_INDEX", "KVBENCH_SHARD_COUNT"})
    unsetenv(v);
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Generate mode: for 1, 2, 3 and 5 shards, placed by --shard and by every launcher's variables,
// the merged result holds the same tokens, grades, accuracy (intervals, pass@k, paired
// differences) and KV bytes as the run that was never split.
TEST(CliShard, MergedGenerateShardsDecideWhatTheUnshardedRunDoes) {
  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  clear_launcher_env();
  TempDir dir;
  std::ofstream(dir / "q.jsonl") << "{\"id\": \"a\", \"prompt\": \"Once upon a time\", \"answer\": \"Lily\"}\n"
                                  << "{\"id\": \"b\", \"prompt\": \"The dog ran\", \"answer\": \"park\"}\n"
                                  << "{\"id\": \"c\", \"prompt\": \"Tom had a red\", \"answer\": \"ball\"}\n";
  const std::string common = "run -q --mode generate -m " + bin.string() +
                             " --method full,streaming,h2o --budget 16 --divide-length 8 -n 40 --temperature 0.8 "
                             "--samples 3 -w " + (dir / "q.jsonl").string() + " ";
  ASSERT_EQ(run_kvbench(common + "-o " + (dir / "whole").string()).exit_code, 0);
  const nlohmann::json reference = decisions(read_result(dir / "whole"));
  ASSERT_EQ(reference.size(), 3u);
  ASSERT_TRUE(reference[1][3].contains("vs_full"));

  auto check_merge = [&](const std::string& sweep, const std::string& what) {
    const CommandResult m = run_kvbench("merge -q " + (dir / sweep).string() + " -o " + (dir / (sweep + "-merged")).string());
    ASSERT_EQ(m.exit_code, 0) << what << ": " << m.output;
    const nlohmann::json doc = read_result(dir / (sweep + "-merged"));
    EXPECT_EQ(doc["status"], "complete") << what;
    EXPECT_EQ(decisions(doc), reference) << what;
  };
  for (int n : {1, 2, 3, 5}) {
    const std::string sweep = "flag" + std::to_string(n);
    for (int i = 0; i < n; ++i) {
      const CommandResult r = run_kvbench(common + "--shard " + std::to_string(i) + "/" + std::to_string(n) + " -o " +
                                          (dir / sweep).string());
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
    check_merge(sweep, "--shard x/" + std::to_string(n));
  }
  for (const std::string convention : {"ompi", "pmi", "slurm-array", "srun", "torchrun", "kubernetes"})
    for (int n : {2, 3, 5}) {
      const std::string sweep = convention + std::to_string(n);
      for (int i = 0; i < n; ++i) {
        const LauncherEnv env(launcher_env(convention, i, n));
        const CommandResult r = run_kvbench(common + "-o " + (dir / sweep).string());
        ASSERT_EQ(r.exit_code, 0) << convention << " " << i << "/" << n << ": " << r.output;
        const nlohmann::json shard = read_result(dir / sweep / ("shard-" + std::to_string(i) + "-of-" + std::to_string(n)));
        EXPECT_EQ(shard["shard"]["index"], i);
        EXPECT_EQ(shard["shard"]["count"], n);
      }
      check_merge(sweep, convention + " x" + std::to_string(n));
    }
}

// Replay mode: the per-step fidelity (KL, log-probabilities, argmaxes, retained mass) of every
// sequence merges back to the unsharded run's, steps.csv byte for byte, TriAttention included.
TEST(CliShard, MergedReplayShardsKeepEveryStepsFidelity) {
  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  clear_launcher_env();
  TempDir dir;
  ASSERT_EQ(run_kvbench("calibrate -q -m " + bin.string() + " -w builtin:stories -o " + (dir / "stats.safetensors").string()).exit_code, 0);
  const std::string common = "run -q --mode replay -m " + bin.string() +
                             " --method full,snapkv,rkv,triattention,h2o --budget 16,24 --divide-length 8 -n 48 --stats " +
                             (dir / "stats.safetensors").string() + " ";
  ASSERT_EQ(run_kvbench(common + "-o " + (dir / "whole").string()).exit_code, 0);
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(run_kvbench(common + "--shard " + std::to_string(i) + "/3 -o " + (dir / "sweep").string()).exit_code, 0);
  // Replay journals resume too: shard 1 as a crash leaves it (a few whole lines, no marker).
  const std::filesystem::path shard1 = dir / "sweep" / "shard-1-of-3";
  const std::vector<std::string> lines = file_lines(shard1 / "journal.jsonl");
  ASSERT_GE(lines.size(), 4u);
  {
    std::ofstream cut(shard1 / "journal.jsonl");
    cut << lines[0] << lines[1] << lines[2];
  }
  std::filesystem::remove(shard1 / "shard-complete.json");
  ASSERT_EQ(run_kvbench("run -q --resume " + shard1.string()).exit_code, 0);
  EXPECT_TRUE(std::filesystem::exists(shard1 / "shard-complete.json"));
  const CommandResult m =
      run_kvbench("merge -q " + (dir / "sweep").string() + " -o " + (dir / "merged").string() + " --format md,csv");
  ASSERT_EQ(m.exit_code, 0) << m.output;
  const nlohmann::json whole = read_result(dir / "whole"), merged = read_result(dir / "merged");
  // --format renders the merged result as run renders its own: the table it prints, the CSV rows.
  EXPECT_EQ(slurp(dir / "merged" / "result.md"), render_summary_table(merged));
  EXPECT_EQ(slurp(dir / "merged" / "result.csv"), render_csv(merged));
  ASSERT_EQ(whole["runs"].size(), merged["runs"].size());
  for (size_t r = 0; r < whole["runs"].size(); ++r) {
    const nlohmann::json &a = whole["runs"][r]["measurements"], &b = merged["runs"][r]["measurements"];
    EXPECT_EQ(a["replay"], b["replay"]) << r;
    EXPECT_EQ(a.value("fidelity", nlohmann::json()), b.value("fidelity", nlohmann::json())) << r;
    EXPECT_EQ(a["memory"]["kv_bytes_per_sequence_mean"], b["memory"]["kv_bytes_per_sequence_mean"]) << r;
    // Counts of the method's work cover the sequences decoded in a session (a resumed shard's
    // last one), as a resumed run's do: equal where nothing was resumed.
    if (merged["runs"][r]["resumed"].is_null()) EXPECT_EQ(a["compression"]["events"], b["compression"]["events"]) << r;
  }
  EXPECT_EQ(slurp(dir / "whole" / "steps.csv"), slurp(dir / "merged" / "steps.csv"));
  // A shard's result and the merged one are result documents like any other.
  const nlohmann::json schema = load_schema("result.schema.json");
  EXPECT_EQ(schema_violation(merged, schema), "");
  EXPECT_EQ(schema_violation(read_result(dir / "sweep" / "shard-1-of-3"), schema), "");
  EXPECT_EQ(merged["merged"]["shards"].size(), 3u);
  EXPECT_EQ(merged["merged"]["shards"][1]["device"], "cpu");
}

TEST(CliShard, MergeRefusesWhatIsNotOneCompleteSweep) {
  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  clear_launcher_env();
  TempDir dir;
  const std::string common = "run -q --mode generate -m " + bin.string() +
                             " --method full,streaming --budget 16 --divide-length 8 -n 24 --temperature 0.8 --samples 2 ";
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(run_kvbench(common + "--shard " + std::to_string(i) + "/3 -o " + (dir / "a").string()).exit_code, 0);
  ASSERT_EQ(run_kvbench(common + "--seed 7 --shard 1/3 -o " + (dir / "other").string()).exit_code, 0);
  ASSERT_EQ(run_kvbench(common + "--shard 1/2 -o " + (dir / "halves").string()).exit_code, 0);
  const std::string s0 = (dir / "a" / "shard-0-of-3").string(), s1 = (dir / "a" / "shard-1-of-3").string(),
                    s2 = (dir / "a" / "shard-2-of-3").string();
  // Another commit: the same sweep as if another kvbench had run shard 2.
  std::filesystem::create_directories(dir / "commit");
  std::filesystem::copy(s2, dir / "commit" / "shard-2-of-3", std::filesystem::copy_options::recursive);
  {
    nlohmann::json m = nlohmann::json::parse(slurp(dir / "commit" / "shard-2-of-3" / "manifest.json"));
    m["fingerprint"]["kvbench"] = "0123456789ab";
    std::ofstream(dir / "commit" / "shard-2-of-3" / "manifest.json") << m.dump();
  }
  struct Case {
    std::string shards, expect;
  };
  const std::string out = " -o " + (dir / "m").string();
  for (const Case& c : std::vector<Case>{
           {s0 + " " + s1, "shard(s) 2 of 3 not given"},
           {s0 + " " + s1 + " " + s2 + " " + s1, "given twice"},
           {s0 + " " + (dir / "other" / "shard-1-of-3").string() + " " + s2, "another configuration (settings.seed"},
           {s0 + " " + s1 + " " + (dir / "commit" / "shard-2-of-3").string(), "another kvbench commit"},
           {s0 + " " + (dir / "halves" / "shard-1-of-2").string(), "not one split of the sweep"},
           {(dir / "nothing").string(), "no such folder"},
       }) {
    const CommandResult r = run_kvbench("merge -q " + c.shards + out);
    EXPECT_EQ(r.exit_code, 2) << c.shards << ": " << r.output;
    EXPECT_NE(error_line(r.output).find(c.expect), std::string::npos) << c.shards << ": " << r.output;
  }
  // An unfinished shard (killed: no completion marker, a journal cut mid-line) is named; with
  // --allow-partial the merge keeps what it finished and says the result is partial.
  std::filesystem::remove(dir / "a" / "shard-2-of-3" / "shard-complete.json");
  const std::vector<std::string> lines = file_lines(dir / "a" / "shard-2-of-3" / "journal.jsonl");
  ASSERT_GE(lines.size(), 3u);
  {
    std::ofstream cut(dir / "a" / "shard-2-of-3" / "journal.jsonl");
    cut << lines[0] << lines[1] << lines[2].substr(0, lines[2].size() / 2);
  }
  const CommandResult unfinished = run_kvbench("merge -q " + (dir / "a").string() + out);
  EXPECT_EQ(unfinished.exit_code, 2);
  EXPECT_NE(error_line(unfinished.output).find("shard-2-of-3 (shard 2/3) is unfinished"), std::string::npos) << unfinished.output;
  const CommandResult partial = run_kvbench("merge -q --allow-partial " + (dir / "a").string() + out);
  ASSERT_EQ(partial.exit_code, 0) << partial.output;
  const nlohmann::json doc = read_result(dir / "m");
  EXPECT_EQ(doc["status"], "partial");
  EXPECT_GT(doc["merged"]["missing_units"].get<int>(), 0);
  EXPECT_FALSE(doc["merged"]["shards"][2]["complete"].get<bool>());
  EXPECT_EQ(schema_violation(doc, load_schema("result.schema.json")), "");
  // Resuming the shard finishes it; the sweep then merges whole.
  ASSERT_EQ(run_kvbench("run -q --resume " + (dir / "a" / "shard-2-of-3").string()).exit_code, 0);
  const CommandResult whole = run_kvbench("merge -q " + (dir / "a").string() + out);
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  EXPECT_EQ(read_result(dir / "m")["status"], "complete");
}

TEST(CliShard, RunRefusesWhatItCannotShard) {
  clear_launcher_env();
  TempDir dir;
  const std::string out = " -o " + dir.path().string();
  struct Case {
    std::string args, expect;
  };
  for (const Case& c : std::vector<Case>{
           {"run -q --mode throughput --method full --shard 0/2" + out, "throughput runs are timings"},
           {"run -q --mode generate -n 8 --shard 0/2" + out, "--stats self"},
           {"run -q --mode generate --method full -n 8 --shard 0/2", "give --out SWEEP"},
           {"run -q --mode generate --method full -n 8 --shard 2/2" + out, "--shard 2/2"},
       }) {
    const CommandResult r = run_kvbench(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << ": " << r.output;
    EXPECT_NE(error_line(r.output).find(c.expect), std::string::npos) << c.args << ": " << r.output;
  }
}

// --device cuda:all: each worker is the same run as one shard on one GPU, its output in the sweep.
TEST(GpuWorkers, EachWorkerIsTheRunAsOneShardOnOneGpu) {
  const std::vector<std::string> argv = {"kvbench", "run",  "-q", "--device", "cuda:all", "-m",        "x.gguf",
                                         "-oOUT",   "--format=md", "--shard", "1/2",      "--samples", "4", "--quiet"};
  EXPECT_EQ(worker_command_line(argv, 1, 3, 2, "S"),
            (std::vector<std::string>{"kvbench", "run", "-m", "x.gguf", "--samples", "4", "--device", "cuda:2", "--shard",
                                      "1/3", "--out", "S", "-q"}));
  EXPECT_FALSE(worker_gpus("cpu").has_value());
  EXPECT_FALSE(worker_gpus("cuda:1").has_value());
}

TEST(CliShard, EveryGpuOnAMachineWithoutOneIsAClearError) {
  if (!query_gpus().gpus.empty()) GTEST_SKIP() << "a GPU answers here";
  clear_launcher_env();
  TempDir dir;
  for (const char* device : {"cuda:all", "cuda:0,1"}) {
    const CommandResult r = run_kvbench(std::string("run -q --method full -n 8 --device ") + device + " -o " + dir.path().string());
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(error_line(r.output).find(std::string("--device ") + device + ": no GPU answered"), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace kvb::test
