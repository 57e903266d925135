#!/usr/bin/env bash
# TCP encapsulation of IKE and ESP (RFC 9329), ferrosec (a-gw, behind the NAT) <-> ferrosec
# (b-gw); strongSwan 5.9 has none. The NAT namespace in the WAN path drops every UDP datagram
# and raw ESP packet between the gateways (nft), so only TCP gets through:
#   1. tcp-encapsulation = "fallback" on site A: IKE_SA_INIT over UDP goes unanswered, site A
#      says so and moves to TCP 4500; the tunnel comes up, pings cross with no loss, `show vpn
#      ike-sa` (table and --json) says transport tcp on both sides;
#   2. the control: without tcp-encapsulation nothing comes up through that path;
#   3. tcp-encapsulation = "always" (and tcp-port = 8443): IKE never tries UDP, the tunnel comes up
#      over TCP, pings cross with no loss;
#   4. the stream is killed (`ss -K` on site A, or a TCP reset from the path where ss cannot):
#      site A reopens it, the SAs stay (same SPIs), traffic resumes within 5 s;
#   5. garbage on the TCP port (no prefix, a bad length) is counted and closed, and the tunnel
#      keeps working.
# Every wait is bounded; the file runs in about a minute.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

fx_topology nat

# No UDP and no raw ESP across the NAT namespace; counters of what tried.
fx_in nat nft -f - <<'NFT'
table inet fsnoudp {
    counter udp_dropped { }
    counter tcp_seen { }
    chain pathfw {
        type filter hook forward priority -10; policy accept;
        meta l4proto udp counter name udp_dropped drop
        meta l4proto esp drop
        meta l4proto tcp counter name tcp_seen
    }
}
NFT
counter() { fx_in nat nft list counter inet fsnoudp "$1" | grep -o 'packets [0-9]*' | awk '{print $2}'; }

ping4() { fx_ping a-host "$B_HOST" 1; }
ping_all() { fx_in "$1" ping -c "$3" -W 2 -i 0.1 "$2" 2>/dev/null | fx_has " $3 received"; }
transport_is() { fs_field "$(fs_ike_json "$1")" transport | fx_has -x "$2"; }
show_ike() { fs "$1" show vpn ike-sa 2>/dev/null | sed 's/^/    /'; }
# gw_add NAME LINES: adds LINES to the IKE gateway of instance NAME.
gw_add() {
    local f; f="$(fs_dir "$1")/ferrosec.toml"
    awk -v add="$2" '{ print } /^passive-mode = / && !done { print add; done = 1 }' "$f" >"$f.new" && mv "$f.new" "$f"
}
# pair TAG MODE [extra gateway lines]: site A with tcp-encapsulation = MODE (none: off), site B
# passive, accepting TCP (tcp-encapsulation = "fallback" there: it listens).
pair() {
    local tag=$1 mode=$2 extra=${3:-}
    fs_pair_conf "a-$tag" "b-$tag" "$A_PRIV" "$A_WAN"
    [ "$mode" != none ] && gw_add "a-$tag" "tcp-encapsulation = \"$mode\""$'\n'"$extra"
    gw_add "b-$tag" "tcp-encapsulation = \"fallback\""$'\n'"$extra"
    sed -i 's/^passive-mode = false$/passive-mode = true/' "$(fs_dir "b-$tag")/ferrosec.toml"
    fs_start "a-$tag" a-gw
    fs_start "b-$tag" b-gw
}

# --- 1. fallback -------------------------------------------------------------------------------
L="1 fallback"
pair fb fallback
fx_check "$L: config check accepts tcp-encapsulation = \"fallback\" and shows it" \
    eval '"$FS_BIN" config check "$(fs_dir a-fb)/ferrosec.toml" 2>&1 | fx_has "tcp-encapsulation fallback (port 4500)"'
t0=$(date +%s.%N)
fx_check "$L: a ping from a-host brings the tunnel up through a path without UDP (<= 25 s)" fx_wait 25 ping4
t1=$(date +%s.%N)
echo "    tunnel up (first ping answered) $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s after the first ping"
fx_check "$L: site A's log says IKE_SA_INIT went unanswered over UDP and it tried TCP" \
    fs_log_has a-fb "no answer over UDP to IKE_SA_INIT after 2 transmissions; trying TCP encapsulation"
u=$(counter udp_dropped)
fx_check "$L: UDP was tried first: the path dropped $u UDP datagrams" eval '[ "${u:-0}" -ge 2 ]'
show_ike a-fb
fx_check "$L: show vpn ike-sa --json: transport tcp on site A" transport_is a-fb tcp
fx_check "$L: show vpn ike-sa --json: transport tcp on site B" transport_is b-fb tcp
fx_check "$L: the table says tcp too" eval 'fs a-fb show vpn ike-sa 2>/dev/null | fx_has -w tcp'
fx_check "$L: show vpn ipsec-sa: the Child SAs' encapsulation is tcp on both sides" \
    eval '[ "$(fs_count a-fb encapsulation tcp)" -ge 1 ] && [ "$(fs_count b-fb encapsulation tcp)" -ge 1 ]'
fx_check "$L: IPv4 ping a-host -> b-host, 20 of 20 answered" ping_all a-host "$B_HOST" 20
fx_check "$L: IPv4 ping b-host -> a-host, 10 of 10 answered" ping_all b-host "$A_HOST" 10
fx_check "$L: TCP (iperf3 2 s) a-host -> b-host through the TCP-encapsulated tunnel" fs_tcp a-host "$B_HOST" b-host
fx_check "$L: site B logged the accepted stream" fs_log_has b-fb "stream from $A_WAN"
fs_stop a-fb
fs_stop b-fb

