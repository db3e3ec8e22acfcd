#!/usr/bin/env bash
# Installs what kvbench needs to build and test on Debian 12 (or Ubuntu): compiler, CMake, Ninja
# and the libraries below. Skips apt entirely when everything is already installed.
# CUDA is optional: when the CUDA toolkit (nvcc) is installed, the build picks it up by itself.
set -euo pipefail

# clang and its runtime libraries (libFuzzer, ASan, UBSan): scripts/sanitize.sh and scripts/fuzz.sh.
packages=(g++ cmake ninja-build git libfmt-dev libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev zlib1g-dev libssl-dev libutf8proc-dev
          clang libclang-rt-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "setup: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
