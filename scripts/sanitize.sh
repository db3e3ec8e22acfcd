#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer (clang, CPU only, in
# build-asan/): any report (out-of-bounds, use-after-free, leak, signed overflow, misaligned or
# null access) fails the test that caused it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-asan.sh
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir build-asan --output-on-failure -j "$(nproc)" --timeout 1200 -LE gate  # the gate: the release build's ctest
