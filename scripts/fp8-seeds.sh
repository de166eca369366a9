#!/usr/bin/env bash
# FP8 against BF16 over several seeds (issue 14; docs/fp8.md, "Several seeds"): every
# (seed, mode) is one `dsv3 fp8 train-compare --train-only` process with one OpenMP thread, run
# side by side on all cores, the most expensive modes first so that the cheap baselines fill the
# cores at the end; then one comparison per seed (its own BF16 baseline) and the summary over
# seeds (scripts/fp8-seeds-summary.py). Resumable: run it again with the same OUT to go on.
#
#   scripts/fp8-seeds.sh OUT
#
# Environment: DSV3 (default build/dsv3), DATA (default work/tokens.train.safetensors), SEEDS
# (default "1 2 3"), MODES (default below), STEPS (default: as many as BUDGET seconds allow,
# from a 3-step probe of the slowest mode), BUDGET (default 420), BATCH (4), SEQ (128), JOBS
# (default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/fp8-seeds.sh OUT}
DSV3=${DSV3:-build/dsv3}
DATA=${DATA:-work/tokens.train.safetensors}
SEEDS=${SEEDS:-"1 2 3"}
MODES=${MODES:-fp8:t32,fp8,fp8:tensor,fp8:no-promote,fp8:block-dgrad,bf16,fp32}
BUDGET=${BUDGET:-420}
BATCH=${BATCH:-4}
SEQ=${SEQ:-128}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$OUT"
slowest=${MODES%%,*}
if [[ -z ${STEPS:-} ]]; then
  if [[ -f $OUT/steps ]]; then
    STEPS=$(cat "$OUT/steps")
  else
    rm -rf "$OUT/probe"
    OMP_NUM_THREADS=1 "$DSV3" fp8 train-compare --model tiny-configs/tiny-train.json --data "$DATA" \
      --batch "$BATCH" --seq-len "$SEQ" --steps 3 --modes "$slowest" --train-only \
      --out "$OUT/probe" >/dev/null
    # Seconds per step of the slowest mode alone; 25% for the cores sharing memory bandwidth.
    STEPS=$(python3 -c "
import json, sys
ts = [json.loads(l) for l in open('$OUT/probe/${slowest//:/-}/log.jsonl')]
s = sum($BATCH * $SEQ / t['tokens_per_s'] for t in ts[1:]) / (len(ts) - 1)
print(max(10, int($BUDGET / (1.25 * s))))")
    echo "$STEPS" >"$OUT/steps"
  fi
fi
echo "fp8-seeds: $STEPS steps of $BATCH x $SEQ tokens, seeds $SEEDS, modes $MODES, $JOBS jobs"
COMMON="--model tiny-configs/tiny-train.json --data $DATA --batch $BATCH --seq-len $SEQ --lr 2e-3"
COMMON+=" --steps $STEPS --max-seconds ${MAXSEC:-0}"
export DSV3 OUT COMMON
run_one() {  # SEED MODE
  # shellcheck disable=SC2086  # COMMON is a list of flags without spaces
  OMP_NUM_THREADS=1 "$DSV3" fp8 train-compare $COMMON --seed "$1" --modes "$2" --train-only \
    --out "$OUT/seed$1" >"$OUT/seed$1-${2//:/-}.log" 2>&1 || echo "fp8-seeds: seed $1 $2 failed"
}
export -f run_one
for m in ${MODES//,/ }; do for s in $SEEDS; do echo "$s $m"; done; done |
  xargs -P "$JOBS" -L 1 bash -c 'run_one "$@"' _
# One comparison per seed against its own BF16 baseline (reads the runs; trains nothing more
# than a second), then the summary over seeds.
for s in $SEEDS; do
  # shellcheck disable=SC2086
  "$DSV3" fp8 train-compare ${COMMON% --max-seconds*} --seed "$s" --modes "$MODES" \
    --max-seconds 1 --out "$OUT/seed$s" >"$OUT/seed$s.txt" 2>&1 || true
done
python3 scripts/fp8-seeds-summary.py "$OUT" "$MODES" $SEEDS | tee "$OUT/summary.md"
