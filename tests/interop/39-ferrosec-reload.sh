#!/usr/bin/env bash
# Live reload (R-OPS-4, issue 14), ferrosec (a-gw) <-> ferrosec (b-gw), raw ESP:
#   1. SIGHUP with the file unchanged: the same SPIs, and a continuous ping through tunnel
#      to-b loses nothing;
#   2. a security rule added at site A (`request system reload`): the SPIs do not change, the
#      continuous ping loses nothing, the new rule drops what it names and counts its hits;
#   3. a second tunnel t2 added (tunnel.2, 10.1.1.0/24 <-> 10.3.0.0/24, the same gateway;
#      at A always-on with a tunnel monitor): its device and routes appear, it comes up
#      without traffic, its monitor runs, and it carries traffic; to-b keeps its SPIs and the
#      continuous ping loses nothing;
#   4. t2 removed at site A: site B sees the DELETE of its IPsec SA, A's route, device and
#      monitor of t2 are gone; to-b keeps its SPIs; then removed at B too (B's route gone);
#   5. to-b's IPSec crypto profile changed to AES-128-CBC/SHA-256 on both sides: the IPsec
#      SAs are rekeyed (new SPIs, the new algorithms in show vpn ipsec-sa), the IKE SA stays;
#   6. site A's gateway changed (liveness-interval): its IKE SA is deleted (B sees the DELETE)
#      and negotiated again at once with the new settings; traffic flows again;
#   7. a manual-key tunnel added (tunnel.3, 10.1.2.0/24 <-> 10.4.0.0/24): its static SA pair
#      is installed on both sides and carries traffic; removed again: the pair and the route
#      are gone; to-b keeps its SPIs;
#   8. a broken file: the reload is refused, nothing changes (SPIs, routes, traffic).
# RELOAD_IKE=ikev1 runs it all over IKEv1 (main mode, DPD; 39-ferrosec-reload-ikev1.sh).
# Every wait is bounded.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init
IKE=${RELOAD_IKE:-ikev2}
echo "=== over $IKE"

fx_topology plain
# A second LAN pair for tunnel t2, and one more address behind B for the rule.
fx_in a-gw ip addr add 10.1.1.1/24 dev lan0
fx_in a-host ip addr add 10.1.1.10/24 dev eth0
fx_in b-gw ip addr add 10.3.0.1/24 dev lan0
fx_in b-host ip addr add 10.3.0.10/24 dev eth0
fx_in b-host ip addr add 10.2.0.11/24 dev eth0
# And a third for the manual-key tunnel.
fx_in a-gw ip addr add 10.1.2.1/24 dev lan0
fx_in a-host ip addr add 10.1.2.10/24 dev eth0
fx_in b-gw ip addr add 10.4.0.1/24 dev lan0
fx_in b-host ip addr add 10.4.0.10/24 dev eth0

