#!/usr/bin/env bash
# tests/interop/lib.sh — the project's interop harness: network namespaces and strongSwan peers.
#
# Source it from a scenario script. Everything it creates is named with a per-run prefix and is
# removed by `fx_cleanup`, which `fx_init` installs as an EXIT/INT/TERM trap: namespaces, and the
# processes the scenario started (stopped by PID, never by name).
#
#   site A                                              site B
#   a-host ---lan--- a-gw =============wan============= b-gw ---lan--- b-host
#   10.1.0.10   10.1.0.1 | 198.51.100.1      198.51.100.2 | 10.2.0.1   10.2.0.10
#
# With `fx_topology nat`, a NAT box sits between a-gw and the WAN:
#   a-gw 192.0.2.2 --- nat 192.0.2.1 | 198.51.100.1 (nft masquerade; FX_NAT_RANDOM=1 randomizes
#   source ports) ==== b-gw
# The gateways have no route to the other LAN, so a packet that crosses went through a tunnel.
#
# strongSwan 5.9 here runs with kernel-libipsec (userspace ESP over TUN, the kernel has no ESP),
# in its own mount namespace so that its hard-coded /run/charon.pid does not clash. libipsec
# cannot do raw ESP, so charon always claims NAT and encapsulates ESP in UDP 4500.

set -euo pipefail

FX_PREFIX=${FX_PREFIX:-fx$$-}
FX_WORK=${FX_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/ferrosec-interop.XXXXXX")}
FX_CHARON=${FX_CHARON:-/usr/lib/ipsec/charon}
FX_PIDS=()
FX_NS=()
FX_FAILED=0

A_LAN=10.1.0.0/24 A_GW_LAN=10.1.0.1 A_HOST=10.1.0.10
B_LAN=10.2.0.0/24 B_GW_LAN=10.2.0.1 B_HOST=10.2.0.10
A_WAN=198.51.100.1 B_WAN=198.51.100.2
A_PRIV=192.0.2.2 NAT_PRIV=192.0.2.1

fx_log() { printf '[%(%T)T] %s\n' -1 "$*" >&2; }
fx_ns() { printf '%s%s' "$FX_PREFIX" "$1"; }
fx_in() { local role=$1; shift; ip netns exec "$(fx_ns "$role")" "$@"; }

fx_pass() { printf 'PASS  %s\n' "$*"; }
fx_fail() { printf 'FAIL  %s\n' "$*"; FX_FAILED=1; }

# `producer | fx_has PATTERN`: grep that reads its whole input. A `grep -q` on a pipe stops
# reading at the first match, and with pipefail the producer's SIGPIPE would fail the check
# whenever its output spans more than one write.
fx_has() { grep "$@" >/dev/null; }

# fx_check NAME cmd...: runs the command, prints PASS/FAIL, remembers a failure.
fx_check() {
    local name=$1; shift
    if "$@"; then fx_pass "$name"; else fx_fail "$name"; fi
}

fx_init() {
    [ "$(id -u)" = 0 ] || { echo "interop tests need root (network namespaces)" >&2; exit 1; }
    trap fx_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    mkdir -p "$FX_WORK"
}

# fx_bg ROLE LOG cmd...: a process in a namespace; its real PID is kept for cleanup.
fx_bg() {
    local role=$1 log=$2; shift 2
    ip netns exec "$(fx_ns "$role")" "$@" </dev/null >"$log" 2>&1 &
    FX_LAST_PID=$!
    FX_PIDS+=("$FX_LAST_PID")
}

# fx_stop PID: SIGTERM, up to 5 s, then SIGKILL.
fx_stop() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# fx_kill9 PID: SIGKILL a process this shell started (fx_bg) and reap it: until it is reaped
# its sockets may still answer (a daemon started again at once would find "another daemon").
fx_kill9() {
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

fx_cleanup() {
    local rc=$? pid ns
    for pid in "${FX_PIDS[@]}"; do fx_stop "$pid"; done
    for ns in "${FX_NS[@]}"; do
        ip netns del "$ns" 2>/dev/null || true
        # Files a scenario put in /etc/netns/NS/ (bound over /etc/ by `ip netns exec`).
        [ -n "$ns" ] && rm -rf "/etc/netns/$ns"
    done
    if [ "$rc" = 0 ] && [ "$FX_FAILED" = 0 ] && [ -z "${FX_KEEP:-}" ]; then
        rm -rf "$FX_WORK"
    else
        fx_log "logs kept in $FX_WORK"
    fi
    [ "$FX_FAILED" = 0 ] || exit 1
    exit "$rc"
}

_fx_netns() {
    local ns; ns=$(fx_ns "$1")
    ip netns add "$ns"
    FX_NS+=("$ns")
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
}

# _fx_veth ROLE_A IF_A ADDR_A ROLE_B IF_B ADDR_B
_fx_veth() {
    ip link add "$2" netns "$(fx_ns "$1")" type veth peer name "$5" netns "$(fx_ns "$4")"
    ip -n "$(fx_ns "$1")" addr add "$3" dev "$2"
    ip -n "$(fx_ns "$1")" link set "$2" up
    ip -n "$(fx_ns "$4")" addr add "$6" dev "$5"
    ip -n "$(fx_ns "$4")" link set "$5" up
}

# fx_topology plain|nat
fx_topology() {
    local mode=$1 role
    for role in a-gw b-gw a-host b-host; do _fx_netns "$role"; done
    _fx_veth a-gw lan0 "$A_GW_LAN/24" a-host eth0 "$A_HOST/24"
    _fx_veth b-gw lan0 "$B_GW_LAN/24" b-host eth0 "$B_HOST/24"
    ip -n "$(fx_ns a-host)" route add default via "$A_GW_LAN"
    ip -n "$(fx_ns b-host)" route add default via "$B_GW_LAN"
    case $mode in
        plain)
            _fx_veth a-gw wan0 "$A_WAN/24" b-gw wan0 "$B_WAN/24" ;;
        nat)
            _fx_netns nat
            _fx_veth a-gw wan0 "$A_PRIV/24" nat inside0 "$NAT_PRIV/24"
            _fx_veth nat wan0 "$A_WAN/24" b-gw wan0 "$B_WAN/24"
            ip -n "$(fx_ns a-gw)" route add default via "$NAT_PRIV"
            fx_in nat sysctl -qw net.ipv4.ip_forward=1
            local flags=""
            [ "${FX_NAT_RANDOM:-0}" = 1 ] && flags=" random,persistent"
            fx_in nat nft -f - <<EOF
table ip fxnat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" ip saddr 192.0.2.0/24 counter masquerade$flags
    }
}
EOF
            ;;
        *) echo "fx_topology: plain or nat" >&2; return 2 ;;
    esac
    fx_in a-gw sysctl -qw net.ipv4.ip_forward=1
    fx_in b-gw sysctl -qw net.ipv4.ip_forward=1
    fx_log "topology $mode up (prefix $FX_PREFIX)"
}

