#!/usr/bin/env python3
"""Training curves of the shipped tiny model for docs/model-card.md, from the runs' log.jsonl.

Writes two self-contained SVG files (loss, MaxVio) and prints the same curves as text plots for
the terminal. Standard library only; the output is deterministic.

  scripts/model-card/plots.py LOGDIR OUTDIR
LOGDIR holds log-<run>.jsonl or log-<run>.jsonl.gz for the runs loss-free, aux, none.
"""
import gzip
import json
import math
import os
import sys

RUNS = [("loss-free", "#1f77b4"), ("aux", "#d62728"), ("none", "#7f7f7f")]


def read_log(logdir, run):
    for name in (f"log-{run}.jsonl", f"log-{run}.jsonl.gz"):
        p = os.path.join(logdir, name)
        if os.path.exists(p):
            opener = gzip.open if p.endswith(".gz") else open
            with opener(p, "rt") as f:
                return [json.loads(line) for line in f if line.strip()]
    sys.exit(f"plots.py: {logdir} has no log-{run}.jsonl(.gz)")


def moving_average(values, window):
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def svg_plot(path, title, ylabel, series, ymin, ymax, xmax, log_y=False):
    """series: list of (label, colour, [(x, y)], dashed, markers)."""
    W, H, L, R, T, B = 640, 360, 60, 150, 30, 45
    pw, ph = W - L - R, H - T - B

    def fy(y):
        if log_y:
            y, lo, hi = math.log(y), math.log(ymin), math.log(ymax)
        else:
            lo, hi = ymin, ymax
        y = min(max(y, lo), hi)
        return T + ph * (1 - (y - lo) / (hi - lo))

    def fx(x):
        return L + pw * x / xmax

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="18" font-size="13">{title}</text>',
           f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>']
    ticks = []
    if log_y:
        v = 10 ** math.floor(math.log10(ymin))
        while v <= ymax * 1.0001:
            for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8):
                if ymin <= v * m <= ymax:
                    ticks.append(v * m)
            v *= 10
    else:
        step = (ymax - ymin) / 5
        ticks = [ymin + i * step for i in range(6)]
    for t in ticks:
        y = fy(t)
        out.append(f'<line x1="{L}" y1="{y:.1f}" x2="{L + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{t:g}</text>')
    for i in range(6):
        x = xmax * i / 5
        out.append(f'<text x="{fx(x):.1f}" y="{T + ph + 15}" text-anchor="middle">{int(x)}</text>')
    out.append(f'<text x="{L + pw / 2}" y="{H - 8}" text-anchor="middle">optimizer step '
               f'(4,096 tokens each)</text>')
    out.append(f'<text x="14" y="{T + ph / 2}" text-anchor="middle" '
               f'transform="rotate(-90 14 {T + ph / 2})">{ylabel}</text>')
    for k, (label, colour, pts, dashed, markers) in enumerate(series):
        if markers:
            for x, y in pts:
                out.append(f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="2.5" fill="{colour}"/>')
        else:
            d = " ".join(f"{'M' if i == 0 else 'L'}{fx(x):.1f},{fy(y):.1f}"
                         for i, (x, y) in enumerate(pts))
            dash = ' stroke-dasharray="4 3"' if dashed else ""
            out.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.4"{dash}/>')
        ly = T + 12 + 16 * k
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        out.append(f'<line x1="{L + pw + 10}" y1="{ly - 4}" x2="{L + pw + 28}" y2="{ly - 4}" '
                   f'stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{L + pw + 32}" y="{ly}">{label}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def text_plot(title, series, ymin, ymax, xmax, width=64, height=14):
    """series: list of (glyph, [(x, y)]). Later series draw over earlier ones."""
    grid = [[" "] * width for _ in range(height)]
    for glyph, pts in series:
        for x, y in pts:
            c = min(width - 1, int(x / xmax * (width - 1) + 0.5))
            r = int((ymax - min(max(y, ymin), ymax)) / (ymax - ymin) * (height - 1) + 0.5)
            grid[r][c] = glyph
    lines = [title]
    for r in range(height):
        y = ymax - (ymax - ymin) * r / (height - 1)
        label = f"{y:5.2f}" if r % 3 == 0 or r == height - 1 else "     "
        lines.append(f"{label} |{''.join(grid[r])}")
    lines.append("      +" + "-" * width)
    lines.append(f"       0{' ' * (width - 2 - len(str(xmax)))}{xmax}  steps")
    return "\n".join(lines)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    logdir, outdir = sys.argv[1], sys.argv[2]
    logs = {run: read_log(logdir, run) for run, _ in RUNS}
    xmax = max(r["step"] for r in logs["loss-free"])
    loss_series, vio_series, text_loss, text_vio = [], [], [], []
    glyphs = {"loss-free": "*", "aux": "+", "none": "."}
    for run, colour in RUNS:
        L = logs[run]
        steps = [r["step"] for r in L]
        main_loss = moving_average([r["loss_main"] for r in L], 25)
        mtp_loss = moving_average([r["loss_mtp"][0] for r in L], 25)
        vio = moving_average([sum(r["max_vio"]) / len(r["max_vio"]) for r in L], 25)
        val = [(r["step"], r["val_loss"]) for r in L if "val_loss" in r]
        every = 5
        loss_series.append((f"{run} main", colour, list(zip(steps, main_loss))[::every], False, False))
        if run == "loss-free":
            loss_series.append(("loss-free MTP", colour, list(zip(steps, mtp_loss))[::every], True, False))
        loss_series.append((f"{run} held-out", colour, val, False, True))
        vio_series.append((run, colour, list(zip(steps, vio))[::every], False, False))
        text_loss.append((glyphs[run], list(zip(steps, main_loss))[::10]))
        text_vio.append((glyphs[run], list(zip(steps, vio))[::10]))
        if run == "loss-free":
            text_mtp = [("*", list(zip(steps, main_loss))[::10]), ("m", list(zip(steps, mtp_loss))[::10])]
    svg_plot(os.path.join(outdir, "loss.svg"),
             "Training loss (nats/token, 25-step mean) and held-out loss (dots)",
             "loss (log scale)", loss_series, 2.5, 8.0, xmax, log_y=True)
    svg_plot(os.path.join(outdir, "maxvio.svg"),
             "MaxVio per step (mean over the 4 MoE layers, 25-step mean)",
             "MaxVio_batch", vio_series, 0.0, 5.0, xmax)
    print(text_plot("main loss, 25-step mean   * loss-free  + aux  . none", text_loss[::-1],
                    2.5, 8.0, xmax))
    print()
    print(text_plot("loss-free run, 25-step means   * main (next token)  m MTP depth 1 (token after next)",
                    text_mtp, 2.5, 5.0, xmax, height=11))
    print()
    print(text_plot("MaxVio_batch (mean over MoE layers)   * loss-free  + aux  . none",
                    text_vio[::-1], 0.0, 5.0, xmax))
    print()
    print("run        final held-out loss   mean MaxVio, last 200 steps   MTP loss, last 200")
    for run, _ in RUNS:
        L = logs[run]
        val = [r["val_loss"] for r in L if "val_loss" in r][-1]
        tail = L[-200:]
        vio = sum(sum(r["max_vio"]) / len(r["max_vio"]) for r in tail) / len(tail)
        mtp = sum(r["loss_mtp"][0] for r in tail) / len(tail)
        print(f"{run:10} {val:19.4f} {vio:29.3f} {mtp:18.3f}")


if __name__ == "__main__":
    main()
