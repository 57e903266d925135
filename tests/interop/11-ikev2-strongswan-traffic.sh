#!/usr/bin/env bash
# ferrosec (a-gw, behind a port-randomizing NAT: nft masquerade random,persistent) against
# strongSwan 5.9 (b-gw), under continuous traffic:
#   - the tunnel through the port-randomizing NAT (ESP in UDP from a random source port);
#   - Child SA rekey by strongSwan and by ferrosec, IKE SA rekey by strongSwan and by ferrosec,
#     each while a-host pings b-host every 50 ms: not one ping lost (transmitted = received),
#     with ferrosec impaired so that its new inbound SAs come 100 ms late (the peer's first
#     packets on a new SA wait in the receive worker until it comes);
#   - re-authentication by strongSwan (swanctl --rekey --reauth, make_before_break = yes): a
#     new IKE SA from IKE_SA_INIT with new Child SAs, then the old IKE SA deleted, under the
#     same ping: not one ping lost;
#   - an extra Child SA: two proxy IDs (10.1.0.0/24 and 10.1.1.0/24 behind A), two Child SAs
#     under one IKE SA, traffic through both;
#   - strongSwan killed (SIGKILL by its PID) and restarted mid-traffic: ferrosec's liveness
#     check finds the peer dead (liveness-interval 2 s: the check and 8 retransmissions 2 s
#     apart, dead 18 s after the check) and negotiates again; the tunnel is back within 30 s.
#     (strongSwan cannot re-initiate: ferrosec is behind the NAT.)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

FX_NAT_RANDOM=1 fx_topology nat
# The second LANs for the extra Child SA.
fx_in a-gw ip addr add 10.1.1.1/24 dev lan0
fx_in a-host ip addr add 10.1.1.10/24 dev eth0
fx_in b-gw ip addr add 10.2.1.1/24 dev lan0
fx_in b-host ip addr add 10.2.1.10/24 dev eth0

# strongSwan: two children, net (10.2.0.0/24 <-> 10.1.0.0/24) and net2 (the 10.x.1.0 LANs).
sw_write() {
    local name=$1
    fx_sw_conf "$name" local="$B_WAN" remote=%any local_ts="$B_LAN" remote_ts="$A_LAN" \
        local_id=b.ferrosec.test remote_id=a.ferrosec.test psk="$FS_PSK" \
        ike=aes256-sha256-ecp256 esp=aes256gcm16-ecp256
    # Add the second child after `net`.
    python3 - "$(fx_sw_dir "$name")/swanctl.conf" <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
i = s.index("            net {"); j = s.index("}", i) + 1
net2 = s[i:j].replace("net {", "net2 {", 1).replace("10.2.0.0/24", "10.2.1.0/24").replace("10.1.0.0/24", "10.1.1.0/24")
s = s[:j] + "\n" + net2 + s[j:]
open(p, "w").write(s)
PY
}
sw_write sw
FX_SW_MBB=yes fx_sw_start sw b-gw
fs_conf fs local="$A_PRIV" groups='"group19"' pfs=group19 \
    proxy_ids='{ name = "lan", local = "10.1.0.0/24", remote = "10.2.0.0/24" }, { name = "lan2", local = "10.1.1.0/24", remote = "10.2.1.0/24" }' \
    routes='{ name = "b", destination = "10.2.0.0/24", interface = "tunnel.1" }, { name = "b2", destination = "10.2.1.0/24", interface = "tunnel.1" }' \
    gateway='liveness-interval = "2s"'
sed -i 's/^liveness-interval = "5s"$//' "$(fs_dir fs)/ferrosec.toml"
# Impaired: every inbound SA reaches ferrosec's receive workers 100 ms after the IKE task
# installs it, so that on every rekey strongSwan's first packets on the new SA arrive before
# the SA is there (on a fast host this happens only now and then). The receive workers hold
# such packets until the SA comes; the no-ping-lost checks below fail if they do not.
FERROSEC_IMPAIR_INBOUND_DELAY_MS=100 fs_start fs a-gw
fx_check "the impairment is on (inbound SAs installed 100 ms late)" \
    eval 'fs fs show system log | fx_has "test impairment FERROSEC_IMPAIR_INBOUND_DELAY_MS: every inbound SA is installed 100 ms late"'

