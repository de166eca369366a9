#!/usr/bin/env python3
"""Tests for corpus_lib.py: cleaning, de-duplication, sub-sampling, the
held-out split and the record-separator format.
Run:  python3 scripts/corpus/test_split.py
"""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus_lib as cl  # noqa: E402


class CleanTest(unittest.TestCase):
    def test_line_endings_and_trailing_space(self):
        self.assertEqual(cl.clean(b"a  \r\nb\t\rc \n"), "a\nb\nc")

    def test_invalid_utf8_and_empty_are_dropped(self):
        self.assertIsNone(cl.clean(b"caf\xe9"))
        self.assertIsNone(cl.clean(b" \n\t\n"))
        self.assertIsNone(cl.clean(""))

    def test_escapes_and_overstrikes(self):
        self.assertEqual(cl.clean("\x1b[32;1mgreen\x1b[m text"), "green text")
        self.assertEqual(cl.clean("B\x08Bold _\x08u"), "Bold u")
        self.assertEqual(cl.clean("a\x1eb\x0cc\x00"), "abc")

    def test_blank_lines(self):
        self.assertEqual(cl.clean("\n\na\n\n\n\nb\n\n"), "a\n\nb")
        self.assertEqual(cl.clean("a\n\n\nb", squeeze_blank_lines=False), "a\n\n\nb")

    def test_utf8_kept(self):
        self.assertEqual(cl.clean("Grüße, привет, 你好".encode()), "Grüße, привет, 你好")


class DedupSplitTest(unittest.TestCase):
    def test_dedup_keeps_first(self):
        self.assertEqual(cl.dedup(["b", "a", "b", "c", "a"]), ["b", "a", "c"])

    def test_heldout_is_stable_and_about_5_percent(self):
        docs = ["document number %d\nsome text" % i for i in range(20000)]
        train, held = cl.split(docs)
        self.assertEqual(len(train) + len(held), len(docs))
        self.assertTrue(0.04 < len(held) / len(docs) < 0.06, len(held))
        # Content-based: the same documents are held out in any order or subset.
        train2, held2 = cl.split(list(reversed(docs)))
        self.assertEqual(sorted(held), sorted(held2))
        subset = docs[::3]
        self.assertEqual(cl.split(subset)[1], [d for d in held if d in set(subset)])
        # Order within each split follows the input order.
        self.assertEqual(train, [d for d in docs if d not in set(held)])

    def test_cap_by_hash(self):
        items = ["x" * 10 + str(i) for i in range(1000)]  # 11-13 bytes each
        chosen = cl.cap_by_hash(items, 3000, key=lambda s: s, size=len)
        total = sum(len(s) for s in chosen)
        self.assertTrue(3000 <= total < 3013)
        self.assertEqual(chosen, [s for s in items if s in set(chosen)])  # original order
        self.assertEqual(chosen, cl.cap_by_hash(list(items), 3000, key=lambda s: s, size=len))
        self.assertEqual(cl.cap_by_hash(items, None, key=str, size=len), items)


class RecordFormatTest(unittest.TestCase):
    docs = ["first doc\nline two", "second\n\n  indented", "ünïcödé 你好"]

    def test_format(self):
        self.assertEqual(cl.format_records(["a", "b\nc"]), "a\n\x1e\nb\nc\n\x1e\n")
        self.assertEqual(cl.format_records([]), "")

    def test_round_trip(self):
        self.assertEqual(cl.parse_records(cl.format_records(self.docs)), self.docs)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "x.train.txt")
            data = cl.write_records(path, self.docs)
            with open(path, "rb") as f:
                self.assertEqual(f.read(), data)
            self.assertEqual(cl.read_records(path), self.docs)

    def test_separator_in_document_rejected(self):
        with self.assertRaises(ValueError):
            cl.format_records(["bad\x1edoc"])
        with self.assertRaises(ValueError):
            cl.parse_records("no terminator")


class FortuneSplitTest(unittest.TestCase):
    def test_split_fortune_file(self):
        data = b"one\nline\n%\ntwo\r\n%\n%\nthree\n"
        self.assertEqual(cl.split_fortune_file(data), [b"one\nline", b"two\r", b"", b"three\n"])


if __name__ == "__main__":
    unittest.main()
