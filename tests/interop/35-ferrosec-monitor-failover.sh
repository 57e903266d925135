#!/usr/bin/env bash
# Tunnel monitoring (R-OPS-1, issue 14), ferrosec (a-gw) <-> ferrosec (b-gw) over two WAN paths:
#   path a: wan0 198.51.100.1 <-> .2, ike-gateway gw-a, ipsec-tunnel t-a on tunnel.1, route to
#           the other LAN with metric 10 (the primary), tunnel monitor with fail-over
#           (interval 1 s, threshold 3) to the other gateway's LAN address, on both sides;
#   path b: wan1 203.0.113.1 <-> .2, gw-b, t-b on tunnel.2, the same route with metric 20.
# Site B only responds (passive), site A brings both tunnels up.
# Fail-over:
#   - a continuous ping a-host -> b-host; path a is cut on a-gw with an nft drop (no DELETE
#     reaches anyone): the longest outage of the ping is at most interval x threshold + one
#     interval + 2 s of slack, and traffic flows again (over t-b);
#   - site A's system log has the "down by tunnel monitor" line with the counts and the
#     withdrawn route; `ip route` has no route through tunnel.1 any more, the metric-20 route
#     through tunnel.2 carries it; `show vpn tunnel --json` says down-by-monitor, withdrawn;
#   - the drop rule removed: the route through tunnel.1 comes back (bounded), the log says
#     "up again by tunnel monitor ... its routes restored", pings still pass;
#   - cut again, failed over again, then SIGTERM to site A while its primary routes are
#     withdrawn: no route through tunnel.1 or tunnel.2 is left, nothing restored on the way out.
# Metrics (R-OPS-5): site A serves /metrics; a real OpenMetrics parser reads it while t-a is
# up (tunnel_monitor_up 1, a round-trip time as `show vpn tunnel` has one, no misses, probes
# sent and answered), down by monitor (0, at least threshold misses, as show says) and back.
# IPv6 (a third pair, the IPv6 LANs in both tunnels, ICMPv6 probes): the same fail-over and
# return; while failed over a host route to the monitor's destination keeps the probes on
# tunnel.1 (IPv6 has no on-link fallback), and it is gone after the return.
# Wait-recover (a second pair of daemons, one tunnel on path a, no backup):
#   - the cut takes the tunnel down by monitor, the routes stay, the IPsec SAs are renegotiated;
#     the drop rule removed, the log says "up again" and pings pass;
#   - a long outage (until the monitor renegotiates the silent IKE SA as well): when the path
#     is back, the tunnel is up again on a new IKE SA with new IPsec SAs.
# Every wait is bounded; the file runs in about three minutes.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

fx_topology plain
fs_lan6
A_WAN2=203.0.113.1 B_WAN2=203.0.113.2
_fx_veth a-gw wan1 "$A_WAN2/24" b-gw wan1 "$B_WAN2/24"

INTERVAL=1 THRESHOLD=3

