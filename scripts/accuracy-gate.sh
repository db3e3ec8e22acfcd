#!/usr/bin/env bash
# The CI accuracy gate: the bundled DFS reasoner (models/dfs-reasoner) generates the first 64 of its
# held-out problems with every method at budgets 320 and 384 (about 45 s on a 2-core CPU), and
# `kvbench compare` judges the result against the committed baseline on what does not depend on the
# machine's speed: exact-match accuracy, correct-prefix fraction and KV bytes. Exit 0 when nothing
# got worse, 1 when something did (compare's table says what), 2 on bad input.
#
#   scripts/accuracy-gate.sh [KVBENCH [OUT]]   # defaults: build/kvbench, a temporary folder
#   scripts/accuracy-gate.sh --refresh [KVBENCH]  # rewrite the baseline (when a change is meant to move it)
#
# The baseline was made on an x86-64 CPU; another machine's rounding may flip a few greedy tokens,
# which the thresholds (2 points) absorb. The run is greedy and single-draw: nothing is sampled.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
baseline="$root/tests/gate/dfs-reasoner-baseline.json"
refresh=0
if [[ "${1:-}" == "--refresh" ]]; then refresh=1; shift; fi
kvbench="${1:-$root/build/kvbench}"
out="${2:-$(mktemp -d)}"
mkdir -p "$out"
"$kvbench" run -q -m builtin:dfs-reasoner --mode generate --limit 64 --budget 320,384 --out "$out/run"
if (( refresh )); then
  # Only the measurements are compared: the baseline drops the per-sequence records (token ids and
  # texts, 8 MB) and keeps 30 KB. A developer's step: needs python3, CI does not.
  python3 - "$out/run/result.json" "$baseline" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for run in doc["runs"]:
    run["sequences"] = []
with open(sys.argv[2], "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
PY
  echo "accuracy gate: baseline rewritten: $baseline"
  exit 0
fi
"$kvbench" compare "$baseline" "$out/run/result.json" --metrics accuracy,prefix_fraction,kv_peak_bytes \
  --markdown "$out/compare.md" --junit "$out/compare.xml"
