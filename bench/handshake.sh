#!/usr/bin/env bash
# bench/handshake.sh — IKEv2 handshake rate and responder memory per SA (issue 7, item 3).
#
# ike-loadgen (crates/bench) in namespace a-gw opens N IKEv2 SAs, each with its first Child SA
# (PSK, AES-256-GCM, PRF-HMAC-SHA2-256, group 19), against a responder in b-gw:
#   ferrosec   `ferrosec run`, ike-gateway with peer-address = "dynamic", passive;
#   strongswan charon 5.9 (kernel-libipsec), remote_addrs = %any, limits raised (see below).
# Each (responder, N) gets a fresh responder process. Reported: IKE SAs (with Child SA)
# established per second as seen by the generator (first IKE_SA_INIT sent to last Child SA up),
# and the responder's VmRSS after minus before, divided by the SAs it holds.
# Generator and responder share the machine's cores: the rate is a whole-system number.
#
# Usage (root): bench/handshake.sh
# Knobs: HX_COUNTS="1000 10000"  HX_INFLIGHT=128  HX_ADDRS=16 (source addresses)
#        HX_PORTS=16 (source ports per address)  HX_RESPONDERS="ferrosec strongswan"
#        FERROSEC_BIN, LOADGEN_BIN (default target/release/{ferrosec,ike-loadgen} of this repo,
#        or $CARGO_TARGET_DIR/release/... when CARGO_TARGET_DIR is set)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TGT=${CARGO_TARGET_DIR:-$ROOT/target}
export FERROSEC_BIN=${FERROSEC_BIN:-$TGT/release/ferrosec}
LOADGEN_BIN=${LOADGEN_BIN:-$TGT/release/ike-loadgen}
HX_COUNTS=${HX_COUNTS:-"1000 10000"}
HX_INFLIGHT=${HX_INFLIGHT:-128}
HX_ADDRS=${HX_ADDRS:-16}
HX_PORTS=${HX_PORTS:-16}
HX_RESPONDERS=${HX_RESPONDERS:-"ferrosec strongswan"}
# The generator poses as NATed (HX_NAT=1, default) so both responders UDP-encapsulate and install
# every Child SA in their data plane as ESP in UDP (strongSwan with
# kernel-libipsec always claims NAT anyway). HX_NAT=0: plain, ferrosec then installs them as raw
# ESP (IP protocol 50; the daemon runs as root here).
HX_NAT=${HX_NAT:-1}
HX_NAT_FLAG=""; [ "$HX_NAT" = 1 ] && HX_NAT_FLAG=--nat
PSK=ferrosec-bench-psk
FX_PREFIX=${FX_PREFIX:-hs$$-}
FX_SW_IKE_LOG=${FX_SW_IKE_LOG:-0}

source "$ROOT/tests/interop/lib.sh"
source "$ROOT/tests/interop/ferrosec-lib.bash"
fs_require_bin
[ -x "$LOADGEN_BIN" ] || { echo "no ike-loadgen at $LOADGEN_BIN (cargo build --release -p ferrosec-bench)" >&2; exit 1; }
fx_init

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# Source addresses of the generator: 198.51.100.101 .. +HX_ADDRS on a-gw's wan0.
SRC=()
setup_sources() {
    local i
    for i in $(seq "$HX_ADDRS"); do
        ip -n "$(fx_ns a-gw)" addr add "198.51.100.$((100 + i))/24" dev wan0
        SRC+=("198.51.100.$((100 + i))")
    done
}