# mon_conf NAME SIDE ACTION PATHS [6]: site SIDE's (a|b) configuration, tunnels on PATHS ("a"
# or "a b"), a tunnel monitor with ACTION on t-a; with 6, the tunnels carry the IPv6 LANs and
# the monitor pings the other gateway's IPv6 LAN address.
mon_conf() {
    local name=$1 side=$2 action=$3 paths=$4 fam=${5:-4} dir p n=0 me peer lan_me lan_peer gw_peer me_ip peer_ip src
    dir=$(fs_dir "$name"); mkdir -p "$dir"
    if [ "$fam" = 6 ]; then
        if [ "$side" = a ]; then me=a peer=b lan_me=$A_LAN6 lan_peer=$B_LAN6 gw_peer=$B_GW_LAN6 src=$A_GW_LAN6
        else me=b peer=a lan_me=$B_LAN6 lan_peer=$A_LAN6 gw_peer=$A_GW_LAN6 src=$B_GW_LAN6; fi
    elif [ "$side" = a ]; then me=a peer=b lan_me=$A_LAN lan_peer=$B_LAN gw_peer=$B_GW_LAN src=$A_GW_LAN
    else me=b peer=a lan_me=$B_LAN lan_peer=$A_LAN gw_peer=$A_GW_LAN src=$B_GW_LAN; fi
    {
        cat <<EOF
[global]
control-socket = "$dir/ferrosec.sock"
log-file = "$dir/system.log"
$([ "$side" = a ] && echo 'metrics-listen = "127.0.0.1:9752"')

[ike-crypto-profile.ike]
dh-group = ["group19"]
authentication = ["sha256"]
encryption = ["aes-256-cbc"]
lifetime = "8h"

[ipsec-crypto-profile.esp]
encryption = ["aes-256-gcm"]
authentication = ["none"]
dh-group = "group19"
lifetime = "1h"

[monitor-profile.mon]
interval = "${INTERVAL}s"
threshold = $THRESHOLD
action = "$action"

EOF
        local routes="" tifs=""
        for p in $paths; do
            n=$((n + 1))
            if [ "$p" = a ]; then me_ip=$A_WAN peer_ip=$B_WAN; else me_ip=$A_WAN2 peer_ip=$B_WAN2; fi
            [ "$side" = b ] && { local t=$me_ip; me_ip=$peer_ip; peer_ip=$t; }
            cat <<EOF
[ike-gateway.gw-$p]
version = "ikev2"
local-address = "$me_ip"
peer-address = "$peer_ip"
pre-shared-key = "$FS_PSK"
local-id = { type = "fqdn", value = "$me-$p.ferrosec.test" }
peer-id = { type = "fqdn", value = "$peer-$p.ferrosec.test" }
ike-crypto-profile = "ike"
liveness-interval = "5s"
passive-mode = $([ "$side" = b ] && echo true || echo false)

[tunnel-interface."tunnel.$n"]
zone = "vpn"

[ipsec-tunnel.t-$p]
tunnel-interface = "tunnel.$n"
ike-gateway = "gw-$p"
ipsec-crypto-profile = "esp"
proxy-id = [ { name = "lan", local = "$lan_me", remote = "$lan_peer" } ]
EOF
            [ "$p" = a ] && echo "tunnel-monitor = { destination = \"$gw_peer\", source = \"$src\", profile = \"mon\" }"
            echo
            routes+="{ name = \"via-$p\", destination = \"$lan_peer\", interface = \"tunnel.$n\", metric = $((10 * n)) }, "
            tifs+="\"tunnel.$n\", "
        done
        cat <<EOF
[virtual-router.default]
static-route = [ ${routes%, } ]

[zone.trust]
interfaces = ["lan0"]

[zone.vpn]
interfaces = [${tifs%, }]

[[security-rule]]
name = "out"
from = ["trust"]
to = ["vpn"]
source = ["$lan_me"]
destination = ["$lan_peer"]
action = "allow"

[[security-rule]]
name = "in"
from = ["vpn"]
to = ["trust"]
source = ["$lan_peer"]
destination = ["$lan_me"]
action = "allow"
EOF
    } >"$dir/ferrosec.toml"
    "$FS_BIN" config check "$dir/ferrosec.toml" >"$dir/config-check.txt" 2>&1 ||
        { fx_log "config check of $name failed:"; cat "$dir/config-check.txt" >&2; return 1; }
}

# cut: everything on a-gw's wan0 dropped, both ways, at the device (netdev ingress and
# egress): raw ESP is received through a packet ring and sent through a packet socket, which
# the inet input and output hooks never see.
cut() {
    fx_in a-gw nft -f - <<EOF
table netdev fxcut {
    chain in { type filter hook ingress device "wan0" priority -10; policy drop; }
    chain out { type filter hook egress device "wan0" priority -10; policy drop; }
}
EOF
}
uncut() { fx_in a-gw nft delete table netdev fxcut; }

