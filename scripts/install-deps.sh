#!/usr/bin/env bash
# Installs every Debian 12 package dsv3-explorer needs to build, test and run.
# Safe to run again: apt-get skips what is already installed.
#   scripts/install-deps.sh                the packages to build, test and run dsv3
#   scripts/install-deps.sh --sanitizers   also clang with libFuzzer and its OpenMP runtime, for
#                                          the asan and fuzz presets (scripts/check.sh, CI)
set -euo pipefail
packages=(
  build-essential cmake pkg-config git
  libeigen3-dev libfmt-dev nlohmann-json3-dev libcli11-dev
  libncurses-dev libreadline-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  tmux python3
)
if [ "${1:-}" = --sanitizers ]; then
  packages+=(clang libclang-rt-dev libomp-dev)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
