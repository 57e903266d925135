#!/usr/bin/env bash
# An FQDN peer-address resolved again (R-CFG-4), ferrosec <-> ferrosec. Site A knows site B as
# "b.peer.test", from an /etc/hosts the test controls (`ip netns exec` binds
# /etc/netns/NS/hosts over /etc/hosts for the daemon), with [global] fqdn-refresh = "2s":
#   - the name does not resolve at start: A serves the gateway, starts nothing and says why;
#   - the name appears: A logs the address within the refresh and the tunnel comes up on
#     demand;
#   - B moves to another address (dynamic DNS): B restarts there and the name follows; A logs
#     the change ("was ..."), its old IKE SA dies by liveness, and A negotiates with the new
#     address: pings cross again and `show vpn ike-sa` has the new remote address.
#   - IKEv1 (version = "ikev1", main mode, DPD), new daemons a1/b1: A knows B by the name, which
#     resolves to B's (now new) address at start; the tunnel comes up by name; B moves back to
#     its first address and the name follows; A logs the change, its ISAKMP SA dies by DPD and
#     A negotiates main mode with the address the name now has: pings cross again, `show vpn
#     ike-sa` has that address (ikev1-main).
# Every wait is bounded.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

fx_topology plain
B_NEW=198.51.100.3
hosts_dir=/etc/netns/$(fx_ns a-gw)
mkdir -p "$hosts_dir"
printf '127.0.0.1 localhost\n' >"$hosts_dir/hosts"
# within SECONDS cmd...: retries the command until it succeeds or SECONDS have passed (each
# try is bounded by its own timeouts).
within() {
    local end=$((SECONDS + $1)); shift
    until "$@"; do [ "$SECONDS" -lt "$end" ] || return 1; sleep 0.5; done
}
addr_is() { fs_field "$(fs_ike_json "$1")" "$2" | fx_has -E "^$3(:500)?$"; }
set_hosts() { printf '127.0.0.1 localhost\n%s b.peer.test\n' "$1" >"$hosts_dir/hosts"; }

fs_pair_conf a b "$A_WAN" "$A_WAN"
sed -i "s/^peer-address = \"$B_WAN\"$/peer-address = \"b.peer.test\"/" "$(fs_dir a)/ferrosec.toml"
sed -i 's/^\[global\]$/[global]\nfqdn-refresh = "2s"/' "$(fs_dir a)/ferrosec.toml"
fx_check "config check accepts the FQDN peer and fqdn-refresh" \
    eval '"$FS_BIN" config check "$(fs_dir a)/ferrosec.toml" >/dev/null'
fs_start a a-gw
fs_start b b-gw

fx_check "the name does not resolve at start: A says so and waits for it" \
    fx_wait 5 fs_log_has a 'peer-address "b.peer.test" does not resolve; the gateway waits for it'
fx_check "without an address a ping starts nothing" eval '! fx_ping a-host "$B_HOST" 2'
fx_check "test vpn ike-sa says why" \
    eval 'fs a test vpn ike-sa gateway sw >"$FX_WORK/test.out" 2>&1; fx_has "peer-address \"b.peer.test\" does not resolve" "$FX_WORK/test.out"'
sed 's/^/    | /' "$FX_WORK/test.out"

set_hosts "$B_WAN"
fx_check "the name appears: A logs the address within the refresh" \
    fx_wait 8 fs_log_has a "peer-address \"b.peer.test\" now resolves to $B_WAN (it did not resolve before)"
fx_check "the tunnel comes up on demand, to $B_WAN" \
    eval 'within 20 fx_ping a-host "$B_HOST" 1 && addr_is a peer-address "$B_WAN"'

both_children_up() { [ "$(fs_count a proxy-id lan4)" = 1 ] && [ "$(fs_count a proxy-id lan6)" = 1 ]; }
# Both Child SAs first: a request still in flight to a dead peer waits out its own (long)
# retransmissions instead of the liveness check.
fx_check "both Child SAs (lan4, lan6) are up" fx_wait 10 both_children_up
# B moves: it is killed (no DELETE reaches A), comes back at a new WAN address, and the name
# follows.
fx_kill9 "$(cat "$(fs_dir b)/pid")"
# (The old address goes first: deleting a primary address takes its secondaries with it.)
fx_in b-gw ip addr del "$B_WAN/24" dev wan0
fx_in b-gw ip addr add "$B_NEW/24" dev wan0
sed -i "s/^local-address = \"$B_WAN\"$/local-address = \"$B_NEW\"/" "$(fs_dir b)/ferrosec.toml"
fs_start b b-gw
set_hosts "$B_NEW"
fx_check "A logs the new address of the name (was $B_WAN)" \
    fx_wait 8 fs_log_has a "peer-address \"b.peer.test\" now resolves to $B_NEW (was $B_WAN)"
