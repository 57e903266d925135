#!/usr/bin/env bash
# bench/handshake.sh — IKEv2 and IKEv1 handshake rate and responder memory per SA (issue 7,
# item 3; issue 12).
#
# ike-loadgen (crates/bench) in namespace a-gw opens N IKE SAs against a responder in b-gw:
#   ikev2  IKE_SA_INIT + IKE_AUTH with the first Child SA (PSK, AES-256-GCM, PRF-HMAC-SHA2-256,
#          group 19; Child SA AES-256-GCM);
#   ikev1  main mode + one quick mode (PSK, AES-256-CBC, SHA-256, group 19; ESP AES-256-GCM,
#          no PFS), driven by ferrosec's own IKEv1 engine (ike-loadgen --ikev1);
# responders:
#   ferrosec   `ferrosec run`, ike-gateway with peer-address = "dynamic", passive
#              (version = "ikev2" or "ikev1", exchange-mode main). IKEv1 by default instead
#              with one passive gateway per peer (HX_FS_V1_GATEWAYS=per-peer), as the rows of
#              2026-12-06 were taken; HX_FS_V1_GATEWAYS=dynamic uses one dynamic gateway, which
#              holds every peer since the IKEv1 engine keeps each site's SAs apart.
#              Per peer: gateway k has peer-address 10.64.0.1 + k and proxy ID remote
#              10.128.0.0 + k/32 (250 per tunnel interface, the configuration's limit), and the
#              generator sends SA k from 10.64.0.1 + k, one port each (and closes that
#              socket once the SA moved to port 4500: --close-idle-ports, since two sockets
#              per SA would pass the 20,000 open files allowed here at N = 10,000);
#   strongswan charon 5.9 (kernel-libipsec), remote_addrs = %any, version = 2 or 1, limits
#              raised (see below).
# Each (version, responder, N) gets a fresh responder process. Reported: IKE SAs (with Child SA)
# established per second as seen by the generator (first IKE_SA_INIT / main-mode message 1 sent
# to last Child SA up), and the responder's VmRSS after minus before, divided by the SAs it holds.
# Generator and responder share the machine's cores: the rate is a whole-system number.
#
# Usage (root): bench/handshake.sh
# Knobs: HX_VERSIONS="ikev2 ikev1"  HX_COUNTS="1000 10000"  HX_INFLIGHT=128
#        HX_ADDRS=16 (source addresses)  HX_PORTS=16 (source ports per address)
#        HX_RESPONDERS="ferrosec strongswan"
#        HX_COUNTS_IKEV1 (default: HX_COUNTS) N for the IKEv1 rows only
#        HX_LOADGEN_FLAGS (extra ike-loadgen flags, e.g. --log-events for a handful of SAs)
#        HX_ADDKE=ml-kem-768 (or ml-kem-512/1024): IKEv2 with that RFC 9370 additional key
#        exchange after group 19 (one IKE_INTERMEDIATE more per SA); ferrosec responders only
#        HX_AUTH="psk ecdsa" (one or more of psk, ecdsa, rsa; default psk): how the IKEv2 SAs
#        authenticate. ecdsa = ECDSA P-256 certificates, rsa = RSA-2048 ones: a CA made with
#        `ferrosec pki ca create` (same key type), the responder's certificate from
#        `ferrosec pki cert issue` (CN and SAN fqdn b.bench.test), and ike-loadgen --cert-ca
#        issues every SA its own certificate from that CA (CN and SAN DNS i<k>.bench.test: one
#        identity per SA, as with PSK, so INITIAL_CONTACT deletes nothing), all with one key.
#        IKE_AUTH then carries CERT, CERTREQ and an RFC 7427 signature (method 14, SHA-256)
#        both ways. Both responders get the same CA and the same responder certificate
#        (ferrosec: certificate = { local, key, ca }; strongSwan: auth = pubkey, the CA in
#        x509ca). IKEv1 rows are PSK only (ike-loadgen's certificates are IKEv2 only).
#        HX_FS_V1_GATEWAYS=per-peer|dynamic (ferrosec's IKEv1 responder configuration, above)
#        HX_PERF=1 (ferrosec rows: a flat perf profile of the responder while it negotiates,
#                   in ./bench-perf-<row>.txt; HX_PERF_ARGS="-F 499 --call-graph dwarf" for callers,
#                   with FX_KEEP=1 to keep the perf data)
#        HX_START_WAIT=300 (seconds a ferrosec responder may take to start: 5 s with the
#        10,000 per-peer gateways at a9f47d8; 7.5 min before the configuration check was linear)
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
HX_VERSIONS=${HX_VERSIONS:-"ikev2 ikev1"}
HX_COUNTS_IKEV1=${HX_COUNTS_IKEV1:-$HX_COUNTS}
HX_LOADGEN_FLAGS=${HX_LOADGEN_FLAGS:-}
HX_ADDKE=${HX_ADDKE:-}
case $HX_ADDKE in
    "") ;;
    ml-kem-512) HX_LOADGEN_FLAGS="$HX_LOADGEN_FLAGS --addke 35" ;;
    ml-kem-768) HX_LOADGEN_FLAGS="$HX_LOADGEN_FLAGS --addke 36" ;;
    ml-kem-1024) HX_LOADGEN_FLAGS="$HX_LOADGEN_FLAGS --addke 37" ;;
    *) echo "HX_ADDKE: ml-kem-512, ml-kem-768 or ml-kem-1024" >&2; exit 2 ;;
