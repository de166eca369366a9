#!/usr/bin/env python3
"""Generates bit-exact H100 FP8 tensor-core dot products for tests/fp8 (h100_dot_cases.txt).

Runs a Triton tl.dot kernel (wgmma on sm_90) on float8 inputs: a 64x64 output tile, A [64, K]
row-major, B stored [64, K] (so both operands are K-major), the FP32 accumulator preloaded from
C, the K loop in blocks of BLOCK_K = min(K, 128). Promotion is Triton's max_num_imprecise_acc:
every N products the tensor-core partial sum is added to the FP32 accumulator. Without it the
whole K chain stays in the tensor core's accumulator. Only the diagonal outputs (i, i) are kept,
each as one independent case: row i of A, row i of B, C[i, i].

Every recorded case is also checked against a pure-Python integer model of the accumulation
(fp8.md section 4.2) and the agreement count is printed, so a run shows at once whether the
model holds.

Usage (on a machine with an H100, PyTorch and Triton):  python3 gen_dot_cases.py OUT_FILE
Line format (after '#' header lines):
  fmt_a fmt_b K promote c_bits out_bits dist a_hex b_hex
promote 0 = no promotion; c_bits/out_bits are FP32 bit patterns (hex); a_hex/b_hex hold two hex
digits per FP8 code, k = 0 first.
"""
import struct
import sys

import numpy as np
import torch
import triton
import triton.language as tl

FMT = {"e4m3": (torch.float8_e4m3fn, 7, 3), "e5m2": (torch.float8_e5m2, 15, 2)}


@triton.jit
def dot_kernel(a_ptr, b_ptr, c_ptr, out_ptr, K, BLOCK_K: tl.constexpr, PROMOTE: tl.constexpr):
    offs_m = tl.arange(0, 64)
    offs_n = tl.arange(0, 64)
    offs_k = tl.arange(0, BLOCK_K)
    acc = tl.load(c_ptr + offs_m[:, None] * 64 + offs_n[None, :])
    for k0 in range(0, K, BLOCK_K):
        a = tl.load(a_ptr + offs_m[:, None] * K + (k0 + offs_k)[None, :])
        b = tl.load(b_ptr + offs_n[None, :] * K + (k0 + offs_k)[:, None])
        if PROMOTE > 0:
            acc = tl.dot(a, b, acc, max_num_imprecise_acc=PROMOTE)
        else:
            acc = tl.dot(a, b, acc)
    tl.store(out_ptr + offs_m[:, None] * 64 + offs_n[None, :], acc)


def decode(code, fmt):
    _, bias, mbits = FMT[fmt]
    s = -1 if code & 0x80 else 1
    e = (code >> mbits) & ((1 << (7 - mbits)) - 1)
    m = code & ((1 << mbits) - 1)
    if e == 0:
        return s, 1 - bias, m, mbits  # value = s * m * 2^(E - mbits)
    return s, e - bias, m | (1 << mbits), mbits


def f32(x):
    return float(np.float32(x))


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def tc_slice(prods, c):
    """One wgmma k-slice: prods = [(sign, mant, E, shift_bits)], c = incoming FP32 accumulator."""
    exps = [e for (_, mm, e, _) in prods if mm != 0]
    if c != 0.0:
        cm, ce = np.frexp(np.float32(c))  # c = cm * 2^ce, 0.5 <= |cm| < 1
        exps.append(int(ce) - 1)
    if not exps:
        return 0.0
    emax = max(exps)
    total = 0
    for s, mm, e, fb in prods:
        if mm == 0:
            continue
        sh = e - fb - emax + 13  # |p| / 2^(emax-13) = mm * 2^sh
        v = mm << sh if sh >= 0 else mm >> (-sh)
        total += s * v
    if c != 0.0:
        cmant = int(abs(float(cm)) * (1 << 24))  # 24-bit integer significand
        sh = (int(ce) - 24) - emax + 13
        v = cmant << sh if sh >= 0 else cmant >> (-sh)
        total += (1 if c > 0 else -1) * v
    mag = abs(total)
    if mag.bit_length() > 14:
        drop = mag.bit_length() - 14
        mag = (mag >> drop) << drop
    return f32(np.ldexp(float(mag), emax - 13)) * (1 if total >= 0 else -1)


def model_dot(a_codes, b_codes, fa, fb, promote, c):
    prods = []
    for x, y in zip(a_codes, b_codes):
        sa, ea, ma, mba = decode(x, fa)
        sb, eb, mb, mbb = decode(y, fb)
        prods.append((sa * sb, ma * mb, ea + eb, mba + mbb))
    if promote == 0:
        acc = c
        for k0 in range(0, len(prods), 32):
            acc = tc_slice(prods[k0:k0 + 32], acc)
        return acc
    out = np.float32(c)
    for b0 in range(0, len(prods), promote):
        part = 0.0
        for k0 in range(b0, min(b0 + promote, len(prods)), 32):
            part = tc_slice(prods[k0:k0 + 32], part)
        out = np.float32(out + np.float32(part))
    return float(out)


