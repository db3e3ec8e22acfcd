// kvbench prompt: each workload item's prompt exactly as `run` feeds it (the rendered text and
// its token ids), built from the model's tokenizer and chat template without loading weights.
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "engine/bundled_models.hpp"
#include "engine/model.hpp"
#include "engine/tokenizers/byte_bpe_tokenizer.hpp"
#include "util/errors.hpp"
#include "workloads/workload.hpp"

namespace kvb::cli {

namespace fs = std::filesystem;

namespace {

struct PromptFlags {
  std::string model, tokenizer, workload, prompt;
  PromptSettings settings;
  int limit = 0;
  bool as_json = false;
};

// --tokenizer PATH: a Hugging Face tokenizer.json, or the folder holding it (and its
// tokenizer_config.json, whose chat template is then the model's).
Model tokenizer_model(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  const fs::path json = fs::is_directory(p, ec) ? p / "tokenizer.json" : p;
  if (!fs::is_regular_file(json, ec)) fail_input("--tokenizer {}: no tokenizer.json there", path);
  Model m;
  m.tokenizer = load_hf_tokenizer(json.string());
  m.chat_template = read_hf_chat_template(json.parent_path());
  m.info.source = path;
  m.info.name = path;
  return m;
}

int run_prompt(const PromptFlags& f) {
  if (f.model.empty() == f.tokenizer.empty()) fail_input("kvbench prompt: give -m MODEL or --tokenizer PATH (one of them)");
  if (f.limit < 0) fail_input("--limit {}: must be >= 0 (0: every item)", f.limit);
  Model model;
  if (!f.model.empty()) {
    LoadOptions options;
    options.skip_weights = true;
    options.hash_files = false;
    model = load_model(f.model, options);
  } else {
    model = tokenizer_model(f.tokenizer);
  }
  const Workload workload = resolve_workload(f.prompt, f.workload.empty() ? model_default_workload(f.model) : f.workload);
  const PromptBuilder prompts(f.settings, model);
  const nlohmann::json& d = prompts.description();
  if (!f.as_json)
    std::printf("prompt template: %s%s\n", d["template"].get<std::string>().c_str(),
                d.contains("source") ? fmt::format(" ({})", d["source"].get<std::string>()).c_str() : "");
  const size_t n = f.limit > 0 ? std::min<size_t>(f.limit, workload.items.size()) : workload.items.size();
  for (size_t i = 0; i < n; ++i) {
    const WorkloadItem& item = workload.items[i];
    const std::string text = prompts.text(item);
    const std::vector<int> ids = prompts.ids(item);
    if (f.as_json) {
      const nlohmann::json line = {{"id", item.id}, {"text", text}, {"token_ids", ids}, {"tokens", ids.size()}, {"prompt", d}};
      std::printf("%s\n", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      continue;
    }
    std::printf("\n== %s: %zu tokens ==\n%s\n-- token ids --\n%s\n", item.id.c_str(), ids.size(),
                text.empty() ? "(given as token ids)" : text.c_str(), fmt::format("{}", fmt::join(ids, " ")).c_str());
  }
  return 0;
}

}  // namespace

Action add_prompt_command(CLI::App& app) {
  auto f = std::make_shared<PromptFlags>();
  CLI::App* cmd = app.add_subcommand(
      "prompt", "print each item's prompt as run feeds it (rendered text and token ids), without loading weights");
  cmd->add_option("--model,-m", f->model, "model whose tokenizer and chat template are used (weights are not read)");
  cmd->add_option("--tokenizer", f->tokenizer, "instead of a model: a tokenizer.json, or the folder holding it and its tokenizer_config.json");
  cmd->add_option("--workload,-w", f->workload, "workload (as for run; default: the model folder's workload.jsonl when it has one, else builtin:stories)");
  cmd->add_option("--prompt,-p", f->prompt, "one prompt instead of a workload");
  add_prompt_options(*cmd, f->settings);
  cmd->add_option("--limit", f->limit, "the first N items only (0: every item)");
  cmd->add_flag("--json", f->as_json, "one JSON line per item: id, text, token_ids, tokens, prompt settings");
  return [f] { return run_prompt(*f); };
}

}  // namespace kvb::cli
