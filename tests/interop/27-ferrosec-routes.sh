#!/usr/bin/env bash
# The virtual router's static routes on the host (R-CFG-8, R-DP-5), ferrosec (a-gw) <-> ferrosec
# (b-gw), no NAT:
#   - after `ferrosec run` starts, `ip route` in a-gw's namespace has the configured IPv4 and
#     IPv6 routes through tunnel.1, proto static, with their metrics; the system log says so;
#   - tunnel.1 has its configured IPv4 and IPv6 addresses;
#   - the routes carry traffic: pings a-host -> b-host (both families) go through the tunnel;
#   - after SIGTERM to the daemon (by PID) it exits by itself, the routes are gone, the system
#     log has one "removed" line per route (a successful delete: the route was there and we took
#     it out, not only the kernel with the device) before the IKE SA is deleted, and a route of
#     the same prefix that someone else installed (via wan0, metric 500) is still there.
# Every wait is bounded; the file runs in well under a minute.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

fx_topology plain
fs_lan6

# Site A's routes get metrics 15 (IPv4) and 25 (IPv6), site B's the default.
fs_conf a local="$A_WAN" peer="$B_WAN" local_id=a.ferrosec.test peer_id=b.ferrosec.test \
    proxy_ids="{ name = \"lan4\", local = \"$A_LAN\", remote = \"$B_LAN\" }, { name = \"lan6\", local = \"$A_LAN6\", remote = \"$B_LAN6\" }" \
    routes="{ name = \"b4\", destination = \"$B_LAN\", interface = \"tunnel.1\", metric = 15 }, { name = \"b6\", destination = \"$B_LAN6\", interface = \"tunnel.1\", metric = 25 }" \
    iface='address = ["169.254.0.1/30", "fd00:ff::1/64"]'
fs_conf b local="$B_WAN" peer="$A_WAN" local_id=b.ferrosec.test peer_id=a.ferrosec.test \
    proxy_ids="{ name = \"lan4\", local = \"$B_LAN\", remote = \"$A_LAN\" }, { name = \"lan6\", local = \"$B_LAN6\", remote = \"$A_LAN6\" }" \
    routes="{ name = \"a4\", destination = \"$A_LAN\", interface = \"tunnel.1\" }, { name = \"a6\", destination = \"$A_LAN6\", interface = \"tunnel.1\" }"

# Someone else's route to the same prefix, which ferrosec must leave alone.
fx_in a-gw ip route add "$B_LAN" via "$B_WAN" dev wan0 metric 500

# Every check reads the whole output first, then greps it (a `grep -q` on a pipe can stop
# reading early, and with pipefail the writer's SIGPIPE would fail the check).
# route4 / route6: site A's route through tunnel.1 as `ip route` shows it, with its metric.
route4() { local r; r=$(fx_in a-gw ip -4 route show "$B_LAN"); grep -Eq "^$B_LAN dev tunnel\.1 proto static scope link metric 15( |\$)" <<<"$r"; }
route6() { local r; r=$(fx_in a-gw ip -6 route show "$B_LAN6"); grep -Eq "^$B_LAN6 dev tunnel\.1 proto static metric 25( |\$)" <<<"$r"; }
no_tunnel_route() { local r; r=$(fx_in a-gw ip -4 route show; fx_in a-gw ip -6 route show); [ -n "$r" ] && ! grep -q 'dev tunnel\.1' <<<"$r"; }
theirs() { local r; r=$(fx_in a-gw ip -4 route show "$B_LAN"); grep -Eq "^$B_LAN via $B_WAN dev wan0 metric 500( |\$)" <<<"$r"; }
addr_on_tunnel() { local r; r=$(fx_in a-gw ip -o addr show dev tunnel.1); grep -q " $1 " <<<"$r"; }
ping6() { fx_in a-host ping -6 -c 1 -W 2 -q "$B_HOST6" >/dev/null 2>&1; }
log_has() { grep -q -- "$1" "$(fs_dir a)/system.log"; }
log_count() { grep -c -- "$1" "$(fs_dir a)/system.log" || true; }

fx_check "routes: none through tunnel.1 before the daemon starts" no_tunnel_route
fs_start a a-gw
fs_start b b-gw
pid_a=$(cat "$(fs_dir a)/pid")
fx_check "routes: $B_LAN dev tunnel.1 proto static metric 15 installed" fx_wait 5 route4
fx_check "routes: $B_LAN6 dev tunnel.1 proto static metric 25 installed" fx_wait 5 route6
fx_check "routes: the other route to $B_LAN (wan0, metric 500) is still there" theirs
fx_check "routes: the system log says which routes were installed" \
    eval 'fs_log_has a "route $B_LAN via tunnel.1 metric 15 installed" &&
          fs_log_has a "route $B_LAN6 via tunnel.1 metric 25 installed"'
fx_check "routes: tunnel.1 has its IPv4 and IPv6 addresses" \
    eval 'addr_on_tunnel 169.254.0.1/30 && addr_on_tunnel fd00:ff::1/64'
fx_check "routes: IPv4 ping a-host -> b-host through the tunnel (on demand)" fx_wait 15 fx_ping a-host "$B_HOST" 1
fx_check "routes: IPv6 ping a-host -> b-host through the tunnel" fx_wait 15 ping6
fx_check "routes: the pings were carried by ESP (site A counts packets out)" \
    eval '[ "$(fs_flow_sum a packets-out)" -gt 0 ]'

# SIGTERM to site A's daemon by its PID; it must exit by itself (≤ 10 s: it deletes its IKE SA
# on the peer first, bounded by 3 s).
kill -TERM "$pid_a"
exited() { ! kill -0 "$pid_a" 2>/dev/null; }
fx_check "routes: the daemon exits on SIGTERM" fx_wait 10 exited
fx_check "routes: after SIGTERM no route goes through tunnel.1 (IPv4 and IPv6)" no_tunnel_route
fx_check "routes: the system log has one 'removed' line per route, no failure" \
    eval 'log_has "route $B_LAN via tunnel.1 metric 15 removed" &&
          log_has "route $B_LAN6 via tunnel.1 metric 25 removed" &&
          [ "$(log_count " removed\$")" = 2 ] && ! log_has "cannot remove route"'
# Both "removed" lines come after "stopping on SIGTERM" and before the IKE SA is deleted (routes
# first, while tunnel.1 still exists).
in_order() {
    awk '/stopping on SIGTERM/ { s = NR }
         / removed$/ { if (!s || d) bad = 1; n++ }
         /IKE SA down: deleted by us/ { d = NR }
         END { exit !(s && d && n == 2 && !bad) }' "$(fs_dir a)/system.log"
}
fx_check "routes: removed on the way out, before the IKE SA is deleted" in_order
fx_check "routes: the other route to $B_LAN (wan0, metric 500) survived the shutdown" theirs
fs_stop b
