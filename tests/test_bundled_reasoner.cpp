// The bundled DFS reasoner (models/dfs-reasoner, trained by tools/train-reasoner): where
// "builtin:" names are found, that it is the default of `kvbench run` with its own workload, and
// what makes it worth shipping: with full attention it reproduces long move traces, and evicting
// old keys visibly costs accuracy.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "engine/bundled_models.hpp"
#include "engine/model.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

namespace kvb {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

const fs::path kBundled = fs::path(KVBENCH_SOURCE_DIR) / "models";

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(BundledModels, BuiltinNamesAFolderOfTheSourceTreeOrOfKvbenchModelsDir) {
  unsetenv("KVBENCH_MODELS_DIR");
  EXPECT_EQ(fs::path(resolve_model_spec("builtin:dfs-reasoner")), kBundled / "dfs-reasoner");
  EXPECT_EQ(resolve_model_spec("synthetic:tiny"), "synthetic:tiny");  // other specs pass through
  EXPECT_EQ(resolve_model_spec("/some/file.gguf"), "/some/file.gguf");
  EXPECT_EQ(fs::path(model_default_workload(kDefaultModel)), kBundled / "dfs-reasoner" / "workload.jsonl");
  EXPECT_EQ(model_default_workload("synthetic:tiny"), "");
  TempDir dir;
  fs::create_directory(dir / "mine");
  ScopedEnv env("KVBENCH_MODELS_DIR", dir.path().string());
  EXPECT_EQ(fs::path(resolve_model_spec("builtin:mine")), dir / "mine");
  EXPECT_EQ(model_default_workload("builtin:mine"), "");  // a folder without workload.jsonl
  for (const std::string bad : {"builtin:dfs-reasoner", "builtin:", "builtin:../x", "builtin:a/b"}) {
    try {
      (void)resolve_model_spec(bad);
      ADD_FAILURE() << bad << " resolved";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("--model"), std::string::npos) << e.what();
    }
  }
}

TEST(BundledModels, TheReasonerLoadsLikeAnyHuggingFaceFolder) {
  const Model m = load_model("builtin:dfs-reasoner");
  EXPECT_EQ(m.info.format, "hf");
  EXPECT_EQ(m.config.n_layers, 4);
  EXPECT_EQ(m.config.dim, 128);
  EXPECT_EQ(m.tokenizer->kind(), "hf-wordlevel");
  EXPECT_EQ(m.tokenizer->decode({m.config.eos_id}, true), "done");
  EXPECT_LE(fs::file_size(kBundled / "dfs-reasoner" / "model.safetensors"), 20u << 20);  // the cap
}

