// Recorded DeepSeek-R1-0528-Qwen3-8B generations (shared/data/SOURCES.md section 8) as a one-item
// workload for replay: the prompt text plus the generated token ids to teacher-force.
//
// The recorded `prompt` is DeepSeek's chat template around the question
// ("<｜begin▁of▁sentence｜>…<｜User｜>question<｜Assistant｜>"). Those special tokens are not in the
// Qwen3 vocabulary, so a Qwen3 tokenizer splits them into ordinary pieces: the prompt ids differ
// slightly from what the model saw when recording. We keep the text as recorded rather than
// guess a re-templating; the generated ids themselves are exact Qwen3 ids.
#include <climits>

#include "util/errors.hpp"
#include "workloads/dcmp.hpp"
#include "workloads/formats.hpp"

namespace kvb::workloads {

Workload parse_r1_trace(const std::string& path, std::string_view bytes) {
  nlohmann::json doc = decode_dcmp(path, bytes);
  if (!doc.is_object()) fail_input("{}: trace is not a MessagePack map", path);

  auto field = [&](const nlohmann::json& obj, const char* key, const char* where) -> const nlohmann::json& {
    auto it = obj.find(key);
    if (it == obj.end()) fail_input("{}: trace has no `{}`{}", path, key, where);
    return *it;
  };

  WorkloadItem item;
  const nlohmann::json& qid = field(doc, "qid", "");
  std::optional<std::string> qid_text = scalar_to_string(qid);
  if (!qid_text) fail_input("{}: trace `qid` is not a number or string", path);
  item.id = "aime25-q" + *qid_text;  // the recorded traces are AIME 2025 problems; qid = aime25 id

  const nlohmann::json& prompt = field(doc, "prompt", "");
  if (!prompt.is_string() || prompt.get_ref<const std::string&>().empty()) {
    fail_input("{}: trace `prompt` is not a non-empty string", path);
  }
  item.prompt_text = prompt.get<std::string>();
  item.prompt_rendered = true;  // the recorded prompt, chat markers included

  const nlohmann::json& trace = field(doc, "trace", "");
  if (!trace.is_object()) fail_input("{}: trace `trace` is not a map", path);
  const nlohmann::json& ids = field(trace, "token_ids", " in `trace`");
  if (!ids.is_array()) fail_input("{}: trace `trace.token_ids` is not an array", path);
  item.continuation_ids.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const nlohmann::json& e = ids[i];
    bool ok = e.is_number_unsigned() || (e.is_number_integer() && e.get<int64_t>() >= 0);
    if (!ok || e.get<uint64_t>() > static_cast<uint64_t>(INT_MAX)) {
      fail_input("{}: trace `trace.token_ids[{}]` is not a valid token id", path, i);
    }
    item.continuation_ids.push_back(e.get<int>());
  }

  if (auto it = doc.find("ground_truth"); it != doc.end() && !it->is_null()) {
    item.answer = scalar_to_string(*it);
    if (!item.answer) fail_input("{}: trace `ground_truth` is not a number or string", path);
  }
  item.max_new_tokens = 0;  // replay: the recorded continuation sets the length

  Workload w;
  w.format = "r1-trace";
  w.items.push_back(std::move(item));
  return w;
}

}  // namespace kvb::workloads
