#!/usr/bin/env bash
# The tunnel interface's MTU and TCP MSS clamping (R-DP-8), ferrosec <-> ferrosec, raw ESP with
# AES-256-GCM over IPv4 across a 1,500-byte WAN:
#   - both tunnel interfaces are configured with mtu = 1500; once the SAs are up each device's
#     MTU is what one SA carries without fragmenting its outer packet: 1500 less 20 (IPv4) less
#     8 (ESP header) less 8 (IV) less 16 (ICV), rounded down to 4, less the 2-byte trailer =
#     1446, shown by `show vpn tunnel`;
#   - a DF ping of 1446 bytes crosses, one of 1447 gets ICMP "fragmentation needed" naming MTU
#     1446 from the gateway; IPv6 inside: 1446 crosses, 1447 gets "packet too big" with 1446;
#   - site A clamps the TCP MSS (tcp-mss-clamp = "auto": 1446 - 40 = 1406, IPv6 1386), site B
#     does not: tcpdump on b-host sees a-host's SYN with MSS 1406 (IPv4) and 1386 (IPv6) instead
#     of 1460/1440, and tcpdump on a-host sees b-host's SYN-ACK clamped on its way in;
#   - a reload that sets tcp-mss-clamp = 1300 takes effect for the next SYN, SAs untouched.
# Every wait is bounded.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

fx_topology plain
fs_lan6

fs_pair_conf a b "$A_WAN" "$A_WAN" esp_encr='"aes-256-gcm"' esp_auth='"none"'
sed -i 's/^mtu = 1400$/mtu = 1500/' "$(fs_dir a)/ferrosec.toml" "$(fs_dir b)/ferrosec.toml"
sed -i 's/^mtu = 1500$/mtu = 1500\ntcp-mss-clamp = "auto"/' "$(fs_dir a)/ferrosec.toml"
fs_start a a-gw
fs_start b b-gw

tunnel_mtu() { fs_field "$(fs "$1" --json show vpn tunnel 2>/dev/null)" mtu; }
# df_ping FROM TO SIZE [-6]: one echo request of SIZE bytes of payload with DF set; its output.
df_ping() { fx_in "$1" ping ${4:-} -M do -c 1 -W 2 -s "$3" "$2" 2>&1 || true; }
answered() { df_ping "$@" | fx_has " 1 received"; }
# The first too-big packet of a destination is answered by the gateway (the host has no path
# MTU for it yet): ICMP "Frag needed … (mtu = 1446)" / ICMPv6 "Packet too big: mtu=1446".
too_big() {
    local want=${MTU:-1446}
    df_ping "$@" | tee -a "$FX_WORK/too-big.txt" | fx_has -E "Frag needed and DF set \(mtu = $want\)|Packet too big: mtu=$want"
}

fx_check "the tunnel comes up (IPv4 and IPv6 inside)" \
    eval 'fx_wait 20 fx_ping a-host "$B_HOST" 1 && fx_wait 15 fx_ping a-host "$B_HOST6" 1'
fx_check "show vpn tunnel names the MTU in force on both sides (1446)" \
    fx_wait 5 eval '[ "$(tunnel_mtu a)" = 1446 ] && [ "$(tunnel_mtu b)" = 1446 ]'
fx_check "the kernel agrees: tunnel.1 has MTU 1446 in a-gw's namespace" \
    eval 'fx_in a-gw ip link show tunnel.1 | fx_has "mtu 1446 "'
fx_check "IPv4: a DF packet of 1446 bytes crosses" answered a-host "$B_HOST" 1418
fx_check "IPv4: a DF packet of 1447 bytes gets ICMP fragmentation needed, mtu 1446" \
    too_big a-host "$B_HOST" 1419
fx_check "IPv6: a packet of 1446 bytes crosses" answered a-host "$B_HOST6" 1398 -6
fx_check "IPv6: a packet of 1447 bytes gets ICMPv6 packet too big, mtu 1446" \
    too_big a-host "$B_HOST6" 1399 -6
grep -E "^From" "$FX_WORK/too-big.txt" | sed 's/^/    /'

# syn_mss ROLE FILTER CLIENT DEST: the MSS option tcpdump sees at ROLE on the first packet
# matching FILTER while CLIENT opens a TCP connection to DEST:5201 (a one-shot listener on
# b-host).
syn_mss() {
    local role=$1 filter=$2 client=$3 dest=$4 dump srv i
    dump=$FX_WORK/tcpdump-$RANDOM.txt
    fx_bg "$role" "$dump" timeout 15 tcpdump -l -n -v -i eth0 -c 1 "$filter"
    local tcpdump_pid=$FX_LAST_PID
    for i in $(seq 50); do grep -qs "listening on" "$dump" && break; sleep 0.1; done
    fx_bg b-host "$FX_WORK/listener.out" timeout 10 /usr/bin/python3 -c '
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", 5201)); s.listen(1)
c, _ = s.accept(); c.close()' "$dest"
    srv=$FX_LAST_PID
    for i in $(seq 50); do fx_in b-host ss -ltn 2>/dev/null | grep -q ':5201' && break; sleep 0.1; done
    fx_in "$client" timeout 5 /usr/bin/python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], 5201), timeout=3); s.close()' "$dest" || true
    for i in $(seq 50); do kill -0 "$tcpdump_pid" 2>/dev/null || break; sleep 0.1; done
    fx_stop "$tcpdump_pid"; fx_stop "$srv"
    grep -oE 'mss [0-9]+' "$dump" | head -1 | awk '{print $2}'
}
syn_to_b='tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and dst port 5201'
synack_to_a='tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack) and src port 5201'
syn6_to_b='ip6 and dst port 5201 and ip6[53] & 0x12 == 0x02'

