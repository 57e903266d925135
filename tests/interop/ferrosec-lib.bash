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
# Keys: local peer (addresses), psk, groups (TOML list body, e.g. "\"group19\""), ike_auth,
# ike_encr, esp_proto (esp|ah), esp_encr (empty: no encryption line, for AH), esp_auth, pfs,
# passive (true|false), local_id, peer_id (fqdn; empty: no key, the IP address is the ID),
# lan_local, lan_remote; version (ikev2), mode (the exchange-mode; empty: no line), liveness
# (the gateway's liveness line, IKEv1's dpd line; empty: none), tunnel (the IPSec tunnel's
# name, to-b), route (the static route's name, b-lan);
# optionally proxy_ids (the TOML list body of the tunnel's proxy-id, replacing the single
# lan_local <-> lan_remote one), routes (the static-route list body, replacing the route to
# lan_remote), global (extra lines for [global]), profile (extra lines for the IPSec crypto
# profile), gateway (extra lines for [ike-gateway.sw]),
# iface (extra lines for [tunnel-interface."tunnel.1"]) and extra (text appended at the end).
fs_conf() {
    local name=$1; shift
    local -A k=([local]="$A_WAN" [peer]="$B_WAN" [psk]="$FS_PSK" [groups]='"group14"'
        [ike_encr]='"aes-256-cbc"' [esp_proto]=esp [esp_encr]='"aes-256-gcm"' [esp_auth]='"none"' [pfs]=group14
        [passive]=false [profile]="" [local_id]=a.ferrosec.test [peer_id]=b.ferrosec.test
        [lan_local]="$A_LAN" [lan_remote]="$B_LAN" [proxy_ids]="" [routes]="" [gateway]="" [global]=""
        [iface]="" [extra]="" [ike_auth]='"sha256"' [version]=ikev2 [mode]=""
        [liveness]='liveness-interval = "5s"' [tunnel]=to-b [route]=b-lan)
    local kv dir
    for kv in "$@"; do k[${kv%%=*}]=${kv#*=}; done
    [ -n "${k[proxy_ids]}" ] || k[proxy_ids]="{ name = \"lan\", local = \"${k[lan_local]}\", remote = \"${k[lan_remote]}\" }"
    [ -n "${k[routes]}" ] || k[routes]="{ name = \"${k[route]}\", destination = \"${k[lan_remote]}\", interface = \"tunnel.1\" }"
    dir=$(fs_dir "$name"); mkdir -p "$dir"
    cat >"$dir/ferrosec.toml" <<EOF
[global]
control-socket = "$dir/ferrosec.sock"
log-file = "$dir/system.log"
${k[global]}

[ike-crypto-profile.ike]
dh-group = [${k[groups]}]
authentication = [${k[ike_auth]}]
encryption = [${k[ike_encr]}]
lifetime = "8h"

[ipsec-crypto-profile.esp]
protocol = "${k[esp_proto]}"
$([ -n "${k[esp_encr]}" ] && echo "encryption = [${k[esp_encr]}]")
authentication = [${k[esp_auth]}]
dh-group = "${k[pfs]}"
lifetime = "1h"
${k[profile]}

[ike-gateway.sw]
version = "${k[version]}"
$([ -n "${k[mode]}" ] && echo "exchange-mode = \"${k[mode]}\"")
local-address = "${k[local]}"
peer-address = "${k[peer]}"
pre-shared-key = "${k[psk]}"
$([ -n "${k[local_id]}" ] && echo "local-id = { type = \"fqdn\", value = \"${k[local_id]}\" }")
$([ -n "${k[peer_id]}" ] && echo "peer-id = { type = \"fqdn\", value = \"${k[peer_id]}\" }")
ike-crypto-profile = "ike"
${k[liveness]}
nat-traversal = true
passive-mode = ${k[passive]}
${k[gateway]}

[tunnel-interface."tunnel.1"]
zone = "vpn"
mtu = 1400
${k[iface]}

[ipsec-tunnel.${k[tunnel]}]
tunnel-interface = "tunnel.1"
ike-gateway = "sw"
ipsec-crypto-profile = "esp"
proxy-id = [ ${k[proxy_ids]} ]

[virtual-router.default]
static-route = [ ${k[routes]} ]

[zone.vpn]
interfaces = ["tunnel.1"]
${k[extra]}
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
# (The log is read whole before grep: `grep -q` on the pipe could stop reading early and, with
# pipefail, the CLI's SIGPIPE would make a line that is there look missing.)
fs_log_has() { local out; out=$(fs "$1" show system log 2>/dev/null); grep -q -- "$2" <<<"$out"; }
fs_spi_in() { fs_field "$(fs_ipsec_json "$1")" spi-in | sort | tr '\n' ' '; }

# strongSwan side
sw_established() {
    local out; out=$(fx_sw_swanctl "$1" --list-sas 2>/dev/null)
    grep -q ESTABLISHED <<<"$out" && grep -q INSTALLED <<<"$out"
}
sw_no_sa() { ! fx_sw_swanctl "$1" --list-sas 2>/dev/null | grep -q ESTABLISHED; }
sw_spis() { fx_sw_swanctl "$1" --list-sas 2>/dev/null | grep -oE '^ +in +[0-9a-f]{8}' | awk '{print $2}' | sort | tr '\n' ' '; }
sw_log_has() { grep -q -- "$2" "$(fx_sw_dir "$1")/charon.log" 2>/dev/null; }
# sw_auth_line NAME: strongSwan's first two "authentication of ... successful" log lines.
sw_auth_line() { grep -E "authentication of '.*' with .* successful" "$(fx_sw_dir "$1")/charon.log" | head -2 | sed 's/^/    strongSwan: /'; }

# --- ferrosec <-> ferrosec ------------------------------------------------------------------
A_LAN6=fd00:1::/64 A_GW_LAN6=fd00:1::1 A_HOST6=fd00:1::10
B_LAN6=fd00:2::/64 B_GW_LAN6=fd00:2::1 B_HOST6=fd00:2::10

# fs_lan6: IPv6 on both LANs (after fx_topology), forwarding on the gateways.
fs_lan6() {
    fx_in a-gw ip addr add "$A_GW_LAN6/64" dev lan0 nodad
    fx_in a-host ip addr add "$A_HOST6/64" dev eth0 nodad
    fx_in a-host ip -6 route add default via "$A_GW_LAN6"
    fx_in b-gw ip addr add "$B_GW_LAN6/64" dev lan0 nodad
    fx_in b-host ip addr add "$B_HOST6/64" dev eth0 nodad
    fx_in b-host ip -6 route add default via "$B_GW_LAN6"
    fx_in a-gw sysctl -qw net.ipv6.conf.all.forwarding=1
    fx_in b-gw sysctl -qw net.ipv6.conf.all.forwarding=1
}

# fs_pair_conf A_NAME B_NAME A_LOCAL B_PEER_OF_A key=value...: two mirrored ferrosec configs,
# A at a-gw (address A_LOCAL) and B at b-gw; B knows A as B_PEER_OF_A (the NAT's address when
# A is behind one). Two proxy IDs: lan4 (IPv4 LANs) and lan6 (IPv6 LANs), with routes.
# Further key=value pairs go to both (esp_encr, esp_auth, ...).
fs_pair_conf() {
    local a=$1 b=$2 a_local=$3 a_public=$4; shift 4
    fs_conf "$a" local="$a_local" peer="$B_WAN" local_id=a.ferrosec.test peer_id=b.ferrosec.test \
        proxy_ids="{ name = \"lan4\", local = \"$A_LAN\", remote = \"$B_LAN\" }, { name = \"lan6\", local = \"$A_LAN6\", remote = \"$B_LAN6\" }" \
        routes="{ name = \"b4\", destination = \"$B_LAN\", interface = \"tunnel.1\" }, { name = \"b6\", destination = \"$B_LAN6\", interface = \"tunnel.1\" }" \
        "$@"
    fs_conf "$b" local="$B_WAN" peer="$a_public" local_id=b.ferrosec.test peer_id=a.ferrosec.test \
        proxy_ids="{ name = \"lan4\", local = \"$B_LAN\", remote = \"$A_LAN\" }, { name = \"lan6\", local = \"$B_LAN6\", remote = \"$A_LAN6\" }" \
        routes="{ name = \"a4\", destination = \"$A_LAN\", interface = \"tunnel.1\" }, { name = \"a6\", destination = \"$A_LAN6\", interface = \"tunnel.1\" }" \
        "$@"
}

# fs_esp_output ROLE: a-host sends 20 pings to B_HOST in about a second; prints how many ESP
# packets (either family) ROLE's netfilter output hook counted meanwhile, nothing when the pings
# failed. A gateway sending through its packet socket (netio packet_tx) passes by that hook: it
# counts only what the raw socket still sends (the first batch after each next-hop refresh, 1 s).
fs_esp_output() {
    fx_in "$1" nft -f - <<'NFT' || return 1
table inet fsout {
    counter esp_out { }
    chain out {
        type filter hook output priority 0; policy accept;
        meta l4proto esp counter name esp_out
    }
}
NFT
    if fx_in a-host ping -c 20 -i 0.05 -W 2 -q "$B_HOST" >/dev/null 2>&1; then
        fx_in "$1" nft list counter inet fsout esp_out | grep -o 'packets [0-9]*' | awk '{print $2}'
    fi
    fx_in "$1" nft delete table inet fsout
}

# fs_early_drop NAME ROLE FAMILY ADDR: ROLE's nf_tables table (FAMILY ip or ip6) that drops raw
# ESP to ADDR before IP input (instance NAME's packet ring has read it) is named by NAME's `show
# system info` and counts the ESP of 3 pings a-host -> B_HOST.
fs_early_drop() {
    local name=$1 role=$2 fam=$3 addr=$4 table before after
    table=$(fx_in "$role" nft list tables "$fam" | awk '$3 ~ /^ferrosec_esp_/ {print $3}' | head -1)
    [ -n "$table" ] || { echo "    no ferrosec_esp_ table $fam on $role"; return 1; }
    fs "$name" show system info | fx_has -F "$addr: in packet ring, out packet socket; dropped before IP input by nft table $fam $table" ||
        { echo "    show system info does not name $table"; return 1; }
    esp_dropped() { fx_in "$role" nft list table "$fam" "$table" | awk '/counter/ { for (i = 1; i <= NF; i++) if ($i == "packets") print $(i + 1) }'; }
    before=$(esp_dropped)
    fx_ping a-host "$B_HOST" 3 || return 1
    after=$(esp_dropped)
    echo "    $table: ${before:-?} -> ${after:-?} packets"
    fx_in "$role" nft list table "$fam" "$table" | sed 's/^/    | /'
    [ -n "$before" ] && [ -n "$after" ] && [ $((after - before)) -ge 3 ]
}
# fs_count NAME FIELD VALUE: how many rows of `show vpn ipsec-sa --json` have FIELD = VALUE.
fs_count() { fs_field "$(fs_ipsec_json "$1")" "$2" | grep -cx "$3" || true; }
# fs_flow_sum NAME FIELD: the sum of a numeric field of `show vpn flow --json` over all SAs.
fs_flow_sum() { fs "$1" --json show vpn flow 2>/dev/null | grep -o "\"$2\": *[0-9]*" | awk '{s += $2} END {print s + 0}'; }

# fs_tcp FROM TO_ADDR TO_ROLE: a 2-second iperf3 TCP run; prints the rate; true when it ran.
fs_tcp() {
    local from=$1 to=$2 role=$3 pid i
    fx_bg "$role" "$FX_WORK/iperf-server.out" iperf3 -s -1
    pid=$FX_LAST_PID
    for i in $(seq 25); do fx_in "$role" ss -ltn 2>/dev/null | grep -q ':5201' && break; sleep 0.2; done
    fx_in "$from" timeout 15 iperf3 -c "$to" -t 2 -f m >"$FX_WORK/iperf-client.out" 2>&1 || { fx_stop "$pid"; return 1; }
    fx_stop "$pid"
    grep -E 'sender$' "$FX_WORK/iperf-client.out" | awk -v to="$to" '{print "    iperf3 TCP ->", to ":", $(NF-3), $(NF-2)}' | tee -a "$FX_WORK/iperf.txt"
    grep -qE 'receiver$' "$FX_WORK/iperf-client.out"
}

# --- metrics (R-OPS-5) ----------------------------------------------------------------------
# fs_scrape ROLE PORT FILE: GET /metrics at 127.0.0.1:PORT in ROLE's namespace into FILE.
fs_scrape() { fx_in "$1" curl -sf --max-time 5 "http://127.0.0.1:$2/metrics" >"$3"; }
# fs_metrics_check FILE CHECK...: a real OpenMetrics parser (Debian's python3-prometheus-client)
# reads FILE and checks each CHECK (`SAMPLE{label=value} OP NUMBER`, `type:FAMILY=TYPE`,
# `absent:SAMPLE{...}`; see tools/metrics-check.py); prints each with the value found.
fs_metrics_check() { /usr/bin/python3 "$FS_ROOT/tests/interop/tools/metrics-check.py" "$@"; }
# fs_log_count NAME TEXT: how many lines of `show system log` contain TEXT.
fs_log_count() { local out; out=$(fs "$1" show system log 2>/dev/null); grep -cF -- "$2" <<<"$out" || true; }
# fs_json_value NAME JSONPATH show...: one value of a --json answer, e.g.
# fs_json_value a '[0]["uptime"]' show system info.
fs_json_value() {
    local name=$1 path=$2; shift 2
    fs "$name" --json "$@" 2>/dev/null | /usr/bin/python3 -c "import json,sys; v=json.load(sys.stdin)$path; print(','.join(v) if isinstance(v, list) else v)"
}

# fs_pinger_start ROLE DEST INTERVAL TAG: ROLE pings DEST every INTERVAL seconds in the
# background ($PINGER; output in $FX_WORK/ping-TAG.out).
fs_pinger_start() {
    fx_bg "$1" "$FX_WORK/ping-$4.out" ping -i "$3" -W 2 "$2"
    PINGER=$FX_LAST_PID
    sleep 0.5
}

# fs_pinger_stop TAG NAME: SIGINT, then: every echo request up to the last one answered got
# its answer (no gap in icmp_seq), and at most the last request was still in flight when ping
# was stopped (ping counts a request sent just before SIGINT as lost). On a loss it names the
# missing sequence numbers and the data plane's drop lines from ferrosec NAME's system log.
fs_pinger_stop() {
    sleep 1
    kill -INT "$PINGER" 2>/dev/null || true
    local i; for i in $(seq 30); do kill -0 "$PINGER" 2>/dev/null || break; sleep 0.1; done
    fx_stop "$PINGER"
    local out=$FX_WORK/ping-$1.out stats tx seqs missing last
    stats=$(grep "packets transmitted" "$out" || true)
    tx=$(awk '{print $1}' <<<"$stats")
    seqs=$(grep -oE 'icmp_seq=[0-9]+' "$out" | cut -d= -f2 | sort -n | uniq)
    last=$(tail -1 <<<"$seqs")
    missing=$(awk 'NR == 1 { want = 1 } { while (want < $1) { printf "%d ", want; want++ } want = $1 + 1 }' <<<"$seqs")
    echo "    $1: $stats; highest answered icmp_seq ${last:-none}; missing: ${missing:-none}"
    if [ -n "$missing" ]; then
        fs "$2" show system log | grep "dropped in the last" | tail -3 | sed 's/^/    | /' || true
    fi
    [ -n "$tx" ] && [ "$tx" -gt 20 ] && [ -n "$last" ] && [ -z "$missing" ] && [ "$last" -ge $((tx - 1)) ]
}

# --- certificates (source pki.sh too) -------------------------------------------------------
# pki.sh's gateways: ferrosec is "left" (site A), strongSwan "right" (site B).
LEFT_DN="C=ZZ, O=hx-test, CN=left.hx.test"
# shellcheck disable=SC2034  # for the scripts
RIGHT_DN="C=ZZ, O=hx-test, CN=right.hx.test"

# fs_mkpki N KIND CHAIN [EXPIRED_SIDE]: a fresh PKI of pki.sh (hx_pki_make) in $FX_WORK/pki-N;
# prints the directory.
fs_mkpki() { local d="$FX_WORK/pki-$1"; rm -rf "$d"; hx_pki_make "$d" "$2" "$3" "${4:-}" >&2 || return 1; echo "$d"; }

# fs_ike NAME PYTHON-PATH: one value of `show vpn ike-sa --json` (first row).
fs_ike() { fs_json_value "$1" "[0]$2" show vpn ike-sa; }

# fs_cert_conf NAME PKI key=value...: fs_conf with certificate authentication instead of the
# PSK: ferrosec's certificate "left" with the intermediates (PKI/left-full.pem, left.key),
# trusting PKI/ca.pem (trust=other-ca: another root), no local-id (the default with a
# certificate is its subject DN); peer_id_line replaces the peer-id line (default: none);
# cert_extra is added inside the certificate block (e.g. ', crl = ["…"]').
# version=ikev1 makes the gateway IKEv1 with exchange-mode `mode` (main, or aggressive) and no
# liveness check. The other keys go to fs_conf.
fs_cert_conf() {
    local name=$1 pki=$2; shift 2
    local trust=ca pid_line="" cert_extra="" version=ikev2 mode=main kv f args=()
    for kv in "$@"; do
        case $kv in
            trust=*) trust=${kv#*=} ;;
            peer_id_line=*) pid_line=${kv#*=} ;;
            cert_extra=*) cert_extra=${kv#*=} ;;
            version=*) version=${kv#*=} ;;
            mode=*) mode=${kv#*=} ;;
            *) args+=("$kv") ;;
        esac
    done
    fs_conf "$name" "${args[@]}"
    f="$(fs_dir "$name")/ferrosec.toml"
    sed -i -e "s|^pre-shared-key = .*|certificate = { local = \"$pki/left-full.pem\", key = \"$pki/left.key\", ca = [\"$pki/$trust.pem\"]$cert_extra }|" \
        -e '/^local-id = /d' -e "s|^peer-id = .*|$pid_line|" "$f"
    if [ "$version" = ikev1 ]; then
        sed -i -e "s|^version = \"ikev2\"|version = \"ikev1\"\nexchange-mode = \"$mode\"|" -e '/^liveness-interval = /d' "$f"
    fi
}

# sw_cert_conf NAME PKI ROLE key=value...: strongSwan (site B, right) with its certificate,
# connection s2s with child net; ROLE initiator (toward A_WAN) or responder (from any address).
# Keys: version (2, or 1 with aggressive yes|no), local_id (default: its subject DN), remote_id
# (default: ferrosec's DN), ike, esp (proposals), trust (ca; the intermediates are trusted too),
# uri_base (strongSwan sends its certificate as hash and URL under this base to a peer that
# announces HTTP_CERT_LOOKUP_SUPPORTED).
sw_cert_conf() {
    local name=$1 pki=$2 role=$3; shift 3
    local -A k=([version]=2 [aggressive]=no [local_id]="" [remote_id]="$LEFT_DN"
        [ike]=aes256-sha256-modp2048 [esp]=aes256gcm16 [trust]=ca [uri_base]="")
    local kv dir remote=%any
    for kv in "$@"; do k[${kv%%=*}]=${kv#*=}; done
    [ "$role" = initiator ] && remote=$A_WAN
    dir=$(fx_sw_dir "$name"); mkdir -p "$dir/x509" "$dir/x509ca" "$dir/private"
    cp "$pki/right.pem" "$dir/x509/" && cp "$pki/right.key" "$dir/private/" &&
        cp "$pki/${k[trust]}.pem" "$dir/x509ca/"
    cp "$pki"/int*.pem "$dir/x509ca/" 2>/dev/null || true
    cat >"$dir/swanctl.conf" <<SW
connections {
    s2s {
        version = ${k[version]}
        $([ "${k[version]}" = 1 ] && echo "aggressive = ${k[aggressive]}")
        local_addrs = $B_WAN
        remote_addrs = $remote
        proposals = ${k[ike]}
        local { auth = pubkey
                certs = right.pem
                $([ -n "${k[local_id]}" ] && echo "id = ${k[local_id]}") }
        remote { auth = pubkey
                 id = "${k[remote_id]}"
                 cacerts = ${k[trust]}.pem }
        children {
            net {
                local_ts = $B_LAN
                remote_ts = $A_LAN
                esp_proposals = ${k[esp]}
                start_action = none
            }
        }
    }
}
SW
    if [ -n "${k[uri_base]}" ]; then
        cat >>"$dir/swanctl.conf" <<SW
authorities {
    test-root {
        cacert = ${k[trust]}.pem
        cert_uri_base = ${k[uri_base]}
    }
}
SW
    fi
}
