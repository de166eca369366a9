#!/usr/bin/env python3
"""Builds the multi-domain training corpus from installed Debian 12 packages.

Called by scripts/build-corpus.sh (which installs the packages first); see
docs/corpus.md.  Usage:  build_corpus.py OUTDIR

For every domain it collects natural documents in a fixed order, cleans them
(corpus_lib.clean), drops exact duplicates (first one kept), sub-samples big
sources to a byte budget by a hash of each document's source id, splits off a
content-hashed ~5 % held-out set and writes OUTDIR/<domain>.train.txt and
OUTDIR/<domain>.heldout.txt, then OUTDIR/MANIFEST.md and OUTDIR/SHA256SUMS.
The corpus SHA-256 is printed on the last line.
"""

import concurrent.futures
import gzip
import hashlib
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus_lib as cl  # noqa: E402
import gen_math  # noqa: E402

MB = 1_000_000
FORTUNE_DIR = "/usr/share/games/fortunes/"
PYTHON_LIB = "/usr/lib/python3.11/"
MATH_SEED = gen_math.DEFAULT_SEED

# Short licence summaries (docs/corpus.md and shared research training.md §5);
# the `License:` fields of DEP-5 copyright files are added automatically.
LICENCES = {
    "fortunes": "BSD fortune collection (program BSD); copyright of single quotes mixed",
    "fortunes-min": "BSD fortune collection (program BSD); copyright of single quotes mixed",
    "dict-devil": "public domain (Bierce, 1911; copyright expired)",
    "dict-jargon": "public domain (Jargon File 4.4.7); Debian packaging GPL-2+",
    "libpython3.11-minimal": "PSF-2.0 (Python Software Foundation License)",
    "libpython3.11-stdlib": "PSF-2.0 (Python Software Foundation License)",
    "linux-libc-dev": "GPL-2 with Linux syscall note / LGPL-2.1 / GPL-2+-or-X11 mix",
    "libc6-dev": "LGPL-2.1+ (GNU C Library), some files BSD/ISC/CMU-style",
    "manpages": "mixed: Linux-man-pages-copyleft, GPL-2+, BSD, Expat and others",
    "manpages-dev": "mixed: Linux-man-pages-copyleft, GPL-2+, BSD, Expat and others",
    "fortunes-de": "GPL-2+",
    "fortunes-ru": "GPL-2 / GPL-2+",
    "fortunes-es": "GPL-2+ (per Debian copyright); collected quotes",
    "fortunes-zh": "GPL-3+",
}

# Domain table: name, description, budget in bytes (None = keep everything).
DOMAINS = [
    ("en", "English prose: fortune cookies, Devil's Dictionary, Jargon File", 4 * MB),
    ("python", "Python 3.11 standard library source (no tests)", 3 * MB),
    ("c", "C headers from /usr/include (Linux UAPI and glibc)", int(2.5 * MB)),
    ("man", "technical English: Linux man-pages rendered to plain text", int(2.5 * MB)),
    ("de", "German fortunes", None),
    ("ru", "Russian fortunes", 3 * MB),
    ("es", "Spanish fortunes (without the offensive off/ set)", None),
    ("zh", "Chinese fortunes, Tang and Song poems", None),
    ("math", "generated arithmetic and simple algebra problem sets", 2 * MB),
]


class Fail(Exception):
    """An error reported to the user as one line."""


# ---------------------------------------------------------------- packages

def run(cmd, **kw):
    try:
        return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw).stdout
    except FileNotFoundError:
        raise Fail("command not found: %s" % cmd[0])
    except subprocess.CalledProcessError as e:
        err = e.stderr.decode("utf-8", "replace").strip().splitlines()
        raise Fail("%s failed: %s" % (" ".join(cmd), err[-1] if err else "exit %d" % e.returncode))


def package_version(pkg):
    out = run(["dpkg-query", "-W", "-f=${Status}\t${Version}", pkg]).decode()
    status, version = out.split("\t")
    if not status.endswith("installed") or status.split()[-1] != "installed":
        raise Fail("package %s is not installed (run scripts/build-corpus.sh as root)" % pkg)
    return version


def package_files(pkg, prefix, suffixes=None):
    """Sorted regular files (no symlinks) of an installed package under prefix."""
    paths = run(["dpkg-query", "-L", pkg]).decode("utf-8").splitlines()
    out = []
    for p in paths:
        if not p.startswith(prefix) or os.path.islink(p) or not os.path.isfile(p):
            continue
        if suffixes and not p.endswith(suffixes):
            continue
        out.append(p)
    return sorted(set(out))


def copyright_licences(pkg):
    """Distinct `License:` short names of a DEP-5 copyright file (sorted)."""
    path = "/usr/share/doc/%s/copyright" % pkg
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    if not text.startswith("Format:"):  # not machine-readable (DEP-5)
        return []
    names = {line[len("License:"):].strip() for line in text.splitlines() if line.startswith("License:")}
    return sorted(n for n in names if n)


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------- collection