def finite_codes(fmt):
    if fmt == "e4m3":
        return [c for c in range(256) if (c & 0x7F) != 0x7F]
    return [c for c in range(256) if (c & 0x7C) != 0x7C]


def make_inputs(dist, fmt, rows, K, gen):
    dtype = FMT[fmt][0]
    top = 448.0 if fmt == "e4m3" else 57344.0
    if dist == "codes":
        pool = torch.tensor(finite_codes(fmt), dtype=torch.uint8)
        idx = torch.randint(0, len(pool), (rows, K), generator=gen)
        return pool[idx]
    if dist == "zero":
        return torch.zeros(rows, K, dtype=torch.uint8)
    if dist == "randn":
        x = torch.randn(rows, K, generator=gen)
    elif dist == "wide":
        x = torch.randn(rows, K, generator=gen) * torch.exp2(
            torch.randint(-8, 9, (rows, K), generator=gen).float())
    elif dist == "positive":
        x = torch.rand(rows, K, generator=gen)
    else:
        raise ValueError(dist)
    return x.clamp(-top, top).to(dtype).view(torch.uint8)


def main():
    out_path = sys.argv[1]
    gen = torch.Generator().manual_seed(20261122)
    pairs = [("e4m3", "e4m3"), ("e5m2", "e5m2"), ("e4m3", "e5m2"), ("e5m2", "e4m3")]
    dists = ["randn", "wide", "positive", "codes"]
    plan = []  # (fa, fb, dist, K, promote, ncases)
    for fa, fb in pairs:
        plan.append((fa, fb, "zero", 32, 0, 4))
        for dist in dists:
            for K, n in [(32, 4), (128, 4), (512, 2), (1024, 1), (4096, 1)]:
                for promote in (0, 32, 128):
                    if promote > K:
                        continue
                    if K == 4096 and (dist == "codes" or (fa, fb) == ("e5m2", "e4m3")):
                        continue
                    plan.append((fa, fb, dist, K, promote, n))
    lines = []
    total = match = 0
    wgmma_seen = set()
    for fa, fb, dist, K, promote, ncases in plan:
        A = make_inputs(dist, fa, 64, K, gen)
        B = make_inputs(dist, fb, 64, K, gen)
        C = torch.zeros(64, 64)
        odd = torch.arange(1, 64, 2)
        cval = torch.randn(len(odd), generator=gen) * torch.exp2(
            torch.randint(-4, 9, (len(odd),), generator=gen).float())
        C[odd, odd] = cval
        if dist == "zero":
            C[torch.arange(64), torch.arange(64)] = torch.randn(64, generator=gen) * 100
        dA = A.cuda().view(FMT[fa][0]).contiguous()
        dB = B.cuda().view(FMT[fb][0]).contiguous()
        dC = C.cuda().contiguous()
        dO = torch.empty(64, 64, device="cuda")
        bk = min(K, 128)
        try:
            kern = dot_kernel[(1,)](dA, dB, dC, dO, K, BLOCK_K=bk, PROMOTE=promote)
            torch.cuda.synchronize()
        except Exception as ex:  # e.g. a Triton without mixed FP8 dots: skip that pair
            print(f"# skipped {fa}x{fb} {dist} K={K} promote={promote}: {type(ex).__name__}: {ex}"[:300])
            continue
        if (fa, fb, bk, promote) not in wgmma_seen:
            wgmma_seen.add((fa, fb, bk, promote))
            ptx = getattr(kern, "asm", {}).get("ptx", "")
            print(f"# kernel {fa}x{fb} BLOCK_K={bk} promote={promote}: wgmma in PTX = {'wgmma' in ptx}",
                  flush=True)
        O = dO.cpu()
        for i in range(ncases):
            a = A[i].tolist()
            b = B[i].tolist()
            c = float(C[i, i])
            out = float(O[i, i])
            want = model_dot(a, b, fa, fb, promote, c)
            total += 1
            ok = f32_bits(want) == f32_bits(out)
            match += ok
            if not ok:
                print(f"MISMATCH {fa}x{fb} {dist} K={K} promote={promote} c={c!r} hw={out!r} model={want!r}",
                      flush=True)
            lines.append(f"{fa} {fb} {K} {promote} {f32_bits(c):08x} {f32_bits(out):08x} {dist} "
                         f"{bytes(a).hex()} {bytes(b).hex()}")
    with open(out_path, "w") as f:
        f.write("# H100 FP8 tensor-core dot products (Triton tl.dot -> wgmma), from gen_dot_cases.py\n")
        f.write(f"# device: {torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}\n")
        f.write("# fmt_a fmt_b K promote c_bits out_bits dist a_hex b_hex\n")
        f.write("\n".join(lines) + "\n")
    print(f"model agreement: {match}/{total}", flush=True)


if __name__ == "__main__":
    main()