started=$(date +%s)
fx_check "A finds the old peer dead (liveness) and negotiates with $B_NEW: pings cross again" \
    within 60 fx_ping a-host "$B_HOST" 1
echo "    traffic back $(( $(date +%s) - started )) s after the name changed"
fx_check "A's log: the old IKE SA declared dead, the new one established with $B_NEW" \
    eval 'fs_log_has a "IKE SA down: .*198.51.100.2" && fs_log_has a "negotiation started again with $B_NEW" &&
          fs_log_has a "IKE SA established with $B_NEW:500"'
fx_check "show vpn ike-sa: the IKE SA runs to $B_NEW" \
    within 5 addr_is a peer-address "$B_NEW"
fx_check "B's side: an IKE SA with A from its new address" \
    addr_is b local-address "$B_NEW"

# --- IKEv1: the same move, main mode ------------------------------------------------------------
# B is at B_NEW now and the name resolves there; B moves back to B_OLD.
B_OLD=$B_WAN
fs_stop a
fs_stop b
fs_pair_conf a1 b1 "$A_WAN" "$A_WAN"
for n in a1 b1; do
    sed -i -E 's/^version = "ikev2"$/version = "ikev1"\nexchange-mode = "main"\ndpd = { interval = "3s", retry = 3 }/;
               /^liveness-interval = /d; s/^\[global\]$/[global]\nfqdn-refresh = "2s"/' "$(fs_dir "$n")/ferrosec.toml"
done
sed -i "s/^peer-address = \"$B_OLD\"$/peer-address = \"b.peer.test\"/" "$(fs_dir a1)/ferrosec.toml"
sed -i "s/^local-address = \"$B_OLD\"$/local-address = \"$B_NEW\"/" "$(fs_dir b1)/ferrosec.toml"
fx_check "IKEv1: config check accepts both gateways (ikev1, main, the peer by name on a1)" \
    eval 'grep -qx "peer-address = \"b.peer.test\"" "$(fs_dir a1)/ferrosec.toml" &&
          grep -qx "version = \"ikev1\"" "$(fs_dir a1)/ferrosec.toml" &&
          grep -qx "local-address = \"$B_NEW\"" "$(fs_dir b1)/ferrosec.toml" &&
          "$FS_BIN" config check "$(fs_dir a1)/ferrosec.toml" >/dev/null &&
          "$FS_BIN" config check "$(fs_dir b1)/ferrosec.toml" >/dev/null'
fs_start a1 a-gw
fs_start b1 b-gw
v1_main_to() { addr_is a1 peer-address "$1" && fs_field "$(fs_ike_json a1)" version | fx_has -x ikev1-main; }
fx_check "IKEv1: the tunnel comes up by name, main mode with $B_NEW" \
    eval 'within 20 fx_ping a-host "$B_HOST" 1 && v1_main_to "$B_NEW"'
v1_children_up() { [ "$(fs_count a1 proxy-id lan4)" = 1 ] && [ "$(fs_count a1 proxy-id lan6)" = 1 ]; }
fx_check "IKEv1: both quick-mode pairs (lan4, lan6) are up" fx_wait 10 v1_children_up
fx_kill9 "$(cat "$(fs_dir b1)/pid")"
fx_in b-gw ip addr del "$B_NEW/24" dev wan0
fx_in b-gw ip addr add "$B_OLD/24" dev wan0
sed -i "s/^local-address = \"$B_NEW\"$/local-address = \"$B_OLD\"/" "$(fs_dir b1)/ferrosec.toml"
fs_start b1 b-gw
set_hosts "$B_OLD"
fx_check "IKEv1: A logs the new address of the name (was $B_NEW)" \
    fx_wait 8 fs_log_has a1 "peer-address \"b.peer.test\" now resolves to $B_OLD (was $B_NEW)"
started=$(date +%s)
fx_check "IKEv1: A finds the old peer dead (DPD) and negotiates with $B_OLD: pings cross again" \
    within 60 fx_ping a-host "$B_HOST" 1
echo "    traffic back $(( $(date +%s) - started )) s after the name changed"
fx_check "IKEv1: A's log: the old ISAKMP SA declared dead, the new one established with $B_OLD" \
    eval 'fs_log_has a1 "IKE SA down: .*$B_NEW" && fs_log_has a1 "negotiation started again with $B_OLD" &&
          fs_log_has a1 "IKE SA established with $B_OLD:500"'
fx_check "IKEv1: show vpn ike-sa: the ISAKMP SA runs to $B_OLD (ikev1-main)" \
    within 5 v1_main_to "$B_OLD"
fx_check "IKEv1: B's side: an ISAKMP SA with A from $B_OLD" \
    addr_is b1 local-address "$B_OLD"
if [ "$FX_FAILED" != 0 ]; then
    fs a1 show system log 2>/dev/null | grep -E 'IKE SA|negotiation|peer-address|DPD|dead' | tail -20 | sed 's/^/    a1 log | /'
fi

exit "$FX_FAILED"