mss=$(syn_mss b-host "$syn_to_b" a-host "$B_HOST")
fx_check "MSS clamp (auto) on site A's way out: b-host sees a-host's SYN with MSS 1406 (got ${mss:-none})" \
    [ "$mss" = 1406 ]
mss=$(syn_mss a-host "$synack_to_a" a-host "$B_HOST")
fx_check "MSS clamp on site A's way in: a-host sees b-host's SYN-ACK with MSS 1406 (got ${mss:-none})" \
    [ "$mss" = 1406 ]
mss=$(syn_mss b-host "$syn6_to_b" a-host "$B_HOST6")
fx_check "MSS clamp, IPv6 inside: b-host sees a-host's SYN with MSS 1386 (got ${mss:-none})" \
    [ "$mss" = 1386 ]

spis=$(fs_spi_in a)
sed -i 's/^tcp-mss-clamp = "auto"$/tcp-mss-clamp = 1300/' "$(fs_dir a)/ferrosec.toml"
fx_check "reload with tcp-mss-clamp = 1300: applied for the next packet" \
    eval 'fs a request system reload 2>&1 | fx_has "tcp-mss-clamp in force"'
mss=$(syn_mss b-host "$syn_to_b" a-host "$B_HOST")
fx_check "after the reload b-host sees MSS 1300 (got ${mss:-none})" [ "$mss" = 1300 ]
fx_check "the reload kept the SAs (same inbound SPIs)" eval '[ "$(fs_spi_in a)" = "$spis" ]'

# --- outer fragments: b-gw receives raw ESP through a packet ring, which sees IPv4 fragments
# before the kernel reassembles them, so it reassembles them itself. a-gw's route to b-gw is
# narrowed to 1,300 bytes (locked) after the SAs are up; a-gw's kernel then fragments the raw ESP
# packets of 1,400-byte pings, and they must still arrive.
snmp_ip() { fx_in "$1" awk -v f="$2" '/^Ip:/ { if (!h) { for (i = 1; i <= NF; i++) k[i] = $i; h = 1 }
    else for (i = 1; i <= NF; i++) if (k[i] == f) print $i }' /proc/net/snmp; }
frags0=$(snmp_ip a-gw FragCreates)
rx0=$(fs_flow_sum b packets-in)
fx_in a-gw ip route replace "$B_WAN/32" dev wan0 mtu lock 1300
fx_check "outer fragments: 5 pings of 1,400 bytes cross while a-gw fragments their ESP at 1,300" \
    eval 'fx_in a-host ping -c 5 -i 0.2 -W 2 -s 1400 "$B_HOST" | fx_has " 5 received"'
frags=$(( $(snmp_ip a-gw FragCreates) - frags0 ))
fx_check "outer fragments: a-gw's kernel made them (FragCreates +$frags, at least 10)" [ "$frags" -ge 10 ]
fx_check "outer fragments: b-gw's SA counted the 5 reassembled packets (+$(( $(fs_flow_sum b packets-in) - rx0 )))" \
    eval '[ $(( $(fs_flow_sum b packets-in) - rx0 )) -ge 5 ]'
fx_check "outer fragments: b-gw dropped none of them (no esp-fragments-dropped)" \
    eval '! fs b --json show vpn flow 2>/dev/null | fx_has esp-fragments-dropped'
fx_in a-gw ip route replace "$B_WAN/32" dev wan0

# --- against strongSwan 5.9: ESP in UDP (libipsec always encapsulates) costs 8 bytes more ------
fs_stop a; fs_stop b
fx_sw_conf sw local="$B_WAN" remote=%any local_ts="$B_LAN" remote_ts="$A_LAN" \
    local_id=b.ferrosec.test remote_id=a.ferrosec.test psk="$FS_PSK" \
    ike=aes256-sha256-modp2048 esp=aes256gcm16-modp2048
fx_sw_start sw b-gw
fs_conf a-sw groups='"group14"' iface='tcp-mss-clamp = "auto"'
sed -i 's/^mtu = 1400$/mtu = 1500/' "$(fs_dir a-sw)/ferrosec.toml"
fs_start a-sw a-gw
fx_check "strongSwan: the tunnel comes up (ESP in UDP)" \
    eval 'fx_wait 20 fx_ping a-host "$B_HOST" 1 && [ "$(fs_count a-sw encapsulation udp)" -ge 1 ]'
fx_check "strongSwan: the MTU in force is 1438 (1446 less the UDP header)" \
    fx_wait 5 eval '[ "$(tunnel_mtu a-sw)" = 1438 ]'
fx_check "strongSwan: a DF packet of 1438 bytes crosses" answered a-host "$B_HOST" 1410
fx_check "strongSwan: a DF packet of 1439 bytes gets ICMP fragmentation needed, mtu 1438" \
    eval 'MTU=1438 too_big a-host "$B_HOST" 1411'
mss=$(syn_mss b-host "$syn_to_b" a-host "$B_HOST")
fx_check "strongSwan: b-host sees a-host's SYN with MSS 1398 (got ${mss:-none})" [ "$mss" = 1398 ]
fx_check "strongSwan: TCP through the tunnel (iperf3 2 s)" fs_tcp a-host "$B_HOST" b-host

exit "$FX_FAILED"
