#!/usr/bin/env bash
# Runs every libFuzzer harness of fuzz/ (or the ones named) for SECONDS each (default 60), built
# with ASan + UBSan in build-asan/, JOBS harnesses at a time (default 1; the machine's cores for a
# campaign). usage: scripts/fuzz.sh [-j JOBS] [SECONDS] [HARNESS...]
#
# Inputs per harness: the growing corpus build-asan/fuzz-corpus/NAME (kept between runs; new
# inputs land there), the committed seeds fuzz/corpus/NAME, seeds the test writers produce
# (tests/test_fuzz_seeds.cpp), and the real files of ../shared/data (or $KVBENCH_DATA) when
# present. A finding (crash, sanitizer report, leak, timeout, out-of-memory, an error message that
# is not one line naming the file) is saved as build-asan/fuzz-findings/NAME-*; the script then
# exits 1. Executions and coverage per harness are printed and written to
# build-asan/fuzz-summary.md (seconds: how long it ran; less than SECONDS when it stopped at a
# finding); every run is also appended to build-asan/fuzz-campaigns.tsv, so the
# fuzzing time a harness has had over many runs can be added up.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=1
if [ "${1:-}" = "-j" ]; then jobs=${2:?fuzz.sh: -j needs a number}; shift 2; fi
case $jobs in ''|*[!0-9]*|0) echo "fuzz.sh: -j $jobs: expected a positive whole number" >&2; exit 2 ;; esac
seconds=${1:-60}
shift || true
case $seconds in ''|*[!0-9]*|0) echo "fuzz.sh: SECONDS $seconds: expected a positive whole number" >&2; exit 2 ;; esac
scripts/build-asan.sh

root=$PWD/build-asan
seeds=$root/fuzz-seeds
rm -rf "$seeds" "$root/fuzz-real"
mkdir -p "$root/fuzz-findings" "$root/fuzz-logs"
KVBENCH_FUZZ_SEEDS=$seeds ASAN_OPTIONS=detect_leaks=0 "$root/tests/kvbench_tests" --gtest_filter='FuzzSeeds.*' >/dev/null

data=${KVBENCH_DATA:-../shared/data}
# Real files as seeds (each under 2 MB; libFuzzer truncates inputs to -max_len).
real() {  # real NAME GLOB...
  local name=$1
  shift
  [ -d "$data" ] || return 0
  mkdir -p "$root/fuzz-real/$name"
  for f in "$@"; do
    for g in $data/$f; do [ -f "$g" ] && cp "$g" "$root/fuzz-real/$name/"; done
  done
  return 0
}
real gguf "models/stories260K/stories260K.gguf"
real llama2c_model "models/stories260K/stories260K.bin"
real torch_pt "calibration/*.pt"
real dcmp "workloads/traces/deepseek-r1-0528-qwen3-8b/*"
real jsonl "workloads/aime25/*.jsonl" "workloads/dfs/dfs_state_query_lite.json" "workloads/dfs/dfs_specific_10.json"
real chat_template "templates/*.jinja"
real encode "workloads/aime25/*.jsonl"
real chat_template_source "models/qwen3-tokenizer/tokenizer_config.json"
if [ -f "$data/models/stories260K/tok512.bin" ]; then  # the harness's first two bytes: the vocab size
  mkdir -p "$root/fuzz-real/llama2c_tokenizer"
  { printf '\x00\x02'; cat "$data/models/stories260K/tok512.bin"; } >"$root/fuzz-real/llama2c_tokenizer/tok512"
fi

if [ $# -gt 0 ]; then names=("$@"); else
  names=()
  for h in "$root"/fuzz/fuzz_*; do [ -x "$h" ] && names+=("${h##*/fuzz_}"); done
fi

summary=$root/fuzz-summary.md
campaigns=$root/fuzz-campaigns.tsv
[ -f "$campaigns" ] || printf 'date\tharness\tseconds\texecutions\tedges\tfeatures\tresult\n' >"$campaigns"
lines=$root/fuzz-lines
rm -rf "$lines"
mkdir -p "$lines"

fuzz_one() {  # fuzz_one NAME: one harness for $seconds; its summary row goes to $lines/NAME
  local name=$1 work=$root/fuzz-corpus/$1 dict="" max_len=262144 rc=0
  mkdir -p "$work"
  local dirs=("$work")
  for d in "fuzz/corpus/$name" "$seeds/$name" "$root/fuzz-real/$name"; do [ -d "$d" ] && dirs+=("$d"); done
  case $name in
    gguf) dict=fuzz/dict/gguf.dict ;;
    chat_template) dict=fuzz/dict/jinja.dict ;;
    hf_folder|tokenizer_json|jsonl|result_json|chat_template_source|safetensors|grading) dict=fuzz/dict/json.dict ;;
  esac
  case $name in torch_pt|gguf|llama2c_model) max_len=2097152 ;; esac
  local log=$root/fuzz-logs/$name.log started=$SECONDS
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=0" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    "$root/fuzz/fuzz_$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 -max_len="$max_len" \
    -print_final_stats=1 -artifact_prefix="$root/fuzz-findings/$name-" ${dict:+-dict=$dict} "${dirs[@]}" >"$log" 2>&1 || rc=$?
  local ran=$((SECONDS - started)) execs speed cov ft corpus result=ok
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corpus=$(find "$work" -type f | wc -l)
  if [ "$rc" -ne 0 ]; then result="FINDING (see $log)"; fi
  echo "| $name | $ran | ${execs:-?} | ${speed:-?} | ${cov:-?} | ${ft:-?} | $corpus | $result |" >"$lines/$name"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$name" "$ran" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
    "${result%% *}" >>"$campaigns"
  cat "$lines/$name"
}

for name in "${names[@]}"; do
  [ -x "$root/fuzz/fuzz_$name" ] || { echo "fuzz.sh: no harness $name (build-asan/fuzz/fuzz_$name)" >&2; exit 2; }
done
running=0
for name in "${names[@]}"; do
  if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
  fuzz_one "$name" &
  running=$((running + 1))
done
wait

echo "| harness | seconds | executions | exec/s | coverage (edges) | features | corpus | result |" >"$summary"
echo "|---|---|---|---|---|---|---|---|" >>"$summary"
failed=0
for name in "${names[@]}"; do
  cat "$lines/$name" >>"$summary"
  grep -q FINDING "$lines/$name" && failed=1
done
echo "fuzz: summary in $summary"
exit $failed
