#!/usr/bin/env bash
# Builds the multi-domain training corpus for the tiny DeepSeek-V3 from
# Debian 12 packages only (no network access besides apt).  See docs/corpus.md.
#
#   scripts/build-corpus.sh [OUTDIR]      default OUTDIR: corpus/ in the repo root
#
# Domains (each OUTDIR/<domain>.train.txt + OUTDIR/<domain>.heldout.txt):
#   en      English prose: fortunes, fortunes-min, Devil's Dictionary, Jargon File
#   python  Python 3.11 standard library source (no tests), ~3 MB by path hash
#   c       C headers of linux-libc-dev and libc6-dev, ~2.5 MB by path hash
#   man     Linux man-pages rendered to plain text with groff, ~2.5 MB
#   de ru es zh   fortunes-de / -ru / -es (without off/) / -zh
#   math    generated arithmetic and algebra (scripts/corpus/gen_math.py, fixed seed)
# The work is done by scripts/corpus/build_corpus.py; this wrapper installs the
# packages, runs it in a clean environment into a temporary folder, swaps the
# result into OUTDIR, checks the corpus SHA-256 and prints it as the last line.
# Running it again gives a bit-identical corpus (same package versions).
set -euo pipefail

die() { echo "build-corpus: error: $*" >&2; exit 1; }

usage() {
  cat <<'USAGE'
usage: scripts/build-corpus.sh [OUTDIR]

Builds the training corpus (about 23 MB, 9 domains) from Debian 12 packages.
Installs the packages it needs with apt-get when they are missing (needs root
then). OUTDIR defaults to corpus/ in the repository root; an existing OUTDIR is
replaced only if it is empty or holds a MANIFEST.md from an earlier build.
Output: OUTDIR/<domain>.{train,heldout}.txt, OUTDIR/MANIFEST.md, OUTDIR/SHA256SUMS.
The last line printed is the corpus SHA-256. See docs/corpus.md.
USAGE
}

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  -*) die "unknown option $1 (see --help)" ;;
esac
[ $# -le 1 ] || die "too many arguments (see --help)"

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
outdir=${1:-$repo_root/corpus}
outdir=${outdir%/}
[ -n "$outdir" ] || die "OUTDIR must not be /"

# The corpus is only reproducible on the release whose package versions it
# records; allow others explicitly.
if [ "${CORPUS_ALLOW_ANY_OS:-0}" != 1 ]; then
  # shellcheck source=/dev/null
  os_id=$(. /etc/os-release 2>/dev/null && echo "${ID:-}:${VERSION_ID:-}")
  [ "$os_id" = "debian:12" ] || die "this script targets Debian 12 (found '$os_id'); set CORPUS_ALLOW_ANY_OS=1 to try anyway"
fi

# Every package the corpus is built from, plus the tools (python3, groff).
packages=(
  python3-minimal libpython3.11-minimal libpython3.11-stdlib  # python domain + the builder
  groff-base manpages manpages-dev                             # man
  linux-libc-dev libc6-dev                                     # c
  fortunes fortunes-min dict-devil dict-jargon                 # en
  fortunes-de fortunes-ru fortunes-es fortunes-zh              # de ru es zh
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "packages missing (${missing[*]}); run as root to install them"
  echo "build-corpus: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_log=$(mktemp)
  apt-get update -qq >"$apt_log" 2>&1 || die "apt-get update failed: $(tail -n 1 "$apt_log")"
  # Only the missing ones (on a fresh machine: all of them), so that a rerun
  # never upgrades packages that are already installed.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$apt_log" 2>&1 ||
    die "apt-get install failed: $(tail -n 1 "$apt_log")"
  rm -f "$apt_log"
fi

# Replace OUTDIR only if it looks like an earlier corpus (or is empty).
if [ -e "$outdir" ]; then
  [ -d "$outdir" ] || die "$outdir exists and is not a directory"
  if [ -n "$(ls -A "$outdir")" ] && [ ! -f "$outdir/MANIFEST.md" ]; then
    die "$outdir is not empty and holds no MANIFEST.md; refusing to replace it"
  fi
fi
mkdir -p "$(dirname "$outdir")" || die "cannot create the parent folder of $outdir"
tmp=$(mktemp -d "$outdir.tmp.XXXXXX") || die "cannot create a temporary folder next to $outdir"
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"

start=$(date +%s%N)
# Clean, fixed environment: C.UTF-8 locale, UTC, no hash randomisation, no
# .pyc files written into scripts/corpus.
if ! env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 TZ=UTC HOME=/ \
     PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 \
     /usr/bin/python3 "$repo_root/scripts/corpus/build_corpus.py" "$tmp"; then
  exit 1  # build_corpus.py has printed the reason
fi

# Independent check of the corpus SHA-256 with coreutils.
corpus_sha=$(cd "$tmp" && sha256sum -- *.txt | LC_ALL=C sort | sha256sum | cut -d' ' -f1)
grep -q "$corpus_sha" "$tmp/MANIFEST.md" || die "corpus SHA-256 $corpus_sha does not match MANIFEST.md"

rm -rf "$outdir"
mv "$tmp" "$outdir" || die "cannot move the corpus to $outdir"
trap - EXIT
end=$(date +%s%N)
echo "build-corpus: wrote $outdir in $(( (end - start) / 1000000000 )).$(( (end - start) / 100000000 % 10 )) s"
echo "$corpus_sha"
