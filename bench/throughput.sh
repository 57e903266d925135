#!/usr/bin/env bash
# bench/throughput.sh — iperf3 TCP a-host -> b-host through each kind of gateway pair, in one run
# (issue 7, item 1). AES-256-GCM everywhere (IKE: AES-256-GCM/PRF-SHA256/group 19).
#
# Phases (HX_MODES, in this order by default):
#   plain    plain routing between the gateways (no tunnel)
#   ff-raw   ferrosec <-> ferrosec, raw ESP (no NAT); reported "n/a" when the build has no raw ESP
#   ff-raw6  the same over an IPv6 WAN (2001:db8::1 <-> 2001:db8::2 on the gateways' WAN links,
#            IPv4 inside): raw ESP as IPv6 next header 50
#   ff-udp   ferrosec <-> ferrosec, ESP in UDP: a-gw sits behind the NAT box (nft masquerade),
#            so this path has one extra forwarding hop (plain-nat measures that path unencrypted)
#   fs-sw    ferrosec (a-gw, initiator) <-> strongSwan 5.9 kernel-libipsec (b-gw), ESP in UDP
#   sw-sw    strongSwan <-> strongSwan, both kernel-libipsec, ESP in UDP
#   plain-nat  plain routing through the NAT box (the ff-udp path without the tunnel)
# Prints per-run Mbit/s (receiver side), the median per phase, and ratios to sw-sw and plain.
#
# Usage (root): bench/throughput.sh
# Knobs: HX_RUNS=3 HX_DURATION=10 HX_IPERF_OPTS="" HX_MODES="plain ff-raw ff-raw6 ff-udp fs-sw sw-sw plain-nat"
#        FERROSEC_BIN (default target/release/ferrosec, or $CARGO_TARGET_DIR/release/ferrosec)
#        HX_PERF=1 (a system-wide perf profile of run 1 of each phase, both cores, kernel included:
#                   ./bench-perf-tp-<phase>.txt, by symbol; HX_PERF_ARGS="-F 499 -g" for callers,
#                   FX_KEEP=1 to keep the perf data)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TGT=${CARGO_TARGET_DIR:-$ROOT/target}
export FERROSEC_BIN=${FERROSEC_BIN:-$TGT/release/ferrosec}
HX_RUNS=${HX_RUNS:-3}
HX_DURATION=${HX_DURATION:-10}
HX_IPERF_OPTS=${HX_IPERF_OPTS:-}
HX_MODES=${HX_MODES:-"plain ff-raw ff-raw6 ff-udp fs-sw sw-sw plain-nat"}
RUN_PREFIX=${FX_PREFIX:-tp$$-}
FX_PREFIX=${RUN_PREFIX}p-

source "$ROOT/tests/interop/lib.sh"
source "$ROOT/tests/interop/ferrosec-lib.bash"
fs_require_bin
command -v iperf3 >/dev/null || { echo "iperf3 missing" >&2; exit 1; }
fx_init

SW_IKE=aes256gcm16-prfsha256-ecp256
SW_ESP=aes256gcm16
TOPO=""
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# topo plain|nat: (re)builds the namespaces for a phase.
topo() {
    [ "$TOPO" = "$1" ] && return 0
    local ns
    [ -n "${IPERF_PID:-}" ] && fx_stop "$IPERF_PID"
    for ns in "${FX_NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    FX_NS=()
    FX_PREFIX=${RUN_PREFIX}${1:0:1}-
    fx_topology "$1"
    TOPO=$1
    fx_bg b-host "$FX_WORK/iperf3-server-$1.out" iperf3 -s -B "$B_HOST"
    IPERF_PID=$FX_LAST_PID
    local i
    for i in $(seq 25); do fx_in b-host ss -ltn 2>/dev/null | fx_has ':5201 ' && break; sleep 0.2; done
}

udp_rcvbuf_errors() {
    fx_in "$1" cat /proc/net/snmp | awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) k[i] = $i; h = 1 }
        else { for (i = 1; i <= NF; i++) if (k[i] == "RcvbufErrors") print $i } }'
}

