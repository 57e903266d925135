#!/usr/bin/env bash
# tests/interop/ferrosec-lib.bash — helpers to run the ferrosec daemon in the harness's namespaces.
# Source it after lib.sh. The binary is $FERROSEC_BIN, else target/debug/ferrosec of this repo.

FS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FS_BIN=${FERROSEC_BIN:-$FS_ROOT/target/debug/ferrosec}
FS_PSK=ferrosec-interop-psk

fs_require_bin() {
    [ -x "$FS_BIN" ] || { echo "no ferrosec binary at $FS_BIN (cargo build -p ferrosec, or set FERROSEC_BIN)" >&2; exit 1; }
}

fs_dir() { printf '%s/fs-%s' "$FX_WORK" "$1"; }

# fs_conf NAME key=value...: a ferrosec configuration for site A facing strongSwan at site B.
# Keys: local peer (addresses), psk, groups (TOML list body, e.g. "\"group19\""), ike_encr,
# esp_encr, esp_auth, pfs, passive (true|false), local_id, peer_id, lan_local, lan_remote.
fs_conf() {
    local name=$1; shift
    local -A k=([local]="$A_WAN" [peer]="$B_WAN" [psk]="$FS_PSK" [groups]='"group14"'
        [ike_encr]='"aes-256-cbc"' [esp_encr]='"aes-256-gcm"' [esp_auth]='"none"' [pfs]=group14
        [passive]=false [local_id]=a.ferrosec.test [peer_id]=b.ferrosec.test
        [lan_local]="$A_LAN" [lan_remote]="$B_LAN")
    local kv dir
    for kv in "$@"; do k[${kv%%=*}]=${kv#*=}; done
    dir=$(fs_dir "$name"); mkdir -p "$dir"
    cat >"$dir/ferrosec.toml" <<EOF
[global]
control-socket = "$dir/ferrosec.sock"
log-file = "$dir/system.log"

[ike-crypto-profile.ike]
dh-group = [${k[groups]}]
authentication = ["sha256"]
encryption = [${k[ike_encr]}]
lifetime = "8h"

[ipsec-crypto-profile.esp]
encryption = [${k[esp_encr]}]
authentication = [${k[esp_auth]}]
dh-group = "${k[pfs]}"
lifetime = "1h"

[ike-gateway.sw]
version = "ikev2"
local-address = "${k[local]}"
peer-address = "${k[peer]}"
pre-shared-key = "${k[psk]}"
local-id = { type = "fqdn", value = "${k[local_id]}" }
peer-id = { type = "fqdn", value = "${k[peer_id]}" }
ike-crypto-profile = "ike"
liveness-interval = "5s"
nat-traversal = true
passive-mode = ${k[passive]}

[tunnel-interface."tunnel.1"]
zone = "vpn"
mtu = 1400

[ipsec-tunnel.to-b]
tunnel-interface = "tunnel.1"
ike-gateway = "sw"
ipsec-crypto-profile = "esp"
proxy-id = [ { name = "lan", local = "${k[lan_local]}", remote = "${k[lan_remote]}" } ]

[virtual-router.default]
static-route = [ { name = "b-lan", destination = "${k[lan_remote]}", interface = "tunnel.1" } ]

[zone.vpn]
interfaces = ["tunnel.1"]
EOF
}

# fs NAME args...: the CLI against instance NAME (the control socket is a file: no netns needed).
fs() { local name=$1; shift; "$FS_BIN" --socket "$(fs_dir "$name")/ferrosec.sock" "$@"; }

# fs_start NAME ROLE: the daemon in ROLE's namespace; waits (≤ 5 s) for its control socket.
fs_start() {
    local name=$1 role=$2 dir i
    dir=$(fs_dir "$name")
    fx_bg "$role" "$dir/daemon.out" env FERROSEC_LOG="${FERROSEC_LOG:-warn}" "$FS_BIN" run -c "$dir/ferrosec.toml"
    echo "$FX_LAST_PID" >"$dir/pid"
    for i in $(seq 25); do
        fs "$name" show vpn tunnel >/dev/null 2>&1 && return 0
        kill -0 "$FX_LAST_PID" 2>/dev/null || break
        sleep 0.2
    done
    fx_log "ferrosec $name did not start:"; tail -5 "$dir/daemon.out" >&2
    return 1
}

fs_stop() { fx_stop "$(cat "$(fs_dir "$1")/pid")"; }

# fs_ike_json NAME / fs_ipsec_json NAME: the --json tables.
fs_ike_json() { fs "$1" --json show vpn ike-sa 2>/dev/null; }
fs_ipsec_json() { fs "$1" --json show vpn ipsec-sa 2>/dev/null; }

# fs_field JSON FIELD: every value of a string or boolean field, one per line.
fs_field() { grep -o "\"$2\": *[^,}]*" <<<"$1" | sed -E 's/^[^:]*: *//; s/"//g'; }

fs_ike_established() { fs_field "$(fs_ike_json "$1")" state | grep -qx established; }
fs_no_ike_sa() { [ -z "$(fs_field "$(fs_ike_json "$1")" state)" ]; }
fs_log_has() { fs "$1" show system log 2>/dev/null | grep -q -- "$2"; }
fs_spi_in() { fs_field "$(fs_ipsec_json "$1")" spi-in | sort | tr '\n' ' '; }

# strongSwan side
sw_established() {
    local out; out=$(fx_sw_swanctl "$1" --list-sas 2>/dev/null)
    grep -q ESTABLISHED <<<"$out" && grep -q INSTALLED <<<"$out"
}
sw_no_sa() { ! fx_sw_swanctl "$1" --list-sas 2>/dev/null | grep -q ESTABLISHED; }
sw_spis() { fx_sw_swanctl "$1" --list-sas 2>/dev/null | grep -oE '^ +in +[0-9a-f]{8}' | awk '{print $2}' | sort | tr '\n' ' '; }
