#!/usr/bin/env bash
# ferrosec (a-gw, behind a NAT: nft masquerade) <-> ferrosec (b-gw): ESP in UDP 4500 (RFC 3948).
#   - on-demand start from a-host; NAT detected (a: local-nat, b: peer-nat); encapsulation udp;
#   - two proxy IDs (IPv4 and IPv6 LANs), two Child SAs under one IKE SA;
#   - ping and TCP both families, AES-256-CBC with HMAC-SHA-256 here (GCM is in 21 and 10);
#   - NAT keepalives (one 0xff byte to UDP 4500) every nat-keepalive-interval from site A;
#   - on the wire: UDP 4500, no raw ESP.
# With FX_NAT_RANDOM=1 the NAT also randomizes source ports.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

fx_topology nat
fs_lan6

ping_all() { fx_in "$1" ping -c "$3" -W 2 -i 0.1 "$2" 2>/dev/null | fx_has " $3 received"; }
ping4() { fx_ping a-host "$B_HOST" 1; }
ping6() { fx_in a-host ping -6 -c 1 -W 2 -q "$B_HOST6" >/dev/null 2>&1; }
field_is() { fs_field "$(fs_ike_json "$1")" "$2" | fx_has -x "$3"; }

# nft counters on b-gw's input: ESP in UDP 4500, NAT keepalives (UDP length 9: one byte), raw ESP.
count_on() {
    fx_in b-gw nft -f - <<'NFT'
table inet fscount {
    counter udp_esp { }
    counter keepalive { }
    counter raw_esp { }
    chain in {
        type filter hook prerouting priority -600; policy accept;
        udp dport 4500 udp length 9 @th,64,8 0xff counter name keepalive
        udp dport 4500 udp length > 12 counter name udp_esp
        meta l4proto esp counter name raw_esp
    }
}
NFT
}
counter() { fx_in b-gw nft list counter inet fscount "$1" | grep -o 'packets [0-9]*' | awk '{print $2}'; }

fs_pair_conf a b "$A_PRIV" "$A_WAN" esp_encr='"aes-256-cbc"' esp_auth='"sha256"' global='nat-keepalive-interval = "1s"'
fs_start a a-gw
fs_start b b-gw
count_on
fx_check "nat: on demand: a ping from a-host brings the tunnel up" fx_wait 15 ping4
fx_check "nat: IPv6 inside: ping6 a-host -> b-host" fx_wait 15 ping6
fx_check "nat: one IKE SA, two Child SAs (lan4, lan6) on each side" \
    fx_wait 10 eval '[ "$(fs_count a proxy-id lan4)" = 1 ] && [ "$(fs_count a proxy-id lan6)" = 1 ] &&
                     [ "$(fs_count b proxy-id lan4)" = 1 ] && [ "$(fs_count b proxy-id lan6)" = 1 ] &&
                     [ "$(fs_field "$(fs_ike_json a)" state | grep -cx established)" = 1 ]'
fx_check "nat: site A knows it is behind the NAT (local-nat true), site B sees peer-nat true" \
    eval 'field_is a local-nat true && field_is b peer-nat true'
fx_check "nat: both Child SAs are ESP in UDP (encapsulation udp) on both sides" \
    eval '[ "$(fs_count a encapsulation udp)" = 2 ] && [ "$(fs_count b encapsulation udp)" = 2 ]'
fx_check "nat: Child SAs use aes-256-cbc / sha256" \
    eval '[ "$(fs_count a encryption aes-256-cbc)" = 2 ] && [ "$(fs_count a integrity sha256)" = 2 ]'
fx_check "nat: IPv4 ping a-host -> b-host, 10 of 10 answered" ping_all a-host "$B_HOST" 10
fx_check "nat: IPv6 ping a-host -> b-host, 10 of 10 answered" ping_all a-host "$B_HOST6" 10
fx_check "nat: IPv4 ping b-host -> a-host (through the NAT mapping)" ping_all b-host "$A_HOST" 3
fx_check "nat: TCP (iperf3 2 s) over IPv4 a-host -> b-host" fs_tcp a-host "$B_HOST" b-host
fx_check "nat: TCP (iperf3 2 s) over IPv6 a-host -> b-host" fs_tcp a-host "$B_HOST6" b-host
fx_check "nat: on the wire ESP came in UDP 4500, no raw ESP" \
    eval '[ "$(counter udp_esp)" -gt 100 ] && [ "$(counter raw_esp)" = 0 ]'
k0=$(counter keepalive)
sleep 3.5
k1=$(counter keepalive)
fx_check "nat: NAT keepalives from site A (interval 1 s): $((k1 - k0)) in 3.5 s (want 2..5)" \
    eval '[ $((k1 - k0)) -ge 2 ] && [ $((k1 - k0)) -le 5 ]'

# R-DP-2: AH cannot cross the NAT. With an AH-only profile site A gives up before IKE_AUTH and
# says why in plain words; no tunnel comes up on either side.
fs_stop a
fs_stop b
fs_pair_conf ah-a ah-b "$A_PRIV" "$A_WAN" esp_proto=ah esp_encr= esp_auth='"sha256"'
fs_start ah-a a-gw
fs_start ah-b b-gw
fx_in a-host ping -c 1 -W 1 -q "$B_HOST" >/dev/null 2>&1 || true
fx_check "nat+ah: site A says AH cannot cross the NAT and to use ESP" \
    fx_wait 15 fs_log_has ah-a "AH cannot cross the NAT detected between the peers"
fx_check "nat+ah: no IKE SA and no IPsec SA on either side" \
    eval 'fs_no_ike_sa ah-a && fs_no_ike_sa ah-b && [ "$(fs_count ah-a encapsulation ah)" = 0 ]'
fs_stop ah-a
fs_stop ah-b
