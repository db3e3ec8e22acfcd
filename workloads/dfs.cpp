// DFS state-query sets (TriAttention's benchmark, shared/data/SOURCES.md section 7): a JSON array
// of cases {id, graph {nodes, edges}, start_node, steps, answer {current_node, stack,
// visited_nodes}}. The files hold no prompt text, so the prompt is written here; it states the
// exact rules the recorded answers follow (checked against every case in the test suite):
// one step is one visit or one backtrack, smallest unvisited neighbour first; a finished search
// (empty stack) answers current_node null.
#include <set>
#include <string>

#include "util/errors.hpp"
#include "util/quote.hpp"
#include "workloads/formats.hpp"

namespace kvb::workloads {
namespace {

using nlohmann::json;


bool is_node(const json& v) { return v.is_number_integer(); }

std::string build_prompt(const json& nodes, const json& edges, const std::string& start, int64_t steps) {
  std::string nodes_text, edges_text;
  for (const json& n : nodes) nodes_text += (nodes_text.empty() ? "" : ", ") + n.dump();
  for (const json& e : edges) {
    edges_text += fmt::format("{}{}-{}", edges_text.empty() ? "" : ", ", e[0].dump(), e[1].dump());
  }
  return fmt::format(
      "You are given an undirected graph.\n"
      "Nodes: {0}\n"
      "Edges: {1}\n"
      "\n"
      "Simulate a depth-first search (DFS) that starts at node {2}. Rules:\n"
      "- Step 0: you are at node {2}; it is visited and the stack is [{2}].\n"
      "- At every step, look at the node on top of the stack (the current node). If it has "
      "unvisited neighbours, visit the smallest-numbered one: mark it visited and push it onto "
      "the stack. Otherwise backtrack: pop the current node; the node below it becomes the "
      "current node.\n"
      "- Each visit and each backtrack counts as one step.\n"
      "- When the start node itself is popped the stack is empty and the search is over: from then on "
      "current_node is null and the stack is [].\n"
      "\n"
      "Simulate exactly {3} steps, showing your work step by step. Then report the state after "
      "step {3}: current_node (the node on top of the stack), stack (from the start node up to "
      "the current node) and visited_nodes (every visited node, in increasing order).\n"
      "End your reply with \"Answer:\" followed by a JSON object on one line, in this form:\n"
      "Answer: {{\"current_node\": 4, \"stack\": [1, 4], \"visited_nodes\": [1, 2, 4]}}\n",
      nodes_text, edges_text, start, steps);
}

}  // namespace

bool is_dfs_set(const json& doc) {
  return doc.is_array() && !doc.empty() && doc[0].is_object() && doc[0].contains("graph");
}

Workload parse_dfs_set(const std::string& path, const json& doc) {
  Workload w;
  w.format = "dfs";
  std::set<std::string> seen;
  for (size_t i = 0; i < doc.size(); ++i) {
    LocatedError err{fmt::format("{}: case {}", path, i)};
    const json& c = doc[i];
    if (!c.is_object()) err("expected an object, got JSON {}", c.type_name());

    WorkloadItem item;
    auto id = c.find("id");
    if (id == c.end()) item.id = "case-" + std::to_string(i);
    else if (id->is_string() || id->is_number_integer()) item.id = *scalar_to_string(*id);
    else err("id must be a string or an integer");
    if (!seen.insert(item.id).second) err("duplicate id {}", quote(item.id));

    auto graph = c.find("graph");
    if (graph == c.end() || !graph->is_object()) err("`graph` must be an object");
    auto nodes = graph->find("nodes");
    auto edges = graph->find("edges");
    if (nodes == graph->end() || !nodes->is_array() || nodes->empty()) err("`graph.nodes` must be a non-empty array");
    for (const json& n : *nodes) {
      if (!is_node(n)) err("`graph.nodes` holds a {}, expected integers", n.type_name());
    }
    if (edges == graph->end() || !edges->is_array()) err("`graph.edges` must be an array");
    for (const json& e : *edges) {
      if (!e.is_array() || e.size() != 2 || !is_node(e[0]) || !is_node(e[1])) {
        err("`graph.edges` must hold [a, b] pairs of integers");
      }
    }
    auto start = c.find("start_node");
    if (start == c.end() || !is_node(*start)) err("`start_node` must be an integer");
    auto steps = c.find("steps");
    if (steps == c.end() || !steps->is_number_integer() || steps->get<int64_t>() < 0) {
      err("`steps` must be a non-negative integer");
    }

    item.prompt_text = build_prompt(*nodes, *edges, start->dump(), steps->get<int64_t>());
    if (auto answer = c.find("answer"); answer != c.end() && !answer->is_null()) {
      if (!answer->is_object()) err("`answer` must be an object");
      item.answer = answer->dump();  // compact, keys sorted: what the grader compares as JSON
    }
    w.items.push_back(std::move(item));
  }
  if (w.items.empty()) fail_input("{}: no DFS cases", path);
  return w;
}

}  // namespace kvb::workloads