TEST(BundledModels, DefaultRunIsTheReasonerOnItsWorkload) {
  TempDir dir;
  const test::CommandResult r =
      test::run_kvbench_default_model("run -q --limit 3 --method full,streaming --budget 64 --out " + dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json doc = test::read_result(dir.path());
  EXPECT_EQ(doc["model"]["format"], "hf");
  EXPECT_FALSE(doc["synthetic"].get<bool>());
  EXPECT_EQ(fs::path(doc["workload"]["source"].get<std::string>()), kBundled / "dfs-reasoner" / "workload.jsonl");
  EXPECT_EQ(doc["settings"]["mode"], "replay");
  ASSERT_EQ(doc["runs"].size(), 2u);
  // Replay completes each item's trace with full attention, then every method replays it.
  for (const auto& s : doc["runs"][0]["sequences"]) EXPECT_GE(s["token_ids"].size(), 300u);
}

// Without --limit the model's own workload runs its first kModelWorkloadQuickItems (so that the
// default run takes under a minute); --limit 0 runs all of it. The model folder here is the bundled
// one with a workload of kModelWorkloadQuickItems + 1 short items (the real 200 take minutes under
// the sanitizers), named through KVBENCH_MODELS_DIR as a user's own builtin folder would be.
TEST(BundledModels, TheModelsOwnWorkloadRunsItsQuickSubsetUnlessTold) {
  TempDir dir;
  const fs::path folder = dir / "dfs-reasoner";
  fs::create_directory(folder);
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                        "tokenizer_config.json"})
    fs::create_symlink(kBundled / "dfs-reasoner" / f, folder / f);
  const int n_items = kModelWorkloadQuickItems + 1;
  {
    std::ofstream w(folder / "workload.jsonl");
    for (int i = 0; i < n_items; ++i)
      w << "{\"id\": \"short-" << i << "\", \"prompt\": \"s1 " << i % 60 << " v2 - Q " << i % 60
        << "\", \"answer\": \"u1 # v1\", \"grading\": \"sequence\", \"max_new_tokens\": 8}\n";
  }
  ScopedEnv env("KVBENCH_MODELS_DIR", dir.path().string());
  auto items = [&](const std::string& flags, const std::string& name) {
    const test::CommandResult r = test::run_kvbench_default_model("run -q --method full -n 4 " + flags + " --out " +
                                                                  (dir / name).string());
    EXPECT_EQ(r.exit_code, 0) << r.output;
    const nlohmann::json doc = test::read_result(dir / name);
    EXPECT_EQ(fs::path(doc["workload"]["source"].get<std::string>()), folder / "workload.jsonl");
    return doc["runs"][0]["sequences"].size();
  };
  EXPECT_EQ(items("", "quick"), size_t(kModelWorkloadQuickItems));
  EXPECT_EQ(items("--limit 0", "all"), size_t(n_items));
  EXPECT_EQ(items("--limit 5", "five"), 5u);
}

// The shards of a default run (no -m, no -w) merge: the shards record the workload they read.
TEST(BundledModels, ShardsOfTheDefaultRunMerge) {
  TempDir dir;
  for (int i = 0; i < 2; ++i) {
    const test::CommandResult r = test::run_kvbench_default_model(
        "run -q --mode generate --method full -n 8 --limit 4 --shard " + std::to_string(i) + "/2 --out " +
        (dir / "sweep").string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  const test::CommandResult m =
      test::run_kvbench("merge -q " + (dir / "sweep").string() + " -o " + (dir / "merged").string());
  ASSERT_EQ(m.exit_code, 0) << m.output;
  EXPECT_EQ(test::read_result(dir / "merged")["runs"][0]["sequences"].size(), 4u);
}

// Generation on the first 20 held-out problems (traces of 305 to 353 words): full attention
// reproduces most of them exactly, and keeping 64 keys with StreamingLLM (sinks + recent window:
// the prompt's tree and far parents are lost) loses much of that.
TEST(BundledModels, FullAttentionSolvesTheTaskAndEvictionCostsAccuracy) {
  TempDir dir;
  const test::CommandResult r = test::run_kvbench_default_model(
      "run -q --mode generate --limit 20 --method full,streaming --budget 64 --out " + dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("correct prefix"), std::string::npos) << r.output;  // the table's column for sequences
  const nlohmann::json doc = test::read_result(dir.path());
  const auto& full = doc["runs"][0];
  const auto& streaming = doc["runs"][1];
  ASSERT_TRUE(full["budget"].is_null());
  const double full_acc = full["measurements"]["accuracy"]["accuracy"].get<double>();
  const double stream_acc = streaming["measurements"]["accuracy"]["accuracy"].get<double>();
  EXPECT_GE(full_acc, 0.6);
  EXPECT_GE(full["measurements"]["accuracy"]["prefix_fraction_mean"].get<double>(), 0.85);
  EXPECT_LE(stream_acc, full_acc - 0.3);
  for (const auto& s : full["sequences"]) {
    const auto& g = s["grade"];
    ASSERT_TRUE(g.contains("prefix_fraction")) << g.dump();
    // A correct trace ends with the model's own "done" (end of sequence), not at the length cap.
    if (g["correct"].get<bool>()) {
      EXPECT_EQ(s["stop_reason"], "eos") << s["id"];
      EXPECT_EQ(g["prefix_fraction"].get<double>(), 1.0);
    }
  }
}

}  // namespace
}  // namespace kvb
