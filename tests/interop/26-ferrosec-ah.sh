#!/usr/bin/env bash
# ferrosec (a-gw) <-> ferrosec (b-gw) with AH (RFC 4302, IP protocol 51; SPEC R-DP-2): an IPsec
# crypto profile with protocol "ah" and HMAC-SHA-256, no NAT between the gateways.
#   - IPv4 WAN: on-demand start, two Child SAs (IPv4 and IPv6 inside), ping and TCP, counters;
#     on the wire AH and no ESP; the inner packets travel in clear (authenticated only) and a
#     packet altered on the way is dropped and counted;
#   - IPv6 WAN: the same tunnel over IPv6 outer addresses (the receiver rebuilds the IPv6
#     header the AH ICV covers; a raw IPv6 socket does not hand it over).
# strongSwan is not the peer here: kernel-libipsec, the only strongSwan data plane this kernel
# allows, carries ESP only. Every wait is bounded.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

fx_topology plain
fs_lan6
A_WAN6=2001:db8::1 B_WAN6=2001:db8::2
fx_in a-gw ip addr add "$A_WAN6/64" dev wan0 nodad
fx_in b-gw ip addr add "$B_WAN6/64" dev wan0 nodad

AH=(esp_proto=ah esp_encr= esp_auth='"sha256"')
ping4() { fx_ping a-host "$B_HOST" "${1:-1}"; }
ping6() { fx_in a-host ping -6 -c 1 -W 2 -q "$B_HOST6" >/dev/null 2>&1; }
ping_all() { fx_in "$1" ping -c "$3" -W 2 -i 0.1 "$2" 2>/dev/null | fx_has " $3 received"; }

# on_wire FAMILY: nft on b-gw counts AH, ESP and UDP 4500 arriving while a-host pings 3 times;
# prints the counts.
on_wire() {
    local fam=$1
    fx_in b-gw nft -f - <<NFT || return 1
table $fam fsah {
    counter ah_in { }
    counter esp_in { }
    counter udp_in { }
    chain in {
        type filter hook prerouting priority -600; policy accept;
        meta l4proto ah counter name ah_in
        meta l4proto esp counter name esp_in
        udp dport 4500 counter name udp_in
    }
}
NFT
    fx_ping a-host "$B_HOST" 3 >/dev/null
    local c n
    for c in ah_in esp_in udp_in; do
        n=$(fx_in b-gw nft list counter "$fam" fsah "$c" | grep -o 'packets [0-9]*' | awk '{print $2}')
        printf '%s=%s ' "$c" "${n:-?}"
    done
    fx_in b-gw nft delete table "$fam" fsah
}
ah_only() { local r; r=$(on_wire "$1"); echo "    $r"; grep -qE 'ah_in=([3-9]|[1-9][0-9]+) esp_in=0 udp_in=0' <<<"$r"; }

# in_clear: the inner ICMP echo is visible on b-gw's WAN (AH authenticates, it does not hide).
in_clear() {
    fx_bg b-gw "$FX_WORK/tcpdump.txt" timeout 8 tcpdump -n -c 2 -i wan0 "ip proto 51"
    local pid=$FX_LAST_PID
    sleep 1
    fx_ping a-host "$B_HOST" 2 >/dev/null
    local i
    for i in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fx_stop "$pid"
    grep -q "AH(spi=" "$FX_WORK/tcpdump.txt" && grep -q "ICMP echo request" "$FX_WORK/tcpdump.txt"
}

# auth_failed NAME: AH (or ESP) packets whose ICV did not verify, summed over the SAs.
auth_failed() { fs "$1" --json show vpn flow 2>/dev/null | grep -o '"auth-failed": *[0-9]*' | awk '{s += $2} END {print s + 0}'; }