esac
HX_AUTH=${HX_AUTH:-psk}
for auth in $HX_AUTH; do
    case $auth in psk|ecdsa|rsa) ;; *) echo "HX_AUTH: psk, ecdsa or rsa" >&2; exit 2 ;; esac
done
HX_FS_V1_GATEWAYS=${HX_FS_V1_GATEWAYS:-per-peer}
HX_START_WAIT=${HX_START_WAIT:-300}
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
# ctx_switches PID: voluntary + involuntary context switches of all its threads so far.
ctx_switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches:/ {n += $2} END {print n + 0}'; }
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

# Per-peer sources (HX_FS_V1_GATEWAYS=per-peer): 10.64.0.1 .. +N on a-gw's wan0 (/32 each),
# routed from b-gw via a-gw's WAN address.
PEER_SRC=0
setup_peer_sources() {
    local n=$1 i
    [ "$n" -le "$PEER_SRC" ] && return 0
    [ "$n" -le 65000 ] || { echo "per-peer sources: at most 65,000" >&2; return 1; }
    for ((i = PEER_SRC; i < n; i++)); do
        echo "addr add $(ip_plus 10.64.0.1 "$i")/32 dev wan0"
    done | ip -n "$(fx_ns a-gw)" -batch -
    [ "$PEER_SRC" = 0 ] && ip -n "$(fx_ns b-gw)" route add 10.64.0.0/16 via "$A_WAN"
    PEER_SRC=$n
}
# ip_plus A.B.C.D K: the K-th address from A.B.C.D.
ip_plus() {
    local a b c d v
    IFS=. read -r a b c d <<<"$1"
    v=$(((a << 24) + (b << 16) + (c << 8) + d + $2))
    echo "$((v >> 24 & 255)).$((v >> 16 & 255)).$((v >> 8 & 255)).$((v & 255))"
}

# --- certificates (HX_AUTH ecdsa|rsa) ----------------------------------------------------------
# pki_dir AUTH: the PKI of that kind, made on first use with `ferrosec pki`: DIR/ca.pem and
# DIR/ca.key (the CA, for ike-loadgen --cert-ca), DIR/resp/{cert,key,ca}.pem (the responder's).
pki_key() { case $1 in ecdsa) echo ecdsa-p256 ;; rsa) echo rsa-2048 ;; esac; }
pki_dir() {
    local d=$FX_WORK/pki-$1
    if [ ! -f "$d/resp/cert.pem" ]; then
        "$FS_BIN" pki ca create --subject "CN=ferrosec bench CA" --key "$(pki_key "$1")" \
            --out "$d" >/dev/null &&
            "$FS_BIN" pki cert issue --ca "$d" --subject "CN=b.bench.test" --san fqdn:b.bench.test \
                --key "$(pki_key "$1")" --out "$d/resp" >/dev/null ||
            { echo "ferrosec pki failed for $1" >&2; return 1; }
    fi
    echo "$d"
}
# auth_line AUTH: the ferrosec gateway's authentication.
auth_line() {
    local d
    if [ "$1" = psk ]; then echo "pre-shared-key = \"$PSK\""; return; fi
    d=$(pki_dir "$1") || return 1
    echo "certificate = { local = \"$d/resp/cert.pem\", key = \"$d/resp/key.pem\", ca = [\"$d/ca.pem\"] }"
}

