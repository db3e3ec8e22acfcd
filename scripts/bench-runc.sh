#!/usr/bin/env bash
# kvbench's CPU decode against llama2.c's run.c on stories260K, one thread, same machine, runs
# interleaved (issue 16's target: at least 1.5x). run.c is not part of kvbench: give the path of a
# llama2.c checkout (or of run.c itself); it is compiled as its README says (gcc -Ofast
# -march=native) into a temporary folder. Prints each round and the medians.
#
#   scripts/bench-runc.sh PATH/TO/llama2.c [ROUNDS=7] [KVBENCH=build/kvbench]
#
# Both greedy from "Once upon a time" until the model ends the story or 512 positions: run.c
# reports tokens/s over every position after the first (its timer has millisecond resolution,
# hence the rounds); kvbench reports decode tokens/s (result.json measurements.decode).
set -euo pipefail
src=${1:?usage: scripts/bench-runc.sh PATH/TO/llama2.c [ROUNDS] [KVBENCH]}
rounds=${2:-7}
kvbench=${3:-build/kvbench}
[[ -d $src ]] && src=$src/run.c
[[ -f $src ]] || { echo "bench-runc: $src: no run.c there" >&2; exit 2; }
[[ -x $kvbench ]] || { echo "bench-runc: $kvbench: not built" >&2; exit 2; }
data=${KVBENCH_DATA:-$(dirname "$0")/../../shared/data}/models/stories260K
[[ -f $data/stories260K.bin && -f $data/tok512.bin ]] || { echo "bench-runc: $data: stories260K.bin or tok512.bin missing" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gcc -Ofast -march=native "$src" -lm -o "$tmp/runc"

runc=() ours=()
for ((i = 1; i <= rounds; ++i)); do
  r=$("$tmp/runc" "$data/stories260K.bin" -z "$data/tok512.bin" -t 0 -n 512 -i "Once upon a time" 2>&1 |
      sed -n 's/.*achieved tok\/s: \([0-9.]*\).*/\1/p')
  "$kvbench" run -q -m "$data/stories260K.bin" -p "Once upon a time" -n 500 --threads 1 --no-hash --mode generate \
    --method full -o "$tmp/out" > /dev/null
  k=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['runs'][0]['measurements']['decode']['tokens_per_s'])" \
      "$tmp/out/result.json")
  printf 'round %d: run.c %8.0f tok/s   kvbench %8.0f tok/s\n' "$i" "$r" "$k"
  runc+=("$r") ours+=("$k")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
mr=$(median "${runc[@]}") mk=$(median "${ours[@]}")
awk -v r="$mr" -v k="$mk" 'BEGIN { printf "median: run.c %.0f tok/s, kvbench %.0f tok/s: %.2fx\n", r, k, k / r }'
