// End to end: the kvbench binary's `run`, `info` and exit codes.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/hf_model_writer.hpp"
#include "tests/test_support.hpp"

namespace kvb::test {
namespace {



TEST(CliRun, DefaultRunWritesACompleteResult) {
  TempDir dir;
  CommandResult r = run_kvbench("run -q --max-new-tokens 16 --out " + dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json doc = read_result(dir.path());
  EXPECT_EQ(doc["schema_version"], 1);
  EXPECT_EQ(doc["status"], "complete");
  EXPECT_TRUE(doc["synthetic"].get<bool>());
  EXPECT_EQ(doc["model"]["format"], "synthetic");
  EXPECT_EQ(doc["workload"]["source"], "builtin:stories");
  // How loading went: its time, nothing put on a device, the host's peak memory by then.
  EXPECT_GT(doc["model"]["load"]["seconds"].get<double>(), 0.0);
  EXPECT_EQ(doc["model"]["load"]["device_seconds"].get<double>(), 0.0);
  EXPECT_GT(doc["model"]["load"]["host_peak_rss_bytes"].get<double>(), 0.0);
  EXPECT_EQ(doc["model"]["compute_dtype"], "bf16 weights, f32 KV cache, fp32 activations and accumulation");
  // Hardware facts: the GPUs that answered, or why none did.
  ASSERT_TRUE(doc["device"]["gpus"].is_array());
  if (doc["device"]["gpus"].empty()) EXPECT_FALSE(doc["device"]["gpus_note"].get<std::string>().empty());
  else EXPECT_GT(doc["device"]["gpus"][0]["memory_bytes"].get<double>(), 0.0);
  EXPECT_EQ(doc["settings"]["mode"], "replay");
  // Every method, the budgeted ones at the two default budgets, full attention first.
  std::vector<std::string> runs;
  for (const auto& run : doc["runs"])
    runs.push_back(run["method"].get<std::string>() + (run["budget"].is_null() ? "" : "@" + run["budget"].dump()));
  EXPECT_EQ(runs, (std::vector<std::string>{"full", "triattention@256", "triattention@384", "snapkv@256", "snapkv@384",
                                            "rkv@256", "rkv@384", "streaming@256", "streaming@384", "h2o@256", "h2o@384"}));
  // No statistics were named, so TriAttention says where its statistics came from.
  EXPECT_EQ(doc["runs"][1]["parameters"]["stats"]["format"], "calibrated-on-run-tokens");
  const auto& run = doc["runs"][0];
  EXPECT_EQ(run["sequences"].size(), 4u);
  for (const auto& s : run["sequences"]) {
    EXPECT_GE(s["token_ids"].size(), 1u);
    EXPECT_LE(s["token_ids"].size(), 16u);
  }
  const auto& m = run["measurements"];
  EXPECT_GT(m["decode"]["tokens_per_s"].get<double>(), 0.0);
  EXPECT_GT(m["memory"]["kv_bytes_peak"].get<double>(), 0.0);
  EXPECT_LE(m["memory"]["kv_bytes_peak"].get<double>(), m["memory"]["kv_bytes_allocated"].get<double>());
  EXPECT_GT(m["memory"]["peak_rss_bytes"].get<double>(), 0.0);
  EXPECT_GE(m["decode"]["step_latency_ms"]["p99"].get<double>(), m["decode"]["step_latency_ms"]["p50"].get<double>());
  EXPECT_NE(r.output.find("model synthetic:tiny"), std::string::npos) << r.output;  // the table's header
  EXPECT_NE(r.output.find(" triattention@256 |"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "result.json.tmp"));
}

TEST(CliRun, KvDtypeRoundsTheCacheAndReportsItsBytes) {
  // The same replay with an fp32, a bf16 and an f16 cache: compute_dtype says which, and the KV
  // bytes reported halve for the 2-byte types.
  std::map<std::string, nlohmann::json> docs;
  for (const char* kv : {"f32", "bf16", "f16"}) {
    TempDir dir;
    CommandResult r = run_kvbench(std::string("run -q --max-new-tokens 8 --method full,streaming --budget 64 --kv-dtype ") +
                                  kv + " --out " + dir.path().string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    docs[kv] = read_result(dir.path());
    EXPECT_EQ(docs[kv]["model"]["compute_dtype"],
              std::string("bf16 weights, ") + kv + " KV cache, fp32 activations and accumulation");
  }
  const auto peak = [&](const char* kv) { return docs[kv]["runs"][0]["measurements"]["memory"]["kv_bytes_peak"].get<double>(); };
  EXPECT_EQ(peak("bf16") * 2, peak("f32"));
  EXPECT_EQ(peak("f16") * 2, peak("f32"));
}

TEST(CliRun, SameSeedSameTokensAcrossBatching) {
  TempDir a, b;
  const std::string common = "run -q --mode generate --method full -n 12 --temperature 0.8 --top-p 0.9 --seed 7 ";
  ASSERT_EQ(run_kvbench(common + "--batch 1 --out " + a.path().string()).exit_code, 0);
  ASSERT_EQ(run_kvbench(common + "--batch 3 --out " + b.path().string()).exit_code, 0);
  auto da = read_result(a.path()), db = read_result(b.path());
  for (size_t i = 0; i < 4; ++i)
    EXPECT_EQ(da["runs"][0]["sequences"][i]["token_ids"], db["runs"][0]["sequences"][i]["token_ids"]) << i;
}

TEST(CliRun, ReplayOfOwnGreedyContinuationAgreesFully) {
  // Replaying full attention's own greedy continuation: every argmax equals the replayed token.
  TempDir dir;
  CommandResult r = run_kvbench("run -q --mode replay --method full -n 20 --out " + dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto doc = read_result(dir.path());
  const auto& rep = doc["runs"][0]["measurements"]["replay"];
  EXPECT_DOUBLE_EQ(rep["top1_agreement"].get<double>(), 1.0);
  EXPECT_GT(rep["ppl"].get<double>(), 1.0);
  const auto& fid = doc["runs"][0]["measurements"]["fidelity"];
  EXPECT_EQ(fid["kl"]["max"].get<double>(), 0.0);
  EXPECT_EQ(fid["top1_agreement_with_full"].get<double>(), 1.0);
  EXPECT_EQ(fid["ppl_ratio"].get<double>(), 1.0);
}

TEST(CliRun, StreamingBudgetsInReplay) {
  // Every method at every budget, in lockstep with full attention; the KV peak respects the budget
  // (a prompt longer than budget + divide length is held whole until the compression after prefill).
  TempDir dir;
  CommandResult r = run_kvbench("run -q --mode replay -n 120 --method full,streaming --budget 40,1000 --divide-length 8 "
                                "--out " + dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto doc = read_result(dir.path());
  ASSERT_EQ(doc["runs"].size(), 3u);
  const auto& full = doc["runs"][0], tight = doc["runs"][1], loose = doc["runs"][2];
  EXPECT_EQ(tight["method"], "streaming");
  EXPECT_EQ(tight["budget"], 40);
  EXPECT_EQ(tight["divide_length"], 8);
  const auto& model = doc["model"];
  const double slot = model["layers"].get<double>() * model["kv_heads"].get<double>() * model["head_dim"].get<double>() * 8;
  EXPECT_LE(tight["measurements"]["memory"]["kv_bytes_peak"].get<double>(), (40 + 8) * slot);  // the built-in prompts are shorter than 48 tokens
  EXPECT_GT(tight["measurements"]["compression"]["events"].get<int>(), 0);
  EXPECT_GT(tight["measurements"]["fidelity"]["kl"]["mean"].get<double>(), 0.0);
  // A budget above the sequence length never evicts and matches full attention exactly.
  EXPECT_EQ(loose["measurements"]["compression"]["events"].get<int>(), 0);
  EXPECT_EQ(loose["measurements"]["fidelity"]["kl"]["max"].get<double>(), 0.0);
  EXPECT_EQ(loose["measurements"]["replay"]["nll_mean"], full["measurements"]["replay"]["nll_mean"]);
  // steps.csv: a header and one row per replayed token of every run.
  std::ifstream csv(dir / "steps.csv");
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line,
            "method,budget,sequence,step,token,kv_bytes,full_logprob,method_logprob,kl,full_argmax,method_argmax,"
            "retained_mass");
  int rows = 0;
  while (std::getline(csv, line)) ++rows;
  int64_t tokens = 0;
  for (const auto& run : doc["runs"]) tokens += run["measurements"]["replay"]["tokens"].get<int64_t>();
  EXPECT_EQ(rows, tokens);
}

TEST(CliRun, StoriesPromptFromBin) {
  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  TempDir dir;
  CommandResult r = run_kvbench("run -q -m " + bin.string() + " -p 'Once upon a time' --mode generate --method full -n 40 --out " + dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("there was a little girl named Lily"), std::string::npos) << r.output;
  auto doc = read_result(dir.path());
  EXPECT_FALSE(doc["synthetic"].get<bool>());
  EXPECT_EQ(doc["model"]["files"][0]["sha256"], "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696");
  EXPECT_GT(doc["model"]["files"][0]["hash_seconds"].get<double>(), 0.0);  // how long hashing took is shown
}

struct BadInput {
  const char* args;
  const char* expect;  // substring of the one-line error
};

class CliBadInput : public ::testing::TestWithParam<BadInput> {};

TEST_P(CliBadInput, ExitsTwoWithOneLine) {
  TempDir dir;
  CommandResult r = run_kvbench(std::string(GetParam().args) + " --out " + dir.path().string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(error_line(r.output).find(GetParam().expect), std::string::npos) << r.output;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CliBadInput,
    ::testing::Values(BadInput{"run -q -m /nonexistent/model.bin", "/nonexistent/model.bin"},
                      BadInput{"run -q -m synthetic:nope", "unknown preset"},
                      BadInput{"run -q -m synthetic:tiny,seed=x", "seed"},
                      BadInput{"run -q --mode sideways", "--mode"},
                      BadInput{"run -q --max-new-tokens 0", "--max-new-tokens"},
                      BadInput{"run -q --top-p 1.5", "--top-p"},
                      BadInput{"run -q --top-k -2", "--top-k"},
                      BadInput{"run -q --min-p 1", "--min-p"},
                      BadInput{"run -q --samples 0", "--samples"},
                      BadInput{"run -q --temperature -1", "--temperature"},
                      BadInput{"run -q --batch 0", "--batch"},
                      BadInput{"run -q --batch lots", "--batch lots"},
                      BadInput{"run -q --device cpu --batch auto", "--batch auto"},
                      BadInput{"run -q --device cuda:x", "--device cuda:x"},
                      BadInput{"run -q --device cuda:99", "--device cuda:99"},
                      BadInput{"run -q --device tpu", "--device tpu"},
                      BadInput{"run -q -n 5000", "exceeds the model's context"},
                      BadInput{"run -q --workload builtin:nothing", "nothing"},
                      BadInput{"run --no-such-flag", "--no-such-flag"},
                      BadInput{"run -q --method triattention --budget 64", "--stats"},
                      BadInput{"run -q --method triattention --budget 64 --stats /nonexistent.pt", "/nonexistent.pt"},
                      BadInput{"run -q --method triattention --budget 64 --stats self --tri-window 64", "--tri-window"},
                      BadInput{"run -q --method triattention --budget 16 --stats self", "pins the prompt"},
                      BadInput{"run -q --tri-mode sideways", "--tri-mode"},
                      BadInput{"run -q --tri-aggregation median", "--tri-aggregation"},
                      BadInput{"run -q --method snapkv --budget 8", "--budget 8"},
                      BadInput{"run -q --method rkv --budget 0", "positive token budget"},
                      BadInput{"run -q --method fancy --budget 64", "unknown method"},
                      BadInput{"run -q --method streaming --budget 2", "--budget 2"},
                      BadInput{"run -q --method streaming --budget 64,x", "--budget"},
                      BadInput{"run -q --method snapkv --budget 64 --trigger every-step", "--trigger every-step"},
                      BadInput{"run -q --method streaming --budget 64 --trigger sometimes", "--trigger sometimes"},
                      BadInput{"run -q --method streaming --budget 64 --streaming-positions relative", "--streaming-positions"},
                      BadInput{"run -q --method streaming --budget 64 --dump-kept /nonexistent/dir/kept.jsonl", "--dump-kept"},
                      BadInput{"run -q --kv-dtype int8", "--kv-dtype int8"},
                      BadInput{"run -q -m synthetic:tiny,dtype=f64", "dtype"},
                      BadInput{"calibrate", "--model"}));

// --dump-kept: one line per (run, sequence, event), the positions each compacted (layer, KV head)
// holds, exactly `budget` of them; as many events as the result counts; the trigger recorded.
TEST(CliRun, DumpKeptWritesEveryEventsPositions) {
  TempDir dir;
  const std::string kept = (dir / "kept.jsonl").string();
  CommandResult r = run_kvbench("run -q --mode replay -n 120 --method full,streaming,h2o --budget 40 --divide-length 8 "
                                "--trigger every-step --dump-kept " + kept + " --out " + (dir / "out").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(std::filesystem::exists(kept + ".partial"));
  const nlohmann::json doc = read_result(dir / "out");
  std::map<std::string, int64_t> events;  // per run
  std::ifstream in(kept);
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json e = nlohmann::json::parse(line);
    ++events[e["run"]];
    EXPECT_EQ(e["budget"], 40);
    ASSERT_FALSE(e["kept"].empty());
    for (const auto& seg : e["kept"]) {
      const auto positions = seg["positions"].get<std::vector<int>>();
      EXPECT_EQ(positions.size(), 40u);
      EXPECT_TRUE(std::is_sorted(positions.begin(), positions.end()));
      EXPECT_LT(positions.back(), e["processed"].get<int>());
      if (e["method"] == "streaming")  // the 4 sinks, then the newest 36
        EXPECT_EQ(positions[3], 3);
    }
  }
  for (const auto& run : doc["runs"]) {
    const std::string name = run["budget"].is_null() ? run["method"].get<std::string>()
                                                     : run["method"].get<std::string>() + "@40";
    EXPECT_EQ(events[name], run["measurements"]["compression"]["events"].get<int64_t>()) << name;
    if (!run["budget"].is_null()) EXPECT_EQ(run["parameters"]["trigger"], "every-step") << name;
  }
  EXPECT_GT(events["streaming@40"], 0);
}

// --samples: every (item, draw) seeded from (seed, item, draw), so its tokens do not depend on the
// batch; accuracy is avg@N with an interval, pass@k, and the paired difference to full attention.
TEST(CliRun, DrawsAreTheSameWhateverTheBatchAndGiveAvgAtN) {
  TempDir dir;
  const auto workload = dir / "q.jsonl";
  std::ofstream(workload) << "{\"id\": \"a\", \"prompt\": \"Once upon a time\", \"answer\": \"Lily\"}\n"
                          << "{\"id\": \"b\", \"prompt\": \"The dog ran\", \"answer\": \"park\"}\n";
  const std::string common = "run -q --mode generate --method full,streaming --budget 8 --divide-length 4 -n 24 "
                             "--temperature 0.8 --samples 4 --workload " + workload.string() + " ";
  ASSERT_EQ(run_kvbench(common + "--batch 1 --out " + (dir / "b1").string()).exit_code, 0);
  ASSERT_EQ(run_kvbench(common + "--batch 3 --out " + (dir / "b3").string()).exit_code, 0);
  const nlohmann::json a = read_result(dir / "b1"), b = read_result(dir / "b3");
  for (size_t r = 0; r < 2; ++r) {
    const auto& sa = a["runs"][r]["sequences"];
    const auto& sb = b["runs"][r]["sequences"];
    ASSERT_EQ(sa.size(), 8u);
    std::set<std::vector<int>> distinct;
    for (size_t i = 0; i < sa.size(); ++i) {
      EXPECT_EQ(sa[i]["item"], sb[i]["item"]);
      EXPECT_EQ(sa[i]["draw"], sb[i]["draw"]);
      EXPECT_EQ(sa[i]["token_ids"], sb[i]["token_ids"]) << sa[i]["id"];
      distinct.insert(sa[i]["token_ids"].get<std::vector<int>>());
    }
    EXPECT_GT(distinct.size(), 4u) << "the draws are not independent samples";
    const auto& acc = a["runs"][r]["measurements"]["accuracy"];
    EXPECT_EQ(acc["items"], 2);
    EXPECT_EQ(acc["draws"], 4);
    EXPECT_EQ(acc["total"], 8);
    EXPECT_EQ(acc["pass_at_k"].size(), 4u);
    EXPECT_LE(acc["ci95"][0].get<double>(), acc["accuracy"].get<double>());
    EXPECT_GE(acc["ci95"][1].get<double>(), acc["accuracy"].get<double>());
  }
  EXPECT_EQ(a["runs"][0]["sequences"][1]["id"], "a#1");
  // Continuous batching: a row that finishes takes the next draw, so 3 rows stay busy.
  const double rows = b["runs"][0]["measurements"]["decode"]["mean_running_rows"].get<double>();
  EXPECT_GT(rows, 2.0);
  EXPECT_LE(rows, 3.0);
  EXPECT_EQ(a["runs"][0]["measurements"]["decode"]["mean_running_rows"], 1.0);
  EXPECT_TRUE(a["runs"][1]["measurements"]["accuracy"].contains("vs_full"));
  EXPECT_EQ(run_kvbench("run -q --mode replay --samples 2 --out " + (dir / "x").string()).exit_code, 2);
}

// The lines of a file, each with its newline.


// Draws are seeded per (seed, item, draw) and finished sequences are journalled: batch 1, batch 3
// (continuous batching) and a run cut short at any point, then resumed, decide the same tokens.
// A cut journal is what a crash leaves on disk: whole lines, then perhaps half of one.
TEST(CliRun, ResumedRunsDecideWhatUninterruptedOnesDo) {
  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  TempDir dir;
  std::ofstream(dir / "q.jsonl") << "{\"id\": \"a\", \"prompt\": \"Once upon a time\", \"answer\": \"Lily\"}\n"
                                  << "{\"id\": \"b\", \"prompt\": \"The dog ran\", \"answer\": \"park\"}\n";
  const std::string common = "run -q --mode generate -m " + bin.string() +
                             " --method full,streaming,h2o --budget 16 --divide-length 8 -n 48 --temperature 0.8 "
                             "--samples 4 -w " + (dir / "q.jsonl").string() + " ";
  ASSERT_EQ(run_kvbench(common + "--batch 1 -o " + (dir / "b1").string()).exit_code, 0);
  ASSERT_EQ(run_kvbench(common + "--batch 3 -o " + (dir / "b3").string()).exit_code, 0);
  const nlohmann::json reference = decisions(read_result(dir / "b1"));
  EXPECT_EQ(decisions(read_result(dir / "b3")), reference);
  ASSERT_EQ(reference[0][2].size(), 8u);

  // header, 8 sequences and a completion line per run
  const std::vector<std::string> lines = file_lines(dir / "b1" / "journal.jsonl");
  ASSERT_EQ(lines.size(), 1u + 3 * 9);
  for (size_t cut : {1ul, 5ul, 9ul, 10ul, 11ul, lines.size() - 1, lines.size()}) {
    const auto resumed = dir / ("cut" + std::to_string(cut));
    std::filesystem::create_directories(resumed);
    std::ofstream journal(resumed / "journal.jsonl");
    for (size_t i = 0; i < cut; ++i) journal << lines[i];
    if (cut < lines.size()) journal << lines[cut].substr(0, lines[cut].size() / 2);  // torn mid-write
    journal.close();
    // --resume alone reruns the journal's command line, here with another batch size.
    const CommandResult r = run_kvbench("run --resume " + resumed.string() + " --batch 2 -q");
    ASSERT_EQ(r.exit_code, 0) << "cut " << cut << ": " << r.output;
    const nlohmann::json doc = read_result(resumed);
    EXPECT_EQ(doc["status"], "complete");
    EXPECT_EQ(decisions(doc), reference) << "cut after line " << cut;
    // Sequences before the cut came from the journal, and the run says so.
    const int first_run_journalled = static_cast<int>(std::min<size_t>(cut - 1, 8));
    if (first_run_journalled > 0) EXPECT_EQ(doc["runs"][0]["resumed"]["sequences_from_journal"], first_run_journalled);
    else EXPECT_TRUE(doc["runs"][0]["resumed"].is_null());
  }
  // The same flags again, with --resume: accepted; a run with other draws: refused, naming them.
  const auto again = run_kvbench(common + "--batch 1 --resume " + (dir / "b1").string());
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(decisions(read_result(dir / "b1")), reference);
  const std::string other = std::regex_replace(common, std::regex("--samples 4"), "--samples 2");
  const auto refused = run_kvbench(other + "--resume " + (dir / "b1").string());
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(error_line(refused.output).find("settings.samples: 4 vs 2"), std::string::npos) << refused.output;
}

TEST(CliRun, ResumeRefusesWhatItCannotContinue) {
  TempDir dir;
  const std::string common = "run -q --mode generate --method full -n 8 ";
  ASSERT_EQ(run_kvbench(common + "-o " + (dir / "a").string()).exit_code, 0);
  std::vector<std::string> lines = file_lines(dir / "a" / "journal.jsonl");
  ASSERT_GE(lines.size(), 3u);
  lines[2] = "{\"run\": \"full\", \"sequence\": {\"id\": 3}}\n";  // not a sequence
  std::ofstream bad(dir / "a" / "journal.jsonl");
  for (const std::string& l : lines) bad << l;
  bad.close();
  struct Case {
    std::string args, expect;
  };
  for (const Case& c : std::vector<Case>{
           {"run -q --resume " + (dir / "a").string(), "journal.jsonl line 3: not a journal entry"},
           {"run -q --resume " + (dir / "none").string(), "none/journal.jsonl"},
           {"run -q --mode throughput --resume " + (dir / "a").string(), "--resume: throughput runs keep no journal"},
           {common + "--resume " + (dir / "a").string() + " -o " + (dir / "b").string(), "drop --out"},
       }) {
    const CommandResult r = run_kvbench(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << ": " << r.output;
    EXPECT_NE(error_line(r.output).find(c.expect), std::string::npos) << c.args << ": " << r.output;
  }
}

// --preset: the paper's protocol as flags; those given explicitly win, and the result says which.
TEST(CliRun, PresetSetsThePapersProtocolAndGivenFlagsWin) {
  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  KVB_REQUIRE_DATA(aime, "workloads/aime25/aime25.jsonl");
  TempDir dir;
  const CommandResult r = run_kvbench("run -q --preset aime25 -m " + bin.string() + " -w " + aime.string() +
                                      " --limit 1 --stats self --max-length 512 --samples 2 --budget 256 "
                                      "--divide-length 32 -o " + dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json doc = read_result(dir.path());
  const nlohmann::json& s = doc["settings"];
  EXPECT_EQ(s["preset"]["name"], "aime25");
  EXPECT_EQ(s["preset"]["set"]["--prompt-template"], "triattention");
  EXPECT_EQ(s["preset"]["overridden"]["--samples"], "2");
  EXPECT_EQ(s["samples"], 2);
  EXPECT_EQ(s["max_length"], 512);
  EXPECT_EQ(s["seed"], 888);
  EXPECT_FLOAT_EQ(s["temperature"].get<float>(), 0.6f);
  EXPECT_EQ(s["sampling_sources"]["temperature"], "preset");
  EXPECT_EQ(s["top_k"], 50);  // the .bin ships no generation_config.json: transformers' default
  EXPECT_EQ(s["prompt"]["template"], "triattention");
  EXPECT_EQ(doc["runs"].size(), 4u);  // full, triattention, snapkv, rkv at the one budget
  for (const auto& run : doc["runs"])
    for (const auto& seq : run["sequences"])
      EXPECT_LE(seq["prompt_tokens"].get<int>() + int(seq["token_ids"].size()), 512) << seq["id"];
  const CommandResult unknown = run_kvbench("run -q --preset aime26 -o " + (dir / "x").string());
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(error_line(unknown.output).find("--preset aime26: expected one of aime24, aime25, math500, dfs"),
            std::string::npos)
      << unknown.output;
}

// kvbench prompt: what the model is fed, without weights.
TEST(CliPrompt, PrintsEachItemsRenderedTextAndIds) {
  KVB_REQUIRE_DATA(tokenizer, "models/qwen3-tokenizer");
  KVB_REQUIRE_DATA(aime, "workloads/aime25/aime25.jsonl");
  const CommandResult r = run_kvbench("prompt --tokenizer " + tokenizer.string() + " -w " + aime.string() +
                                      " --limit 2 --json --template-var enable_thinking=false");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::istringstream lines(r.output);
  std::vector<nlohmann::json> items;
  for (std::string line; std::getline(lines, line);) items.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0]["id"], "0");
  const std::string text = items[0]["text"];
  EXPECT_EQ(text.rfind("<|im_start|>user\nFind the sum", 0), 0u) << text;
  EXPECT_NE(text.find("<|im_start|>assistant\n<think>\n\n</think>\n\n"), std::string::npos) << text;
  EXPECT_EQ(items[0]["token_ids"][0], 151644);
  EXPECT_EQ(items[0]["tokens"], items[0]["token_ids"].size());
  EXPECT_EQ(items[0]["prompt"]["template"], "chat");

  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  const CommandResult plain = run_kvbench("prompt -m " + bin.string() + " -p 'Once upon a time'");
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  EXPECT_NE(plain.output.find("prompt template: plain"), std::string::npos) << plain.output;
  const CommandResult chat = run_kvbench("prompt -m " + bin.string() + " -p x --prompt-template chat");
  EXPECT_EQ(chat.exit_code, 2);
  EXPECT_NE(error_line(chat.output).find("ships no chat template"), std::string::npos) << chat.output;
  EXPECT_EQ(run_kvbench("prompt -w builtin:stories").exit_code, 2);  // neither -m nor --tokenizer
}

// A model's generation_config.json supplies the sampling a flag does not, and the result says so.
TEST(CliRun, SamplingComesFromFlagsThenGenerationConfigThenDefaults) {
  TempDir dir;
  const auto folder = dir / "model";
  write_hf_model(folder, HfTinySpec{});
  write_text(folder / "generation_config.json", R"({"temperature": 0.6, "top_p": 0.95, "top_k": 20})");
  write_text(dir / "ids.jsonl", R"({"id": "a", "prompt_ids": [1, 5, 9]})" "\n");  // the folder has no tokenizer
  const std::string common = "run -q --mode generate --method full -n 4 -w " + (dir / "ids.jsonl").string() + " -m " +
                             folder.string() + " ";
  ASSERT_EQ(run_kvbench(common + "--top-k 5 --out " + (dir / "a").string()).exit_code, 0);
  const nlohmann::json s = read_result(dir / "a")["settings"];
  EXPECT_FLOAT_EQ(s["temperature"].get<float>(), 0.6f);
  EXPECT_FLOAT_EQ(s["top_p"].get<float>(), 0.95f);
  EXPECT_EQ(s["top_k"], 5);
  EXPECT_EQ(s["min_p"], 0);
  EXPECT_EQ(s["sampling_sources"]["temperature"], "generation_config.json");
  EXPECT_EQ(s["sampling_sources"]["top_k"], "flag");
  EXPECT_EQ(s["sampling_sources"]["min_p"], "default");
}

TEST(CliRun, WorkloadErrorsNameTheFileAndLine) {
  TempDir dir;
  const auto wl = dir / "bad.jsonl";
  std::ofstream(wl) << "{\"prompt\": \"ok\"}\n{not json\n";
  CommandResult r = run_kvbench("run -q --workload " + wl.string() + " --out " + (dir / "out").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(error_line(r.output).find(wl.string() + ":2"), std::string::npos) << r.output;
}

TEST(CliRun, TruncatedModelFileExitsTwo) {
  KVB_REQUIRE_DATA(bin, "models/stories260K/stories260K.bin");
  TempDir dir;
  std::filesystem::copy_file(bin.parent_path() / "tok512.bin", dir / "tok512.bin");
  {
    std::ifstream in(bin, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(dir / "cut.bin", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  CommandResult r = run_kvbench("run -q -m " + (dir / "cut.bin").string() + " --out " + (dir / "out").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(error_line(r.output).find("cut.bin"), std::string::npos) << r.output;
  EXPECT_NE(error_line(r.output).find("truncated"), std::string::npos) << r.output;
}

TEST(CliInfo, PrintsHostFactsAndJson) {
  CommandResult r = run_kvbench("info --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto doc = nlohmann::json::parse(r.output);
  EXPECT_GT(doc["host"]["logical_cores"].get<int>(), 0);
  EXPECT_TRUE(doc["gpus"].is_array());
  CommandResult v = run_kvbench("--version");
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.output.find("kvbench 0."), std::string::npos);
}

TEST(CliRun, GeneratedAnswersAreGraded) {
  // A byte-level synthetic model never writes \boxed{}: every item is graded, none is correct.
  TempDir dir;
  const auto wl = dir / "q.jsonl";
  std::ofstream(wl) << "{\"id\": \"a\", \"prompt\": \"1+1=\", \"answer\": \"2\"}\n"
                       "{\"id\": \"b\", \"prompt\": \"no answer here\"}\n";
  CommandResult r = run_kvbench("run -q -n 8 --mode generate --method full --workload " + wl.string() + " --out " +
                                (dir / "out").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto doc = read_result(dir / "out");
  const auto& run = doc["runs"][0];
  EXPECT_EQ(run["measurements"]["accuracy"]["total"], 1);
  EXPECT_EQ(run["measurements"]["accuracy"]["correct"], 0);
  EXPECT_FALSE(run["sequences"][0]["grade"]["correct"].get<bool>());
  EXPECT_FALSE(run["sequences"][1].contains("grade"));
}

TEST(CliRun, OfficialStatsAreRefusedForAnotherModel) {
  // Qwen3-8B statistics (36 layers x 32 heads, head_dim 128) against synthetic:tiny: exit 2,
  // naming the file, before anything is decoded.
  KVB_REQUIRE_DATA(pt, "calibration/qwen3_8b.for_aime24.pt");
  TempDir dir;
  CommandResult r = run_kvbench("run -q --method triattention --budget 64 --stats " + pt.string() + " --out " +
                                (dir / "out").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(error_line(r.output).find(pt.string()), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "out" / "result.json"));
}

TEST(CliRun, ThroughputModeRepeatsItemsToFillTheBatch) {
  TempDir dir;
  CommandResult r = run_kvbench("run -q --device cpu --mode throughput --method full -n 12 --batch 6 --repeat 1 "
                                "--warmup 0 --out " + dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto doc = read_result(dir.path());
  const auto& run = doc["runs"][0];
  EXPECT_EQ(run["batch"], 6);
  ASSERT_EQ(run["sequences"].size(), 6u);
  size_t items = 0;  // the workload's own items come first, then the repeats
  while (items < 6 && run["sequences"][items]["id"].get<std::string>().find('#') == std::string::npos) ++items;
  ASSERT_GT(items, 0u);
  ASSERT_LT(items, 6u);
  for (size_t k = items; k < 6; ++k)
    EXPECT_EQ(run["sequences"][k]["id"], run["sequences"][k % items]["id"].get<std::string>() + "#" + std::to_string(k / items));
  EXPECT_EQ(run["measurements"]["decode"]["steps"], 11);  // 12 tokens: the first comes from the prefill
}

TEST(CliRun, ThroughputModeTimesSyntheticTracesWithoutComparisons) {
  // No recorded continuation: every sequence is fed a seeded synthetic trace of -n tokens, EOS or not.
  TempDir dir;
  CommandResult r = run_kvbench("run -q --mode throughput --method full,streaming --budget 16 --divide-length 8 -n 40 "
                                "--batch 3 --out " + dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto doc = read_result(dir.path());
  EXPECT_EQ(doc["settings"]["mode"], "throughput");
  for (const auto& run : doc["runs"]) {
    const auto& m = run["measurements"];
    EXPECT_FALSE(m.contains("fidelity"));
    EXPECT_FALSE(m.contains("replay"));
    ASSERT_TRUE(m.contains("throughput"));
    EXPECT_EQ(m["throughput"]["time_to_first_token_ms"]["count"], 4);
    int64_t bucketed = 0;
    double previous_to = -1;
    for (const auto& b : m["throughput"]["step_latency_by_kv_length"]) {
      bucketed += b["step_latency_ms"]["count"].get<int64_t>();
      EXPECT_GE(b["kv_slots_from"].get<double>(), previous_to);
      previous_to = b["kv_slots_to"].get<double>();
    }
    EXPECT_EQ(bucketed, m["decode"]["steps"].get<int64_t>());
    for (const auto& s : run["sequences"]) {
      EXPECT_EQ(s["token_ids"].size(), 40u);
      EXPECT_EQ(s["stop_reason"], "end_of_trace");
    }
  }
  // The synthetic traces are the same for every method (seeded by --seed and the item).
  EXPECT_EQ(doc["runs"][0]["sequences"][2]["token_ids"], doc["runs"][1]["sequences"][2]["token_ids"]);
  EXPECT_GT(doc["runs"][1]["measurements"]["compression"]["events"].get<int>(), 0);
}

}  // namespace
}  // namespace kvb::test

namespace kvb::test {
namespace {

TEST(CliRun, TriAttentionOptionsReachTheMethodAndTheResult) {
  // Every selection mode and the ablations run end to end and are recorded with the run.
  TempDir dir;
  const std::string stats = (dir / "stats.safetensors").string();
  ASSERT_EQ(run_kvbench("calibrate -q -m synthetic:tiny -w builtin:stories --out " + stats).exit_code, 0);
  for (const char* options : {"--tri-mode global --tri-aggregation max --tri-offset-max 1024",
                              "--tri-mode per-layer-head --tri-disable-mlr --tri-window 8 --tri-seed 3",
                              "--tri-disable-trig --tri-protect-prompt false"}) {
    const auto out = dir / "out";
    CommandResult r = run_kvbench(std::string("run -q --method triattention --budget 48 --divide-length 16 -n 80 --stats ") +
                                  stats + " " + options + " --out " + out.string());
    ASSERT_EQ(r.exit_code, 0) << options << "\n" << r.output;
    const auto doc = read_result(out);
    const auto& p = doc["runs"][0]["parameters"];
    EXPECT_EQ(p["stats"]["format"], "kvbench-safetensors") << options;
    EXPECT_GT(doc["runs"][0]["measurements"]["compression"]["events"].get<int>(), 0) << options;
    const std::string o = options;
    if (o.find("global") != std::string::npos) {
      EXPECT_EQ(p["selection"], "global");
      EXPECT_EQ(p["aggregation"], "max");
      EXPECT_EQ(p["offset_max"], 1024);
    } else if (o.find("per-layer-head") != std::string::npos) {
      EXPECT_EQ(p["selection"], "per-layer-head");
      EXPECT_TRUE(p["disable_mlr"].get<bool>());
      EXPECT_EQ(p["window"], 8);
      EXPECT_EQ(p["seed"], 3);
    } else {
      EXPECT_TRUE(p["disable_trig"].get<bool>());
      EXPECT_FALSE(p["protect_prompt"].get<bool>());
    }
  }
}

}  // namespace
}  // namespace kvb::test