# --- ferrosec responder ------------------------------------------------------------------------
# fs_resp_conf NAME VERSION (ikev2|ikev1) [AUTH]
fs_resp_conf() {
    local dir ver=$2 encr='"aes-256-gcm"' mode="" auth
    auth=$(auth_line "${3:-psk}") || return 1
    dir=$(fs_dir "$1"); mkdir -p "$dir"
    # IKEv1 has no AEAD for the ISAKMP SA: AES-256-CBC with SHA-256 there; main mode.
    if [ "$ver" = ikev1 ]; then encr='"aes-256-cbc"'; mode='exchange-mode = "main"'; fi
    cat >"$dir/ferrosec.toml" <<EOF
[global]
control-socket = "$dir/ferrosec.sock"
log-file = "$dir/system.log"

[ike-crypto-profile.ike]
dh-group = ["group19"]
authentication = ["sha256"]
encryption = [$encr]
lifetime = "8h"
$([ -n "$HX_ADDKE" ] && [ "$ver" = ikev2 ] && echo "additional-key-exchange = [\"$HX_ADDKE\"]")

[ipsec-crypto-profile.esp]
encryption = ["aes-256-gcm"]
authentication = ["none"]
dh-group = "no-pfs"
lifetime = "1h"

[ike-gateway.lg]
version = "$ver"
$mode
local-address = "$B_WAN"
peer-address = "dynamic"
$auth
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
# fs_resp_conf_per_peer NAME N: IKEv1, N passive gateways lg<k> with peer-address 10.64.0.1 + k,
# each with its ipsec-tunnel (proxy ID 10.2.0.0/24 <-> 10.128.0.0 + k/32), 250 per tunnel
# interface.
fs_resp_conf_per_peer() {
    local dir n=$2 k t ifs=() ntun
    dir=$(fs_dir "$1"); mkdir -p "$dir"
    ntun=$(((n + 249) / 250))
    for ((t = 1; t <= ntun; t++)); do ifs+=("\"tunnel.$t\""); done
    {
        cat <<EOF
[global]
control-socket = "$dir/ferrosec.sock"
log-file = "$dir/system.log"

[ike-crypto-profile.ike]
dh-group = ["group19"]
authentication = ["sha256"]
encryption = ["aes-256-cbc"]
lifetime = "8h"

[ipsec-crypto-profile.esp]
encryption = ["aes-256-gcm"]
authentication = ["none"]
dh-group = "no-pfs"
lifetime = "1h"

[zone.vpn]
interfaces = [$(IFS=,; echo "${ifs[*]}")]
EOF
        for ((t = 1; t <= ntun; t++)); do
            printf '\n[tunnel-interface."tunnel.%d"]\nzone = "vpn"\nmtu = 1400\n' "$t"
        done
        for ((k = 0; k < n; k++)); do
            cat <<EOF

[ike-gateway.lg$k]
version = "ikev1"
exchange-mode = "main"
local-address = "$B_WAN"
peer-address = "$(ip_plus 10.64.0.1 "$k")"
pre-shared-key = "$PSK"
local-id = { type = "fqdn", value = "b.bench.test" }
ike-crypto-profile = "ike"
nat-traversal = true
passive-mode = true

[ipsec-tunnel.lg$k]
tunnel-interface = "tunnel.$((k / 250 + 1))"
ike-gateway = "lg$k"
ipsec-crypto-profile = "esp"
proxy-id = [ { name = "lan", local = "10.2.0.0/24", remote = "$(ip_plus 10.128.0.0 "$k")/32" } ]
EOF
        done
    } >"$dir/ferrosec.toml"
}
# hx_fs_start NAME: the daemon in b-gw; waits (≤ HX_START_WAIT s) for its control socket.
hx_fs_start() {
    local name=$1 dir i
    dir=$(fs_dir "$name")
    fx_bg b-gw "$dir/daemon.out" env FERROSEC_LOG="${FERROSEC_LOG:-warn}" "$FS_BIN" run -c "$dir/ferrosec.toml"
    echo "$FX_LAST_PID" >"$dir/pid"
    for i in $(seq $((HX_START_WAIT * 5))); do
        fs "$name" show vpn tunnel >/dev/null 2>&1 && return 0
        kill -0 "$FX_LAST_PID" 2>/dev/null || break
        sleep 0.2
    done
    fx_log "ferrosec $name did not start within ${HX_START_WAIT} s:"; tail -5 "$dir/daemon.out" >&2
    return 1
}
fs_ike_count() { { fs "$1" --json show vpn ike-sa 2>/dev/null || true; } | { grep -o '"state": *"established"' || true; } | wc -l; }

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
# sw_resp_conf NAME VERSION (ikev2|ikev1) [AUTH]
sw_resp_conf() {
    local dir ver=2 props=aes256gcm16-prfsha256-ecp256 auth=${3:-psk} pki local remote
    dir=$(fx_sw_dir "$1"); mkdir -p "$dir"
    if [ "$2" = ikev1 ]; then ver=1; props=aes256-sha256-ecp256; fi
    local="auth = psk" remote="auth = psk"
    if [ "$auth" != psk ]; then
        # The same CA and responder certificate as ferrosec's (pkcs8 and constraints loaded).
        pki=$(pki_dir "$auth") || return 1
        mkdir -p "$dir/x509" "$dir/x509ca" "$dir/private"
        cp "$pki/resp/cert.pem" "$dir/x509/resp.pem"; cp "$pki/resp/key.pem" "$dir/private/resp.pem"
        cp "$pki/ca.pem" "$dir/x509ca/ca.pem"
        local="auth = pubkey
                certs = resp.pem" remote="auth = pubkey
                 cacerts = ca.pem"
    fi
    cat >"$dir/swanctl.conf" <<EOF
connections {
    bench {
        version = $ver
        local_addrs = $B_WAN
        remote_addrs = %any
        proposals = $props
        local { $local
                id = b.bench.test }
        remote { $remote }
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
sw_ike_count() { { fx_sw_swanctl "$1" --stats 2>/dev/null || true; } | sed -nE 's/.*IKE_SAs: ([0-9]+) total.*/\1/p'; }

# --- one measurement ---------------------------------------------------------------------------
ROWS=()
measure() {
    local ver=$1 impl=$2 n=$3 auth=${4:-psk} name pid rss0 rss1 cpu0 cpu1 cs0 cs1 held load out res hold vflag=""
    local label=$impl src ports=$HX_PORTS t_start extra=""
    name="$ver-$impl-$n-$auth"
    [ "$ver" = ikev1 ] && vflag=--ikev1
    src=$(IFS=,; echo "${SRC[*]}")
    case $impl in
        ferrosec)
            if [ "$ver" = ikev1 ] && [ "$HX_FS_V1_GATEWAYS" = per-peer ]; then
                label=ferrosec/pp
                setup_peer_sources "$n"
                src="10.64.0.1+$n" ports=1 extra=--close-idle-ports
                fs_resp_conf_per_peer "$name" "$n"
            else
                fs_resp_conf "$name" "$ver" "$auth"
            fi
            t_start=$SECONDS
            if ! hx_fs_start "$name"; then
                fx_stop "$(cat "$(fs_dir "$name")/pid")"
                ROWS+=("| $ver | $label | $n | did not start within ${HX_START_WAIT} s |")
                return 0
            fi
            fx_log "ferrosec $name up after $((SECONDS - t_start)) s"
            pid=$(cat "$(fs_dir "$name")/pid") ;;
        strongswan)
            sw_resp_conf "$name" "$ver" "$auth"
            if [ "$auth" = psk ]; then
                FX_CHARON=$(sw_wrapper) fx_sw_start "$name" b-gw
            else
                FX_SW_PLUGINS="$SW_CERT_PLUGINS" FX_CHARON=$(sw_wrapper) fx_sw_start "$name" b-gw
            fi
            pid=$(cat "$(fx_sw_dir "$name")/pid") ;;
    esac
    sleep 1
    load=$(loadavg)
    rss0=$(rss_kib "$pid"); cpu0=$(cpu_ticks "$pid"); cs0=$(ctx_switches "$pid")
    local perf_pid=""
    if [ "${HX_PERF:-0}" = 1 ]; then
        # Where the responder's CPU goes while it negotiates (a flat profile, 999 Hz).
        perf record -q ${HX_PERF_ARGS:--F 999} -p "$pid" -o "$FX_WORK/perf-$name.data" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    out=$FX_WORK/loadgen-$name.out
    hold=$((n / 1000 + 5))
    [ "$auth" != psk ] && extra="$extra --cert-ca $(pki_dir "$auth") --cert-key $(pki_key "$auth")"
    fx_bg a-gw "$out" "$LOADGEN_BIN" $vflag --target "$B_WAN" --local "$src" \
        --ports "$ports" $HX_NAT_FLAG --count "$n" --inflight "$HX_INFLIGHT" --psk "$PSK" \
        --timeout $((n / 50 + 60)) --hold "$hold" $extra $HX_LOADGEN_FLAGS
    local lg=$FX_LAST_PID i
    for i in $(seq $((n / 50 + 70))); do
        grep -q '^RESULT' "$out" 2>/dev/null && break
        kill -0 "$lg" 2>/dev/null || break
        sleep 1
    done
    res=$(grep '^RESULT' "$out" || echo "RESULT established=0 rate=0 failed=$n")
    cpu1=$(cpu_ticks "$pid"); cs1=$(ctx_switches "$pid")
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        perf report -q --stdio --no-children --sort symbol --percent-limit 0.7 \
            -i "$FX_WORK/perf-$name.data" 2>/dev/null | sed '/^$/d' >"bench-perf-$name.txt" || true
        fx_log "responder profile: bench-perf-$name.txt ($(wc -l <"bench-perf-$name.txt") symbols above 0.7 %)"
    fi
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
    local per_sa cpu_us cs_sa
    per_sa=$(awk -v a="$rss0" -v b="$rss1" -v n="${held:-0}" 'BEGIN { if (n > 0) printf "%.2f", (b - a) / n; else print "-" }')
    cpu_us=$(awk -v a="$cpu0" -v b="$cpu1" -v n="${est:-0}" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n > 0) printf "%.0f", (b - a) * 1e6 / hz / n; else print "-" }')
    cs_sa=$(awk -v a="$cs0" -v b="$cs1" -v n="${est:-0}" 'BEGIN { if (n > 0) printf "%.1f", (b - a) / n; else print "-" }')
    fx_log "$ver $impl $auth N=$n: $res; responder RSS $rss0 -> $rss1 KiB, holds $held IKE SAs, $cpu_us µs CPU and $cs_sa context switches (all threads) per SA; load $load"
    grep '^HOLD' "$out" >&2 || true
    ROWS+=("$(printf '| %-5s | %-5s | %-10s | %6s | %6s | %6s | %7s | %9s | %8s | %8s | %9s | %10s | %s |' \
        "$ver" "$auth" "$label" "$n" "$est" "$failed" "$secs" "$rate" "$held" "$rss0" "$rss1" "$per_sa" "$cpu_us | ${lg_cpu:--} | $load")")
}

SW_CERT_PLUGINS="random nonce openssl aes sha1 sha2 hmac gcm gmp curve25519 kdf pem pkcs1 pkcs8 x509 pubkey constraints kernel-libipsec kernel-netlink socket-default vici"
echo "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?), $(date -u '+%Y-%m-%d %H:%M:%S UTC'), load $(loadavg)"
fx_topology plain
setup_sources
# The generator binds up to two sockets per source address (per-peer: one address per SA).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
for ver in $HX_VERSIONS; do
    counts=$HX_COUNTS; [ "$ver" = ikev1 ] && counts=$HX_COUNTS_IKEV1
    for auth in $HX_AUTH; do
        if [ "$ver" = ikev1 ] && [ "$auth" != psk ]; then
            fx_log "ikev1 with $auth: skipped (ike-loadgen's certificates are IKEv2 only)"
            continue
        fi
        for impl in $HX_RESPONDERS; do
            for n in $counts; do measure "$ver" "$impl" "$n" "$auth"; done
        done
    done
done

echo
echo "IKE handshakes, auth ${HX_AUTH// /, } (ecdsa: P-256 certificates, rsa: RSA-2048, RFC 7427 signatures, one certificate per SA), group 19${HX_ADDKE:+ + $HX_ADDKE (IKEv2, RFC 9370)}, 1 Child SA each: ikev2 = IKE_SA_INIT + IKE_AUTH (AES-256-GCM), ikev1 = main mode (AES-256-CBC/SHA-256) + quick mode (ESP AES-256-GCM); in flight $HX_INFLIGHT, NAT pose $HX_NAT, $HX_ADDRS addresses x $HX_PORTS ports; $(nproc) cores shared by generator and responder"
echo "| IKE   | auth  | responder  |      N |     up | failed |  secs   | SAs/s     | held     | RSS0 KiB | RSS1 KiB | KiB per SA | resp. CPU µs/SA | gen. CPU s | load avg before |"
echo "|-------|-------|------------|--------|--------|--------|---------|-----------|----------|----------|-----------|------------|-----------------|------------|-----------------|"
printf '%s\n' "${ROWS[@]}"
