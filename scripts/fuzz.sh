#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz/ for SECONDS each (default 60), one after another:
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# (DSV3_FUZZ_RUNS=N also stops a target after N executions; DSV3_FUZZ_FORK=W runs W worker
# processes per target with libFuzzer's -fork=W, for machines with cores to spare.)
# Builds build-fuzz/ first (the `fuzz` preset: clang, ASan + UBSan; DSV3_FUZZ_NO_BUILD=1 skips
# it; DSV3_FUZZ_DIR=build-asan runs the targets the asan preset built, as scripts/check.sh does).
# Each target starts from its seeds (tests/fuzz/seeds/<t>/, the real files of
# tests/fuzz/seeds.txt, tests/fuzz/regressions/<t>/) and the corpus it grew on earlier runs,
# build-fuzz/corpus/<t>/, where new inputs are kept. A failing input is written to
# build-fuzz/crashes/<t>/; copy it to tests/fuzz/regressions/<t>/ once the bug is fixed, and
# test_fuzz replays it in every ctest run. Prints executions and coverage per target; exits 1
# when any target failed. docs/reliability.md explains the limits below.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
all=(safetensors_file safetensors_index config_json tokenizer_json lesson_file lesson_expr
  command_line fp8_cli)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

out=${DSV3_FUZZ_DIR:-build-fuzz}
# command_line opens a session on the tiny model: its data is this checkout's, wherever the
# binaries were built (or carried to).
export DSV3_DATA_DIR=${DSV3_DATA_DIR:-$PWD}
if [ "${DSV3_FUZZ_NO_BUILD:-0}" != 1 ]; then
  if [ "$out" = build-fuzz ]; then
    cmake --preset fuzz >/dev/null
    cmake --build --preset fuzz -j"${DSV3_FUZZ_JOBS:-2}"
  else
    cmake --build "$out" --target fuzz_all -j"${DSV3_FUZZ_JOBS:-2}"
  fi
fi
failed=()
summary=()
for t in "${targets[@]}"; do
  bin=$out/fuzz/fuzz_$t
  [ -x "$bin" ] || { echo "fuzz.sh: no $bin (targets: ${all[*]})" >&2; exit 2; }
  corpus=$out/corpus/$t seeds=$out/seeds/$t crashes=$out/crashes/$t
  mkdir -p "$corpus" "$seeds" "$crashes"
  # The real files this target starts from (tests/fuzz/seeds.txt), copied under unique names.
  while read -r name path; do
    [ "$name" = "$t" ] || continue
    if [ "${path: -1}" = / ]; then
      for f in "$path"*; do [ -f "$f" ] && cp "$f" "$seeds/$(echo "$f" | tr / _)"; done
    else
      cp "$path" "$seeds/$(echo "$path" | tr / _)"
    fi
  done < <(grep -v '^#' tests/fuzz/seeds.txt)
  dirs=("$corpus" "$seeds")
  for d in tests/fuzz/seeds/$t tests/fuzz/regressions/$t; do [ -d "$d" ] && dirs+=("$d"); done
  log=$out/fuzz-$t.log
  echo "fuzz.sh: $t for ${seconds} s (log $log)"
  # -timeout: one input running 10 s is a hang; -malloc_limit_mb: one allocation of 512 MiB
  # from a small input is an unbounded allocation; -rss_limit_mb: the process as a whole.
  # UBSan reports are fatal, so undefined behaviour counts as a crash.
  rc=0
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
    "$bin" -max_total_time="$seconds" ${DSV3_FUZZ_RUNS:+-runs=$DSV3_FUZZ_RUNS} -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
    ${DSV3_FUZZ_FORK:+-fork=$DSV3_FUZZ_FORK} \
    -print_final_stats=1 -artifact_prefix="$crashes/" "${dirs[@]}" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  # Fork mode prints no final stats; its progress lines "#N: cov: ..." count all workers' runs.
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\): .*/\1/p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || true)
  units=$(find "$corpus" -type f | wc -l)
  line=$(printf '%-18s %12s execs  %-22s corpus %5s' "$t" "${execs:-?}" "${cov:-cov: ?}" "$units")
  if [ $rc -ne 0 ]; then
    failed+=("$t")
    line="$line  FAILED (exit $rc; input in $crashes/, log $log)"
    grep -m3 -E 'ERROR:|runtime error:|SUMMARY:' "$log" >&2 || tail -20 "$log" >&2
  fi
  summary+=("$line")
done
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: failed: ${failed[*]}" >&2
  exit 1
fi