# The address site A's gateway has on its own WAN interface.
fx_a_local() { if [ -e "/run/netns/$(fx_ns nat)" ]; then echo "$A_PRIV"; else echo "$A_WAN"; fi; }

# fx_ping FROM TO [COUNT]: true when at least one reply comes back (bounded: 2 s per probe).
fx_ping() { fx_in "$1" ping -c "${3:-3}" -W 2 -i 0.2 -q "$2" >/dev/null 2>&1; }

# fx_wait SECONDS cmd...: runs the command up to SECONDS × 5 times, 0.2 s apart, until it
# succeeds. The command's own run time comes on top, so a slow command waits longer than
# SECONDS (always boundedly): scenarios were tuned with this, so it stays a count of tries.
fx_wait() {
    local secs=$1 i; shift
    for i in $(seq $((secs * 5))); do "$@" && return 0; sleep 0.2; done
    return 1
}

# fx_no_ip_fragments on|off: both gateways drop every IP fragment that reaches them (nft,
# prerouting before defragmentation: the paths IKE fragmentation is for). Behind the NAT box,
# which reassembles and re-fragments, what a-gw sends in IP fragments reaches b-gw so too.
fx_no_ip_fragments() {
    local gw
    for gw in a-gw b-gw; do
        if [ "$1" = on ]; then
            fx_in "$gw" nft -f - <<'NFT'
table ip fsnofrag {
    chain pre {
        type filter hook prerouting priority -500; policy accept;
        ip frag-off & 0x3fff != 0 counter drop
    }
}
NFT
        else
            fx_in "$gw" nft delete table ip fsnofrag 2>/dev/null || true
        fi
    done
}
# fx_fragments_dropped: how many IP fragments both gateways have dropped so far (the counters
# of fx_no_ip_fragments).
fx_fragments_dropped() {
    local gw n total=0
    for gw in a-gw b-gw; do
        n=$(fx_in "$gw" nft list table ip fsnofrag 2>/dev/null | awk '/counter/ { for (i = 1; i <= NF; i++) if ($i == "packets") print $(i + 1) }')
        total=$((total + ${n:-0}))
    done
    echo "$total"
}

# --- strongSwan ----------------------------------------------------------------------------

# fx_sw_dir NAME: the instance's directory (config, vici socket, logs).
fx_sw_dir() { printf '%s/sw-%s' "$FX_WORK" "$1"; }

# fx_sw_swanctl NAME args...
fx_sw_swanctl() {
    local dir; dir=$(fx_sw_dir "$1"); shift
    STRONGSWAN_CONF="$dir/strongswan.conf" SWANCTL_DIR="$dir" \
        swanctl "$@" --uri "unix://$dir/charon.vici"
}

