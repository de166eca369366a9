#!/usr/bin/env bash
# Trains the built-in `tiny` model (tiny-configs/tiny/) from scratch, as recorded in
# docs/model-card.md. Three runs share config, data, seed and token budget and differ only in
# load balancing: loss-free (the shipped model; V3's bias + alpha 1e-4), aux (sequence-wise aux
# loss alpha 1e-3, no bias: the paper's baseline), none.
#
#   scripts/train-default-model.sh data           corpus, tokenizer, token streams (in work/)
#   scripts/train-default-model.sh train [SECS]   the three runs side by side; stops cleanly after
#                                                 SECS (SIGINT saves a checkpoint) and resumes
#                                                 where it stopped when called again
#   scripts/train-default-model.sh export         tiny-configs/tiny/ (FP8) and the comparison
#                                                 models (BF16) in work/export/
#
# Environment: DSV3 (the binary, default build/dsv3), WORK (default work/), THREADS per run
# (default: cores / 3), STEPS (default 2155: the budget of the shipped model, 8.83M tokens, about one epoch).
set -euo pipefail
cd "$(dirname "$0")/.."
DSV3=${DSV3:-build/dsv3}
WORK=${WORK:-work}
STEPS=${STEPS:-2155}
VOCAB=2048
THREADS=${THREADS:-$(( $(nproc) / 3 > 0 ? $(nproc) / 3 : 1 ))}
CONFIG=tiny-configs/tiny-train.json
# The paper's recipe scaled down (docs/model-card.md says why each number).
COMMON=(--model "$CONFIG" --data "$WORK/tokens.train.safetensors"
        --val-data "$WORK/tokens.heldout.safetensors" --steps "$STEPS" --batch 16 --seq-len 256
        --lr 2e-3 --schedule cosine --mtp-lambda 0.3 --bias-gamma 1e-3 --v3-phases --clip 1
        --seed 1 --save-every 100 --eval-every 100 --eval-batches 8)
RUNS=(loss-free aux none)
run_args() {
  case $1 in
    loss-free) echo --balance loss-free --balance-alpha 1e-4 ;;
    aux) echo --balance aux --balance-alpha 1e-3 ;;
    none) echo --balance none ;;
  esac
}

stage=${1:-}
case $stage in
  data)
    mkdir -p "$WORK"
    scripts/build-corpus.sh corpus
    "$DSV3" tokenizer train --corpus corpus --vocab "$VOCAB" --out "$WORK/tokenizer.json"
    "$DSV3" tokenize --corpus corpus --tokenizer "$WORK/tokenizer.json" --out "$WORK/tokens"
    ;;
  train)
    secs=${2:-0}
    pids=()
    for r in "${RUNS[@]}"; do
      resume=()
      [ -f "$WORK/runs/$r/trainer_state.json" ] && resume=(--resume)
      # shellcheck disable=SC2046
      cmd=("$DSV3" train "${COMMON[@]}" $(run_args "$r") --save "$WORK/runs/$r" "${resume[@]}")
      mkdir -p "$WORK/runs/$r"
      if [ "$secs" -gt 0 ]; then cmd=(timeout -s INT "$secs" "${cmd[@]}"); fi
      OMP_NUM_THREADS=$THREADS "${cmd[@]}" >> "$WORK/runs/$r.out" 2>&1 &
      pids+=($!)
    done
    status=0
    for p in "${pids[@]}"; do
      # 130: interrupted by the time budget after saving; run again to continue.
      wait "$p" || { rc=$?; [ $rc -eq 130 ] || [ $rc -eq 124 ] || status=$rc; }
    done
    for r in "${RUNS[@]}"; do echo "$r: $(tail -n 1 "$WORK/runs/$r.out")"; done
    exit $status
    ;;
  export)
    mkdir -p "$WORK/export"
    for r in "${RUNS[@]}"; do
      cp "$WORK/tokenizer.json" "$WORK/runs/$r/tokenizer.json"
      "$DSV3" export --model "$WORK/runs/$r" --format bf16 --out "$WORK/export/$r"
    done
    "$DSV3" export --model "$WORK/runs/loss-free" --format fp8 --out tiny-configs/tiny
    ;;
  *)
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    [ "$stage" = "--help" ] || [ "$stage" = "-h" ] || exit 2
    ;;
esac
