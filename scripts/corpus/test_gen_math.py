#!/usr/bin/env python3
"""Tests for gen_math.py: determinism, and that every stated answer is right.

The checker re-parses each problem line with its own regular expressions and
re-evaluates it; it does not use the generator's internals.
Run:  python3 scripts/corpus/test_gen_math.py
"""

import math
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_math  # noqa: E402

N = r"(-?\d+)"
PATTERNS = [
    (re.compile(r"Let x = (\d+) \+ (\d+)\. What is x\?"), lambda a, b: a + b),
    (re.compile(r"What is (\d+) \+ (\d+)\?"), lambda a, b: a + b),
    (re.compile(r"What is (\d+) plus (\d+)\?"), lambda a, b: a + b),
    (re.compile(r"Let y = (\d+) - (\d+)\. What is y\?"), lambda a, b: a - b),
    (re.compile(r"What is (\d+) - (\d+)\?"), lambda a, b: a - b),
    (re.compile(r"What is (\d+) minus (\d+)\?"), lambda a, b: a - b),
    (re.compile(r"Let z = (\d+) \* (\d+)\. What is z\?"), lambda a, b: a * b),
    (re.compile(r"What is (\d+) \* (\d+)\?"), lambda a, b: a * b),
    (re.compile(r"What is the product of (\d+) and (\d+)\?"), lambda a, b: a * b),
    (re.compile(r"What are the quotient and remainder when (\d+) is divided by (\d+)\?"),
     lambda a, b: "%d remainder %d" % (a // b, a % b)),
    (re.compile(r"What is (\d+) mod (\d+)\?"), lambda a, b: a % b),
    (re.compile(r"What is the remainder when (\d+) is divided by (\d+)\?"), lambda a, b: a % b),
    (re.compile(r"Solve (\d+)\*x ([+-]) (\d+) = " + N + r"\. What is x\?"), None),  # checked below
    (re.compile(r"Which is larger, " + N + " or " + N + r"\?"), max),
    (re.compile(r"Which is smaller, " + N + " or " + N + r"\?"), min),
    (re.compile(r"Is " + N + " greater than " + N + r"\?"), lambda a, b: "yes" if a > b else "no"),
    (re.compile(r"Let a = (\d+)\. Let b = a \* (\d+) ([+-]) (\d+)\. What is b\?"), None),
    (re.compile(r"What is the greatest common divisor of (\d+) and (\d+)\?"), math.gcd),
    (re.compile(r"What is the sum of ((?:\d+, )*\d+) and (\d+)\?"), None),
]


def check_line(line):
    """Return None if the line's answer is correct, else a description."""
    question, sep, answer = line.rpartition("? ")
    if not sep:
        return "no '? ' in line"
    question += "?"
    for pattern, evaluate in PATTERNS:
        m = pattern.fullmatch(question)
        if not m:
            continue
        g = m.groups()
        if question.startswith("Solve"):
            a, sign, b, c = int(g[0]), g[1], int(g[2]), int(g[3])
            b = b if sign == "+" else -b
            try:
                x = int(answer)
            except ValueError:
                return "non-integer solution"
            return None if a * x + b == c else "wrong solution"
        if question.startswith("Let a ="):
            a, m_, op, c = int(g[0]), int(g[1]), g[2], int(g[3])
            expected = a * m_ + c if op == "+" else a * m_ - c
        elif question.startswith("What is the sum of"):
            values = [int(v) for v in g[0].split(", ")] + [int(g[1])]
            expected = sum(values)
        else:
            expected = evaluate(*(int(v) for v in g))
        return None if str(expected) == answer else "expected %s" % expected
    return "no pattern matches"


class GenMathTest(unittest.TestCase):
    def test_deterministic_for_a_seed(self):
        self.assertEqual(gen_math.generate(7, 50_000), gen_math.generate(7, 50_000))

    def test_default_seed_is_deterministic(self):
        self.assertEqual(gen_math.generate(target_bytes=20_000), gen_math.generate(target_bytes=20_000))

    def test_different_seed_differs(self):
        self.assertNotEqual(gen_math.generate(7, 50_000), gen_math.generate(8, 50_000))

    def test_size_reaches_target(self):
        docs = gen_math.generate(3, 100_000)
        total = sum(len(d.encode()) + 3 for d in docs)
        self.assertGreaterEqual(total, 100_000)
        self.assertLess(total, 100_000 + 1000)

    def test_documents_are_small_problem_sets(self):
        for doc in gen_math.generate(5, 50_000):
            self.assertIn(len(doc.split("\n")), range(3, 7))
            self.assertNotIn("\x1e", doc)
            self.assertEqual(doc, doc.strip())

    def test_every_answer_is_correct(self):
        lines = [line for doc in gen_math.generate(11, 400_000) for line in doc.split("\n")]
        self.assertGreater(len(lines), 5000)
        errors = [(line, err) for line in lines for err in [check_line(line)] if err]
        self.assertEqual(errors[:5], [])

    def test_every_kind_appears(self):
        lines = [line for doc in gen_math.generate(11, 200_000) for line in doc.split("\n")]
        for pattern, _ in PATTERNS:
            self.assertTrue(any(pattern.fullmatch(line.rpartition("? ")[0] + "?") for line in lines),
                            pattern.pattern)

    def test_checker_rejects_wrong_answers(self):
        self.assertIsNone(check_line("Let x = 347 + 58. What is x? 405"))
        self.assertIsNotNone(check_line("Let x = 347 + 58. What is x? 406"))
        self.assertIsNotNone(check_line("Solve 3*x - 7 = 8. What is x? 4"))
        self.assertIsNone(check_line("Solve 3*x - 7 = 8. What is x? 5"))
        self.assertIsNotNone(check_line("What is the sum of 1, 2 and 3? 7"))
        self.assertIsNotNone(check_line("What are the quotient and remainder when 7 is divided by 2? 3 remainder 2"))


if __name__ == "__main__":
    unittest.main()
