// The JSONL workload reader: one JSON object per line (docs/workloads.md). Every error names the
// file and the 1-based line, so a user can jump straight to it.
#include <climits>
#include <string>
#include <string_view>
#include <unordered_map>

#include "util/errors.hpp"
#include "workloads/formats.hpp"
#include "util/json_fields.hpp"
#include "util/quote.hpp"

namespace kvb::workloads {
namespace {

using nlohmann::json;


std::string_view trim_left(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

// nlohmann's parse messages look like "[json.exception.parse_error.101] parse error at line 1,
// column 7: syntax error ...; last read: '...'". Keep the part after the tag, drop the line
// (always 1 here: we parse one line at a time), and make it one printable line of bounded length.
std::string short_parse_message(const char* what) {
  std::string msg(what);
  if (msg.starts_with("[json.exception.")) {
    if (size_t end = msg.find("] "); end != std::string::npos) msg.erase(0, end + 2);
  }
  if (size_t at = msg.find("at line 1, column"); at != std::string::npos) {
    msg.replace(at, std::string_view("at line 1, column").size(), "at column");
  }
  for (char& c : msg) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  constexpr size_t kMax = 200;
  if (msg.size() > kMax) {
    size_t cut = kMax;
    // Do not cut a UTF-8 sequence in half.
    while (cut > 0 && (static_cast<unsigned char>(msg[cut]) & 0xC0) == 0x80) --cut;
    msg.resize(cut);
    msg += "...";
  }
  return msg;
}

std::vector<int> read_ids(const json& v, std::string_view field, const LocatedError& err) {
  if (!v.is_array()) err("{} must be an array of token ids, got {}", field, describe(v));
  std::vector<int> ids;
  ids.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const json& e = v[i];
    bool ok = e.is_number_unsigned() || (e.is_number_integer() && e.get<int64_t>() >= 0);
    if (!ok) err("{}[{}] is not a non-negative integer (got {})", field, i, describe(e));
    uint64_t id = e.get<uint64_t>();
    if (id > static_cast<uint64_t>(INT_MAX)) err("{}[{}] = {} is too large for a token id", field, i, id);
    ids.push_back(static_cast<int>(id));
  }
  return ids;
}

const json* find(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

WorkloadItem read_item(const json& obj, size_t line, const LocatedError& err) {
  WorkloadItem item;

  if (const json* id = find(obj, "id")) {
    if (id->is_string()) item.id = id->get<std::string>();
    else if (id->is_number_integer()) item.id = id->dump();
    else err("id must be a string or an integer, got {}", describe(*id));
    if (item.id.empty()) err("id is empty");
  } else {
    item.id = "line-" + std::to_string(line);
  }

  // The prompt: `prompt` or `prompt_ids`; the real datasets' `problem` / `question` stand in for
  // `prompt` when neither is given (AIME24 rows carry both, with the same text).
  const json* text = find(obj, "prompt");
  const char* text_field = "prompt";
  const json* ids = find(obj, "prompt_ids");
  if (text && ids) err("both prompt and prompt_ids are given; use one");
  if (!text && !ids) {
    for (const char* alias : {"problem", "question"}) {
      if ((text = find(obj, alias))) {
        text_field = alias;
        break;
      }
    }
  }
  if (ids) {
    item.prompt_ids = read_ids(*ids, "prompt_ids", err);
    if (item.prompt_ids.empty()) err("prompt_ids is empty");
  } else if (text) {
    if (!text->is_string()) err("{} must be a string, got {}", text_field, describe(*text));
    item.prompt_text = text->get<std::string>();
    if (item.prompt_text.empty()) err("{} is empty", text_field);
  } else {
    err("no prompt: give prompt (text) or prompt_ids (token ids)");
  }

  // Both continuation forms may be given; the engine prefers the ids.
  if (const json* c = find(obj, "continuation")) {
    if (!c->is_string()) err("continuation must be a string, got {}", describe(*c));
    item.continuation_text = c->get<std::string>();
  }
  if (const json* c = find(obj, "continuation_ids")) {
    item.continuation_ids = read_ids(*c, "continuation_ids", err);
  }

  if (const json* a = find(obj, "answer"); a && !a->is_null()) {
    item.answer = scalar_to_string(*a);
    if (!item.answer) err("answer must be a string or a number, got {}", describe(*a));
  }

  if (const json* g = find(obj, "grading")) {
    const std::optional<AnswerKind> kind = g->is_string() ? parse_answer_kind(g->get<std::string>()) : std::nullopt;
    if (!kind) err("grading must be \"auto\", \"math\", \"dfs-state\" or \"sequence\", got {}", describe(*g));
    item.grading = *kind;
  }

  if (const json* m = find(obj, "max_new_tokens")) {
    // (An unsigned value above INT64_MAX reads back negative here and is rejected too.)
    bool ok = m->is_number_integer() && m->get<int64_t>() > 0 && m->get<int64_t>() <= INT_MAX;
    if (!ok) err("max_new_tokens must be a positive integer, got {}", describe(*m));
    item.max_new_tokens = m->get<int>();
  }
  return item;
}

}  // namespace

Workload parse_jsonl(const std::string& path, std::string_view text) {
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 BOM from some editors

  Workload w;
  w.format = "jsonl";
  std::unordered_map<std::string, size_t> first_line_of_id;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.ends_with('\r')) line.remove_suffix(1);

    std::string_view body = trim_left(line);
    if (body.empty() || body.starts_with('#') || body.starts_with("//")) continue;

    LocatedError err{fmt::format("{}:{}", path, line_no)};
    json obj;
    if (const size_t at = json_too_deep_at(line); at != std::string_view::npos)
      err("malformed JSON: nested deeper than {} levels (at column {})", kMaxJsonDepth, at + 1);
    if (const size_t nul = line.find('\0'); nul != std::string_view::npos)
      err("malformed JSON: a NUL byte at column {}", nul + 1);
    try {
      obj = json::parse(line.begin(), line.end());
    } catch (const json::exception& e) {
      err("malformed JSON: {}", short_parse_message(e.what()));
    }
    if (!obj.is_object()) err("expected a JSON object, got {}", describe(obj));

    WorkloadItem item = read_item(obj, line_no, err);
    auto [it, inserted] = first_line_of_id.emplace(item.id, line_no);
    if (!inserted) err("duplicate id {} (first used on line {})", quote(item.id), it->second);
    w.items.push_back(std::move(item));
  }
  if (line_no == 0) fail_input("{}: the file is empty (no workload items)", path);
  if (w.items.empty()) {
    fail_input("{}:{}: no workload items (only blank and comment lines)", path, line_no);
  }
  return w;
}

}  // namespace kvb::workloads
