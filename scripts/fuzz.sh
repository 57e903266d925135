#!/usr/bin/env bash
# fuzz.sh - run the ferrosec-wire cargo-fuzz targets, each for a bounded time.
#
# usage: scripts/fuzz.sh [TARGET ...]        (default: all targets)
# env:   FUZZ_SECONDS   seconds per target (default 60)
#        FUZZ_JOBS      parallel libFuzzer jobs per target (default 1)
#        FUZZ_LOGDIR    libFuzzer logs (default /tmp/ferrosec-fuzz/<target>.log)
#        CARGO_TARGET_DIR  build dir (default fuzz/target)
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Works on stable Rust: the targets are
# built with `-s none` (no sanitizer), which needs no nightly.
# Corpora live in fuzz/corpus/<target>/ (not in git; seeded from fuzz/seeds/<target>/, the
# minimized corpus kept in the repository, and from the strongSwan fixtures), crashes in
# fuzz/artifacts/<target>/. To refresh the seeds after a long run: scripts/fuzz-seeds.sh.
# Exit status is non-zero if any target crashed.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${FUZZ_SECONDS:=60}"
: "${FUZZ_JOBS:=1}"
TARGETS=${*:-ikev2_roundtrip isakmp_roundtrip demux_4500 tcp_stream esp_decapsulate ah_decapsulate ikev1_responder ikev2_responder ikev2_intermediate x509_chain ipv4_reassembly}
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 2; }
cd "$ROOT/fuzz" || exit 2

