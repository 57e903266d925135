#!/usr/bin/env bash
# ferrosec (a-gw) <-> ferrosec (b-gw) over an IPv6 WAN (2001:db8::1 <-> 2001:db8::2, inside our
# namespaces), no NAT, so ESP travels raw over IPv6 (next header 50): IKE on UDP 500 over IPv6,
# IPv4 and IPv6 inside; the ESP leaves through a packet socket, past netfilter's output hook,
# and comes in through a packet ring, dropped before IP input by an nft table ip6 of the daemon's
# own (so ESP is counted here at prerouting -600, before that table). Every wait is bounded.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

A_WAN6=2001:db8::1 B_WAN6=2001:db8::2
fx_topology plain
fs_lan6
fx_in a-gw ip addr add "$A_WAN6/64" dev wan0 nodad
fx_in b-gw ip addr add "$B_WAN6/64" dev wan0 nodad

fs_pair_conf a6 b6 "$A_WAN6" "$A_WAN6" gateway='address-family = "ipv6"'
# fs_pair_conf gives B the IPv4 WAN as its own address; B must use the IPv6 one.
sed -i "s|^local-address = \"$B_WAN\"|local-address = \"$B_WAN6\"|" "$(fs_dir b6)/ferrosec.toml"
sed -i "s|^peer-address = \"$B_WAN\"|peer-address = \"$B_WAN6\"|" "$(fs_dir a6)/ferrosec.toml"
fs_start a6 a-gw
fs_start b6 b-gw

ping4() { fx_ping a-host "$B_HOST" 1; }
ping6() { fx_in a-host ping -6 -c 1 -W 2 -q "$B_HOST6" >/dev/null 2>&1; }
ike_over_v6() { fs_field "$(fs_ike_json a6)" peer-address | fx_has "$B_WAN6"; }
raw_esp() { [ "$(fs_count a6 encapsulation esp)" -ge 1 ] && [ "$(fs_count b6 encapsulation esp)" -ge 1 ]; }
esp6_on_wire() {
    fx_in b-gw nft -f - <<'NFT'
table ip6 fxcount {
    chain input {
        type filter hook prerouting priority -600; policy accept;
        meta l4proto 50 counter
        ip6 nexthdr 50 counter
        udp dport 4500 counter
    }
}
NFT
    fx_ping a-host "$B_HOST" 3 || return 1
    local rules
    rules=$(fx_in b-gw nft list chain ip6 fxcount input)
    printf '%s\n' "$rules" >"$FX_WORK/nft.txt"
    grep -E 'nexthdr esp' <<<"$rules" | fx_has -E 'packets [1-9]' &&
        grep -E 'udp dport 4500' <<<"$rules" | fx_has -E 'packets 0 '
}

fx_check "IPv6 WAN: pings from a-host bring the tunnel up (IPv4 inside, on demand)" fx_wait 15 ping4
fx_check "IPv6 WAN: the IKE SA runs between the IPv6 addresses" ike_over_v6
fx_check "IPv6 WAN: IPv6 inside too (ping6 a-host -> b-host)" fx_wait 15 ping6
fx_check "IPv6 WAN: raw ESP (no NAT) on both sides" raw_esp
fx_check "IPv6 WAN: ESP arrives at b-gw as IPv6 next header 50, none in UDP 4500" esp6_on_wire
# esp6_by_packet_socket: of a-host's 20 pings, at most 6 ESP packets leave a-gw through the
# IPv6 output path (fs_esp_output): the rest through its packet socket (our IPv6 header); b-gw
# receives all 20.
esp6_by_packet_socket() {
    local out seen="" seen0
    esp_seen() { fx_in b-gw nft list chain ip6 fxcount input | grep 'nexthdr esp' | grep -o 'packets [0-9]*' | awk '{print $2}'; }
    seen0=$(esp_seen)
    out=$(fs_esp_output a-gw)
    [ -n "$out" ] && seen=$(( $(esp_seen) - ${seen0:-0} ))
    fx_log "a-gw: ${out:-?} of 20 ESP packets went through the IPv6 output path; b-gw's prerouting hook (-600) counted ${seen:-?}"
    [ -n "$out" ] && [ "$out" -le 6 ] && [ "${seen:-0}" -ge 20 ]
}
fx_check "IPv6 WAN: a-gw sends its ESP through a packet socket (nft's output hook sees at most 6 of 20; b-gw receives them all)" \
    esp6_by_packet_socket
fx_check "IPv6 WAN: show system info says raw ESP over IPv6 comes in through a packet ring, out through a packet socket" \
    eval 'fs a6 show system info | fx_has -F "$A_WAN6: in packet ring, out packet socket" &&
          fs b6 show system info | fx_has -F "$B_WAN6: in packet ring, out packet socket"'
fx_check "IPv6 WAN: b-gw drops the ESP its ring has read before IP input (its nft table ip6 counts the pings; show system info names it)" \
    fs_early_drop b6 b-gw ip6 "$B_WAN6"
fx_check "IPv6 WAN: TCP (iperf3 2 s) a-host -> b-host" fs_tcp a-host "$B_HOST" b-host

# Outer fragments: b-gw's ring takes only ESP right after the IPv6 header; fragments (next header
# 44) pass its early drop to the kernel, which reassembles them for the raw ESP socket. a-gw's
# route to b-gw is narrowed to 1,280 bytes (locked); its kernel then fragments the raw ESP of
# 1,400-byte pings, and they must still arrive.
snmp6() { fx_in "$1" awk -v f="$2" '$1 == f { print $2 }' /proc/net/snmp6; }
frags0=$(snmp6 a-gw Ip6FragCreates)
reasm0=$(snmp6 b-gw Ip6ReasmOKs)
rx0=$(fs_flow_sum b6 packets-in)
fx_in a-gw ip -6 route replace "$B_WAN6/128" dev wan0 mtu lock 1280
fx_check "IPv6 WAN outer fragments: 5 pings of 1,400 bytes cross while a-gw fragments their ESP at 1,280" \
    eval 'fx_in a-host ping -M dont -c 5 -i 0.2 -W 2 -s 1400 "$B_HOST" | fx_has " 5 received"'
frags=$(( $(snmp6 a-gw Ip6FragCreates) - frags0 ))
reasm=$(( $(snmp6 b-gw Ip6ReasmOKs) - reasm0 ))
fx_check "IPv6 WAN outer fragments: a-gw's kernel made them (Ip6FragCreates +$frags, at least 10), b-gw's reassembled them (Ip6ReasmOKs +$reasm, at least 5)" \
    eval '[ "$frags" -ge 10 ] && [ "$reasm" -ge 5 ]'
# Each ping crosses the tunnel (MTU 1400) as two inner fragments, so as two ESP packets: the
# larger one fragmented on the way (through the kernel and the raw socket), the smaller not
# (through the ring).
fx_check "IPv6 WAN outer fragments: b-gw's SA counted the 10 ESP packets of the 5 pings (+$(( $(fs_flow_sum b6 packets-in) - rx0 )))" \
    eval '[ $(( $(fs_flow_sum b6 packets-in) - rx0 )) -ge 10 ]'
fx_in a-gw ip -6 route del "$B_WAN6/128" dev wan0
fs_stop a6
fs_stop b6
fx_check "IPv6 WAN: no ferrosec_esp_ table is left on either gateway after the daemons stop" \
    eval '! fx_in a-gw nft list tables | fx_has ferrosec_esp_ && ! fx_in b-gw nft list tables | fx_has ferrosec_esp_'