# --- ferrosec responder ------------------------------------------------------------------------
fs_resp_conf() {
    local dir; dir=$(fs_dir "$1"); mkdir -p "$dir"
    cat >"$dir/ferrosec.toml" <<EOF
[global]
control-socket = "$dir/ferrosec.sock"
log-file = "$dir/system.log"

[ike-crypto-profile.ike]
dh-group = ["group19"]
authentication = ["sha256"]
encryption = ["aes-256-gcm"]
lifetime = "8h"

[ipsec-crypto-profile.esp]
encryption = ["aes-256-gcm"]
authentication = ["none"]
dh-group = "no-pfs"
lifetime = "1h"

[ike-gateway.lg]
version = "ikev2"
local-address = "$B_WAN"
peer-address = "dynamic"
pre-shared-key = "$PSK"
local-id = { type = "fqdn", value = "b.bench.test" }
ike-crypto-profile = "ike"
nat-traversal = true
passive-mode = true

[tunnel-interface."tunnel.1"]
zone = "vpn"
mtu = 1400

[ipsec-tunnel.lg]
tunnel-interface = "tunnel.1"
ike-gateway = "lg"
ipsec-crypto-profile = "esp"
proxy-id = [ { name = "lan", local = "10.2.0.0/24", remote = "10.128.0.0/9" } ]

[zone.vpn]
interfaces = ["tunnel.1"]
EOF
}
fs_ike_count() { fs "$1" --json show vpn ike-sa 2>/dev/null | grep -o '"state": *"established"' | wc -l; }

# --- strongSwan responder ----------------------------------------------------------------------
# fx_sw_start writes its own strongswan.conf; a wrapper (FX_CHARON) adds our limits on top of it
# (later settings win) without touching the harness. strongSwan 5.9 defaults that would throttle
# a load test: ikesa_table_size 1 (one hash bucket), block_threshold 5 (half-open SAs per peer
# IP, then drops), cookie_threshold 10 (then COOKIE round trips), threads 16.
sw_wrapper() {
    local w=$FX_WORK/charon-bench.sh
    cat >"$w" <<'EOF'
#!/bin/sh
cat >"$STRONGSWAN_CONF.bench" <<EOC
include $STRONGSWAN_CONF
charon {
    ikesa_table_size = 32768
    ikesa_table_segments = 16
    block_threshold = 1000000
    cookie_threshold = 1000000
    init_limit_half_open = 0
    threads = ${HX_SW_THREADS:-16}
    filelog { main { default = 0
                     ike = 0 } }
}
EOC
STRONGSWAN_CONF="$STRONGSWAN_CONF.bench" exec /usr/lib/ipsec/charon
EOF
    chmod +x "$w"
    echo "$w"
}
sw_resp_conf() {
    local dir; dir=$(fx_sw_dir "$1"); mkdir -p "$dir"
    cat >"$dir/swanctl.conf" <<EOF
connections {
    bench {
        version = 2
        local_addrs = $B_WAN
        remote_addrs = %any
        proposals = aes256gcm16-prfsha256-ecp256
        local { auth = psk
                id = b.bench.test }
        remote { auth = psk }
        children {
            net {
                local_ts = 10.2.0.0/24
                remote_ts = 10.128.0.0/9
                esp_proposals = aes256gcm16
            }
        }
    }
}
secrets { ike-bench { secret = "$PSK" } }
EOF
}
sw_ike_count() { fx_sw_swanctl "$1" --stats 2>/dev/null | sed -nE 's/.*IKE_SAs: ([0-9]+) total.*/\1/p'; }

