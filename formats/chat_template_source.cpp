#include "formats/chat_template_source.hpp"

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/errors.hpp"
#include "util/json_fields.hpp"

namespace kvb {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr uintmax_t kMaxFileBytes = 64u << 20;   // tokenizer_config.json files are a few MiB at most
constexpr size_t kMaxTemplateBytes = 1u << 20;   // the renderer's own limit

std::string read_text(const fs::path& path) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) fail_input("{}: cannot read: {}", path.string(), ec.message());
  if (size > kMaxFileBytes) fail_input("{}: {} bytes; a chat template file is at most {}", path.string(), size, kMaxFileBytes);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_input("{}: cannot read", path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void check_size(const ChatTemplateSource& t) {
  if (t.text.size() > kMaxTemplateBytes)
    fail_input("{}: the chat template is {} bytes; at most {} are read", t.origin, t.text.size(), kMaxTemplateBytes);
}

// tokenizer_config.json: its template (if any) and its special-token texts.
ChatTemplateSource read_tokenizer_config(const fs::path& path) {
  const json doc = parse_json(read_text(path), path.string());
  if (!doc.is_object()) fail_input("{}: expected a JSON object", path.string());
  ChatTemplateSource t;
  for (const char* name : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
    const auto it = doc.find(name);
    if (it == doc.end() || it->is_null()) continue;
    if (it->is_string()) t.special_tokens[name] = it->get<std::string>();
    else if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
      t.special_tokens[name] = (*it)["content"].get<std::string>();
    else fail_input("{}: {} must be a string or an object with a string \"content\"", path.string(), name);
  }
  const auto it = doc.find("chat_template");
  if (it == doc.end() || it->is_null()) return t;
  if (it->is_string()) {
    t.text = it->get<std::string>();
    t.origin = path.string() + " (chat_template)";
  } else if (it->is_array()) {
    // Several named templates (e.g. "default", "tool_use"): transformers uses "default".
    for (const json& entry : *it) {
      if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") || !entry["name"].is_string() ||
          !entry["template"].is_string())
        fail_input("{}: chat_template entries must be {{\"name\": string, \"template\": string}}", path.string());
      if (entry["name"] == "default") {
        t.text = entry["template"].get<std::string>();
        t.origin = path.string() + " (chat_template \"default\")";
      }
    }
    if (t.text.empty()) fail_input("{}: chat_template lists no template named \"default\"", path.string());
  } else {
    fail_input("{}: chat_template must be a string or a list, got {}", path.string(), it->type_name());
  }
  check_size(t);
  return t;
}

}  // namespace

ChatTemplateSource read_hf_chat_template(const fs::path& dir) {
  std::error_code ec;
  const fs::path config = dir / "tokenizer_config.json", jinja = dir / "chat_template.jinja";
  ChatTemplateSource t = fs::is_regular_file(config, ec) ? read_tokenizer_config(config) : ChatTemplateSource{};
  if (fs::is_regular_file(jinja, ec)) {
    t.text = read_text(jinja);
    t.origin = jinja.string();
    check_size(t);
  }
  return t;
}

ChatTemplateSource read_chat_template_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) fail_input("--prompt-template {}: no such file", path.string());
  ChatTemplateSource t;
  if (path.extension() == ".json") {
    t = read_tokenizer_config(path);
  } else {
    t.text = read_text(path);
    t.origin = path.string();
    check_size(t);
  }
  if (t.text.empty()) fail_input("--prompt-template {}: holds no chat template", path.string());
  return t;
}

}  // namespace kvb
