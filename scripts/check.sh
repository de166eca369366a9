#!/usr/bin/env bash
# Everything CI checks (.ci/run and the README's second command run this, after
# `scripts/install-deps.sh --sanitizers`), in three stages on a clean checkout:
#   1. the ci preset (gcc, -O2, warnings are errors): build, run every test;
#   2. the asan preset (clang -O1, AddressSanitizer + UBSan, build-asan/): build, run every test
#      again under the sanitizers;
#   3. every fuzz target of tests/fuzz, built by stage 2, for 20 s from its seeds (scripts/fuzz.sh).
# docs/reliability.md says what each stage covers and how long it takes on 2 cores.
# The test presets run each test with one OpenMP thread (OMP_NUM_THREADS=1, CMakePresets.json):
# ctest -j2 already keeps both cores busy, and two OpenMP teams on two cores ran the training
# tests 10-30x slower, each parallel region waiting a time slice for a descheduled thread
# (docs/training.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset ci && cmake --build --preset ci -j2 && ctest --preset ci -j2
cmake --preset asan && cmake --build --preset asan -j2 && ctest --preset asan -j2
DSV3_FUZZ_DIR=build-asan DSV3_FUZZ_NO_BUILD=1 scripts/fuzz.sh "${DSV3_FUZZ_SECONDS:-20}"
