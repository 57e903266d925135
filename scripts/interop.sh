#!/usr/bin/env bash
# interop.sh - run the interop scenarios (tests/interop/[0-9]*.sh, as root), several at once.
#
# usage: scripts/interop.sh [SCENARIO ...]      (default: every scenario)
# env:   INTEROP_JOBS  scenarios at once (default 2; 1 runs them one by one, in order)
#        INTEROP_LOGS  where each scenario's output goes (default: a new /tmp directory)
#
# Each scenario builds its own namespaces with a per-run prefix and stops only what it started,
# so scenarios do not see each other; most of their time is spent waiting for rekeys, timeouts
# and retransmissions, which is why running a few together takes much less time. A scenario
# whose header has the line `# interop: alone` (floods, throughput, package builds: their
# figures or time bounds need the CPU) runs by itself, after the others. A scenario's output is
# printed whole when it ends, with its time. Every scenario runs even after a failure; the exit
# status is non-zero if any failed, and the failed ones are listed at the end.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${INTEROP_JOBS:-2}
LOGS=${INTEROP_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/ferrosec-interop-logs.XXXXXX")}
# Longest one scenario may run: each bounds its own waits; this only stops a runaway one
# (SIGTERM, on which the scenario's trap removes its namespaces and processes).
LIMIT=${INTEROP_LIMIT:-1200}
mkdir -p "$LOGS"
[ "$(id -u)" = 0 ] || { echo "interop.sh: needs root (network namespaces)" >&2; exit 1; }

if [ $# -gt 0 ]; then scenarios=("$@"); else scenarios=("$ROOT"/tests/interop/[0-9]*.sh); fi
together=() alone=()
for t in "${scenarios[@]}"; do
    if grep -q '^# interop: alone' "$t"; then alone+=("$t"); else together+=("$t"); fi
done

start=$(date +%s)
failed=()
declare -A began pid_of
running=0

# finish NAME: print a finished scenario's output and remember a failure.
finish() {
    local name=$1 rc
    rc=$(cat "$LOGS/$name.rc" 2>/dev/null || echo 1)
    printf '\n==> [%4ds] interop: %s (%ds, exit %s)\n' "$(( $(date +%s) - start ))" "$name" \
        "$(( $(date +%s) - ${began[$name]} ))" "$rc"
    cat "$LOGS/$name.log"
    [ "$rc" = 0 ] || failed+=("$name")
}

launch() {
    local t=$1 name
    name=$(basename "$t")
    began[$name]=$(date +%s)
    ( timeout -k 30 "$LIMIT" bash "$t" >"$LOGS/$name.log" 2>&1; echo $? >"$LOGS/$name.rc" ) &
    pid_of[$!]=$name
    running=$((running + 1))
}

# reap: waits for one running scenario to end and prints it.
reap() {
    local p
    wait -n 2>/dev/null || true
    for p in "${!pid_of[@]}"; do
        if ! kill -0 "$p" 2>/dev/null; then
            wait "$p" 2>/dev/null || true
            finish "${pid_of[$p]}"
            unset "pid_of[$p]"
            running=$((running - 1))
        fi
    done
}

echo "interop: ${#together[@]} scenarios $JOBS at a time, then ${#alone[@]} alone; logs in $LOGS"
for t in "${together[@]}"; do
    while [ "$running" -ge "$JOBS" ]; do reap; done
    launch "$t"
done
while [ "$running" -gt 0 ]; do reap; done
for t in "${alone[@]}"; do
    launch "$t"
    while [ "$running" -gt 0 ]; do reap; done
done

printf '\ninterop: %d scenarios in %ds\n' "${#scenarios[@]}" "$(( $(date +%s) - start ))"
if ((${#failed[@]})); then
    echo "interop scenarios that failed: ${failed[*]}" >&2
    exit 1
fi