# --- one measurement ---------------------------------------------------------------------------
ROWS=()
measure() {
    local impl=$1 n=$2 name pid rss0 rss1 cpu0 cpu1 held load out res hold
    name="$impl-$n"
    load=$(loadavg)
    case $impl in
        ferrosec)
            fs_resp_conf "$name"
            FERROSEC_LOG=${FERROSEC_LOG:-warn} fs_start "$name" b-gw
            pid=$(cat "$(fs_dir "$name")/pid") ;;
        strongswan)
            sw_resp_conf "$name"
            FX_CHARON=$(sw_wrapper) fx_sw_start "$name" b-gw
            pid=$(cat "$(fx_sw_dir "$name")/pid") ;;
    esac
    sleep 1
    rss0=$(rss_kib "$pid"); cpu0=$(cpu_ticks "$pid")
    out=$FX_WORK/loadgen-$name.out
    hold=$((n / 1000 + 5))
    fx_bg a-gw "$out" "$LOADGEN_BIN" --target "$B_WAN" --local "$(IFS=,; echo "${SRC[*]}")" \
        --ports "$HX_PORTS" $HX_NAT_FLAG --count "$n" --inflight "$HX_INFLIGHT" --psk "$PSK" \
        --timeout $((n / 50 + 60)) --hold "$hold"
    local lg=$FX_LAST_PID i
    for i in $(seq $((n / 50 + 70))); do
        grep -q '^RESULT' "$out" 2>/dev/null && break
        kill -0 "$lg" 2>/dev/null || break
        sleep 1
    done
    res=$(grep '^RESULT' "$out" || echo "RESULT established=0 rate=0 failed=$n")
    cpu1=$(cpu_ticks "$pid")
    sleep 2   # let the responder finish its bookkeeping (logs, data plane installs)
    rss1=$(rss_kib "$pid")
    case $impl in
        ferrosec) held=$(fs_ike_count "$name") ;;
        strongswan) held=$(sw_ike_count "$name") ;;
    esac
    for i in $(seq $((hold + 10))); do kill -0 "$lg" 2>/dev/null || break; sleep 1; done
    fx_stop "$lg"
    fx_stop "$pid"
    local est rate failed secs
    est=$(sed -nE 's/.* established=([0-9]+).*/\1/p' <<<"$res")
    rate=$(sed -nE 's/.* rate=([0-9.]+).*/\1/p' <<<"$res")
    failed=$(sed -nE 's/.* failed=([0-9]+).*/\1/p' <<<"$res")
    secs=$(sed -nE 's/.* seconds=([0-9.]+).*/\1/p' <<<"$res")
    local lg_cpu; lg_cpu=$(sed -nE 's/.* cpu_seconds=([0-9.]+).*/\1/p' <<<"$res")
    local per_sa cpu_us
    per_sa=$(awk -v a="$rss0" -v b="$rss1" -v n="${held:-0}" 'BEGIN { if (n > 0) printf "%.2f", (b - a) / n; else print "-" }')
    cpu_us=$(awk -v a="$cpu0" -v b="$cpu1" -v n="${est:-0}" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n > 0) printf "%.0f", (b - a) * 1e6 / hz / n; else print "-" }')
    fx_log "$impl N=$n: $res; responder RSS $rss0 -> $rss1 KiB, holds $held IKE SAs; load $load"
    grep '^HOLD' "$out" >&2 || true
    ROWS+=("$(printf '| %-10s | %6s | %6s | %6s | %7s | %9s | %8s | %8s | %9s | %10s | %s |' \
        "$impl" "$n" "$est" "$failed" "$secs" "$rate" "$held" "$rss0" "$rss1" "$per_sa" "$cpu_us | ${lg_cpu:--} | $load")")
}

fx_topology plain
setup_sources
for impl in $HX_RESPONDERS; do
    for n in $HX_COUNTS; do measure "$impl" "$n"; done
done

echo
echo "IKEv2 handshakes (PSK, group 19, AES-256-GCM, 1 Child SA each), in flight $HX_INFLIGHT, NAT pose $HX_NAT, $HX_ADDRS addresses x $HX_PORTS ports; $(nproc) cores shared by generator and responder"
echo "| responder  |      N |     up | failed |  secs   | SAs/s     | held     | RSS0 KiB | RSS1 KiB | KiB per SA | resp. CPU µs/SA | gen. CPU s | load avg before |"
echo "|------------|--------|--------|--------|---------|-----------|----------|----------|-----------|------------|-----------------|------------|-----------------|"
printf '%s\n' "${ROWS[@]}"