declare -A RES RETR NOTE SPLIT
# Where the CPU goes during a run: busy share of each core (/proc/stat), and CPU seconds of
# each thread (by name) of the gateways' ferrosec daemons (/proc/PID/task/*/stat).
cpu_ticks() { awk '/^cpu[0-9]/ { printf "%s %d %d\n", $1, $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }
thread_ticks() {   # thread_ticks PID...: "pid:name ticks" per thread
    local p t
    for p in "$@"; do
        for t in /proc/"$p"/task/*/stat; do
            [ -r "$t" ] || continue
            sed -E 's/^[0-9]+ \((.*)\) [A-Za-z] (.*)$/\1 \2/' "$t" 2>/dev/null \
                | awk -v p="$p" '{ n = NF; print p ":" $1, $13 + $14 }'
        done
    done
}
split_report() {   # split_report BEFORE_CPU AFTER_CPU BEFORE_THREADS AFTER_THREADS NAMES
    local hz; hz=$(getconf CLK_TCK)
    awk -v hz="$hz" -v names="$5" '
        FNR == 1 { f++ }
        f == 1 { b[$1] = $2; bt[$1] = $3; next }
        f == 2 { printf "%s %.0f%% busy; ", $1, 100 * ($2 - b[$1]) / (($3 - bt[$1]) > 0 ? ($3 - bt[$1]) : 1); next }
        f == 3 { tb[$1] += $2; next }
        f == 4 { ta[$1] += $2 }
        END {
            split(names, nm, " "); for (i in nm) { split(nm[i], kv, "="); label[kv[1]] = kv[2] }
            for (k in ta) { split(k, pk, ":"); d = (ta[k] - tb[k]) / hz; if (d >= 0.05) sum[label[pk[1]] " " pk[2]] += d }
            for (k in sum) printf "%s %.1f s; ", k, sum[k]
        }' "$1" "$2" "$3" "$4"
}
iperf_run() {
    local tag=$1 i=$2 out
    out="$FX_WORK/iperf3-$tag-$i.txt"
    # shellcheck disable=SC2086
    local perf_pid="" pids=() names="" c0 c1 t0 t1 name
    if [ "$i" = 1 ]; then
        for name in ${SPLIT_DAEMONS:-}; do
            pids+=("$(cat "$(fs_dir "$name")/pid")"); names+="${pids[-1]}=$name "
        done
        c0=$FX_WORK/cpu0-$tag; t0=$FX_WORK/thr0-$tag
        cpu_ticks >"$c0"; thread_ticks "${pids[@]}" >"$t0"
    fi
    if [ "${HX_PERF:-0}" = 1 ] && [ "$i" = 1 ]; then
        # shellcheck disable=SC2086
        perf record -q -a ${HX_PERF_ARGS:--F 999} -o "$FX_WORK/perf-$tag.data" -- sleep "$HX_DURATION" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    fx_in a-host timeout $((HX_DURATION + 20)) iperf3 -c "$B_HOST" -t "$HX_DURATION" -f m $HX_IPERF_OPTS >"$out" 2>&1 || true
    if [ "$i" = 1 ]; then
        c1=$FX_WORK/cpu1-$tag; t1=$FX_WORK/thr1-$tag
        cpu_ticks >"$c1"; thread_ticks "${pids[@]}" >"$t1"
        SPLIT[$tag]=$(split_report "$c0" "$c1" "$t0" "$t1" "$names")
        fx_log "$tag run 1 CPU: ${SPLIT[$tag]}"
    fi
    if [ -n "$perf_pid" ]; then
        wait "$perf_pid" || true
        perf report -q -i "$FX_WORK/perf-$tag.data" --no-children --sort comm,dso,sym --percent-limit 0.3 \
            >"bench-perf-tp-$tag.txt" 2>/dev/null || true
        fx_log "$tag: profile of run 1 in bench-perf-tp-$tag.txt"
    fi
    RES[$tag,$i]=$(awk '/receiver/ { for (j = 1; j <= NF; j++) if ($j == "Mbits/sec") print $(j - 1) }' "$out" | tail -1)
    RETR[$tag,$i]=$(awk '/sender$/ { print $(NF - 1) }' "$out" | tail -1)
    RES[$tag,$i]=${RES[$tag,$i]:-ERR}
}
phase() {
    local tag=$1 i e0 e1
    if ! fx_wait 10 fx_ping a-host "$B_HOST" 1; then
        fx_log "$tag: no path a-host -> b-host"; NOTE[$tag]="no path"; return 0
    fi
    e0=$(udp_rcvbuf_errors b-gw)
    for i in $(seq "$HX_RUNS"); do
        iperf_run "$tag" "$i"
        fx_log "$tag run $i: ${RES[$tag,$i]} Mbit/s (${RETR[$tag,$i]:-?} retransmits; load $(loadavg))"
    done
    e1=$(udp_rcvbuf_errors b-gw)
    NOTE[$tag]="b-gw UDP RcvbufErrors $((e1 - e0)); load before $LOAD0"
}

# Routes for plain routing (the gateways have none to the other LAN by design).
plain_routes() {
    local verb=$1
    if [ "$TOPO" = plain ]; then
        ip -n "$(fx_ns a-gw)" route "$verb" "$B_LAN" via "$B_WAN"
        ip -n "$(fx_ns b-gw)" route "$verb" "$A_LAN" via "$A_WAN"
    else
        ip -n "$(fx_ns a-gw)" route "$verb" "$B_LAN" via "$NAT_PRIV"
        ip -n "$(fx_ns nat)" route "$verb" "$A_LAN" via "$A_PRIV"
        ip -n "$(fx_ns nat)" route "$verb" "$B_LAN" via "$B_WAN"
        ip -n "$(fx_ns b-gw)" route "$verb" "$A_LAN" via "$A_WAN"
    fi
}

# ferrosec at site B facing ferrosec at site A (responder).
# ff-raw6 runs the pair over the IPv6 WAN addresses (wan6 adds them).
A_WAN6=2001:db8::1 B_WAN6=2001:db8::2
wan6() {
    ip -n "$(fx_ns a-gw)" addr "$1" "$A_WAN6/64" dev wan0 nodad
    ip -n "$(fx_ns b-gw)" addr "$1" "$B_WAN6/64" dev wan0 nodad
}
fs_conf_b() {
    if [ "${FF_V6:-0}" = 1 ]; then set -- "$1" local="$B_WAN6" peer="$A_WAN6" gateway='address-family = "ipv6"'; fi
    fs_conf "$1" local="$B_WAN" peer="$A_WAN" local_id=b.ferrosec.test peer_id=a.ferrosec.test \
        lan_local="$B_LAN" lan_remote="$A_LAN" passive=true groups='"group19"' \
        ike_encr='"aes-256-gcm"' esp_encr='"aes-256-gcm"' esp_auth='"none"' "${@:2}"
}
fs_conf_a() {
    if [ "${FF_V6:-0}" = 1 ]; then set -- "$1" local="$A_WAN6" peer="$B_WAN6" gateway='address-family = "ipv6"'; fi
    fs_conf "$1" local="$(fx_a_local)" peer="$B_WAN" groups='"group19"' \
        ike_encr='"aes-256-gcm"' esp_encr='"aes-256-gcm"' esp_auth='"none"' "${@:2}"
}
fs_up() { fs "$1" test vpn ipsec-sa tunnel to-b >"$FX_WORK/test-$1.out" 2>&1; }
fs_encap() { fs_field "$(fs_ipsec_json "$1")" encapsulation | head -1; }

ff_phase() {
    local tag=$1
    fs_conf_a "$tag-a"; fs_conf_b "$tag-b"
    fs_start "$tag-b" b-gw
    fs_start "$tag-a" a-gw
    fs_up "$tag-a" || fx_log "$tag: test vpn ipsec-sa failed: $(tail -2 "$FX_WORK/test-$tag-a.out")"
    fx_wait 10 fs_ike_established "$tag-a" || true
    local encap; encap=$(fs_encap "$tag-a")
    fx_log "$tag: ferrosec SA encapsulation: ${encap:-none}"
    # How raw ESP passes each gateway's kernel (ring, packet socket, early drop), as `show
    # system info` says it, so that a run with a path switched off says so.
    if [ "${tag%6}" = ff-raw ]; then
        local side wan=$A_WAN
        [ "$tag" = ff-raw6 ] && wan=$A_WAN6
        for side in a b; do
            fs "$tag-$side" show system info 2>/dev/null | grep -F "$wan: in " | sed -E 's/^ *(raw ESP)? *//' \
                | while read -r l; do fx_log "$tag: $side-gw raw ESP $l"; done
            [ "$tag" = ff-raw6 ] && wan=$B_WAN6 || wan=$B_WAN
        done
    fi
    if [ "${tag%6}" = ff-raw ] && [ "$encap" = udp ]; then
        NOTE[$tag]="SA is UDP-encapsulated, not raw"
    fi
    if [ "${tag%6}" = ff-raw ] && fs_log_has "$tag-a" "raw ESP (IP protocol 50) is not in this build"; then
        NOTE[$tag]="n/a: raw ESP is not in this build"
    else
        SPLIT_DAEMONS="$tag-a $tag-b" phase "$tag"
        fs "$tag-a" --json show vpn flow >"$FX_WORK/flow-$tag.json" 2>&1 || true
        # What either gateway dropped over all runs (a full receive ring or socket, the TUN
        # device full, ...): losses that make TCP retransmit.
        local side
        for side in a b; do
            fs "$tag-$side" --json show vpn flow 2>/dev/null | python3 -c '
import json, sys
d, out = json.load(sys.stdin), {}
def walk(x):
    if isinstance(x, dict):
        for k, v in x.items():
            if k == "drops" and isinstance(v, dict):
                for r, n in v.items():
                    if isinstance(n, int) and n: out[r] = out.get(r, 0) + n
            else: walk(v)
    elif isinstance(x, list):
        for v in x: walk(v)
walk(d)
print(" ".join(f"{k}={v}" for k, v in sorted(out.items())) or "none")' 2>/dev/null \
                | sed "s/^/$tag: $side-gw drops: /" | while read -r l; do fx_log "$l"; done
        done
    fi
    fs_stop "$tag-a"; fs_stop "$tag-b"
}

sw_conf_side() {   # sw_conf_side NAME a|b
    if [ "$2" = a ]; then
        fx_sw_conf "$1" local="$A_WAN" remote="$B_WAN" local_ts="$A_LAN" remote_ts="$B_LAN" \
            local_id=a.ferrosec.test remote_id=b.ferrosec.test psk="$FS_PSK" ike="$SW_IKE" esp="$SW_ESP"
    else
        fx_sw_conf "$1" local="$B_WAN" remote=%any local_ts="$B_LAN" remote_ts="$A_LAN" \
            local_id=b.ferrosec.test remote_id=a.ferrosec.test psk="$FS_PSK" ike="$SW_IKE" esp="$SW_ESP"
    fi
}

for mode in $HX_MODES; do
    LOAD0=$(loadavg)
    case $mode in
        plain|plain-nat)
            if [ "$mode" = plain ]; then topo plain; else topo nat; fi
            plain_routes add; phase "$mode"; plain_routes del ;;
        ff-raw) topo plain; ff_phase ff-raw ;;
        ff-raw6) topo plain; wan6 add; FF_V6=1 ff_phase ff-raw6; wan6 del ;;
        ff-udp) topo nat; ff_phase ff-udp ;;
        fs-sw)
            topo plain
            sw_conf_side fs-sw-b b; fx_sw_start fs-sw-b b-gw
            fs_conf_a fs-sw-a; fs_start fs-sw-a a-gw
            fs_up fs-sw-a || fx_log "fs-sw: test vpn ipsec-sa failed"
            SPLIT_DAEMONS="fs-sw-a" phase fs-sw
            fs fs-sw-a --json show vpn flow >"$FX_WORK/flow-fs-sw.json" 2>&1 || true
            fs_stop fs-sw-a; fx_sw_stop fs-sw-b ;;
        sw-sw)
            topo plain
            sw_conf_side sw-sw-b b; fx_sw_start sw-sw-b b-gw
            sw_conf_side sw-sw-a a; fx_sw_start sw-sw-a a-gw
            fx_sw_swanctl sw-sw-a --initiate --child net --timeout 20 >"$FX_WORK/sw-initiate.out" 2>&1 \
                || fx_log "sw-sw: initiate failed"
            phase sw-sw
            fx_sw_stop sw-sw-a; fx_sw_stop sw-sw-b ;;
        *) echo "unknown mode $mode" >&2; exit 2 ;;
    esac
