#!/usr/bin/env python3
"""Compares two --dump-kept files (docs/methods.md): per run, how many compression events both
recorded, and how many (layer, KV head) kept sets are identical, with the mean overlap of the
others. Use it to check kvbench on two devices, or against your own implementation written out in
the same format.

    tools/compare_kept.py A.jsonl B.jsonl [--min-identical 0.98]

Exit status 1 when the events differ or fewer kept sets than --min-identical agree in some run."""
import argparse
import collections
import json
import sys


def load(path):
    events = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                e = json.loads(line)
                key = (e["run"], e["sequence"], e["event"])
                events[key] = (e["processed"], {(k["layer"], k["kv_head"]): tuple(k["positions"]) for k in e["kept"]})
            except (ValueError, KeyError, TypeError) as err:
                sys.exit(f"{path}:{n}: not a --dump-kept line ({err})")
    return events


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--min-identical", type=float, default=1.0)
    args = p.parse_args()
    a, b = load(args.a), load(args.b)
    ok = True
    runs = sorted({k[0] for k in a} | {k[0] for k in b})
    for run in runs:
        ka = {k for k in a if k[0] == run}
        kb = {k for k in b if k[0] == run}
        stats = collections.Counter()
        overlap = []
        for key in sorted(ka & kb):
            (ta, sa), (tb, sb) = a[key], b[key]
            stats["processed differs"] += ta != tb
            for seg in sorted(set(sa) | set(sb)):
                x, y = set(sa.get(seg, ())), set(sb.get(seg, ()))
                stats["segments"] += 1
                stats["identical"] += x == y
                if x != y:
                    overlap.append(len(x & y) / max(len(x | y), 1))
        share = stats["identical"] / stats["segments"] if stats["segments"] else 1.0
        line = (f"{run}: events {len(ka & kb)} common, {len(ka - kb)} only in A, {len(kb - ka)} only in B; "
                f"kept sets identical {stats['identical']}/{stats['segments']} ({100 * share:.2f}%)")
        if overlap:
            line += f"; the others overlap {100 * sum(overlap) / len(overlap):.1f}% on average"
        if stats["processed differs"]:
            line += f"; {stats['processed differs']} events at another step"
        print(line)
        ok &= ka == kb and share >= args.min_identical and not stats["processed differs"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
