#!/usr/bin/env bash
# Configures (once) and builds build-asan/: the whole tree with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer, CPU only, plus the libFuzzer harnesses of fuzz/. Used by
# scripts/sanitize.sh (the test suite under the sanitizers) and scripts/fuzz.sh.
# -O1: a sanitized build's usual trade between compile time and run time.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build-asan/CMakeCache.txt ]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DKVBENCH_CUDA=OFF -DKVBENCH_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" >/dev/null
fi
cmake --build build-asan "$@"