# --- 2. control: no TCP encapsulation ---------------------------------------------------------
L="2 control"
pair off none
fx_check "$L: without tcp-encapsulation no tunnel comes up within 8 s" eval '! fx_wait 8 ping4'
fs_stop a-off
fs_stop b-off

# --- 3. always, on another port -----------------------------------------------------------------
L="3 always (tcp-port 8443)"
pair al always 'tcp-port = 8443'
u0=$(counter udp_dropped)
fx_check "$L: the tunnel comes up over TCP (<= 15 s)" fx_wait 15 ping4
fx_check "$L: site A never sent IKE over UDP" eval '[ "$(counter udp_dropped)" = "$u0" ]'
fx_check "$L: transport tcp on both sides" eval 'transport_is a-al tcp && transport_is b-al tcp'
fx_check "$L: IPv4 ping a-host -> b-host, 20 of 20 answered" ping_all a-host "$B_HOST" 20
fx_check "$L: the stream is on port 8443" eval 'fx_in a-gw ss -tn state established | fx_has ":8443"'

# --- 4. the stream is lost: site A reopens it, the SAs stay --------------------------------------
L="4 stream loss"
spis0=$(fs_spi_in a-al)
fs_pinger_start a-host "$B_HOST" 0.2 loss
sleep 1
if fx_in a-gw ss -K -tn dst "$B_WAN" dport = 8443 2>/dev/null | fx_has ESTAB &&
    ! fx_in a-gw ss -tn state established | fx_has ":8443"; then
    how="ss -K on site A"
else
    # This kernel cannot destroy sockets (no CONFIG_INET_DIAG_DESTROY): the path resets the
    # stream instead, as a middlebox would.
    how="TCP reset from the path"
    fx_in nat nft add rule inet fsnoudp pathfw tcp dport 8443 reject with tcp reset
    sleep 0.5
    fx_in nat nft flush chain inet fsnoudp pathfw
    fx_in nat nft add rule inet fsnoudp pathfw meta l4proto udp counter name udp_dropped drop
    fx_in nat nft add rule inet fsnoudp pathfw meta l4proto esp drop
fi
echo "    stream killed by $how"
sleep 6
fx_in a-host ping -c 1 -W 1 "$B_HOST" >/dev/null 2>&1 || true
kill -INT "$PINGER" 2>/dev/null || true
for _ in $(seq 30); do kill -0 "$PINGER" 2>/dev/null || break; sleep 0.1; done
fx_stop "$PINGER"
gap=$(awk -v iv=0.2 '/bytes from.*icmp_seq=/{ for(i=1;i<=NF;i++) if($i ~ /^icmp_seq=/){ split($i,a,"="); s=a[2]+0 }
        if (seen[s]++) next; n++; if (s-last-1 > gap) gap = s-last-1; last = s }
        / packets transmitted/ { tx = $1 }
        END { printf "%.1f", gap*iv }' "$FX_WORK/ping-loss.out")
echo "    $(grep 'packets transmitted' "$FX_WORK/ping-loss.out"); longest outage ${gap} s"
fx_check "$L: site A logged the lost stream and reopened it" \
    eval 'fs_log_has a-al "closed" && [ "$(fs_log_count a-al "stream to $B_WAN:8443 open")" -ge 2 ]'
fx_check "$L: traffic resumed within 5 s (longest outage ${gap} s)" eval 'awk -v g="$gap" "BEGIN { exit !(g <= 5.0) }"'
fx_check "$L: the same IPsec SAs carry it (no renegotiation)" eval '[ "$(fs_spi_in a-al)" = "$spis0" ]'
fx_check "$L: IPv4 ping a-host -> b-host after the loss, 10 of 10 answered" ping_all a-host "$B_HOST" 10
fx_check "$L: transport still tcp on both sides" eval 'transport_is a-al tcp && transport_is b-al tcp'

# --- 5. garbage on the TCP port -----------------------------------------------------------------
L="5 garbage"
# From site A's address (a peer: the prefix and the lengths are checked), and from b-host (not
# a peer of any gateway on site B: refused at once).
fx_in a-gw timeout 3 bash -c "exec 3<>/dev/tcp/$B_WAN/8443; printf 'GET / HTTP/1.0\r\n\r\n' >&3; sleep 1" 2>/dev/null || true
fx_in a-gw timeout 3 bash -c "exec 3<>/dev/tcp/$B_WAN/8443; printf 'IKETCP\x00\x01' >&3; sleep 1" 2>/dev/null || true
fx_in b-host timeout 3 bash -c "exec 3<>/dev/tcp/$B_WAN/8443; printf 'IKETCP' >&3; sleep 1" 2>/dev/null || true
drops=$(fs "b-al" --json show vpn flow 2>/dev/null | tr -d ' \n')
fx_check "$L: site B counted a bad prefix, a bad length and a stranger" \
    eval 'fx_has "tcp-bad-prefix" <<<"$drops" && fx_has "tcp-bad-length" <<<"$drops" && fx_has "tcp-not-a-peer" <<<"$drops"'
fx_check "$L: the tunnel still works, 10 of 10 answered" ping_all a-host "$B_HOST" 10
fs_stop a-al
fs_stop b-al

