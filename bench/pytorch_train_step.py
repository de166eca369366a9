"""PyTorch eager float32 CPU baseline for one DeepSeek-V3 training step (the C++ trainer's contract).

One step = forward (main + MTP) + loss (L_main + lambda/D sum L_MTP + alpha L_Bal) + backward +
clip_grad_norm_ + AdamW + loss-free bias update. The model is tests/data/gen/dsv3_torch.py
(batched matmuls, MoE as a loop over experts with index_select / index_add, attention through
F.scaled_dot_product_attention when it accepts MLA's shapes). Random weights N(0, 0.02), norms 1,
bias 0. Prints one JSON line per config: tokens/s = B*T / median step time (after warmup).
Usage: taskset -c 0,1 python3 bench/pytorch_train_step.py --threads 2 [--configs tiny small]
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "data", "gen"))
import dsv3_torch as dt  # noqa: E402

SHAPES = {"tiny": (8, 128), "small": (2, 128)}
LAM, ALPHA, GAMMA, LR, WD, CLIP = 0.3, 0.01, 1e-3, 1e-3, 0.1, 1.0


def build(cfg, seed):
    torch.manual_seed(seed)
    m = dt.DSV3(cfg).float()
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.02)
            else:
                p.fill_(1.0)
        for n, b in m.named_buffers():
            b.zero_()
    return m


def step(m, opt, ids):
    opt.zero_grad(set_to_none=True)
    out = dt.losses(m, ids, LAM, ALPHA, use_bias=True)
    out["loss"].backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), CLIP)
    opt.step()
    dt.update_bias(m, out["counts"], GAMMA)
    return out["loss"].item()


def bench(name, B, T, steps, warmup, seed):
    cfg = dt.Cfg.load(os.path.join(ROOT, "tiny-configs", f"{name}.json"))
    m = build(cfg, seed)
    opt = torch.optim.AdamW(dt.param_groups(m, WD), lr=LR, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(seed + 1)
    batches = [torch.randint(0, cfg.vocab, (B, T), generator=gen) for _ in range(warmup + steps)]
    dt.MLA.use_sdpa = True
    try:
        step(m, opt, batches[0])
    except (RuntimeError, AttributeError, TypeError) as e:  # no SDPA for these shapes: explicit
        print(f"# sdpa unavailable ({str(e)[:120]}); explicit attention", file=sys.stderr)
        dt.MLA.use_sdpa = False
        m = build(cfg, seed)
        opt = torch.optim.AdamW(dt.param_groups(m, WD), lr=LR, betas=(0.9, 0.95), eps=1e-8)
        step(m, opt, batches[0])
    for i in range(1, warmup):
        step(m, opt, batches[i])
    times, losses = [], []
    for i in range(warmup, warmup + steps):
        t0 = time.perf_counter()
        losses.append(step(m, opt, batches[i]))
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {
        "config": name, "B": B, "T": T, "threads": torch.get_num_threads(),
        "tokens_per_s": round(B * T / med, 2), "median_step_s": round(med, 5),
        "min_step_s": round(min(times), 5), "steps": steps, "warmup": warmup,
        "params": sum(p.numel() for p in m.parameters()),
        "sdpa": dt.MLA.use_sdpa, "loss_first": round(losses[0], 5), "loss_last": round(losses[-1], 5),
        "torch": torch.__version__,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--configs", nargs="+", default=["tiny", "small"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.configs:
        B, T = SHAPES[name]
        print(json.dumps(bench(name, B, T, args.steps, args.warmup, args.seed)), flush=True)


if __name__ == "__main__":
    main()
