#!/usr/bin/env bash
# Always-on tunnels (establish = "always", issue 14), ferrosec (a-gw) <-> ferrosec (b-gw):
#   - site A brings both proxy IDs up at start, with no traffic at all, and says why;
#   - site B deletes the IKE SA (clear vpn ike-sa: DELETE to A): A negotiates again by itself,
#     still without traffic, within the first retry (2 s) and a little;
#   - site B is stopped: A retries with back-off (the log shows the attempts spaced out, not
#     one per second); B starts again: A is back up without traffic.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

fx_topology plain
fs_lan6

fs_pair_conf a b "$A_WAN" "$A_WAN"
sed -i 's/^\[ipsec-tunnel.to-b\]$/&\nestablish = "always"/' "$(fs_dir a)/ferrosec.toml"
both_up() { [ "$(fs_count "$1" proxy-id lan4)" -ge 1 ] && [ "$(fs_count "$1" proxy-id lan6)" -ge 1 ]; }
starts() { fs a show system log | grep -c "negotiation started.*establish = always" || true; }

fs_start b b-gw
fs_start a a-gw
fx_check "at start, without traffic: both proxy IDs up on A" fx_wait 10 both_up a
fx_check "A's log says why it started" fs_log_has a "negotiation started with $B_WAN:500 (establish = always: ipsec-tunnel to-b is down)"
fx_check "B only answered" eval '! fs_log_has b "negotiation started"'

before=$(fs_spi_in a)
fs b clear vpn ike-sa >/dev/null 2>&1
fx_check "after B deletes the IKE SA, A is back by itself, without traffic (new SPIs)" \
    fx_wait 10 eval 'both_up a && [ "$(fs_spi_in a)" != "$before" ]'

fs_stop b
n0=$(starts)
sleep 12
n1=$(starts)
echo "    attempts while B was down for 12 s: $((n1 - n0))"
fx_check "while B is down A retries with back-off (2, 4, 8 s ...: at most 4 attempts in 12 s)" \
    eval '[ $((n1 - n0)) -ge 1 ] && [ $((n1 - n0)) -le 4 ]'
fs_start b b-gw
fx_check "B back: A is up again without traffic (within the back-off, ≤ 20 s)" fx_wait 20 both_up a
fx_check "and traffic flows" fx_wait 10 fx_ping a-host "$B_HOST" 3
fs_stop a; fs_stop b

echo; if [ "$FX_FAILED" = 0 ]; then echo "=== always-on: all checks passed"; else echo "=== always-on: some checks FAILED"; fi
exit "${FX_FAILED:-0}"
