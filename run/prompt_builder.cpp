#include "run/prompt_builder.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>

#include <fmt/format.h>

#include "util/errors.hpp"
#include "util/quote.hpp"
#include "util/sha256.hpp"
#include "util/timestamp.hpp"

namespace kvb {

using nlohmann::json;
using nlohmann::ordered_json;

namespace {

// KEY=VALUE: VALUE as JSON when it parses, else as the string it is.
std::pair<std::string, ordered_json> parse_variable(const std::string& arg) {
  const size_t eq = arg.find('=');
  if (eq == std::string::npos || eq == 0) fail_input("--template-var {}: expected KEY=VALUE", arg);
  const std::string key = arg.substr(0, eq), value = arg.substr(eq + 1);
  for (char c : key)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_'))
      fail_input("--template-var {}: {} is not a template variable name", arg, key);
  for (const char* reserved : {"messages", "add_generation_prompt", "tools", "documents"})
    if (key == reserved) fail_input("--template-var {}: {} is set by kvbench", arg, key);
  ordered_json parsed = ordered_json::parse(value, nullptr, false);
  if (parsed.is_discarded()) parsed = value;
  return {key, std::move(parsed)};
}

}  // namespace

PromptBuilder::PromptBuilder(const PromptSettings& s, const Model& model)
    : model_(model), system_prompt_(s.system_prompt), clock_(std::chrono::system_clock::now()) {
  const ChatTemplateSource& shipped = model.chat_template;
  std::string choice = s.prompt_template.empty() ? (shipped.text.empty() ? "plain" : "chat") : s.prompt_template;
  std::optional<ChatTemplateSource> source;
  if (choice == "chat") {
    if (shipped.text.empty())
      fail_input("--prompt-template chat: {} ships no chat template (tokenizer_config.json chat_template, "
                 "chat_template.jinja or GGUF tokenizer.chat_template); use plain or a template file",
                 model.info.source);
    source = shipped;
  } else if (choice != "plain") {
    named_ = find_named_prompt(choice);
    if (named_ && named_->chat) {
      if (shipped.text.empty())
        fail_input("--prompt-template {}: puts the prompt in the model's chat template, and {} ships none", choice,
                   model.info.source);
      source = shipped;
      if (!system_prompt_) system_prompt_ = named_->system_prompt;
    } else if (!named_) {
      if (!std::filesystem::exists(choice))
        fail_input("--prompt-template {}: expected chat, plain, a named prompt ({}) or a template file", choice,
                   named_prompt_names());
      source = read_chat_template_file(choice);
      if (source->special_tokens.empty()) source->special_tokens = shipped.special_tokens;
      choice = "file";
    }
  }
  if (!source && system_prompt_) fail_input("--system-prompt: the {} prompt has no system message; use a chat template", choice);
  if (!source && !s.template_vars.empty())
    fail_input("--template-var: the {} prompt is not a chat template", choice);
  for (const std::string& v : s.template_vars) {
    auto [key, value] = parse_variable(v);
    variables_[key] = std::move(value);
  }
  description_ = {{"template", choice},
                  {"add_generation_prompt", source.has_value()},
                  {"template_vars", json::parse(variables_.dump())}};
  if (source) {
    chat_ = ChatTemplate::parse(source->text, source->origin);
    for (const auto& [name, text] : source->special_tokens)
      if (!variables_.contains(name)) variables_[name] = text;
    description_["source"] = source->origin;
    description_["sha256"] = sha256_hex(source->text.data(), source->text.size());
    description_["clock"] = format_now("%Y-%m-%dT%H:%M:%SZ", true, clock_);
  }
  if (named_) description_["named_prompt"] = named_->name;
  description_["system_prompt"] = system_prompt_ ? json(*system_prompt_) : json(nullptr);
}

std::string PromptBuilder::text(const WorkloadItem& item) const {
  if (!item.prompt_ids.empty()) return "";
  if (item.prompt_rendered) return item.prompt_text;
  const std::string user = named_ ? fill_named_prompt(*named_, item.prompt_text) : item.prompt_text;
  if (!chat_) return user;
  ordered_json messages = ordered_json::array();
  if (system_prompt_) messages.push_back({{"role", "system"}, {"content", *system_prompt_}});
  messages.push_back({{"role", "user"}, {"content", user}});
  // What transformers' apply_chat_template passes, in its order.
  ordered_json context = {{"messages", std::move(messages)}, {"tools", nullptr}, {"documents", nullptr},
                          {"add_generation_prompt", true}};
  for (const auto& [key, value] : variables_.items()) context[key] = value;
  RenderOptions options;
  options.now = clock_;
  return chat_->render(context, options);
}

std::vector<int> PromptBuilder::ids(const WorkloadItem& item) const {
  if (!item.prompt_ids.empty()) return item.prompt_ids;
  const std::string t = text(item);
  // Refused before tokenizing: no token covers more than longest_token_bytes() of text, so a
  // prompt longer than that times the context cannot fit, and a megabyte prompt is not worth the
  // seconds it takes to tokenize only to be refused.
  const size_t longest = std::max<size_t>(1, model_.tokenizer->longest_token_bytes());
  const uint64_t at_least = t.size() / longest + (t.size() % longest != 0);
  if (model_.config.max_seq_len > 0 && at_least > static_cast<uint64_t>(model_.config.max_seq_len))
    fail_input("workload item {}: a prompt of {} bytes needs at least {} tokens, more than the model's context of {}",
               quote(item.id), t.size(), at_least, model_.config.max_seq_len);
  if (chat_ && !item.prompt_rendered && !model_.tokenizer->reads_special_tokens())
    fail_input("--prompt-template {}: the {} tokenizer cannot read the chat markers of a rendered template as "
               "special tokens; use --prompt-template plain",
               description_["template"].get<std::string>(), model_.tokenizer->kind());
  try {
    if (!chat_ || item.prompt_rendered) return model_.tokenizer->encode_prompt(t);
    return model_.tokenizer->encode(t);  // the template writes BOS itself
  } catch (const InputError& e) {
    fail_input("workload item {}: {}", quote(item.id), e.what());
  }
}

}  // namespace kvb