# conf NAME SIDE [t2=yes] [rule=yes] [cbc=yes] [live=5s] [manual=yes] [broken=yes]: the file
# of site SIDE.
conf() {
    local name=$1 side=$2; shift 2
    local -A o=([t2]=no [rule]=no [cbc]=no [live]=5s [manual]=no [broken]=no)
    local kv; for kv in "$@"; do o[${kv%%=*}]=${kv#*=}; done
    local dir; dir=$(fs_dir "$name"); mkdir -p "$dir"
    local me peer my_id peer_id lan far lan2 far2 far3 spi_in spi_out
    if [ "$side" = a ]; then
        me=$A_WAN peer=$B_WAN my_id=a.ferrosec.test peer_id=b.ferrosec.test
        lan=$A_LAN far=$B_LAN lan2=10.1.1.0/24 far2=10.3.0.0/24 far3=10.4.0.0/24
        spi_in=0x1000 spi_out=0x2000
    else
        me=$B_WAN peer=$A_WAN my_id=b.ferrosec.test peer_id=a.ferrosec.test
        lan=$B_LAN far=$A_LAN lan2=10.3.0.0/24 far2=10.1.1.0/24 far3=10.1.2.0/24
        spi_in=0x2000 spi_out=0x1000
    fi
    {
        cat <<EOF
[global]
control-socket = "$dir/ferrosec.sock"
log-file = "$dir/system.log"

[ike-crypto-profile.ike]
dh-group = ["group14"]
authentication = ["sha256"]
encryption = ["aes-256-cbc"]
lifetime = "8h"

[ipsec-crypto-profile.esp]
encryption = ["aes-256-gcm"]
authentication = ["none"]
dh-group = "group14"
lifetime = "1h"

[ipsec-crypto-profile.esp-cbc]
encryption = ["aes-128-cbc"]
authentication = ["sha256"]
dh-group = "group14"
lifetime = "1h"

[ike-gateway.sw]
version = "$IKE"
local-address = "$me"
peer-address = "$peer"
pre-shared-key = "$FS_PSK"
local-id = { type = "fqdn", value = "$my_id" }
peer-id = { type = "fqdn", value = "$peer_id" }
ike-crypto-profile = "ike"
$(if [ "$IKE" = ikev1 ]; then
    printf 'exchange-mode = "main"\ndpd = { interval = "%s", retry = 5 }' "${o[live]}"
else
    printf 'liveness-interval = "%s"' "${o[live]}"
fi)

[tunnel-interface."tunnel.1"]
zone = "vpn"
mtu = 1400

[ipsec-tunnel.to-b]
tunnel-interface = "tunnel.1"
ike-gateway = "sw"
ipsec-crypto-profile = "$([ "${o[cbc]}" = yes ] && echo esp-cbc || echo esp)"
proxy-id = [ { name = "lan", local = "$lan", remote = "$far" } ]
EOF
        if [ "${o[t2]}" = yes ]; then
            cat <<EOF

[tunnel-interface."tunnel.2"]
zone = "vpn"
mtu = 1400

[ipsec-tunnel.t2]
tunnel-interface = "tunnel.2"
ike-gateway = "sw"
ipsec-crypto-profile = "esp"
proxy-id = [ { name = "lan2", local = "$lan2", remote = "$far2" } ]
EOF
            if [ "$side" = a ]; then
                cat <<EOF
establish = "always"
tunnel-monitor = { destination = "10.3.0.1", source = "10.1.1.1", profile = "mon" }

[monitor-profile.mon]
interval = "1s"
threshold = 3
action = "wait-recover"
EOF
            fi
        fi
        if [ "${o[manual]}" = yes ]; then
            cat <<EOF

[tunnel-interface."tunnel.3"]
zone = "vpn"
mtu = 1400

[ipsec-tunnel.legacy]
tunnel-interface = "tunnel.3"
type = "manual-key"
replay-window = 64
manual-key = { local-spi = "$spi_in", remote-spi = "$spi_out", protocol = "esp", encryption = "aes-128-cbc", encryption-key = "0x00112233445566778899aabbccddeeff", authentication = "sha256", authentication-key = "0x0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", local-address = "$me", peer-address = "$peer" }
EOF
        fi
        cat <<EOF

[virtual-router.default]
static-route = [
    { name = "far", destination = "$far", interface = "tunnel.1" },
$([ "${o[t2]}" = yes ] && echo "    { name = \"far2\", destination = \"$far2\", interface = \"tunnel.2\" },")
$([ "${o[manual]}" = yes ] && echo "    { name = \"far3\", destination = \"$far3\", interface = \"tunnel.3\" },")
]

[zone.vpn]
interfaces = ["tunnel.1"$([ "${o[t2]}" = yes ] && echo ', "tunnel.2"')$([ "${o[manual]}" = yes ] && echo ', "tunnel.3"')]
EOF
        if [ "$side" = a ]; then
            cat <<EOF

[zone.trust]
interfaces = ["lan0"]
EOF
            if [ "${o[rule]}" = yes ]; then
                cat <<EOF

[[security-rule]]
name = "no-b11"
from = ["trust"]
to = ["vpn"]
source = ["any"]
destination = ["10.2.0.11"]
service = "any"
action = "deny"
EOF
            fi
            cat <<EOF

[[security-rule]]
name = "out"
from = ["trust"]
to = ["vpn"]
source = ["any"]
destination = ["any"]
service = "any"
action = "allow"

[[security-rule]]
name = "in"
from = ["vpn"]
to = ["trust"]
source = ["any"]
destination = ["any"]
service = "any"
action = "allow"
EOF
        fi
        if [ "${o[broken]}" = yes ]; then
            printf '\n[ipsec-tunnel.bad]\ntunnel-interface = "tunnel.9"\nike-gateway = "nope"\n'
        fi
    } >"$dir/ferrosec.toml"
}

reload() { fs "$1" request system reload; }
syslog_has() { fx_has -- "$2" <"$(fs_dir "$1")/system.log"; }
# spis NAME: the inbound SPIs of tunnel to-b, sorted.
spis() { fs_ipsec_json "$1" | python3 -c '
import json, sys
print(" ".join(sorted(r["spi-in"] for r in json.load(sys.stdin) if r["tunnel"] == "to-b")))' 2>/dev/null; }
# ike_spis NAME: the IKE SA's history in the system log (its SPIs when it came up, and every
# later IKE SA up, rekeyed or down): unchanged while the same IKE SA lives.
ike_spis() { grep -E "IKE SA (established|re-authenticated|rekeyed|down)" "$(fs_dir "$1")/system.log" | sed -E 's/^[^ ]+ //' | md5sum; }
# A continuous ping a-host -> b-host (20/s, N packets) in the background; ping_done says
# whether every one was answered. With -w, ping waits for every reply until its deadline (N/20
# + 5 s), so a reply that is only late is not counted lost; -O names each request still
# unanswered when the next goes out (printed when one was lost).
PING_PID=
ping_start() {
    fx_bg a-host "$FX_WORK/ping.out" ping -O -i 0.05 -c "$1" -w $(($1 / 20 + 5)) "$B_HOST"
    PING_PID=$FX_LAST_PID
}
ping_done() {
    local i
    for i in $(seq 300); do kill -0 "$PING_PID" 2>/dev/null || break; sleep 0.1; done
    wait "$PING_PID" 2>/dev/null || true
    grep -E 'packets transmitted' "$FX_WORK/ping.out" | sed 's/^/    ping: /'
    if fx_has -E ' 0% packet loss' "$FX_WORK/ping.out"; then
        return 0
    fi
    grep -E 'no answer yet' "$FX_WORK/ping.out" | sed 's/^/    ping: /'
    return 1
}
# to_b_packets NAME: packets in and out counted on to-b's SAs (show vpn flow).
to_b_packets() { fs "$1" --json show vpn flow 2>/dev/null | python3 -c '
import json, sys
print(sum(r["packets-in"] + r["packets-out"] for r in json.load(sys.stdin) if r["tunnel"] == "to-b"))'; }
to_b_up() { [ "$(fs_count "$1" tunnel to-b)" -ge 1 ]; }
t2_up() { [ "$(fs_count "$1" tunnel t2)" -ge 1 ]; }
ping_t2() { fx_in a-host ping -I 10.1.1.10 -c "${1:-3}" -W 2 -i 0.2 -q 10.3.0.10 >/dev/null 2>&1; }
route_via() { fx_in "$1" ip route show "$2" 2>/dev/null | fx_has "dev $3"; }
has_link() { fx_in "$1" ip link show "$2" >/dev/null 2>&1; }
# monitor_of: t2's monitor state in `show vpn tunnel` at A (absent: no such tunnel).
monitor_of() { fs a --json show vpn tunnel 2>/dev/null | python3 -c '
import json, sys
print(next((r["monitor"] for r in json.load(sys.stdin) if r["tunnel"] == "t2"), "absent"))'; }
monitor_up() { [ "$(monitor_of)" = up ]; }
hits() { fs a --json show security rules 2>/dev/null | python3 -c '
import json, sys
print(next((r["hits"] for r in json.load(sys.stdin) if r["name"] == sys.argv[1]), -1))' "$1"; }

conf a a
conf b b
fs_start b b-gw
fs_start a a-gw
fx_check "setup: tunnel to-b up, traffic flows" fx_wait 15 fx_ping a-host "$B_HOST" 1
fx_check "setup: both sides have to-b's IPsec SA" fx_wait 10 eval 'to_b_up a && to_b_up b'

# --- 1. unchanged file, SIGHUP -------------------------------------------------------------
s_a=$(spis a) s_b=$(spis b) i_a=$(ike_spis a)
ping_start 60
sleep 0.5
kill -HUP "$(cat "$(fs_dir a)/pid")"
kill -HUP "$(cat "$(fs_dir b)/pid")"
sleep 1
fx_check "1: SIGHUP with the same file: the log says no change (both sides)" \
    eval 'syslog_has a "reloaded from .*: no change" && syslog_has b "reloaded from .*: no change"'
fx_check "1: no ping lost during the reload" ping_done
fx_check "1: the same IPsec SPIs (both sides) and IKE SPIs" \
    eval '[ "$(spis a)" = "$s_a" ] && [ "$(spis b)" = "$s_b" ] && [ "$(ike_spis a)" = "$i_a" ]'

# --- 2. a rule added ------------------------------------------------------------------------
fx_check "2: before: a-host reaches 10.2.0.11 through to-b" fx_ping a-host 10.2.0.11 2
s_a=$(spis a) s_b=$(spis b)
conf a a rule=yes
ping_start 60
sleep 0.5
out=$(reload a 2>&1) || true
echo "$out" | sed 's/^/    a: /'
fx_check "2: the reload names the new rule" fx_has "security-rule no-b11 (added): in force" <<<"$out"
fx_check "2: no ping lost to b-host during the reload" ping_done
fx_check "2: the new rule drops a-host -> 10.2.0.11" eval '! fx_ping a-host 10.2.0.11 3'
fx_check "2: show security rules counts its hits" eval '[ "$(hits no-b11)" -ge 1 ]'
fx_check "2: the IPsec SPIs did not change (both sides)" \
    eval '[ "$(spis a)" = "$s_a" ] && [ "$(spis b)" = "$s_b" ]'

# --- 3. a second tunnel added ---------------------------------------------------------------
s_a=$(spis a) s_b=$(spis b) i_a=$(ike_spis a) p_a=$(to_b_packets a)
conf b b t2=yes
out_b=$(reload b 2>&1) || true
echo "$out_b" | sed 's/^/    b: /'
conf a a t2=yes rule=yes
ping_start 60
sleep 0.5
out=$(reload a 2>&1) || true
echo "$out" | sed 's/^/    a: /'
fx_check "3: the reload says what it did for t2" \
    fx_has -E "ipsec-tunnel t2 \(added\):.*tunnel interface tunnel.2 created.*route 10.3.0.0/24 via tunnel.2.* installed" <<<"$out"
fx_check "3: tunnel.2 exists and routes 10.3.0.0/24 at A, 10.1.1.0/24 at B" \
    eval 'has_link a-gw tunnel.2 && route_via a-gw 10.3.0.0/24 tunnel.2 && route_via b-gw 10.1.1.0/24 tunnel.2'
fx_check "3: no ping lost through to-b during the reload" ping_done
fx_check "3: to-b's counters kept counting (120 more packets, none reset)" \
    eval '[ "$(to_b_packets a)" -ge $((p_a + 120)) ]'
fx_check "3: t2 (always-on) comes up without traffic, on both sides" fx_wait 10 eval 't2_up a && t2_up b'
fx_check "3: t2 carries traffic (10.1.1.10 -> 10.3.0.10)" fx_wait 10 ping_t2 1
fx_check "3: t2's tunnel monitor runs and is up (show vpn tunnel)" fx_wait 10 monitor_up
fx_check "3: to-b kept its IPsec SPIs (both sides) and the IKE SA its SPIs" \
    eval '[ -n "$s_a" ] && [ "$(spis a)" = "$s_a" ] && [ "$(spis b)" = "$s_b" ] && [ "$(ike_spis a)" = "$i_a" ]'

# --- 4. the second tunnel removed -----------------------------------------------------------
conf a a rule=yes
out=$(reload a 2>&1) || true
echo "$out" | sed 's/^/    a: /'
fx_check "4: the reload says t2's IPsec SA was deleted on the peer and its route removed" \
    eval 'fx_has -E "ipsec-tunnel t2 \(removed\):.*route 10.3.0.0/24 via tunnel.2.* removed.*deleted \(DELETE sent\)" <<<"$out"'
fx_check "4: site B sees the delete of t2's IPsec SA" \
    fx_wait 5 eval 'syslog_has b "ipsec-tunnel t2: IPsec SA down for proxy-id lan2.*deleted by the peer" && ! t2_up b'
fx_check "4: A's route to 10.3.0.0/24 and tunnel.2 are gone" \
    fx_wait 5 eval '! route_via a-gw 10.3.0.0/24 tunnel.2 && ! has_link a-gw tunnel.2'
fx_check "4: t2's monitor stopped, and t2 is no longer shown" \
    eval 'fx_has "ipsec-tunnel t2 (removed):.*tunnel monitor stopped" <<<"$out" && [ "$(monitor_of)" = absent ]'
fx_check "4: to-b kept its IPsec SPIs" eval '[ "$(spis a)" = "$s_a" ]'
fx_check "4: traffic through to-b still flows" fx_ping a-host "$B_HOST" 3
conf b b
reload b >/dev/null 2>&1 || true
fx_check "4: after B's reload, B's route to 10.1.1.0/24 is gone too" \
    fx_wait 5 eval '! route_via b-gw 10.1.1.0/24 tunnel.2'

# --- 5. the IPSec crypto profile of to-b changed --------------------------------------------
s_a=$(spis a) i_a=$(ike_spis a)
fx_check "5: before: to-b uses aes-256-gcm" eval '[ "$(fs_count a encryption aes-256-gcm)" -ge 1 ]'
ping_start 100
sleep 0.5
conf b b cbc=yes
reload b 2>&1 | sed 's/^/    b: /' || true
sleep 1
conf a a rule=yes cbc=yes
out=$(reload a 2>&1) || true
echo "$out" | sed 's/^/    a: /'
fx_check "5: no ping lost while both sides reload and rekey (make-before-break)" ping_done
fx_check "5: the reload says to-b's IPsec SAs are rekeyed with the new settings" \
    fx_has "ipsec-tunnel to-b (changed): proxy-id lan: rekey of 1 IPsec SA pair(s) with the new IPSec crypto settings started" <<<"$out"
cbc_only() { [ "$(fs_count "$1" encryption aes-128-cbc)" -ge 1 ] && [ "$(fs_count "$1" encryption aes-256-gcm)" = 0 ]; }
fx_check "5: show vpn ipsec-sa shows aes-128-cbc/sha256 on both sides, new SPIs" \
    fx_wait 10 eval 'cbc_only a && cbc_only b && [ "$(fs_count a integrity sha256)" -ge 1 ] && [ "$(spis a)" != "$s_a" ]'
fx_check "5: the IKE SA stayed (same SPIs)" eval '[ "$(ike_spis a)" = "$i_a" ]'
fx_check "5: traffic flows on the new SAs" fx_ping a-host "$B_HOST" 3

# --- 6. the gateway changed ------------------------------------------------------------------
s_a=$(spis a) i_a=$(ike_spis a)
conf a a rule=yes cbc=yes live=10s
out=$(reload a 2>&1) || true
echo "$out" | sed 's/^/    a: /'
fx_check "6: the reload says the IKE SA was deleted on the peer and is negotiated again" \
    eval 'fx_has -E "ike-gateway sw \(changed\): settings changed: 1 IKE SA\(s\) deleted on the peer \(DELETE sent\).*negotiating again with the new settings" <<<"$out"'
fx_check "6: site B sees the DELETE of the IKE SA" \
    fx_wait 5 syslog_has b "ike-gateway sw: IKE SA down: deleted by the peer"
fx_check "6: a new IKE SA and IPsec SA come up at once (no traffic needed)" \
    fx_wait 10 eval 'fs_ike_established a && to_b_up a && [ "$(ike_spis a)" != "$i_a" ] && [ "$(spis a)" != "$s_a" ]'
if [ "$IKE" = ikev2 ]; then
    fx_check "6: show vpn ike-sa shows the new liveness interval" \
        eval 'fs_ike_json a | fx_has "\"liveness-interval\": *10"'
else
    fx_check "6: the new IKE SA is IKEv1 main mode" eval 'fs_ike_json a | fx_has "\"version\": *\"ikev1-main\""'
fi
fx_check "6: traffic flows again" fx_wait 10 fx_ping a-host "$B_HOST" 3

# --- 7. a manual-key tunnel added and removed ----------------------------------------------
s_a=$(spis a)
manual_rows() { fs_field "$(fs_ipsec_json "$1")" state | grep -cx manual || true; }
ping_legacy() { fx_in a-host ping -I 10.1.2.10 -c "${1:-3}" -W 2 -i 0.2 -q 10.4.0.10 >/dev/null 2>&1; }
conf b b cbc=yes manual=yes
reload b 2>&1 | sed 's/^/    b: /' || true
conf a a rule=yes cbc=yes live=10s manual=yes
out=$(reload a 2>&1) || true
echo "$out" | sed 's/^/    a: /'
fx_check "7: the reload installed the manual-key pair (SPI in 0x00001000 out 0x00002000) and its route" \
    eval 'fx_has -E "ipsec-tunnel legacy \(added\):.*manual-key SA pair installed: SPI in 0x00001000 out 0x00002000.*route 10.4.0.0/24 via tunnel.3.* installed" <<<"$out"'
fx_check "7: the keys appear nowhere in the answer or the system log" \
    eval '! fx_has -i "00112233445566\|0123456789abcdef0123" <<<"$out$(cat "$(fs_dir a)/system.log")"'
fx_check "7: show vpn ipsec-sa has the manual pair on both sides" \
    eval '[ "$(manual_rows a)" = 1 ] && [ "$(manual_rows b)" = 1 ]'
fx_check "7: it carries traffic (10.1.2.10 -> 10.4.0.10)" fx_wait 10 ping_legacy 1
conf a a rule=yes cbc=yes live=10s
out=$(reload a 2>&1) || true
echo "$out" | sed 's/^/    a: /'
fx_check "7: removed: its route first, then its pair" \
    eval 'fx_has -E "ipsec-tunnel legacy \(removed\): route 10.4.0.0/24 via tunnel.3.* removed.*manual-key SA pair 0x00001000 removed" <<<"$out"'
fx_check "7: no manual pair, no route, no tunnel.3 at A; no traffic" \
    fx_wait 5 eval '[ "$(manual_rows a)" = 0 ] && ! route_via a-gw 10.4.0.0/24 tunnel.3 && ! has_link a-gw tunnel.3 && ! ping_legacy 2'
fx_check "7: to-b kept its IPsec SPIs" eval '[ "$(spis a)" = "$s_a" ]'
conf b b cbc=yes
reload b >/dev/null 2>&1 || true

# --- 8. a broken file -----------------------------------------------------------------------
s_a=$(spis a) i_a=$(ike_spis a)
conf a a rule=yes cbc=yes live=10s broken=yes
ping_start 40
fx_check "8: request system reload refuses a broken file" eval '! reload a >"$FX_WORK/broken.out" 2>&1'
sed 's/^/    a: /' "$FX_WORK/broken.out"
fx_check "8: the log says it was rejected and nothing changed" \
    syslog_has a "reload rejected, the running configuration stays in force"
fx_check "8: no ping lost" ping_done
fx_check "8: the same SPIs, the route still there" \
    eval '[ "$(spis a)" = "$s_a" ] && [ "$(ike_spis a)" = "$i_a" ] && route_via a-gw "$B_LAN" tunnel.1'

fs_stop a; fs_stop b
fx_check "after SIGTERM no route through the tunnels is left" \
    eval '! route_via a-gw "$B_LAN" tunnel.1 && ! route_via b-gw "$A_LAN" tunnel.1'

echo; if [ "$FX_FAILED" = 0 ]; then echo "=== reload: all checks passed"; else echo "=== reload: some checks FAILED"; fi
exit "${FX_FAILED:-0}"