# fx_sw_start NAME ROLE: starts charon in ROLE's namespace with $dir/swanctl.conf loaded
# (FX_SW_PLUGINS replaces charon's plugin list, e.g. to add pkcs8 and constraints).
# Write the connections first with fx_sw_conf (or by hand into $(fx_sw_dir NAME)/swanctl.conf).
fx_sw_start() {
    local name=$1 role=$2 dir i
    dir=$(fx_sw_dir "$name")
    mkdir -p "$dir/run"
    cat >"$dir/strongswan.conf" <<EOF
charon {
    # kernel-libipsec first: the first IPsec backend that registers wins.
    load_modular = no
    load = ${FX_SW_PLUGINS:-random nonce openssl aes sha1 sha2 hmac gcm gmp curve25519 kdf pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici}
    install_routes = yes
    routing_table = 220
    routing_table_prio = 220
    retransmit_tries = 3
    # hash-and-URL certificates (RFC 7296 §3.6): off unless FX_SW_HASHURL=1 (needs curl).
    hash_and_url = ${FX_SW_HASHURL:-0}
    # Re-authentication make-before-break (new IKE SA and Child SAs first, then the old IKE
    # SA deleted): off in 5.9 unless FX_SW_MBB=yes.
    make_before_break = ${FX_SW_MBB:-no}
    # RFC 7427 signature authentication (SIGNATURE_HASH_ALGORITHMS): on unless
    # FX_SW_SIGAUTH=no (then strongSwan signs with the classic methods, RSA 1 and ECDSA 9-11).
    signature_authentication = ${FX_SW_SIGAUTH:-yes}
    plugins { vici { socket = unix://$dir/charon.vici } }
    filelog { main { path = $dir/charon.log
                     append = no
                     flush_line = yes
                     time_format = %T
                     default = 1
                     ike = ${FX_SW_IKE_LOG:-2} } }
    syslog { daemon { default = -1 } }
}
swanctl { socket = unix://$dir/charon.vici }
EOF
    # A private mount namespace with our run/ over /run: charon's pid file stays ours.
    fx_bg "$role" "$dir/charon.out" unshare --mount --propagation private \
        env STRONGSWAN_CONF="$dir/strongswan.conf" \
        sh -c 'mount --bind "$0" /run && exec "$1"' "$dir/run" "$FX_CHARON"
    echo "$FX_LAST_PID" >"$dir/pid"
    for i in $(seq 50); do
        if ! kill -0 "$FX_LAST_PID" 2>/dev/null; then
            fx_log "charon $name died:"; tail -5 "$dir/charon.out" >&2; return 1
        fi
        [ -S "$dir/charon.vici" ] && fx_sw_swanctl "$name" --stats >/dev/null 2>&1 && break
        sleep 0.2
    done
    fx_sw_swanctl "$name" --load-all --noprompt --file "$dir/swanctl.conf" >"$dir/load.out" 2>&1 \
        || { cat "$dir/load.out" >&2; return 1; }
    fx_log "charon $name up in $(fx_ns "$role") (pid $FX_LAST_PID)"
}

fx_sw_stop() { fx_stop "$(cat "$(fx_sw_dir "$1")/pid")"; }

# fx_sw_conf NAME key=value...: a site-to-site PSK connection `s2s` with child `net`.
# Keys: local remote (addresses; remote may be %any), local_ts remote_ts, local_id remote_id,
# psk, version (2), ike (proposals), esp (proposals), start (none|start|trap), rekey, child_rekey.
fx_sw_conf() {
    local name=$1; shift
    local -A k=([version]=2 [ike]=aes256-sha256-modp2048 [esp]=aes256gcm16-modp2048
        [psk]=ferrosec-interop-psk [start]=none [rekey]=4h [child_rekey]=1h)
    local kv
    for kv in "$@"; do k[${kv%%=*}]=${kv#*=}; done
    mkdir -p "$(fx_sw_dir "$name")"
    cat >"$(fx_sw_dir "$name")/swanctl.conf" <<EOF
connections {
    s2s {
        version = ${k[version]}
        local_addrs = ${k[local]}
        remote_addrs = ${k[remote]}
        proposals = ${k[ike]}
        rekey_time = ${k[rekey]}
        local { auth = psk
                id = ${k[local_id]} }
        remote { auth = psk
                 id = ${k[remote_id]} }
        children {
            net {
                local_ts = ${k[local_ts]}
                remote_ts = ${k[remote_ts]}
                esp_proposals = ${k[esp]}
                rekey_time = ${k[child_rekey]}
                start_action = ${k[start]}
            }
        }
    }
}
secrets {
    ike-s2s {
        id-a = ${k[local_id]}
        id-b = ${k[remote_id]}
        secret = "${k[psk]}"
    }
}
EOF
}
