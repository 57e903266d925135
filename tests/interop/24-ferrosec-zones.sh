#!/usr/bin/env bash
# Zones and security rules (R-CFG-9, R-DP-9) at site A (ferrosec <-> ferrosec, raw ESP):
# zone trust = lan0, zone vpn = tunnel.1; rules in order:
#   no-iperf  trust -> vpn  tcp/5201  deny
#   out       trust -> vpn  any       allow
#   (nothing from vpn to trust except ICMP-free default: denied between different zones)
#   in-ping   vpn -> trust  10.2.0.10 -> 10.1.0.10, any   allow  (only b-host's own address)
# Checks: allowed flows pass, the denied TCP flow is dropped, an unlisted flow entering from
# the tunnel is dropped by the default deny, a host behind a router on the LAN is in the LAN's
# zone (filtered, not no-zone), and `show security rules` counts the hits.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

fx_topology plain
fx_in b-host ip addr add 10.2.0.11/24 dev eth0
rules='
[zone.trust]
interfaces = ["lan0"]

[[security-rule]]
name = "no-iperf"
from = ["trust"]
to = ["vpn"]
source = ["any"]
destination = ["any"]
service = "tcp/5201"
action = "deny"

[[security-rule]]
name = "out"
from = ["trust"]
to = ["vpn"]
source = ["10.1.0.0/24"]
destination = ["10.2.0.0/24"]
service = "any"
action = "allow"

[[security-rule]]
name = "in-ping"
from = ["vpn"]
to = ["trust"]
source = ["10.2.0.10"]
destination = ["10.1.0.10"]
service = "any"
action = "allow"
'
# A host behind a router on A's LAN: 10.1.9.0/24 is routed via a-host (10.1.0.10), which
# holds 10.1.9.10. Its packets reach a-gw on lan0 from an address no interface of a-gw is
# connected to; the tunnel's proxy IDs cover 10.1.0.0/16. The route is the virtual router's
# (a static route through lan0 with a next hop): the daemon installs it.
fx_in a-host ip addr add 10.1.9.10/32 dev eth0
fs_conf a local="$A_WAN" peer="$B_WAN" lan_local=10.1.0.0/16 extra="$rules" \
    routes="{ name = \"b-lan\", destination = \"$B_LAN\", interface = \"tunnel.1\" }, { name = \"routed-lan\", destination = \"10.1.9.0/24\", interface = \"lan0\", next-hop = \"$A_HOST\", metric = 30 }"
fs_conf b local="$B_WAN" peer="$A_WAN" local_id=b.ferrosec.test peer_id=a.ferrosec.test \
    lan_local="$B_LAN" lan_remote=10.1.0.0/16
fs_start a a-gw
fs_start b b-gw
fx_check "the virtual router's route through lan0 is installed with its next hop (proto static)" \
    eval 'fx_in a-gw ip route show 10.1.9.0/24 | fx_has "via $A_HOST dev lan0 proto static metric 30"'
fx_check "config check serves it (no 'not installed' warning)" \
    eval '"$FS_BIN" config check "$(fs_dir a)/ferrosec.toml" >/dev/null'
fs a test vpn ipsec-sa tunnel to-b >/dev/null 2>&1 || true
hits() { fs a --json show security rules 2>/dev/null | python3 -c '
import json, sys
print(next((r["hits"] for r in json.load(sys.stdin) if r["name"] == sys.argv[1]), -1))' "$1"; }

fx_check "allowed: ping a-host -> b-host (out, then in-ping for the replies)" fx_wait 10 fx_ping a-host "$B_HOST" 2
fx_check "allowed: show security rules counts hits on out and in-ping" \
    eval '[ "$(hits out)" -ge 2 ] && [ "$(hits in-ping)" -ge 2 ]'
fx_bg b-host "$FX_WORK/iperf-s.out" iperf3 -s -1
srv=$FX_LAST_PID
fx_wait 5 eval 'fx_in b-host ss -ltn | fx_has :5201' || true
fx_check "denied: TCP to port 5201 (no-iperf) does not connect" \
    eval '! fx_in a-host timeout 5 iperf3 -c "$B_HOST" -t 1 >/dev/null 2>&1'
fx_stop "$srv"
fx_check "denied: no-iperf counted the dropped SYNs" eval '[ "$(hits no-iperf)" -ge 1 ]'
n=$(hits '(interzone-default)')
fx_check "default deny: b-host's second address 10.2.0.11 -> a-host (no rule) gets no answer" \
    eval '! fx_in b-host ping -c 2 -W 1 -I 10.2.0.11 -q "$A_HOST" >/dev/null 2>&1'
fx_check "default deny: counted as (interzone-default)" eval '[ "$(hits "(interzone-default)")" -gt "$n" ]'
# The routed host is in trust (lan0 routes it), so trust -> vpn applies: not "out" (its
# source is 10.1.0.0/24), hence the default deny, and nothing counts as no-zone. (When zones
# came from connected prefixes only, it was no-zone and passed unfiltered.)
n=$(hits '(interzone-default)')
z=$(hits '(no-zone)')
fx_check "routed LAN host: 10.1.9.10 (behind a router on lan0) -> b-host is filtered as trust: no answer" \
    eval '! fx_in a-host ping -c 2 -W 1 -I 10.1.9.10 -q "$B_HOST" >/dev/null 2>&1'
fx_check "routed LAN host: counted as (interzone-default), not as (no-zone) ($z before)" \
    eval '[ "$(hits "(interzone-default)")" -ge "$((n + 2))" ] && [ "$(hits "(no-zone)")" = "$z" ]'
fx_check "show security rules (table) lists the rules in order" \
    eval 'fs a show security rules | awk "NR>2 {print \$1}" | head -3 | tr "\n" " " | fx_has -x "no-iperf out in-ping "'
fs_stop a
fx_check "SIGTERM: the daemon removed its route through lan0 (and left the connected ones)" \
    eval '[ -z "$(fx_in a-gw ip route show 10.1.9.0/24)" ] && fx_in a-gw ip route show dev lan0 | fx_has "10.1.0.0/24"'
