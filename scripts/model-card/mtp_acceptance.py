#!/usr/bin/env python3
"""MTP acceptance per domain for docs/model-card.md: speculative decoding with the model's own MTP
module (greedy; a draft is accepted when it equals the main model's next token).

  scripts/model-card/mtp_acceptance.py DSV3 MODEL CORPUS_DIR [DOCS] [TOKENS]

For each <domain>.heldout.txt of CORPUS_DIR, the first DOCS documents (default 12) with at least
200 bytes give prompts (their first 160 bytes, cut at a character boundary); `dsv3 generate --mtp`
continues each by TOKENS tokens (default 48). Prints one line per domain and the total, as text
and as JSON on the last line.
"""
import json
import os
import subprocess
import sys


def documents(path):
    with open(path, "rb") as f:
        data = f.read()
    for doc in data.split(b"\n\x1e\n"):
        if len(doc) >= 200:
            yield doc


def prompt_of(doc, n=160):
    cut = doc[:n]
    while cut and (cut[-1] & 0xC0) == 0x80:  # never end inside a UTF-8 character
        cut = cut[:-1]
    if cut and cut[-1] >= 0xC0:
        cut = cut[:-1]
    return cut.decode("utf-8", errors="strict")


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    dsv3, model, corpus = sys.argv[1:4]
    ndocs = int(sys.argv[4]) if len(sys.argv) > 4 else 12
    ntok = int(sys.argv[5]) if len(sys.argv) > 5 else 48
    result = {}
    for name in sorted(os.listdir(corpus)):
        if not name.endswith(".heldout.txt"):
            continue
        domain = name[: -len(".heldout.txt")]
        proposed = accepted = 0
        for i, doc in enumerate(documents(os.path.join(corpus, name))):
            if i >= ndocs:
                break
            out = subprocess.run([dsv3, "generate", "--model", model, "--prompt", prompt_of(doc),
                                  "-n", str(ntok), "--mtp", "--json"],
                                 check=True, capture_output=True, text=True).stdout
            stats = json.loads(out)["mtp"]
            proposed += stats["proposed"]
            accepted += stats["accepted"]
        result[domain] = {"proposed": proposed, "accepted": accepted,
                          "acceptance_rate": accepted / proposed if proposed else None}
        print(f"{domain:8} {accepted:5}/{proposed:<5} {100 * accepted / max(proposed, 1):5.1f}%")
    p = sum(r["proposed"] for r in result.values())
    a = sum(r["accepted"] for r in result.values())
    print(f"{'all':8} {a:5}/{p:<5} {100 * a / max(p, 1):5.1f}%")
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
