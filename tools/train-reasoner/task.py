"""The DFS-moves task: depth-first search of a random tree, written as moves.

Contract
  Vocabulary (VOCAB, ids in order): "<unk>", "<pad>", "done" (the end-of-sequence token), "Q",
  "-" (no such node), "#" (no parent: the root), then for each label k in 0..LABELS-1 the four
  words "k" (the node as a value), "vk" (first-child query), "sk" (next-sibling query) and "uk"
  (parent query). Words are separated by single spaces; kvbench reads the exported tokenizer as
  a Hugging Face WordLevel tokenizer split on whitespace.

  Prompt: for every node X, in a shuffled order, the pairs "vX C" (C: X's first child, or "-")
  and "sX S" (S: X's next sibling, or "-"); then "Q R" (R: the root). 4N + 2 words.

  Trace (what the model writes), for the search from R:
    enter X whose parent is P:   "uX P vX C"    (C looked up in the prompt after "vX")
    X finished:                  "sX S uX P"    (S looked up in the prompt after "sX"; P recalled
                                                 from the trace's own earlier "uX P")
    then: S a node -> enter S with parent P; S "-" and P a node -> P is finished; P "#" -> "done".
  8N + 1 words. Every word is either a fixed function of the words at most three back, or one
  copy found by matching a single word (a prompt lookup, or the parent recalled from "uX" written
  when X was entered, 8 * |subtree of X| - 4 words earlier). Evicting old keys breaks exactly the
  recalls and lookups that reach back past the kept window.

  Everything is seeded: the same seed gives the same problems on every machine (Python's
  random.Random, no numpy).
"""

import json
import random

LABELS = 64
SPECIALS = ["<unk>", "<pad>", "done", "Q", "-", "#"]
VOCAB = SPECIALS + [w for k in range(LABELS) for w in (str(k), f"v{k}", f"s{k}", f"u{k}")]
ID = {w: i for i, w in enumerate(VOCAB)}
PAD, EOS = ID["<pad>"], ID["done"]


def random_tree(rng, n):
    """A random rooted ordered tree on n distinct labels: returns (root, parent, children).

    Half the trees attach each new node to a uniformly random earlier node (bushy, depth ~ log n);
    the other half prefer the most recent nodes (deep, so that parents are recalled from far back).
    """
    labels = rng.sample(range(LABELS), n)
    parent = {labels[0]: None}
    children = {x: [] for x in labels}
    deep = rng.random() < 0.5
    for i in range(1, n):
        j = max(0, i - 1 - int(rng.expovariate(0.5))) if deep else rng.randrange(i)
        p = labels[j]
        parent[labels[i]] = p
        children[p].append(labels[i])
    for c in children.values():
        rng.shuffle(c)
    return labels[0], parent, children


def prompt_words(rng, root, parent, children):
    pairs = []
    for x in parent:
        kids = children[x]
        pairs.append([f"v{x}", str(kids[0]) if kids else "-"])
        p = parent[x]
        sibs = children[p] if p is not None else [x]
        i = sibs.index(x)
        pairs.append([f"s{x}", str(sibs[i + 1]) if i + 1 < len(sibs) else "-"])
    rng.shuffle(pairs)
    return [w for pair in pairs for w in pair] + ["Q", str(root)]


def trace_words(root, parent, children):
    def name(x):
        return "#" if x is None else str(x)

    out = []

    def enter(x):
        kids = children[x]
        out.extend([f"u{x}", name(parent[x]), f"v{x}", str(kids[0]) if kids else "-"])

    enter(root)
    cur = root
    while True:
        if children[cur]:
            cur = children[cur][0]
            enter(cur)
            continue
        while True:  # cur is finished
            p = parent[cur]
            sibs = children[p] if p is not None else [cur]
            i = sibs.index(cur)
            nxt = sibs[i + 1] if i + 1 < len(sibs) else None
            out.extend([f"s{cur}", name(nxt) if nxt is not None else "-", f"u{cur}", name(p)])
            if p is None:
                out.append("done")
                return out
            if nxt is not None:
                cur = nxt
                enter(cur)
                break
            cur = p


def problem(rng, n):
    """One problem of n nodes: (prompt words, trace words ending in "done")."""
    root, parent, children = random_tree(rng, n)
    return prompt_words(rng, root, parent, children), trace_words(root, parent, children)


def encode(words):
    return [ID[w] for w in words]


def recall_distances(trace):
    """For each parent recall (the word after a repeated "uX"), its distance back to the first "uX"."""
    first, out = {}, []
    for i, w in enumerate(trace):
        if w.startswith("u"):
            if w in first:
                out.append((i + 1, i - first[w]))
            else:
                first[w] = i
    return out


def write_workload(path, seed, count, n_min, n_max):
    """Held-out problems as kvbench JSONL: prompt text, reference trace (without "done")."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(count):
            prompt, trace = problem(rng, rng.randint(n_min, n_max))
            row = {"id": f"dfs-{i:03d}", "prompt": " ".join(prompt), "answer": " ".join(trace[:-1]),
                   "grading": "sequence", "max_new_tokens": len(trace) + 16}
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    rng = random.Random(1)
    p, t = problem(rng, 6)
    print(" ".join(p))
    print(" ".join(t))
    print(recall_distances(t))