# Every check reads the whole output first, then greps it.
routes_a() { fx_in a-gw ip -4 route show "$B_LAN"; }
primary_route() { local r; r=$(routes_a); grep -Eq "^$B_LAN dev tunnel\.1 proto static scope link metric 10( |\$)" <<<"$r"; }
backup_route() { local r; r=$(routes_a); grep -Eq "^$B_LAN dev tunnel\.2 proto static scope link metric 20( |\$)" <<<"$r"; }
no_primary_route() { local r; r=$(routes_a); ! grep -q 'dev tunnel\.1' <<<"$r"; }
no_tunnel_route() { local r; r=$(fx_in a-gw ip -4 route show; fx_in a-gw ip -6 route show); [ -n "$r" ] && ! grep -q 'dev tunnel\.' <<<"$r"; }
log_has() { grep -q -- "$2" "$(fs_dir "$1")/system.log"; }
# row NAME TABLE TUNNEL: the --json row of TUNNEL in `show vpn TABLE`, on one line.
row() { fs "$1" --json show vpn "$2" 2>/dev/null | tr -d ' \n' | sed 's/},{/}\n{/g' | grep "\"tunnel\":\"$3\"" || true; }
# mon_is NAME TUNNEL MONITOR ROUTES: the tunnel's row has these monitor and routes values.
mon_is() { local r; r=$(row "$1" tunnel "$2"); grep -q "\"monitor\":\"$3\"" <<<"$r" && grep -q "\"routes\":\"$4\"" <<<"$r"; }
# packets_out NAME TUNNEL: ESP packets sent on the tunnel's SA pairs.
packets_out() { row "$1" flow "$2" | grep -o '"packets-out":[0-9]*' | awk -F: '{ s += $2 } END { print s + 0 }'; }
child_up() { fs_field "$(fs_ipsec_json "$1")" tunnel | grep -qx "$2"; }
ping_ok() { fx_ping a-host "$B_HOST" 2; }
# json_of NAME TUNNEL FIELD: a field of the tunnel's `show vpn tunnel --json` row.
json_of() {
    fs "$1" --json show vpn tunnel 2>/dev/null | /usr/bin/python3 -c '
import json, sys
row = [r for r in json.load(sys.stdin) if r["tunnel"] == sys.argv[1]][0]
print(row[sys.argv[2]])' "$2" "$3"
}
# monitor_metrics NAME STATE: site A's /metrics (parser) against `show vpn tunnel`: t-a's
# monitor is STATE (up: 1, a round-trip time in both, no misses; down-by-monitor: 0, at least
# THRESHOLD misses in both), t-b has no monitor series; probes sent and answered.
monitor_metrics() {
    local name=$1 state=$2 f shown rtt misses
    f="$FX_WORK/metrics-$name-$state.txt"
    shown=$(json_of "$name" t-a monitor); rtt=$(json_of "$name" t-a rtt); misses=$(json_of "$name" t-a misses)
    fs_scrape a-gw 9752 "$f" || return 1
    echo "    show vpn tunnel: t-a monitor $shown, rtt ${rtt}s, misses $misses"
    [ "$shown" = "$state" ] || return 1
    if [ "$state" = up ]; then
        awk -v r="$rtt" 'BEGIN { exit !(r > 0 && r < 0.5) }' || return 1
        fs_metrics_check "$f" type:ferrosec_tunnel_monitor_up=gauge type:ferrosec_tunnel_monitor_probes=counter \
            "ferrosec_tunnel_monitor_up{tunnel=t-a} == 1" \
            "ferrosec_tunnel_monitor_rtt_seconds{tunnel=t-a} > 0" \
            "ferrosec_tunnel_monitor_rtt_seconds{tunnel=t-a} < 0.5" \
            "ferrosec_tunnel_monitor_misses{tunnel=t-a} == 0" \
            "ferrosec_tunnel_monitor_probes_total{tunnel=t-a,result=answered} >= 1" \
            "absent:ferrosec_tunnel_monitor_up{tunnel=t-b}"
    else
        [ "$misses" -ge "$THRESHOLD" ] || return 1
        fs_metrics_check "$f" \
            "ferrosec_tunnel_monitor_up{tunnel=t-a} == 0" \
            "ferrosec_tunnel_monitor_misses{tunnel=t-a} >= $THRESHOLD" \
            "ferrosec_tunnel_monitor_probes_total{tunnel=t-a,result=sent} >= $THRESHOLD" \
            "absent:ferrosec_tunnel_monitor_up{tunnel=t-b}"
    fi || return 1
    # Fewer answered than sent while down; never more answered than sent.
    /usr/bin/python3 - "$f" "$state" <<'PY'
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
v = {s.labels["result"]: s.value for f in text_string_to_metric_families(open(sys.argv[1]).read())
     for s in f.samples if s.name == "ferrosec_tunnel_monitor_probes_total" and s.labels["tunnel"] == "t-a"}
print("    probes sent %d, answered %d" % (v["sent"], v["answered"]))
assert v["answered"] <= v["sent"] and (sys.argv[2] == "up" or v["answered"] < v["sent"])
PY
}
# pings N: N pings at 0.2 s intervals, in the background into $FX_WORK/ping-N.out.
ping_bg() { fx_bg a-host "$FX_WORK/ping.out" ping -D -n -i 0.2 -W 1 -c "$1" "$B_HOST"; PING_PID=$FX_LAST_PID; }
ping_done() { ! kill -0 "$PING_PID" 2>/dev/null; }
# longest run of unanswered sequence numbers x 0.2 s, and the last answered sequence number
ping_gap() {
    awk '/icmp_seq=/ { for (i = 1; i <= NF; i++) if ($i ~ /^icmp_seq=/) { split($i, a, "="); s = a[2] + 0 }
             if (seen[s]++) next; if (s - last - 1 > gap) gap = s - last - 1; last = s }
         END { printf "%.1f %d\n", gap * 0.2, last }' "$FX_WORK/ping.out"
}

