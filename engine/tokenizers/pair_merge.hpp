#pragma once
// The merge loop both BPE tokenizers share: repeatedly merge the adjacent pair of symbols with
// the best priority, the leftmost among equals, until no adjacent pair can merge. Symbols form a
// doubly linked list and candidate pairs a heap by (priority, position): O(n log n), where
// rescanning the list after each merge (llama2.c's run.c) is quadratic — minutes for a long
// prompt. A merge invalidates candidates that involve its symbols; they stay in the heap and are
// recognised as stale by their ids when they surface.
//
// Merges ids[from, end) in place (earlier ids are left alone, so a tokenizer can merge each piece
// at the end of its output). `merge_of(left_id, right_id)` returns the merge of two adjacent
// symbols as {priority, merged id} (lower priority merges first), or nullopt when they do not.
#include <algorithm>
#include <cstddef>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

namespace kvb {

template <typename Priority, typename MergeOf>
void merge_adjacent_pairs(std::vector<int>& ids, size_t from, MergeOf&& merge_of) {
  struct Symbol {
    int id, prev, next;
  };
  struct Candidate {
    Priority priority;
    int left, right, left_id, right_id, merged_id;
    bool operator>(const Candidate& o) const { return priority != o.priority ? priority > o.priority : left > o.left; }
  };
  const int n = static_cast<int>(ids.size() - from);
  if (n < 2) return;
  std::vector<Symbol> syms(n);
  for (int i = 0; i < n; ++i) syms[i] = {ids[from + i], i - 1, i + 1 < n ? i + 1 : -1};
  std::vector<Candidate> heap;
  auto consider = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const std::optional<std::pair<Priority, int>> m = merge_of(syms[left].id, syms[right].id);
    if (!m) return;
    heap.push_back({m->first, left, right, syms[left].id, syms[right].id, m->second});
    std::push_heap(heap.begin(), heap.end(), std::greater<>{});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i, i + 1);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& l = syms[c.left];
    if (l.next != c.right || l.id != c.left_id || syms[c.right].id != c.right_id) continue;  // stale
    l.id = c.merged_id;
    l.next = syms[c.right].next;
    if (l.next >= 0) syms[l.next].prev = c.left;
    syms[c.right].id = -1;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }
  ids.resize(from);
  for (int i = 0; i >= 0; i = syms[i].next) ids.push_back(syms[i].id);  // symbol 0 always survives
}

}  // namespace kvb
