#include "formats/jinja_template.hpp"

#include <fmt/format.h>

#include "formats/jinja_interpreter.hpp"
#include "formats/jinja_parser.hpp"
#include "formats/jinja_text.hpp"
#include "util/errors.hpp"

namespace kvb {

namespace {

[[noreturn]] void fail(const std::string& name, const jinja::TemplateError& e) {
  if (dynamic_cast<const jinja::RaisedException*>(&e))
    fail_input("chat template {}: raise_exception: {}", name, e.what());
  if (e.line > 0) fail_input("chat template {}: line {}: {}", name, e.line, e.what());
  fail_input("chat template {}: {}", name, e.what());
}

}  // namespace

ChatTemplate::ChatTemplate(std::string name, const TemplateLimits& limits,
                           std::shared_ptr<const jinja::ast::Template> tree)
    : name_(std::move(name)), limits_(limits), tree_(std::move(tree)) {}

ChatTemplate ChatTemplate::parse(std::string source, std::string name, const TemplateLimits& limits) {
  if (source.size() > limits.max_source_bytes)
    fail_input("chat template {}: the template is {} bytes, more than the limit of {}", name, source.size(),
               limits.max_source_bytes);
  if (!jinja::valid_utf8(source)) fail_input("chat template {}: the template is not valid UTF-8", name);
  try {
    auto tree = std::make_shared<const jinja::ast::Template>(jinja::parse_template(source, limits.max_nesting));
    return ChatTemplate(std::move(name), limits, std::move(tree));
  } catch (const jinja::TemplateError& e) {
    fail(name, e);
  }
}

std::string ChatTemplate::render(const nlohmann::ordered_json& context, const RenderOptions& options) const {
  if (!context.is_object())
    fail_input("chat template {}: the context must be a JSON object, not {}", name_, context.type_name());
  jinja::Value variables;
  try {
    variables = jinja::from_json(context);
  } catch (const jinja::TemplateError& e) {
    fail_input("chat template {}: context: {}", name_, e.what());
  }
  jinja::Interpreter interp(*tree_, std::move(variables), limits_,
                            options.now.value_or(std::chrono::system_clock::now()));
  try {
    return interp.render();
  } catch (const jinja::TemplateError& e) {
    fail(name_, e);
  }
}

}  // namespace kvb
