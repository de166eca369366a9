#!/usr/bin/env python3
"""Deterministic generator of arithmetic and simple algebra text (the `math`
domain of the training corpus).

Each document is a small problem set: 3 to 6 lines, one problem per line.
Every line is a question that ends in '?', a space, and the answer, e.g.

    Let x = 347 + 58. What is x? 405
    What is the remainder when 347 is divided by 12? 11
    Solve 3*x - 7 = 8. What is x? 5

The output depends only on the seed (random.Random with an integer seed is
stable across Python 3 versions); no other state is used.  Standard library
only.  Run it directly to print a sample:  gen_math.py --seed 1 --bytes 2000
"""

import argparse
import math
import random

DEFAULT_SEED = 20240101


def _num(rng, max_digits):
    """A non-negative integer with 1..max_digits digits (small ones likelier)."""
    digits = rng.randint(1, max_digits)
    return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits - 1)


def _signed(rng, max_digits):
    n = _num(rng, max_digits)
    return -n if rng.random() < 0.25 else n


def _addition(rng):
    a, b = _num(rng, 4), _num(rng, 4)
    q = rng.choice(["Let x = {a} + {b}. What is x?", "What is {a} + {b}?", "What is {a} plus {b}?"])
    return q.format(a=a, b=b), a + b


def _subtraction(rng):
    a, b = _num(rng, 4), _num(rng, 4)
    q = rng.choice(["Let y = {a} - {b}. What is y?", "What is {a} - {b}?", "What is {a} minus {b}?"])
    return q.format(a=a, b=b), a - b


def _multiplication(rng):
    a, b = _num(rng, 3), _num(rng, 2)
    q = rng.choice(["Let z = {a} * {b}. What is z?", "What is {a} * {b}?", "What is the product of {a} and {b}?"])
    return q.format(a=a, b=b), a * b


def _division(rng):
    b = rng.randint(2, 99)
    a = _num(rng, 4)
    q = "What are the quotient and remainder when {a} is divided by {b}?"
    return q.format(a=a, b=b), "{} remainder {}".format(a // b, a % b)


def _modulo(rng):
    b = rng.randint(2, 60)
    a = _num(rng, 4)
    q = rng.choice(["What is {a} mod {b}?", "What is the remainder when {a} is divided by {b}?"])
    return q.format(a=a, b=b), a % b


def _linear(rng):
    # a*x + b = c with an integer solution x; b and x may be negative.
    a = rng.randint(2, 12)
    x = _signed(rng, 2)
    b = _signed(rng, 2)
    while b == 0:
        b = _signed(rng, 2)
    c = a * x + b
    sign = "+" if b > 0 else "-"
    return "Solve {a}*x {s} {b} = {c}. What is x?".format(a=a, s=sign, b=abs(b), c=c), x


def _comparison(rng):
    a, b = _signed(rng, 3), _signed(rng, 3)
    while a == b:
        b = _signed(rng, 3)
    kind = rng.randrange(3)
    if kind == 0:
        return "Which is larger, {} or {}?".format(a, b), max(a, b)
    if kind == 1:
        return "Which is smaller, {} or {}?".format(a, b), min(a, b)
    return "Is {} greater than {}?".format(a, b), "yes" if a > b else "no"


def _list_sum(rng):
    values = [_num(rng, 3) for _ in range(rng.randint(3, 6))]
    listed = ", ".join(str(v) for v in values[:-1]) + " and " + str(values[-1])
    return "What is the sum of {}?".format(listed), sum(values)


def _two_step(rng):
    a = _num(rng, 2)
    m = rng.randint(2, 9)
    c = _num(rng, 2)
    op = rng.choice("+-")
    b = a * m + c if op == "+" else a * m - c
    return "Let a = {}. Let b = a * {} {} {}. What is b?".format(a, m, op, c), b


def _gcd(rng):
    g = rng.randint(1, 30)
    a, b = g * rng.randint(1, 40), g * rng.randint(1, 40)
    return "What is the greatest common divisor of {} and {}?".format(a, b), math.gcd(a, b)


KINDS = [_addition, _subtraction, _multiplication, _division, _modulo,
         _linear, _comparison, _list_sum, _two_step, _gcd]


def problem_set(rng):
    """One document: 3 to 6 problem lines."""
    lines = []
    for _ in range(rng.randint(3, 6)):
        question, answer = rng.choice(KINDS)(rng)
        lines.append("{} {}".format(question, answer))
    return "\n".join(lines)


def generate(seed=DEFAULT_SEED, target_bytes=2_000_000):
    """Problem sets until their UTF-8 size (plus one separator line each)
    reaches target_bytes."""
    rng = random.Random(seed)
    docs = []
    total = 0
    while total < target_bytes:
        doc = problem_set(rng)
        docs.append(doc)
        total += len(doc.encode("utf-8")) + 3
    return docs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--bytes", type=int, default=2000, help="approximate output size")
    args = parser.parse_args()
    print("\n\n".join(generate(args.seed, args.bytes)))


if __name__ == "__main__":
    main()