# --- fail-over -----------------------------------------------------------------------------
mon_conf a a fail-over "a b"
mon_conf b b fail-over "a b"
fs_start b b-gw
fs_start a a-gw
pid_a=$(cat "$(fs_dir a)/pid")

fx_check "fail-over: both routes installed (tunnel.1 metric 10, tunnel.2 metric 20)" \
    fx_wait 5 eval 'primary_route && backup_route'
fx_check "fail-over: the probes bring t-a up on demand" fx_wait 20 child_up a t-a
fs a test vpn ipsec-sa tunnel t-b >/dev/null 2>&1 || true
fx_check "fail-over: t-b (the backup) up" fx_wait 20 child_up a t-b
fx_check "fail-over: the monitor is up on both sides, routes active" \
    fx_wait 10 eval 'mon_is a t-a up active && mon_is b t-a up active'
fx_check "fail-over: t-b has no monitor" mon_is a t-b none active
fx_check "fail-over: /metrics (parser) as show vpn tunnel: t-a monitor up, its round-trip time" \
    fx_wait 10 monitor_metrics a up
fx_check "fail-over: the log says the monitor started" \
    log_has a "ipsec-tunnel t-a: tunnel monitor started: an echo request to $B_GW_LAN from $A_GW_LAN through tunnel.1 every 1 s"
fx_check "fail-over: ping a-host -> b-host before the cut" fx_wait 10 ping_ok

# A ping every 0.2 s for 16 s; path a is cut 2 s in.
ping_bg 80
sleep 2
cut
fx_log "path a cut"
fx_check "fail-over: site A's route through tunnel.1 withdrawn" fx_wait 10 no_primary_route
fx_check "fail-over: the metric-20 route through tunnel.2 stays" backup_route
fx_wait 30 ping_done || true
read -r gap last < <(ping_gap)
bound=$((INTERVAL * THRESHOLD + INTERVAL + 2))
fx_log "longest ping outage ${gap} s (bound ${bound} s), last answered seq $last of 80"
fx_check "fail-over: traffic moved to the backup within ${bound} s (outage ${gap} s)" \
    awk -v g="$gap" -v b="$bound" 'BEGIN { exit !(g <= b) }'
fx_check "fail-over: pings answered through the backup until the end" eval '[ "$last" -ge 75 ]'
fx_check "fail-over: the log names the move, with the counts" \
    log_has a "ipsec-tunnel t-a: down by tunnel monitor: $THRESHOLD echo requests to $B_GW_LAN from $A_GW_LAN unanswered (interval 1 s, threshold $THRESHOLD); action fail-over: its routes withdrawn ($B_LAN via tunnel.1 metric 10)"
fx_check "fail-over: site B failed over too" log_has b "ipsec-tunnel t-a: down by tunnel monitor"
fx_check "fail-over: show vpn tunnel: t-a down-by-monitor, routes withdrawn" \
    mon_is a t-a down-by-monitor withdrawn