both_children() { [ "$(fs_count fs proxy-id lan)" -ge 1 ] && [ "$(fs_count fs proxy-id lan2)" -ge 1 ]; }
fx_check "random NAT: test vpn ipsec-sa brings both proxy IDs up" \
    eval 'fs fs test vpn ipsec-sa tunnel to-b >"$FX_WORK/test.out" 2>&1'
fx_check "random NAT: ferrosec is behind the NAT, ESP in UDP; strongSwan sees a NAT port other than 4500" \
    fx_wait 10 eval 'fs_field "$(fs_ike_json fs)" local-nat | fx_has -x true && [ "$(fs_count fs encapsulation udp)" -ge 2 ] &&
        fx_sw_swanctl sw --list-sas | grep -oE "$A_WAN\[[0-9]+\]" | grep -vq "\[4500\]"'
fx_check "extra Child SA: two Child SAs (lan, lan2) under one IKE SA on ferrosec; strongSwan has net and net2" \
    eval 'both_children && [ "$(fs_field "$(fs_ike_json fs)" state | grep -cx established)" = 1 ] &&
          fx_sw_swanctl sw --list-sas | fx_has "net2: #" && fx_sw_swanctl sw --list-sas | fx_has "net: #"'
fx_check "random NAT: ping a-host -> b-host" fx_wait 10 fx_ping a-host "$B_HOST" 2
fx_check "extra Child SA: ping 10.1.1.10 -> 10.2.1.10 through the second Child SA" \
    fx_wait 10 eval 'fx_in a-host ping -c 2 -W 2 -i 0.2 -q -I 10.1.1.10 10.2.1.10 >/dev/null 2>&1'
fx_check "random NAT: TCP (iperf3 2 s) a-host -> b-host" fs_tcp a-host "$B_HOST" b-host

# pinger_start / pinger_stop (ferrosec-lib.bash): a-host pings b-host every 50 ms.
pinger_start() { fs_pinger_start a-host "$B_HOST" 0.05 "$1"; }
pinger_stop() { fs_pinger_stop "$1" fs; }

before=$(fs_spi_in fs)
pinger_start child-sw
fx_sw_swanctl sw --rekey --child net >/dev/null 2>&1
fx_wait 10 eval 'changed() { [ "$1" != "$2" ]; }; fs_log_has fs "removed after rekey" && [ "$(fs_spi_in fs)" != "$before" ]' || true
fx_check "Child SA rekey by strongSwan under ping -i 0.05: no ping lost" pinger_stop child-sw

before=$(fs_spi_in fs)
removed=$(fs fs show system log | grep -c "removed after rekey" || true)
pinger_start child-fs
fs fs request vpn rekey ipsec-sa tunnel to-b >"$FX_WORK/rekey-child-fs.out" 2>&1
fx_wait 10 eval '[ "$(fs fs show system log | grep -c "removed after rekey")" -ge $((removed + 2)) ]' || true
fx_check "Child SA rekey by ferrosec (both Child SAs) under ping -i 0.05: no ping lost, new SPIs" \
    eval 'pinger_stop child-fs && [ "$(fs_spi_in fs)" != "$before" ]'

ike_rekeys() { fs fs show system log | grep -c "IKE SA rekeyed" || true; }
n=$(ike_rekeys)
pinger_start ike-sw
fx_sw_swanctl sw --rekey --ike s2s >/dev/null 2>&1
fx_wait 10 eval '[ "$(ike_rekeys)" -gt "$n" ]' || true
fx_check "IKE SA rekey by strongSwan under ping -i 0.05: rekeyed, no ping lost" \
    eval 'pinger_stop ike-sw && [ "$(ike_rekeys)" -gt "$n" ]'

