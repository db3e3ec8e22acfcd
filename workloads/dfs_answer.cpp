// DFS state-query answers: the prompt (workloads/dfs.cpp) asks the model to end its reply with
// "Answer:" and a JSON object {current_node, stack, visited_nodes}. The answer taken is the first
// balanced {...} after the last "Answer:"; when that is missing or unusable, the last balanced
// {...} around a "current_node" key. current_node must match, stack must be the same list, and
// visited_nodes the same set (order and repeats do not matter). current_node is null once the
// search has finished and the stack is empty (5 reference answers in the real sets are).
#include <algorithm>
#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "util/errors.hpp"
#include "workloads/answer_text.hpp"
#include "workloads/grading_parts.hpp"
#include "util/json_fields.hpp"

namespace kvb::workloads {
namespace {

using nlohmann::json;

constexpr size_t npos = std::string::npos;
constexpr size_t kMaxObjectBytes = 16 * 1024;  // an answer object is well under 1 KB
constexpr int kMaxKeyOccurrences = 8;          // "current_node" occurrences tried, from the last

struct DfsState {
  std::optional<int64_t> current_node;  // nullopt: null (empty stack)
  std::vector<int64_t> stack;
  std::set<int64_t> visited;
};

// A node id: a JSON integer, or a string holding one ("3"), which models sometimes write.
std::optional<int64_t> node_id(const json& v) {
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return int64_t(v.get<uint64_t>());
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    int64_t x = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
    if (!s.empty() && ec == std::errc() && end == s.data() + s.size()) return x;
  }
  return std::nullopt;
}

std::optional<std::vector<int64_t>> node_list(const json& v) {
  if (!v.is_array()) return std::nullopt;
  std::vector<int64_t> out;
  for (const json& e : v) {
    auto id = node_id(e);
    if (!id) return std::nullopt;
    out.push_back(*id);
  }
  return out;
}

// The three fields of an answer object; nullopt with `why` set when one is missing or of the
// wrong type.
std::optional<DfsState> read_state(const json& j, std::string& why) {
  if (!j.is_object()) {
    why = fmt::format("the answer is a JSON {}, not an object", j.type_name());
    return std::nullopt;
  }
  for (const char* key : {"current_node", "stack", "visited_nodes"}) {
    if (!j.contains(key)) {
      why = fmt::format("the answer object has no \"{}\"", key);
      return std::nullopt;
    }
  }
  DfsState st;
  const json& cur = j["current_node"];
  std::optional<std::optional<int64_t>> current;
  if (cur.is_null()) current.emplace(std::nullopt);
  else if (auto id = node_id(cur)) current.emplace(*id);
  auto stack = node_list(j["stack"]);
  auto visited = node_list(j["visited_nodes"]);
  if (!current) why = "\"current_node\" is not an integer (or null)";
  else if (!stack) why = "\"stack\" is not a list of integers";
  else if (!visited) why = "\"visited_nodes\" is not a list of integers";
  if (!current || !stack || !visited) return std::nullopt;
  st.current_node = *current;
  st.stack = std::move(*stack);
  st.visited.insert(visited->begin(), visited->end());
  return st;
}

// Past the '}' that closes the object opening at s[open] == '{', or npos when it does not close
// within kMaxObjectBytes. Braces inside JSON strings do not count.
size_t object_end(std::string_view s, size_t open) {
  size_t depth = 0;
  bool in_string = false;
  size_t limit = std::min(s.size(), open + kMaxObjectBytes);
  for (size_t i = open; i < limit; ++i) {
    char c = s[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{') {
      ++depth;
    } else if (c == '}' && --depth == 0) {
      return i + 1;
    }
  }
  return npos;
}

// The '{' of the innermost object around position `at`, looking back at most kMaxObjectBytes.
size_t enclosing_open(std::string_view s, size_t at) {
  size_t depth = 0;
  size_t stop = at > kMaxObjectBytes ? at - kMaxObjectBytes : 0;
  for (size_t i = at; i > stop; --i) {
    char c = s[i - 1];
    if (c == '}') ++depth;
    else if (c == '{' && depth-- == 0) return i - 1;
  }
  return npos;
}

// JSON as written, or with single quotes turned into double quotes (a Python dict,
// {'current_node': 3, ...}, is a common way for a model to write it).
json parse_lenient(std::string_view text) {
  json j = parse_json_or_discarded(text);
  if (j.is_discarded() && text.find('\'') != npos) {
    std::string fixed(text);
    std::replace(fixed.begin(), fixed.end(), '\'', '"');
    for (size_t p = fixed.find("None"); p != npos; p = fixed.find("None", p)) fixed.replace(p, 4, "null");
    j = parse_json_or_discarded(fixed);
  }
  return j;
}

std::string list_text(const std::vector<int64_t>& v) { return json(v).dump(); }
std::string node_text(const std::optional<int64_t>& v) { return v ? std::to_string(*v) : "null"; }

}  // namespace

bool is_dfs_answer(const std::string& reference) {
  json j = parse_json_or_discarded(reference);
  std::string why;
  return !j.is_discarded() && read_state(j, why).has_value();
}

Grade grade_dfs(const std::string& text, const std::string& reference) {
  std::string why;
  json ref_json = parse_json_or_discarded(reference);
  std::optional<DfsState> ref;
  if (!ref_json.is_discarded()) ref = read_state(ref_json, why);
  else why = "not valid JSON";
  if (!ref) fail_input("reference answer is not a DFS answer {{current_node, stack, visited_nodes}}: {}", why);

  Grade g;
  g.reference = reference;

  // Candidate objects, best first: after the last "Answer:", then around "current_node" keys.
  std::vector<std::pair<size_t, size_t>> spans;
  std::string problem;  // why the best candidate was not usable
  auto add = [&](size_t open, const char* where) {
    if (open == npos) return;
    size_t end = object_end(text, open);
    if (end == npos) {
      if (problem.empty()) problem = fmt::format("the JSON object {} is not closed (output truncated?)", where);
      return;
    }
    for (auto& s : spans) {
      if (s.first == open) return;
    }
    spans.emplace_back(open, end);
  };
  if (size_t at = text::lower_ascii(text).rfind("answer:"); at != npos) add(text.find('{', at), "after \"Answer:\"");
  size_t key = text.size();
  for (int k = 0; k < kMaxKeyOccurrences && key > 0; ++k) {
    key = text.rfind("current_node", key - 1);
    if (key == npos) break;
    add(enclosing_open(text, key), "around \"current_node\"");
  }

  for (auto [open, end] : spans) {
    std::string_view candidate(text.data() + open, end - open);
    json j = parse_lenient(candidate);
    std::string bad;
    std::optional<DfsState> got;
    if (j.is_discarded()) bad = "the answer object is not valid JSON";
    else got = read_state(j, bad);
    if (!got) {
      if (problem.empty()) problem = bad;
      if (g.predicted.empty()) g.predicted = std::string(candidate);
      continue;
    }
    g.extracted = true;
    g.predicted = j.dump(-1, ' ', false, json::error_handler_t::replace);
    std::vector<std::string> diffs;
    if (got->current_node != ref->current_node) {
      diffs.push_back(fmt::format("current_node {} (expected {})", node_text(got->current_node),
                                  node_text(ref->current_node)));
    }
    if (got->stack != ref->stack) {
      diffs.push_back(fmt::format("stack {} (expected {})", list_text(got->stack), list_text(ref->stack)));
    }
    if (got->visited != ref->visited) {
      std::vector<int64_t> a(got->visited.begin(), got->visited.end()), b(ref->visited.begin(), ref->visited.end());
      diffs.push_back(fmt::format("visited_nodes {} (expected {})", list_text(a), list_text(b)));
    }
    g.correct = diffs.empty();
    if (g.correct) {
      g.note = "correct: current_node, stack and visited_nodes match";
    } else {
      g.note = "wrong:";
      for (size_t i = 0; i < diffs.size(); ++i) g.note += (i ? "; " : " ") + diffs[i];
    }
    return g;
  }
  if (problem.empty()) problem = "no JSON answer object (expected \"Answer:\" followed by {...})";
  g.note = "malformed: " + problem;
  return g;
}

}  // namespace kvb::workloads