# Seed corpora with the captured datagrams (IKE without the non-ESP marker for the IKE
# targets, whole UDP payloads for the demultiplexer).
seed() {
    local target=$1 dir=corpus/$1 f
    mkdir -p "$dir"
    # The minimized corpus kept in the repository (fuzz/seeds/<target>/, from earlier runs
    # with `cargo fuzz cmin`): every run starts from what the earlier ones reached.
    if [ -d "seeds/$target" ]; then
        cp -n "seeds/$target"/* "$dir"/ 2>/dev/null || true
    fi
    # Certificates and CRLs: the seeds in the repository are the whole corpus to start from.
    [ "$target" = x509_chain ] && return
    # IPv4 fragments in the target's own record format: the same (the IKE captures below
    # would only be noise).
    [ "$target" = ipv4_reassembly ] && return
    if [ "$target" = ikev2_responder ]; then
        # Its input is a script of messages (see the target's header), not a datagram: a
        # liveness check, a Delete of the IKE SA, a Notify in 3 fragments (in order, then
        # reordered with a duplicate), an old Message ID with AES-CBC, a clock advance.
        printf '%s' 0000000000 | xxd -r -p >"$dir/seed-liveness"
        printf '%s' 00002a00080000000801000000 | xxd -r -p >"$dir/seed-delete-ike"
        printf '%s' 00202900080000000800004000020000 | xxd -r -p >"$dir/seed-frag"
        printf '%s' 0020290008000000080000400002000403010102 | xxd -r -p >"$dir/seed-frag-reorder"
        printf '%s' 010000000004000000 | xxd -r -p >"$dir/seed-cbc-old-id"
        printf '%s' 0040000000ff | xxd -r -p >"$dir/seed-timeout"
        # A's own requests (the length's top bit): rekey the Child SA (also in 4 fragments),
        # rekey the IKE SA (also with AES-CBC), a new Child SA, delete the Child SA.
        printf '%s' 0001008000 | xxd -r -p >"$dir/seed-rekey-child"
        printf '%s' 00210080000300 | xxd -r -p >"$dir/seed-rekey-child-frag"
        printf '%s' 0001018000 | xxd -r -p >"$dir/seed-rekey-ike"
        printf '%s' 0101018000 | xxd -r -p >"$dir/seed-cbc-rekey-ike"
        printf '%s' 0001028000 | xxd -r -p >"$dir/seed-new-child"
        printf '%s' 0000038000 | xxd -r -p >"$dir/seed-delete-child"
        return
    fi
    if [ "$target" = ikev2_intermediate ]; then
        # A script of messages too (see the target's header): A's own IKE_INTERMEDIATE (ML-KEM
        # 768 or 1024) and then IKE_AUTH, whole; the IKE_INTERMEDIATE in 4 fragments; in 3
        # reordered with a duplicate; with two edits in the KE payload; IKE_AUTH sealed with
        # the keys of IKE_SA_INIT; a clock advance after IKE_INTERMEDIATE.
        printf '%s' 00000080008101 8000 | xxd -r -p >"$dir/seed-768-whole"
        printf '%s' 01000080008101 8000 | xxd -r -p >"$dir/seed-1024-whole"
        printf '%s' 01200080000300008101 8000 | xxd -r -p >"$dir/seed-1024-frag"
        printf '%s' 0020008000020004020301038101 8000 | xxd -r -p >"$dir/seed-768-frag-reorder"
        printf '%s' 0000008002 0010ff 020080 8101 8000 | xxd -r -p >"$dir/seed-768-ke-edits"
        printf '%s' 00000080000101 8000 | xxd -r -p >"$dir/seed-768-auth-old-keys"
        printf '%s' 0040008000 3c 8101 8000 | xxd -r -p >"$dir/seed-768-timeout"
        return
    fi
    if [ "$target" = ikev1_responder ]; then
        # Byte 0 = mode and authentication (bit 0 aggressive, bit 1 signatures), then edits:
        # a clean handshake of each kind, and main mode with signatures and a flipped byte in
        # message 5 (the first encrypted one: ID, CERT, SIG).
        printf '%s' 02 | xxd -r -p >"$dir/seed-sig-main"
        printf '%s' 03 | xxd -r -p >"$dir/seed-sig-aggressive"
        printf '%s' 0205 3001 | xxd -r -p >"$dir/seed-sig-main-edit5"
    fi
    if [ "$target" = tcp_stream ]; then
        # Byte 0: prefix expected + piece size, byte 1: maximum frame (see the target), then a
        # stream: "IKETCP" and each captured UDP 4500 payload framed with its length.
        local stream="" hex
        for f in "$ROOT"/crates/wire/tests/fixtures/*.tsv; do
            while read -r hex; do
                hex=${hex#00000000}
                stream+=$(printf '%04x00000000%s' $(( ${#hex} / 2 + 6 )) "$hex")
            done < <(awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "udp.payload") c = i; next }
                                 { print $c }' "$f" | head -8)
        done
        printf '%s' "ff00494b4554435000" | xxd -r -p >"$dir/seed-prefix-keepalive-bad"
        printf '%s' "0100494b455443500004ffff" | xxd -r -p >"$dir/seed-short-frames"
        printf '%s' "0700494b45544350${stream}" | xxd -r -p | head -c 4000 >"$dir/seed-captured"
        return
    fi
    for f in "$ROOT"/crates/wire/tests/fixtures/*.tsv; do
        awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "udp.payload") c = i; next }
                    { print NR, $c }' "$f" |
        while read -r n hex; do
            case $target in
                demux_4500) ;;
                *) hex=${hex#00000000} ;;
            esac
            printf '%s' "$hex" | xxd -r -p >"$dir/seed-$(basename "$f" .tsv)-$n"
        done
    done
}

LOGDIR=${FUZZ_LOGDIR:-${TMPDIR:-/tmp}/ferrosec-fuzz}
mkdir -p "$LOGDIR"
rc=0
for t in $TARGETS; do
    seed "$t"
    echo "=== $t: ${FUZZ_SECONDS}s"
    jobs=()
    [ "$FUZZ_JOBS" -gt 1 ] && jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
    # A crash, a panic or a target that does not build ends non-zero: that fails the run
    # (a build failure leaves no artifact to find).
    if ! cargo fuzz run -s none -O "$t" -- -max_total_time="$FUZZ_SECONDS" "${jobs[@]}" \
        -max_len=4096 -print_final_stats=1 >"$LOGDIR/$t.log" 2>&1; then
        echo "!!! $t: cargo fuzz run failed; the end of $LOGDIR/$t.log:"
        tail -20 "$LOGDIR/$t.log"
        rc=1
    fi
    grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|SUMMARY|crash-|panicked' \
        "$LOGDIR/$t.log" "$ROOT"/fuzz/fuzz-*.log 2>/dev/null || true
    if ls "artifacts/$t"/crash-* >/dev/null 2>&1; then
        echo "!!! $t: crashes in fuzz/artifacts/$t/"; rc=1
    fi
done
exit $rc
