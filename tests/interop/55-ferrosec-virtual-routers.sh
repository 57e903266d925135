#!/usr/bin/env bash
# Two virtual routers holding the same prefix (R-CFG-8, issue 14), ferrosec <-> ferrosec, raw
# ESP. Site A has a second LAN, lan1 (10.3.0.0/24, d-host 10.3.0.10), in virtual router `red`
# (routing-table 1001) with tunnel.2; lan0 (a-host) and tunnel.1 are in `default`. Both
# routers route 10.2.0.0/24 (site B's LAN): default through tunnel.1 (ipsec-tunnel to-b,
# 10.1.0.0/24 <-> 10.2.0.0/24), red through tunnel.2 (to-b2, 10.3.0.0/24 <-> 10.2.0.0/24), both
# to one gateway at B, which has one tunnel with the two proxy IDs.
# Checks:
#   - the host has what a table of its own needs: rules `iif lan1|tunnel.2 lookup 1001` (and
#     oif, IPv4 and IPv6), table 1001 with red's route through tunnel.2, lan1's connected
#     prefix and `unreachable default`; the main table routes 10.2.0.0/24 through tunnel.1 only;
#   - a-host -> b-host crosses to-b and d-host -> b-host crosses to-b2, each counted on its own
#     tunnel's SAs only (show vpn ipsec-sa --json, packets out);
#   - red routes nothing it does not hold: d-host -> a-host gets `unreachable` from a-gw;
#   - a reload that moves red to table 1002 moves its rules and routes, and d-host still
#     reaches b-host; a file whose routers share a table is refused by `config check` and by
#     the reload, and nothing changes;
#   - SIGTERM leaves no rule, no route in 1001/1002, and main without our 10.2.0.0/24.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

fx_topology plain
D_HOST=10.3.0.10
_fx_netns d-host
_fx_veth a-gw lan1 10.3.0.1/24 d-host eth0 "$D_HOST/24"
fx_in d-host ip route add default via 10.3.0.1

red_router() {
    cat <<EOF

[tunnel-interface."tunnel.2"]
zone = "vpn"
virtual-router = "red"
mtu = 1400

[ipsec-tunnel.to-b2]
tunnel-interface = "tunnel.2"
ike-gateway = "sw"
ipsec-crypto-profile = "esp"
proxy-id = [ { name = "lan2", local = "10.3.0.0/24", remote = "$B_LAN" } ]

[virtual-router.red]
interfaces = ["lan1"]
routing-table = $1
static-route = [ { name = "b-lan", destination = "$B_LAN", interface = "tunnel.2" } ]
EOF
}
fs_conf a local="$A_WAN" peer="$B_WAN" extra="$(red_router 1001)"
fs_conf b local="$B_WAN" peer="$A_WAN" local_id=b.ferrosec.test peer_id=a.ferrosec.test \
    lan_local="$B_LAN" lan_remote="$A_LAN" \
    proxy_ids="{ name = \"lan\", local = \"$B_LAN\", remote = \"$A_LAN\" }, { name = \"lan2\", local = \"$B_LAN\", remote = \"10.3.0.0/24\" }" \
    routes="{ name = \"a-lan\", destination = \"$A_LAN\", interface = \"tunnel.1\" }, { name = \"a-lan2\", destination = \"10.3.0.0/24\", interface = \"tunnel.1\" }"
fx_check "config check: both files are valid" \
    eval '"$FS_BIN" config check "$(fs_dir a)/ferrosec.toml" >/dev/null && "$FS_BIN" config check "$(fs_dir b)/ferrosec.toml" >/dev/null'
fs_start a a-gw
fs_start b b-gw

rules() { fx_in a-gw ip "$1" rule show; }
fx_check "rules: iif lan1 and iif tunnel.2 look up table 1001 (IPv4), priority 1000, proto static" \
    eval 'rules -4 | fx_has -F "1000:	from all iif lan1 lookup 1001 proto static" && rules -4 | fx_has -F "from all iif tunnel.2 lookup 1001"'
fx_check "rules: the same for IPv6 and for oif (4 rules per member and family pair: 8 in all)" \
    eval '[ "$(rules -6 | grep -c "lookup 1001")" = 4 ] && [ "$(rules -4 | grep -c "lookup 1001")" = 4 ] && rules -6 | fx_has -F "oif tunnel.2 lookup 1001"'
table() { fx_in a-gw ip "${2:--4}" route show table "$1"; }
fx_check "table 1001: red's route to $B_LAN through tunnel.2" \
    eval 'table 1001 | fx_has -E "^${B_LAN%/*}/24 dev tunnel.2 proto static scope link metric 10"'
fx_check "table 1001: lan1's connected prefix (source 10.3.0.1) and unreachable default (IPv4 and IPv6)" \
    eval 'table 1001 | fx_has -E "^10.3.0.0/24 dev lan1 proto static scope link src 10.3.0.1" && table 1001 | fx_has -E "^unreachable default .*metric 4278198272" && table 1001 -6 | fx_has -E "^unreachable default"'
fx_check "main table: $B_LAN through tunnel.1 only (nothing through tunnel.2)" \
    eval '[ "$(fx_in a-gw ip route show "$B_LAN")" != "" ] && fx_in a-gw ip route show "$B_LAN" | fx_has "dev tunnel.1" && ! fx_in a-gw ip route show table main | fx_has tunnel.2'