fx_check "fail-over: /metrics (parser) as show vpn tunnel: t-a down by monitor, its misses" \
    monitor_metrics a down-by-monitor
fx_check "fail-over: the backup carries ESP (t-b counts packets out)" \
    eval '[ "$(packets_out a t-b)" -gt 0 ]'

uncut
fx_log "path a back"
fx_check "fail-over: the route through tunnel.1 is back (≤ 60 s)" fx_wait 60 primary_route
fx_check "fail-over: the log says the tunnel is up again and its routes restored" \
    fx_wait 5 log_has a "ipsec-tunnel t-a: up again by tunnel monitor: $THRESHOLD echo replies in a row from $B_GW_LAN after .* down by monitor: its routes restored ($B_LAN via tunnel.1 metric 10)"
fx_check "fail-over: show vpn tunnel: t-a up, routes active" fx_wait 5 mon_is a t-a up active
fx_check "fail-over: /metrics (parser) as show vpn tunnel: t-a monitor up again" \
    fx_wait 5 monitor_metrics a up
fx_check "fail-over: pings pass after the return" fx_wait 15 ping_ok

# Cut again and stop site A while it has failed over: nothing is left behind, nothing restored.
cut
fx_check "fail-over: cut again, withdrawn again" fx_wait 10 no_primary_route
kill -TERM "$pid_a"
exited() { ! kill -0 "$pid_a" 2>/dev/null; }
fx_check "fail-over: site A exits on SIGTERM" fx_wait 10 exited
fx_check "fail-over: after SIGTERM no route through tunnel.1 or tunnel.2 is left" no_tunnel_route
restored_late() { awk '/stopping on SIGTERM/ { s = 1 } s && /routes restored/ { bad = 1 } END { exit !bad }' "$(fs_dir a)/system.log"; }
fx_check "fail-over: no route restored after the stop" eval '! restored_late'
fx_check "fail-over: the backup route removed on the way out" log_has a "route $B_LAN via tunnel.2 metric 20 removed"
fs_stop b
uncut

# --- wait-recover ---------------------------------------------------------------------------
mon_conf wa a wait-recover a
mon_conf wb b wait-recover a
fs_start wb b-gw
fs_start wa a-gw
fx_check "wait-recover: the probes bring t-a up, the monitor is up" \
    fx_wait 20 eval 'child_up wa t-a && mon_is wa t-a up active'
fx_check "wait-recover: ping a-host -> b-host" fx_wait 10 ping_ok
cut
fx_check "wait-recover: down by monitor, IPsec SAs renegotiated" \
    fx_wait 10 log_has wa "ipsec-tunnel t-a: down by tunnel monitor: $THRESHOLD echo requests to $B_GW_LAN from $A_GW_LAN unanswered (interval 1 s, threshold $THRESHOLD); action wait-recover: renegotiating its IPsec SAs (rekeying 1 IPsec SA pair(s), make-before-break)"
fx_check "wait-recover: show vpn tunnel says down-by-monitor; the route stays" \
    eval 'mon_is wa t-a down-by-monitor active && primary_route'
uncut
fx_check "wait-recover: the log says the tunnel is up again (≤ 60 s)" \
    fx_wait 60 log_has wa "ipsec-tunnel t-a: up again by tunnel monitor: 1 echo reply in a row from $B_GW_LAN"
fx_check "wait-recover: pings pass again" fx_wait 15 ping_ok
# A long outage: the cut lasts until the monitor has renegotiated the (silent) IKE SA too; when
# the path is back, a new IKE SA and new IPsec SAs carry the probes.
ike_ups() { grep -c "ike-gateway gw-a: IKE SA established" "$(fs_dir wa)/system.log" || true; }
ups_before=$(ike_ups)
spi_before=$(fs_spi_in wa)
cut
fx_check "wait-recover: a long outage: down again, then the IKE SA renegotiated too (≤ 50 s)" \
    fx_wait 50 log_has wa "ipsec-tunnel t-a: still down by tunnel monitor: .* echo requests to $B_GW_LAN unanswered in a row: renegotiating the IKE SA of its ike-gateway"
