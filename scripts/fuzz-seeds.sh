#!/usr/bin/env bash
# fuzz-seeds.sh - minimize each target's working corpus (fuzz/corpus/<target>/, grown by
# scripts/fuzz.sh) with `cargo fuzz cmin` and keep the result in fuzz/seeds/<target>/, the
# corpus in the repository that every fuzz run (CI included) starts from.
#
# usage: scripts/fuzz-seeds.sh [TARGET ...]   (default: every target with a working corpus)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT/fuzz"
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 2; }
targets=${*:-$(ls corpus)}
for t in $targets; do
    [ -d "corpus/$t" ] || { echo "no corpus/$t (run scripts/fuzz.sh $t first)" >&2; exit 1; }
    before=$(ls "corpus/$t" | wc -l)
    cargo fuzz cmin -s none -O "$t" "corpus/$t" -- -max_len=4096 >"${TMPDIR:-/tmp}/cmin-$t.log" 2>&1
    rm -rf "seeds/$t"
    mkdir -p "seeds/$t"
    cp "corpus/$t"/* "seeds/$t"/
    echo "$t: $before inputs minimized to $(ls "seeds/$t" | wc -l) ($(du -sk --apparent-size "seeds/$t" | cut -f1) KiB)"
done
