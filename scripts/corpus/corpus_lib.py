"""Shared helpers for scripts/build-corpus.sh: cleaning, de-duplication,
sub-sampling, the held-out split and the record-separator file format.

Everything here is deterministic: choices depend only on SHA-256 hashes of
paths or document contents, never on random state, dict/set iteration order
of unhashed data, or directory enumeration order.
"""

import hashlib
import re

# Every document in an output file is followed by a line holding only this
# byte (ASCII RS, "record separator"):  doc1 \n \x1e \n doc2 \n \x1e \n ...
RS = "\x1e"
RECORD_END = "\n" + RS + "\n"

# Fraction of documents that go to the held-out file, in 1/10000 units.
HELDOUT_PER_10000 = 500  # 5 %

_ANSI_CSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")  # ESC [ ... m and friends
_OVERSTRIKE = re.compile(r"[^\n]\x08")  # "_\bX" (underline), "X\bX" (bold)
# C0 controls except TAB and LF, plus DEL and any stray RS-like control.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_BLANK_RUN = re.compile(r"\n{3,}")


def sha256_hex(data):
    """SHA-256 of a str (UTF-8) or bytes, as 64 hex digits."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def clean(raw, squeeze_blank_lines=True):
    """Normalise one document.

    raw is bytes (decoded strictly as UTF-8) or str.  Returns the cleaned
    text, or None if the document is not valid UTF-8 or ends up empty.
    Steps: CR LF / CR -> LF; drop backspace overstrikes and ANSI escape
    sequences; drop other control characters (TAB and LF are kept); strip
    trailing whitespace on every line; drop leading and trailing blank lines;
    optionally squeeze runs of blank lines to a single blank line.
    """
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            return None
    else:
        text = raw
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _ANSI_CSI.sub("", text)
    while "\x08" in text:
        before = text
        text = _OVERSTRIKE.sub("", text)
        if text == before:  # a backspace at the start of a line
            text = text.replace("\x08", "")
    text = _CONTROL.sub("", text)
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    text = "\n".join(lines)
    if squeeze_blank_lines:
        text = _BLANK_RUN.sub("\n\n", text)
    return text if text else None


def dedup(docs):
    """Drop exact duplicates, keeping the first occurrence (order kept)."""
    seen = set()
    out = []
    for doc in docs:
        digest = hashlib.sha256(doc.encode("utf-8")).digest()
        if digest not in seen:
            seen.add(digest)
            out.append(doc)
    return out


def cap_by_hash(items, budget_bytes, key, size):
    """Deterministic sub-sample of items to about budget_bytes.

    Items are visited in the order of SHA-256(key(item)) and taken until
    their total size (size(item)) reaches budget_bytes (the item that
    crosses the budget is included).  The chosen items are returned in
    their original order.  budget_bytes=None keeps everything.
    """
    if budget_bytes is None:
        return list(items)
    order = sorted(range(len(items)), key=lambda i: (sha256_hex(key(items[i])), i))
    chosen = set()
    total = 0
    for i in order:
        if total >= budget_bytes:
            break
        chosen.add(i)
        total += size(items[i])
    return [item for i, item in enumerate(items) if i in chosen]


def is_heldout(doc):
    """True for the fixed ~5 % of documents that form the held-out split.

    Depends only on the document's content, so a document stays on the
    same side of the split whatever else is in the corpus.
    """
    digest = hashlib.sha256(b"dsv3-corpus-heldout\0" + doc.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 10000 < HELDOUT_PER_10000


def split(docs):
    """(train, heldout) lists, each in the original order."""
    train, heldout = [], []
    for doc in docs:
        (heldout if is_heldout(doc) else train).append(doc)
    return train, heldout


def format_records(docs):
    """The file content for docs: every document followed by an RS line."""
    for doc in docs:
        if RS in doc:
            raise ValueError("document contains the record separator byte 0x1E")
    return "".join(doc + RECORD_END for doc in docs)


def parse_records(text):
    """Inverse of format_records."""
    if not text:
        return []
    if not text.endswith(RECORD_END):
        raise ValueError("file does not end with a record separator line")
    return text[: -len(RECORD_END)].split(RECORD_END)


def write_records(path, docs):
    """Write docs to path (UTF-8, LF); returns the bytes written."""
    data = format_records(docs).encode("utf-8")
    with open(path, "wb") as f:
        f.write(data)
    return data


def read_records(path):
    with open(path, "rb") as f:
        return parse_records(f.read().decode("utf-8"))


def split_fortune_file(data):
    """Split the bytes of a fortune(6) file into records (bytes).

    Records are separated by lines holding only '%'.  Each record is
    returned undecoded so that a bad record can be dropped on its own.
    """
    records = []
    current = []
    for line in data.split(b"\n"):
        if line.rstrip(b"\r") == b"%":
            records.append(b"\n".join(current))
            current = []
        else:
            current.append(line)
    records.append(b"\n".join(current))
    return records
