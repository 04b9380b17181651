#!/usr/bin/env bash
# Regenerates this folder from a folder of the original downloads (the layout data/README.md
# describes, with the upstream checksums). Verifies the upstream checksums first, then copies
# (gzip -9 -n for text, IDX files already gzipped), then rewrites SHA256SUMS over the files as
# stored here. Maintainers only: users never need it (the data are vendored).
# Usage: data/vendor.sh SOURCE_DIR
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -ne 1 ]; then
    echo "usage: data/vendor.sh SOURCE_DIR (a folder of the original downloads)" >&2
    exit 2
fi
SRC="$(cd "$1" && pwd)"

# What is vendored, as paths relative to SRC (sorted for a stable SHA256SUMS).
list_sources() {
    (
        cd "$SRC"
        ls co2/*.csv
        ls mnist/*-ubyte.gz
        ls fashion-mnist/t10k-*-ubyte.gz
        find uci -type f -name '*.txt'
    ) | LC_ALL=C sort
}

# 1. Upstream checksums: every selected file must be listed and match.
upstream="$(mktemp)"
trap 'rm -f "$upstream"' EXIT
while read -r rel; do
    line="$(grep -E "^[0-9a-f]{64}  (\./)?${rel//./\\.}\$" "$SRC/SHA256SUMS" || true)"
    if [ -z "$line" ]; then
        echo "vendor.sh: $rel is not listed in $SRC/SHA256SUMS" >&2
        exit 1
    fi
    echo "$line" >>"$upstream"
done < <(list_sources)
(cd "$SRC" && sha256sum --quiet -c "$upstream")
echo "upstream checksums OK ($(wc -l <"$upstream") files)"

# 2. Copy; text files compressed deterministically (-n: no name / timestamp in the header).
rm -rf "$HERE/co2" "$HERE/mnist" "$HERE/fashion-mnist" "$HERE/uci"
while read -r rel; do
    mkdir -p "$HERE/$(dirname "$rel")"
    case "$rel" in
        *.gz) cp "$SRC/$rel" "$HERE/$rel" ;;
        *) gzip -9 -n -c "$SRC/$rel" >"$HERE/$rel.gz" ;;
    esac
done < <(list_sources)

# 3. Manifest of the files as stored, relative to this folder.
(
    cd "$HERE"
    find co2 mnist fashion-mnist uci -type f | LC_ALL=C sort | xargs sha256sum
) >"$HERE/SHA256SUMS"
echo "wrote $HERE/SHA256SUMS ($(wc -l <"$HERE/SHA256SUMS") files)"
