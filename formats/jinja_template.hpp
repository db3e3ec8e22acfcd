#pragma once
// Hugging Face chat templates: the Jinja2 subset real templates use, rendered byte for byte as
// transformers renders them (jinja2's ImmutableSandboxedEnvironment with trim_blocks,
// lstrip_blocks and the loopcontrols extension; HF's `generation` tag, `tojson`,
// `raise_exception` and `strftime_now`).
//
// Accepts: template source (valid UTF-8) and a context: a JSON object whose members are the
// template's variables (`messages`, `add_generation_prompt`, `tools`, `documents`, `bos_token`,
// `eos_token`, and extras such as `enable_thinking`). Pass what apply_chat_template passes:
// transformers sets `tools` and `documents` to None when absent. Dict order is the JSON's order
// (nlohmann::ordered_json; an nlohmann::json converts, with its keys sorted).
// The supported subset (statements, filters, tests, methods) is listed in jinja_parser.hpp,
// jinja_filters.hpp and jinja_methods.hpp. What lies outside it is an error, never a different
// prompt.
// Limits: TemplateLimits (source size, nesting, macro recursion, work, output size).
// Errors: one-line InputError "chat template NAME: line N: what" (syntax, an unsupported
// construct, a render failure such as using an undefined value), "chat template NAME:
// raise_exception: MESSAGE" when the template raises, or naming the limit that was hit.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace kvb {

namespace jinja::ast {
struct Template;
}

struct TemplateLimits {
  size_t max_source_bytes = 1u << 20;
  int max_nesting = 100;                // blocks and expressions nested in the source
  int max_call_depth = 64;              // macro calls in progress (recursive macros)
  uint64_t max_steps = 20'000'000;      // loop iterations, calls, and 64-byte units of text built
  size_t max_output_bytes = 16u << 20;  // the rendered prompt, and any one string or list built
};

struct RenderOptions {
  // The clock strftime_now() reads, in UTC (transformers uses the local time). Unset: now.
  // Set it for reproducible prompts from templates that print the date (gpt-oss, Mistral).
  std::optional<std::chrono::system_clock::time_point> now;
};

class ChatTemplate {
 public:
  // Throws InputError naming `name` and the line for a syntax error or unsupported construct.
  static ChatTemplate parse(std::string source, std::string name, const TemplateLimits& limits = {});

  std::string render(const nlohmann::ordered_json& context, const RenderOptions& options = {}) const;

  const std::string& name() const { return name_; }

 private:
  ChatTemplate(std::string name, const TemplateLimits& limits, std::shared_ptr<const jinja::ast::Template> tree);
  std::string name_;
  TemplateLimits limits_;
  std::shared_ptr<const jinja::ast::Template> tree_;
};

}  // namespace kvb
