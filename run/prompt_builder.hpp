#pragma once
// How a workload item becomes the token ids the model is fed (--prompt-template):
//   chat   the model's own chat template (formats/chat_template_source.hpp) with the item as the
//          user message, after --system-prompt when given, add_generation_prompt true, the
//          tokenizer's special-token texts and the --template-var values (e.g. Qwen3's
//          enable_thinking=false); the rendered text is encoded as transformers'
//          apply_chat_template does: special tokens read from the text, no BOS added (the
//          template writes it). The default when the model ships a template.
//   plain  the item's text, with the tokenizer's BOS when the model wants one. The default when
//          the model ships no template.
//   NAME   a named prompt (workloads/named_prompts.hpp): the paper's own prompt, plain or as the
//          chat template's user message.
//   FILE   a chat template from a file (.jinja, or a tokenizer_config.json), rendered like chat.
// Items given as token ids are fed as they are, and recorded traces' prompts (already rendered)
// are encoded as recorded, whatever the template. Template variables: KEY=VALUE, VALUE read as
// JSON when it is JSON (true, 3, "x", [1]) and as a string otherwise. The clock templates read
// (strftime_now) is fixed when the builder is made and recorded.
// Errors: InputError naming the flag (an unknown template, a --system-prompt or --template-var a
// plain prompt cannot use, a malformed variable, chat asked of a model with no template or a
// tokenizer that cannot read special tokens) or the template (syntax, a construct outside the
// supported subset, raise_exception).
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/model.hpp"
#include "formats/jinja_template.hpp"
#include "workloads/named_prompts.hpp"
#include "workloads/workload.hpp"

namespace kvb {

struct PromptSettings {
  std::string prompt_template;               // "" = chat when the model has a template, else plain
  std::optional<std::string> system_prompt;  // --system-prompt
  std::vector<std::string> template_vars;    // --template-var KEY=VALUE, in order (later wins)
};

class PromptBuilder {
 public:
  PromptBuilder(const PromptSettings& settings, const Model& model);

  // The text an item's prompt is encoded from (empty for items given as ids).
  std::string text(const WorkloadItem& item) const;
  std::vector<int> ids(const WorkloadItem& item) const;
  // settings.prompt in the result: {template, source, sha256, system_prompt, template_vars,
  // add_generation_prompt, clock}.
  const nlohmann::json& description() const { return description_; }

 private:
  const Model& model_;
  const NamedPrompt* named_ = nullptr;     // a named prompt's text wraps the question
  std::optional<ChatTemplate> chat_;       // set: rendered through a chat template
  std::optional<std::string> system_prompt_;
  nlohmann::ordered_json variables_ = nlohmann::ordered_json::object();
  std::chrono::system_clock::time_point clock_;
  nlohmann::json description_;
};

}  // namespace kvb
