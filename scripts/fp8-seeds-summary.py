#!/usr/bin/env python3
"""Summary over seeds of `scripts/fp8-seeds.sh` runs (issue 14, docs/fp8.md).

usage: scripts/fp8-seeds-summary.py OUT MODES SEED...

For every mode and seed, the gap to that seed's BF16 run, step by step, is
gap_k = (L_k - L_k^bf16) / L_k^bf16 of the training loss L_main on the same batch, as
`dsv3 fp8 train-compare` defines it. Per mode it prints the mean and sample standard deviation
over seeds of: the relative gap over the last 10% of the steps (the issue's `relative_gap`),
the mean gap over the second half, and the gap of the last validation loss (held-out windows,
in the training precision). Runs shorter than the others are flagged.
"""
import json
import math
import os
import statistics
import sys


def read_log(path):
    loss, val, tps = [], None, []
    with open(path) as f:
        for line in f:
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if "loss_main" not in j:
                continue
            loss.append(j["loss_main"])
            if j.get("val_loss") is not None:
                val = j["val_loss"]
            if j.get("tokens_per_s"):
                tps.append(j["tokens_per_s"])
    return loss, val, tps


def mean_sd(xs):
    if not xs:
        return "-"
    m = statistics.fmean(xs)
    sd = statistics.stdev(xs) if len(xs) > 1 else float("nan")
    return f"{100 * m:+.3f}% ± {100 * sd:.3f}%"


def main():
    out, modes, seeds = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
    runs = {}
    for s in seeds:
        for m in modes:
            p = os.path.join(out, f"seed{s}", m.replace(":", "-"), "log.jsonl")
            if os.path.exists(p):
                runs[(s, m)] = read_log(p)
    steps = max((len(r[0]) for r in runs.values()), default=0)
    window = max(1, (steps + 9) // 10)
    print(f"{len(seeds)} seeds ({' '.join(seeds)}), {steps} steps; window: last {window} steps\n")
    print("| mode | seeds | relative gap, last 10% (mean ± s.d.) | per seed | "
          "mean gap, second half | last validation gap | s per 1k tokens |")
    print("|---|---|---|---|---|---|---|")
    for m in modes:
        if m == "bf16":
            continue
        last, half, val, sps, per = [], [], [], [], []
        for s in seeds:
            if (s, m) not in runs or (s, "bf16") not in runs:
                continue
            loss, v, tps = runs[(s, m)]
            base, bv, _ = runs[(s, "bf16")]
            n = min(len(loss), len(base))
            if n < steps:
                per.append(f"s{s}: {n} steps only")
                continue
            gap = [(loss[k] - base[k]) / base[k] for k in range(n)]
            last.append(statistics.fmean(gap[-window:]))
            half.append(statistics.fmean(gap[n // 2:]))
            if v is not None and bv is not None:
                val.append((v - bv) / bv)
            sps.extend(1.0 / t for t in tps)
            per.append(f"{100 * last[-1]:+.2f}%")
        s_1k = 1000 * statistics.fmean(sps) if sps else math.nan
        print(f"| {m} | {len(last)} | {mean_sd(last)} | {', '.join(per)} | {mean_sd(half)} | "
              f"{mean_sd(val)} | {s_1k:.2f} |")


if __name__ == "__main__":
    main()