uncut
fx_check "wait-recover: after the long outage the tunnel is up again (≤ 60 s)" \
    fx_wait 60 eval '[ "$(grep -c "ipsec-tunnel t-a: up again by tunnel monitor" "$(fs_dir wa)/system.log")" -ge 2 ]'
# The deletes and the rekey queued during the outage complete once the path is back (at their
# next retransmission, up to 75 s apart): then a new IKE SA with new IPsec SAs carries it.
new_sas() { [ "$(ike_ups)" -gt "$ups_before" ] && child_up wa t-a && [ "$(fs_spi_in wa)" != "$spi_before" ] && mon_is wa t-a up active; }
fx_check "wait-recover: then on a new IKE SA with new IPsec SAs, monitor up (≤ 120 s)" fx_wait 120 new_sas
fx_check "wait-recover: pings pass after the long outage" fx_wait 15 ping_ok
fs_stop wa
fs_stop wb

# --- fail-over, IPv6 inside -----------------------------------------------------------------
# The same as the first part with the IPv6 LANs: ICMPv6 probes, IPv6 routes.
routes6_a() { fx_in a-gw ip -6 route show "$B_LAN6"; }
primary6() { local r; r=$(routes6_a); grep -Eq "^$B_LAN6 dev tunnel\.1 proto static metric 10( |\$)" <<<"$r"; }
backup6() { local r; r=$(routes6_a); grep -Eq "^$B_LAN6 dev tunnel\.2 proto static metric 20( |\$)" <<<"$r"; }
no_primary6() { local r; r=$(routes6_a); ! grep -q 'dev tunnel\.1' <<<"$r"; }
# IPv6 has no on-link fallback for a socket bound to an interface: while failed over, a host
# route to the monitor's destination keeps the probes on tunnel.1.
pin6() { local r; r=$(fx_in a-gw ip -6 route show "$B_GW_LAN6/128"); grep -Eq "^$B_GW_LAN6 dev tunnel\.1 proto static metric 10( |\$)" <<<"$r"; }
no_pin6() { local r; r=$(fx_in a-gw ip -6 route show "$B_GW_LAN6/128"); [ -z "$r" ]; }
ping6_ok() { fx_in a-host ping -6 -c 2 -W 2 -i 0.2 -q "$B_HOST6" >/dev/null 2>&1; }
mon_conf a6 a fail-over "a b" 6
mon_conf b6 b fail-over "a b" 6
fs_start b6 b-gw
fs_start a6 a-gw
fx_check "IPv6: both routes installed" fx_wait 5 eval 'primary6 && backup6'
fx_check "IPv6: the ICMPv6 probes bring t-a up, the monitor is up" \
    fx_wait 20 eval 'child_up a6 t-a && mon_is a6 t-a up active'
fs a6 test vpn ipsec-sa tunnel t-b >/dev/null 2>&1 || true
fx_check "IPv6: t-b (the backup) up" fx_wait 20 child_up a6 t-b
fx_check "IPv6: ping6 a-host -> b-host" fx_wait 10 ping6_ok
cut
fx_check "IPv6: the route through tunnel.1 withdrawn, the log says so" \
    fx_wait 10 eval 'no_primary6 && log_has a6 "down by tunnel monitor: $THRESHOLD echo requests to $B_GW_LAN6 from $A_GW_LAN6 unanswered .*its routes withdrawn ($B_LAN6 via tunnel.1 metric 10)"'
fx_check "IPv6: a host route keeps the probes on tunnel.1, the log says so" \
    eval 'pin6 && log_has a6 "the host route $B_GW_LAN6/128 via tunnel.1 metric 10 keeps the probes on the tunnel"'
fx_check "IPv6: ping6 passes through the backup" fx_wait 10 ping6_ok
uncut
fx_check "IPv6: the route through tunnel.1 is back (≤ 60 s), the log says so" \
    fx_wait 60 eval 'primary6 && log_has a6 "up again by tunnel monitor: .*its routes restored ($B_LAN6 via tunnel.1 metric 10)"'
fx_check "IPv6: the probes' host route is gone again" no_pin6
fx_check "IPv6: ping6 passes after the return" fx_wait 15 ping6_ok
fs_stop a6
fs_stop b6