fx_check "the table is in the system log (installed, named by its router)" \
    fs_log_has a "virtual-router red: IPv4 rule iif lan1 lookup 1001 installed"

# packets out of a-gw per tunnel (sum over its SAs)
sent() { fs a --json show vpn ipsec-sa 2>/dev/null | python3 -c '
import json, sys
print(sum(r.get("packets-out", 0) for r in json.load(sys.stdin) if r["tunnel"] == sys.argv[1]))' "$1"; }
fs a test vpn ipsec-sa tunnel to-b >/dev/null 2>&1 || true
fs a test vpn ipsec-sa tunnel to-b2 >/dev/null 2>&1 || true
fx_check "setup: a-host -> b-host crosses (default router, to-b)" fx_wait 10 fx_ping a-host "$B_HOST" 2
fx_check "setup: d-host -> b-host crosses (red router, to-b2)" fx_wait 10 fx_ping d-host "$B_HOST" 2
b0=$(sent to-b) b20=$(sent to-b2)
fx_in d-host ping -c 20 -i 0.05 -W 2 -q "$B_HOST" >"$FX_WORK/ping-d.out" 2>&1 || true
b1=$(sent to-b) b21=$(sent to-b2)
fx_log "packets out: to-b $b0 -> $b1, to-b2 $b20 -> $b21 (20 pings from d-host)"
fx_check "20 pings from d-host: 20 answered, carried by to-b2 (+>=20) and not by to-b (+0)" \
    eval 'fx_has " 0% packet loss" "$FX_WORK/ping-d.out" && [ $((b21 - b20)) -ge 20 ] && [ "$b1" = "$b0" ]'
fx_in a-host ping -c 20 -i 0.05 -W 2 -q "$B_HOST" >"$FX_WORK/ping-a.out" 2>&1 || true
b2=$(sent to-b) b22=$(sent to-b2)
fx_check "20 pings from a-host: 20 answered, carried by to-b (+>=20) and not by to-b2 (+0)" \
    eval 'fx_has " 0% packet loss" "$FX_WORK/ping-a.out" && [ $((b2 - b1)) -ge 20 ] && [ "$b22" = "$b21" ]'
fx_in d-host ping -c 2 -i 0.3 -W 2 "$A_HOST" >"$FX_WORK/ping-cross.out" 2>&1 || true
fx_check "red routes nothing it does not hold: d-host -> a-host is unreachable (answered by a-gw)" \
    fx_has -i "unreachable" "$FX_WORK/ping-cross.out"

# A reload that moves red to another table.
cp "$(fs_dir a)/ferrosec.toml" "$FX_WORK/a-1001.toml"
fs_conf a local="$A_WAN" peer="$B_WAN" extra="$(red_router 1002)"
fs a request system reload >"$FX_WORK/reload.out" 2>&1 || true
fx_check "reload to table 1002: rules and routes moved (none left for 1001)" \
    eval 'fx_wait 5 eval "[ \"\$(rules -4 | grep -c \"lookup 1002\")\" = 4 ]" && ! rules -4 | fx_has "lookup 1001" && ! rules -6 | fx_has "lookup 1001" && [ -z "$(table 1001)" ] && table 1002 | fx_has "dev tunnel.2 proto static"'
fx_check "reload to table 1002: d-host still reaches b-host; the log says what moved" \
    eval 'fx_wait 10 fx_ping d-host "$B_HOST" 2 && fs_log_has a "IPv4 rule iif lan1 lookup 1001 removed" && fs_log_has a "IPv4 rule iif lan1 lookup 1002 installed"'
# Two routers in one table: refused, nothing changes.
bad="$(red_router 1002)
[virtual-router.blue]
routing-table = 1002"
fs_conf a local="$A_WAN" peer="$B_WAN" extra="$bad"
fx_check "config check refuses two routers in table 1002, naming the field and the fix" \
    eval '! "$FS_BIN" config check "$(fs_dir a)/ferrosec.toml" >"$FX_WORK/check.out" 2>&1 && fx_has -F "field \"routing-table\": routing table 1002 is already virtual-router" "$FX_WORK/check.out" && fx_has "fix: set routing-table" "$FX_WORK/check.out"'
fs a request system reload >"$FX_WORK/reload-bad.out" 2>&1 || true
fx_check "the broken reload changes nothing: table 1002 still red's, d-host still reaches b-host" \
    eval '[ "$(rules -4 | grep -c "lookup 1002")" = 4 ] && fx_ping d-host "$B_HOST" 2'

fs_stop a
fx_check "SIGTERM: no rule of ours is left (IPv4 and IPv6), tables 1001/1002 are empty" \
    eval '! rules -4 | fx_has "proto static" && ! rules -6 | fx_has "proto static" && [ -z "$(table 1002)" ] && [ -z "$(table 1002 -6)" ] && [ -z "$(table 1001)" ]'
fx_check "SIGTERM: main has no route to $B_LAN left, lan1's connected route is still there" \
    eval '[ -z "$(fx_in a-gw ip route show "$B_LAN")" ] && fx_in a-gw ip route show dev lan1 | fx_has "10.3.0.0/24 proto kernel"'