done

median() { tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A MED
for mode in $HX_MODES; do
    vals=""; for i in $(seq "$HX_RUNS"); do vals+="${RES[$mode,$i]:-} "; done
    MED[$mode]=$(median <<<"$vals")
done
ratio() { awk -v a="${MED[$1]:-}" -v b="${MED[$2]:-}" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }

echo
echo "iperf3 TCP a-host -> b-host, ${HX_DURATION} s x ${HX_RUNS} runs ${HX_IPERF_OPTS:+(opts $HX_IPERF_OPTS) }; AES-256-GCM; Mbit/s receiver side; $(nproc) cores; $(date -u +%FT%TZ)"
printf '| %-9s |' phase; for i in $(seq "$HX_RUNS"); do printf ' %8s |' "run $i"; done
printf ' %8s | %8s | %8s | %s\n' median "x sw-sw" "x plain" "notes"
printf '|%s|' "-----------"; for i in $(seq "$HX_RUNS"); do printf '%s|' "----------"; done; printf '%s|%s|%s|%s\n' "----------" "----------" "----------" "------"
for mode in $HX_MODES; do
    printf '| %-9s |' "$mode"
    for i in $(seq "$HX_RUNS"); do printf ' %8s |' "${RES[$mode,$i]:--}"; done
    base=plain; [ "$mode" = ff-udp ] && base=plain-nat
    printf ' %8s | %8s | %8s | %s\n' "${MED[$mode]}" "$(ratio "$mode" sw-sw)" "$(ratio "$mode" "$base")" "${NOTE[$mode]:-}"
done
echo "(x plain: ff-udp is compared with plain-nat, the same path without the tunnel; logs in $FX_WORK)"
echo "CPU during run 1 (busy share of each core; CPU seconds of each ferrosec thread, by daemon and thread name):"
for mode in $HX_MODES; do [ -n "${SPLIT[$mode]:-}" ] && echo "  $mode: ${SPLIT[$mode]}"; done
true