class Collector:
    """Collects (source id, cleaned text) pairs and counts what it drops."""

    def __init__(self):
        self.items = []
        self.invalid = 0
        self.empty = 0

    def add(self, key, raw, squeeze=True):
        if isinstance(raw, bytes):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                self.invalid += 1
                return
        text = cl.clean(raw, squeeze_blank_lines=squeeze)
        if text is None:
            self.empty += 1
        else:
            self.items.append((key, text))


def fortune_files(pkg, subdir=""):
    """Fortune text files of a package: no .dat indexes, no .u8 symlinks, no
    offensive off/ sets, no ASCII-art collections."""
    files = []
    for p in package_files(pkg, FORTUNE_DIR + subdir):
        name = os.path.basename(p)
        if name.endswith((".dat", ".u8")) or "/off/" in p or "ascii" in name:
            continue
        files.append(p)
    if not files:
        raise Fail("no fortune files found for package %s under %s" % (pkg, FORTUNE_DIR + subdir))
    return files


def add_fortunes(col, files):
    for path in files:
        for i, record in enumerate(cl.split_fortune_file(read(path))):
            col.add("%s#%d" % (path, i), record)


def add_dictd(col, name):
    """Entries of a dictd database, in file order; the 00-database-* metadata
    entries are skipped.  The .index file gives headword, offset, length
    (base64 numbers) into the uncompressed .dict.dz (dictzip is gzip)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    def b64(s):
        n = 0
        for ch in s:
            n = n * 64 + alphabet.index(ch)
        return n

    index = "/usr/share/dictd/%s.index" % name
    data = gzip.decompress(read("/usr/share/dictd/%s.dict.dz" % name))
    spans = set()
    for line in read(index).decode("utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) < 3 or fields[0].startswith(("00-database", "00database")):
            continue
        spans.add((b64(fields[1]), b64(fields[2])))
    if not spans:
        raise Fail("no entries in %s" % index)
    for off, length in sorted(spans):
        col.add("%s@%d" % (name, off), data[off:off + length])


# One function per domain; each returns (collector, [source packages], notes).

def domain_en():
    # English prose: every fortune-mod quote file (fortunes + fortunes-min),
    # then the Devil's Dictionary and the Jargon File, one entry per document.
    col = Collector()
    add_fortunes(col, sorted(fortune_files("fortunes") + fortune_files("fortunes-min")))
    add_dictd(col, "devil")
    add_dictd(col, "jargon")
    return col, ["fortunes", "fortunes-min", "dict-devil", "dict-jargon"], \
        "fortune records (split at `%` lines; ascii-art file skipped) and dictionary entries, " \
        "sub-sampled by SHA-256 of the source id (path#record or dictionary@offset)"


def domain_python():
    # One document per .py file of the standard library; test directories,
    # idle tests and anything outside /usr/lib/python3.11 are left out.
    col = Collector()
    skip = {"test", "tests", "idle_test", "__pycache__", "site-packages", "dist-packages"}
    pkgs = ["libpython3.11-minimal", "libpython3.11-stdlib"]
    files = sorted(p for pkg in pkgs for p in package_files(pkg, PYTHON_LIB, (".py",))
                   if not skip.intersection(p.split("/")))
    if not files:
        raise Fail("no Python standard library files under " + PYTHON_LIB)
    for p in files:
        col.add(p, read(p), squeeze=False)
    return col, pkgs, "one document per .py file (test/ and tests/ excluded), sub-sampled by SHA-256 of the path"


def domain_c():
    # One document per header file; kernel UAPI headers and glibc headers.
    col = Collector()
    pkgs = ["linux-libc-dev", "libc6-dev"]
    files = sorted(p for pkg in pkgs for p in package_files(pkg, "/usr/include/", (".h",)))
    if not files:
        raise Fail("no C headers under /usr/include")
    for p in files:
        col.add(p, read(p), squeeze=False)
    return col, pkgs, "one document per .h file, sub-sampled by SHA-256 of the path"


GROFF = ["groff", "-t", "-man", "-Tutf8",
         "-rLL=78n", "-rLT=78n",  # fixed 78-column line and title length
         "-rHY=0",                # no hyphenation
         "-P-cbou"]               # grotty: no SGR escapes, no bold/underline overstrikes
GROFF_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "TZ": "UTC", "HOME": "/"}


def render_man(path):
    """Plain text of one man page, or None for a .so redirection or a page
    groff cannot render."""
    roff = read(path)
    if path.endswith(".gz"):
        roff = gzip.decompress(roff)
    for line in roff.split(b"\n"):
        if line.startswith(b".so "):
            return None
        if line.strip() and not line.startswith((b'.\\"', b"'\\\"")):
            break
    # ".ad l": ragged right instead of justified (no padding spaces); groff
    # 1.22.4's man macros have no -dAD option for this.
    p = subprocess.run(GROFF, input=b".ad l\n" + roff, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=GROFF_ENV)
    return p.stdout if p.returncode == 0 else None


def domain_man(budget):
    # Linux man-pages (sections 2, 3, 4, 5, 7 ... as shipped by manpages and
    # manpages-dev), rendered with groff.  Rendering is the slow part, so the
    # pages are rendered in the order of SHA-256(path) and rendering stops
    # once the budget is reached; the chosen pages are then put back in path
    # order.  Symlinks and `.so` redirections are skipped.
    pkgs = ["manpages", "manpages-dev"]
    files = sorted(p for pkg in pkgs for p in package_files(pkg, "/usr/share/man/man"))
    if not files:
        raise Fail("no man pages under /usr/share/man (is /usr/share/man excluded in /etc/dpkg/dpkg.cfg.d?)")
    order = sorted(files, key=lambda p: (cl.sha256_hex(p), p))
    rendered = {}
    total = 0
    skipped = 0
    probe = Collector()
    workers = max(1, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(order), 4 * workers):
            if total >= budget:
                break
            chunk = order[start:start + 4 * workers]
            for path, out in zip(chunk, pool.map(render_man, chunk)):
                if total >= budget:
                    break
                if out is None:
                    skipped += 1
                    continue
                n_items = len(probe.items)
                probe.add(path, out)
                if len(probe.items) > n_items:
                    rendered[path] = probe.items[-1][1]
                    total += len(rendered[path].encode("utf-8")) + 3
    col = Collector()
    col.invalid, col.empty = probe.invalid, probe.empty
    col.items = [(p, rendered[p]) for p in sorted(rendered)]
    return col, pkgs + ["groff-base"], \
        "man pages rendered by `%s` (%d of %d paths used, %d .so/failed skipped)" % (
            " ".join(GROFF), len(rendered), len(files), skipped)


def domain_fortunes(pkg, subdir):
    def build():
        col = Collector()
        add_fortunes(col, fortune_files(pkg, subdir))
        return col, [pkg], "fortune records from %s%s (split at `%%` lines)" % (FORTUNE_DIR, subdir)
    return build


def domain_zh():
    # fortunes-zh installs its three files at the top level of the fortune
    # directory (chinese, song100, tang300); they colour titles with ANSI
    # escapes, which clean() removes.
    col = Collector()
    add_fortunes(col, fortune_files("fortunes-zh"))
    return col, ["fortunes-zh"], "fortune records (ANSI colour escapes stripped)"


def domain_math():
    # Generated text: scripts/corpus/gen_math.py with a fixed seed.
    col = Collector()
    for i, doc in enumerate(gen_math.generate(MATH_SEED, 2 * MB)):
        col.add("math#%d" % i, doc)
    return col, ["python3-minimal"], \
        "generated by scripts/corpus/gen_math.py, seed %d, ~2 MB (interpreter package listed)" % MATH_SEED


BUILDERS = {
    "en": domain_en, "python": domain_python, "c": domain_c,
    "de": domain_fortunes("fortunes-de", "de/"), "ru": domain_fortunes("fortunes-ru", "ru/"),
    "es": domain_fortunes("fortunes-es", "es/"), "zh": domain_zh, "math": domain_math,
}


# ---------------------------------------------------------------- output

def build(outdir):
    results = []
    for name, desc, budget in DOMAINS:
        if name == "man":
            col, pkgs, notes = domain_man(budget)
        else:
            col, pkgs, notes = BUILDERS[name]()
        candidates = len(col.items) + col.invalid + col.empty
        items = []
        seen = set()
        for key, text in col.items:  # de-duplicate, first one kept
            h = hashlib.sha256(text.encode("utf-8")).digest()
            if h not in seen:
                seen.add(h)
                items.append((key, text))
        duplicates = len(col.items) - len(items)
        kept = cl.cap_by_hash(items, budget, key=lambda kv: kv[0], size=lambda kv: len(kv[1].encode("utf-8")) + 3)
        docs = [text for _, text in kept]
        train, held = cl.split(docs)
        if not train or not held:
            raise Fail("domain %s produced too few documents (%d)" % (name, len(docs)))
        files = {}
        for split_name, split_docs in (("train", train), ("heldout", held)):
            fname = "%s.%s.txt" % (name, split_name)
            data = cl.write_records(os.path.join(outdir, fname), split_docs)
            files[split_name] = (fname, len(split_docs), len(data), cl.sha256_hex(data))
        print("build-corpus: %-6s %7d docs, %9d bytes" % (name, len(docs), files["train"][2] + files["heldout"][2]),
              flush=True)
        results.append(dict(name=name, desc=desc, budget=budget, pkgs=pkgs, notes=notes, files=files,
                            candidates=candidates, invalid=col.invalid, empty=col.empty,
                            duplicates=duplicates, subsampled=len(items) - len(kept)))
    return results


def write_manifest(outdir, results):
    sums = sorted("%s  %s\n" % (sha, fname) for r in results for fname, _, _, sha in r["files"].values())
    corpus_sha = cl.sha256_hex("".join(sums))
    with open(os.path.join(outdir, "SHA256SUMS"), "w", encoding="utf-8") as f:
        f.write("".join(sums))

    arch = run(["dpkg", "--print-architecture"]).decode().strip()
    out = []
    w = out.append
    w("# dsv3-explorer training corpus: MANIFEST\n")
    w("Built by `scripts/build-corpus.sh` from Debian 12 packages (architecture %s). "
      "Documentation: `docs/corpus.md`. Do not redistribute: several sources are GPL-licensed "
      "and are used here only as training data.\n" % arch)
    w("**Corpus SHA-256:** `%s`\n" % corpus_sha)
    w("(the SHA-256 of the sorted per-file lines `<sha256>  <file>`; check with "
      "`sha256sum *.txt | LC_ALL=C sort | sha256sum`, or `sha256sum -c SHA256SUMS`.)\n")
    w("Format: UTF-8, LF line endings; every document is followed by a line holding only the byte 0x1E. "
      "Held-out: documents whose SHA-256(\"dsv3-corpus-heldout\\0\" + text) has its first 8 bytes "
      "(big-endian) mod 10000 < %d (about %.0f %%).\n" % (cl.HELDOUT_PER_10000, cl.HELDOUT_PER_10000 / 100))
    w("Tools: python3-minimal %s, groff-base %s.\n" % (package_version("python3-minimal"), package_version("groff-base")))
    w("## Summary\n")
    w("| domain | train docs | train bytes | held-out docs | held-out bytes |")
    w("|---|---:|---:|---:|---:|")
    tot = [0, 0, 0, 0]
    for r in results:
        t, h = r["files"]["train"], r["files"]["heldout"]
        w("| %s | %d | %d | %d | %d |" % (r["name"], t[1], t[2], h[1], h[2]))
        for i, v in enumerate((t[1], t[2], h[1], h[2])):
            tot[i] += v
    w("| **total** | %d | %d | %d | %d |" % tuple(tot))
    w("\nTotal bytes: %d\n" % (tot[1] + tot[3]))
    for r in results:
        w("## `%s`: %s\n" % (r["name"], r["desc"]))
        w("Documents: %s.\n" % r["notes"])
        w("Candidates %d; dropped: %d not valid UTF-8, %d empty, %d exact duplicates, %d by sub-sampling%s.\n" % (
            r["candidates"], r["invalid"], r["empty"], r["duplicates"], r["subsampled"],
            "" if r["budget"] is None else " (budget %d bytes)" % r["budget"]))
        w("| source package | version | licence | `License:` fields in /usr/share/doc/<pkg>/copyright |")
        w("|---|---|---|---|")
        for pkg in r["pkgs"]:
            lic = LICENCES.get(pkg, "tool only (not a text source)" if pkg in ("groff-base", "python3-minimal") else "?")
            if r["name"] == "math":
                lic = "generated text (no source text); generator is part of this repository"
            fields = ", ".join(copyright_licences(pkg)) or "(not machine-readable)"
            w("| %s | %s | %s | %s |" % (pkg, package_version(pkg), lic, fields))
        w("")
        w("| file | documents | bytes | SHA-256 |")
        w("|---|---:|---:|---|")
        for fname, ndocs, nbytes, sha in r["files"].values():
            w("| %s | %d | %d | `%s` |" % (fname, ndocs, nbytes, sha))
        w("")
    with open(os.path.join(outdir, "MANIFEST.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    return corpus_sha, tot


def main():
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print("usage: build_corpus.py OUTDIR", file=sys.stderr)
        return 2
    outdir = sys.argv[1]
    try:
        if not os.path.isdir(outdir):
            raise Fail("output directory %s does not exist" % outdir)
        results = build(outdir)
        corpus_sha, tot = write_manifest(outdir, results)
    except Fail as e:
        print("build-corpus: error: %s" % e, file=sys.stderr)
        return 1
    except Exception as e:  # anything unexpected: still one line
        print("build-corpus: error: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    print("build-corpus: total %d bytes (train %d, held-out %d)" % (tot[1] + tot[3], tot[1], tot[3]))
    print("build-corpus: corpus SHA-256 %s" % corpus_sha)
    return 0


if __name__ == "__main__":
    sys.exit(main())