n=$(ike_rekeys)
pinger_start ike-fs
fs fs request vpn rekey ike-sa gateway sw >"$FX_WORK/rekey-ike-fs.out" 2>&1
fx_wait 10 eval '[ "$(ike_rekeys)" -gt "$n" ]' || true
fx_check "IKE SA rekey by ferrosec under ping -i 0.05: rekeyed, no ping lost" \
    eval 'pinger_stop ike-fs && [ "$(ike_rekeys)" -gt "$n" ]'
fx_check "after the rekeys: one IKE SA, both Child SAs, strongSwan agrees" \
    fx_wait 10 eval 'both_children && [ "$(fs_field "$(fs_ike_json fs)" state | grep -cx established)" = 1 ] && sw_established sw'

ike_ups() { fs fs show system log | grep -c "old IKE SA .* removed after re-authentication" || true; }
n=$(ike_ups)
sw_ike() { fx_sw_swanctl sw --list-sas | grep -oE "^s2s: #[0-9]+" | head -1; }
old_ike=$(sw_ike)
pinger_start reauth-sw
fx_sw_swanctl sw --rekey --ike s2s --reauth >"$FX_WORK/reauth-sw.out" 2>&1
fx_wait 15 eval '[ "$(ike_ups)" -gt "$n" ] && [ "$(fs_field "$(fs_ike_json fs)" state | grep -cx established)" = 1 ] && both_children' || true
fx_check "re-authentication by strongSwan under ping -i 0.05: the old IKE SA removed after it, no ping lost" \
    eval 'pinger_stop reauth-sw && [ "$(ike_ups)" -gt "$n" ]'
fx_check "after strongSwan's re-authentication: one IKE SA ($old_ike replaced), both Child SAs, strongSwan agrees" \
    fx_wait 10 eval 'both_children && [ "$(fs_field "$(fs_ike_json fs)" state | grep -cx established)" = 1 ] &&
        [ "$(sw_ike)" != "$old_ike" ] && sw_established sw &&
        [ "$(fx_sw_swanctl sw --list-sas | grep -c ESTABLISHED)" = 1 ]'
fs fs show system log | grep -E "IKE SA|removed" | tail -6 | cut -c1-200 | sed 's/^/    /' || true

# strongSwan killed and restarted under traffic.
pinger_start kill
killed_at=$(date +%s.%N)
kill -KILL "$(cat "$(fx_sw_dir sw)/pid")"
sleep 1
sw_write sw
fx_sw_start sw b-gw
back() { fx_in a-host ping -c 1 -W 1 -q "$B_HOST" >/dev/null 2>&1; }
established=$(fs fs show system log | grep -c "IKE SA established" || true)
fx_check "strongSwan SIGKILLed and restarted: ferrosec finds the peer dead (system log)" \
    fx_wait 30 eval 'fs_log_has fs "IKE SA down: peer unreachable"'
fx_check "strongSwan restarted: the tunnel carries pings again within 30 s of the kill" \
    fx_wait 30 back
up_at=$(date +%s.%N)
echo "    tunnel back $(awk -v a="$killed_at" -v b="$up_at" 'BEGIN {printf "%.1f", b - a}') s after the SIGKILL"
fx_check "strongSwan restarted: a new IKE SA (ferrosec initiator) and both Child SAs on both sides" \
    fx_wait 10 eval '[ "$(fs fs show system log | grep -c "IKE SA established")" -gt "$established" ] &&
        sw_established sw && fs_ike_established fs && both_children &&
        fx_sw_swanctl sw --list-sas | fx_has "net2: #"'
kill -INT "$PINGER" 2>/dev/null || true
for _ in $(seq 30); do kill -0 "$PINGER" 2>/dev/null || break; sleep 0.1; done
fx_stop "$PINGER"
{ grep "packets transmitted" "$FX_WORK/ping-kill.out" || true; } | sed 's/^/    kill+restart: /'