fs_pair_conf a4 b4 "$A_WAN" "$A_WAN" "${AH[@]}"
fs_start a4 a-gw
fs_start b4 b-gw
fx_check "ah: on demand: pings from a-host bring the tunnel up (IPv4 inside)" fx_wait 15 ping4
fx_check "ah: IPv6 inside too (the lan6 Child SA)" fx_wait 15 ping6
fx_check "ah: both Child SAs are AH (encapsulation ah, encryption none, integrity sha256) on both sides" \
    fx_wait 10 eval '[ "$(fs_count a4 encapsulation ah)" = 2 ] && [ "$(fs_count b4 encapsulation ah)" = 2 ] &&
                     [ "$(fs_count a4 encryption none)" = 2 ] && [ "$(fs_count b4 integrity sha256)" = 2 ]'
fx_check "ah: the system log says AH" fs_log_has a4 "/sha256, AH"
fx_check "ah: IPv4 ping a-host -> b-host, 10 of 10 answered" ping_all a-host "$B_HOST" 10
fx_check "ah: IPv6 ping b-host -> a-host, 5 of 5 answered" ping_all b-host "$A_HOST6" 5
fx_check "ah: TCP (iperf3 2 s) over IPv4 a-host -> b-host" fs_tcp a-host "$B_HOST" b-host
fx_check "ah: TCP (iperf3 2 s) over IPv6 a-host -> b-host" fs_tcp a-host "$B_HOST6" b-host
fx_check "ah: on the wire IP protocol 51 arrives at b-gw, no ESP, no UDP 4500" ah_only ip
fx_check "ah: the inner packets travel in clear, authenticated (tcpdump sees AH + ICMP echo)" in_clear
fx_check "ah: both sides count packets in and out, no authentication failures" \
    eval '[ "$(fs_flow_sum a4 packets-in)" -gt 100 ] && [ "$(fs_flow_sum b4 packets-out)" -gt 100 ] &&
          [ "$(auth_failed b4)" = 0 ]'
# An altered packet: b-gw's prerouting rewrites the last byte of every AH packet's payload
# (the inner ICMP data), which the ICV covers.
fx_in b-gw nft -f - <<'NFT'
table ip fstamper {
    chain pre {
        type filter hook prerouting priority -300; policy accept;
        ip protocol 51 @th,256,8 set 0x5a
    }
}
NFT
fx_check "ah: a packet altered on the way is not answered" eval '! fx_ping a-host "$B_HOST" 2'
fx_check "ah: ... and counted as auth-failed at b-gw" eval '[ "$(auth_failed b4)" -ge 2 ]'
fx_in b-gw nft delete table ip fstamper
fx_check "ah: unaltered packets pass again" fx_wait 5 ping4
fs_stop a4
fs_stop b4

fs_pair_conf a6 b6 "$A_WAN6" "$A_WAN6" "${AH[@]}" gateway='address-family = "ipv6"'
sed -i "s|^local-address = \"$B_WAN\"|local-address = \"$B_WAN6\"|" "$(fs_dir b6)/ferrosec.toml"
sed -i "s|^peer-address = \"$B_WAN\"|peer-address = \"$B_WAN6\"|" "$(fs_dir a6)/ferrosec.toml"
fs_start a6 a-gw
fs_start b6 b-gw
fx_check "ah6: over the IPv6 WAN: pings bring the AH tunnel up" fx_wait 15 ping4
fx_check "ah6: IPv6 inside too" fx_wait 15 ping6
fx_check "ah6: AH on both sides" \
    fx_wait 10 eval '[ "$(fs_count a6 encapsulation ah)" = 2 ] && [ "$(fs_count b6 encapsulation ah)" = 2 ]'
fx_check "ah6: IPv4 ping a-host -> b-host, 10 of 10 answered" ping_all a-host "$B_HOST" 10
fx_check "ah6: TCP (iperf3 2 s) a-host -> b-host" fs_tcp a-host "$B_HOST" b-host
fx_check "ah6: on the wire next header 51 arrives at b-gw, no ESP, no UDP 4500" ah_only ip6
fx_check "ah6: no authentication failures" eval '[ "$(auth_failed b6)" = 0 ]'
fs_stop a6
fs_stop b6
