#!/usr/bin/env bash
# interop: alone (case 4 times a NAT mapping to the second)
# ferrosec against strongSwan 5.9 over IKEv1 (pre-shared key, main mode) through a NAT:
# RFC 3947 NAT traversal and RFC 3948 ESP in UDP (issue 12: "NAT including a port-randomizing
# NAT"). Every case gets a fresh topology (lib.sh's `fx_topology nat`: a NAT box between a-gw and
# the WAN; a-gw is 192.0.2.2 inside, the NAT is 198.51.100.1 outside; b-gw is 198.51.100.2).
#   1. ferrosec (a-gw, behind the NAT) initiates main mode to strongSwan (b-gw): ferrosec finds
#      itself behind the NAT (local-nat), IKE floats from 500 to 4500 at message 5, strongSwan
#      sees the NAT's public address, quick mode on demand, ESP in UDP 4500 (no raw ESP on the
#      wire), ping both ways;
#   2. the same behind a port-randomizing NAT (nft `masquerade random,persistent`, lib.sh's
#      FX_NAT_RANDOM=1): 500 and 4500 are mapped to random ports; strongSwan sees, and answers
#      to, the mapping of ferrosec's port 4500 (read from the NAT's conntrack table); ping both
#      ways; a quick-mode rekey started by strongSwan reaches ferrosec through the mapping;
#   3. strongSwan behind the NAT (strongSwan at a-gw, ferrosec at b-gw): strongSwan initiates,
#      ferrosec responds (passive) and sees the NAT (peer-nat, not local-nat), answers at the
#      mapped address and port, ping both ways;
#   4. NAT keepalives: the NAT's UDP conntrack timeouts are 25 s (sysctls inside the NAT's
#      namespace only), ferrosec's DPD is off and nat-keepalive-interval is its default (20 s,
#      docs/configuration.md): through 32 s without traffic only ferrosec's keepalives (one 0xff
#      byte to 4500) cross the NAT, the mapping of port 4500 never lapses (sampled every second;
#      a control flow without keepalives expires), and then a ping from b-host (which needs the
#      old mapping) and one from a-host pass on the same SAs, with no renegotiation;
#   5. strongSwan behind the port-randomizing NAT initiates, ferrosec responds: ferrosec moves
#      from the random mapping of port 500 to that of port 4500 and sends there; ping both ways.
# strongSwan's kernel-libipsec fakes a NAT on its own side to force UDP encapsulation (see
# lib.sh), so "peer-nat" on ferrosec is true in every case; what proves the real NAT is the
# addresses and ports each side sees, and ferrosec's local-nat when it is the NATed side.
#
# usage: bash tests/interop/42-ikev1-strongswan-nat.sh [CASE...]   (CASE 1-5; none: all)
# PASS/FAIL lines, a summary, exit non-zero when a check failed. Every wait is bounded
# (FS_V1_WAIT, default 20 s). Logs are kept on failure (FX_KEEP=1: always). About 50 s (case 4: 35 s).
CASES_ALL=(1 2 3 4 5)
for c in "$@"; do
    case $c in [1-5]) ;; *) echo "usage: $0 [CASE...]   (cases: ${CASES_ALL[*]})" >&2; exit 2 ;; esac
done
if [ $# -gt 0 ]; then CASES=("$@"); else CASES=("${CASES_ALL[@]}"); fi

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
source "$(dirname "$0")/ikev1-lib.bash"
fs_require_bin
fx_init

WAIT=${FS_V1_WAIT:-20}
NAT_TIMEOUT=25   # case 4: the NAT's UDP conntrack timeouts, seconds
IDLE=32          # case 4: seconds without traffic (> NAT_TIMEOUT > the 20 s keepalive interval)

# --- topology: a fresh one per case ---------------------------------------------------------
# topo_up plain|random: lib.sh's NAT topology, the NAT masquerading with (random) or without
# port randomization; topo_down removes the namespaces (the processes are stopped before).
topo_up() {
    FX_NAT_RANDOM=$([ "$1" = random ] && echo 1 || echo 0) fx_topology nat ||
        { fail_now "the topology did not come up"; return 1; }
    count_on
}
topo_down() {
    local ns
    for ns in "${FX_NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    FX_NS=()
}

# nft counters on b-gw, from and to the NAT's public address: every UDP datagram, the NAT
# keepalives among them (UDP length 9, payload 0xff), ESP in UDP 4500 (a non-zero SPI where IKE
# has its 4 zero bytes), raw ESP.
count_on() {
    fx_in b-gw nft -f - <<NFT
table inet fxcount {
    counter in_udp { }
    counter in_ka { }
    counter in_esp_udp { }
    counter in_raw_esp { }
    counter out_udp { }
    counter out_ka { }
    counter out_esp_udp { }
    chain in {
        type filter hook input priority 0; policy accept;
        ip saddr $A_WAN meta l4proto esp counter name in_raw_esp
        ip saddr $A_WAN udp dport 4500 udp length 9 @th,64,8 0xff counter name in_ka
        ip saddr $A_WAN udp dport 4500 udp length > 12 @th,64,32 != 0 counter name in_esp_udp
        ip saddr $A_WAN meta l4proto udp counter name in_udp
    }
    chain out {
        type filter hook output priority 0; policy accept;
        ip daddr $A_WAN udp length 9 @th,64,8 0xff counter name out_ka
        ip daddr $A_WAN udp sport 4500 udp length > 12 @th,64,32 != 0 counter name out_esp_udp
        ip daddr $A_WAN meta l4proto udp counter name out_udp
    }
}
NFT
}
counter() {
    fx_in b-gw nft list counter inet fxcount "$1" 2>/dev/null |
        awk '{ for (i = 1; i < NF; i++) if ($i == "packets") n = $(i + 1) } END { print n + 0 }'
}

# The NAT's conntrack table (read inside its namespace).
nat_ct() { fx_in nat cat /proc/net/nf_conntrack 2>/dev/null; }
# nat_map SPORT DPORT: the public port the NAT maps 192.0.2.2:SPORT -> 198.51.100.2:DPORT to,
# and the entry's remaining seconds: "PORT SECONDS"; nothing when there is no entry.
nat_map() {
    nat_ct | awk -v s="sport=$1" -v d="dport=$2" -v src="src=$A_PRIV" -v dst="dst=$B_WAN" '
        $3 == "udp" && $6 == src && $7 == dst && $8 == s && $9 == d {
            p = $13; sub("dport=", "", p); print p, $5; exit }'
}
nat_port() { nat_map "$1" "$2" | awk '{print $1}'; }

# --- ferrosec: ikev1-lib.bash's IKEv1 gateway, from behind the NAT ---------------------------
# fs1_nat_conf NAME key=value...: fs1_conf with a-gw's private address, tunnel to-peer.
fs1_nat_conf() { local name=$1; shift; fs1_conf "$name" local="$A_PRIV" tunnel=to-peer route=peer-lan "$@"; }

# --- strongSwan: IKEv1 main mode ------------------------------------------------------------
# sw1_conf NAME SITE ROLE key=value...: SITE b (at b-gw, facing ferrosec behind the NAT) or
# a (at a-gw, behind the NAT, facing ferrosec at b-gw); ROLE initiator|responder.
sw1_conf() {
    local name=$1 site=$2 role=$3; shift 3
    if [ "$site" = b ]; then
        local remote=%any; [ "$role" = initiator ] && remote=$A_WAN
        fx_sw_conf "$name" version=1 local="$B_WAN" remote="$remote" local_ts="$B_LAN" remote_ts="$A_LAN" \
            local_id=b.ferrosec.test remote_id=a.ferrosec.test psk="$FS_PSK" "$@"
    else
        fx_sw_conf "$name" version=1 local="$A_PRIV" remote="$B_WAN" local_ts="$A_LAN" remote_ts="$B_LAN" \
            local_id=a.ferrosec.test remote_id=b.ferrosec.test psk="$FS_PSK" "$@"
    fi
}
# sw1_start NAME ROLE: charon in ROLE's namespace; its configuration must load cleanly.
sw1_start() {
    local name=$1 dir; dir=$(fx_sw_dir "$1")
    fx_sw_start "$name" "$2" || return 1
    if grep -v 'opening directory' "$dir/load.out" | grep -Eqi 'fail|error|invalid' ||
        ! grep -q 'successfully loaded 1 connections' "$dir/load.out"; then
        grep -v 'opening directory' "$dir/load.out" | sed 's/^/    swanctl: /'
        return 1
    fi
}

# --- checks ---------------------------------------------------------------------------------
CASE=""
CASE_OK=1
declare -A RESULT

info() { echo "    INFO  $*"; }

fs_v1_sa() {
    local json; json=$(fs_ike_json "$1")
    fs_field "$json" state | fx_has -x established && fs_field "$json" version | fx_has -x ikev1-main &&
        fs_field "$json" role | fx_has -x "$2"
}
fs_ike_count() { fs_field "$(fs_ike_json "$1")" state | grep -cx established || true; }
sw_log() { cat "$(fx_sw_dir "$1")/charon.log" 2>/dev/null; }
# strongSwan's view of the peer: "ADDRESS[PORT]" of the remote of its IKE SA.
sw_remote() { sw_list "$1" | awk '/^ +remote /{print $NF; exit}'; }
sw_local() { sw_list "$1" | awk '/^ +local /{print $NF; exit}'; }
sw_ike_ids() { sw_list "$1" | grep -oE '^s2s: #[0-9]+' | cut -d' ' -f2 | tr '\n' ' '; }
spis_agree() {
    local ours theirs
    ours=$(fs_spis "$1"); theirs=$(sw_out_spis "$2")
    [ -n "$ours" ] && [ "$ours" = "$theirs" ]
}
# Quick-mode SAs up on both sides, SPIs agreeing, ESP in UDP on ferrosec and strongSwan.
both_up_udp() {
    spis_agree "$1" "$2" && ipsec_field_is "$1" encapsulation udp && sw_has "$2" 'INSTALLED, TUNNEL-in-UDP'
}
ping_ab() { fx_ping a-host "$B_HOST" "${1:-2}"; }
ping_ba() { fx_ping b-host "$A_HOST" "${1:-2}"; }
# ping_all FROM TO N: N of N answered.
ping_all() { fx_in "$1" ping -c "$3" -W 2 -i 0.1 "$2" 2>/dev/null | fx_has " $3 received"; }
# The first datagram strongSwan received from the peer, and the first on port 4500 (its log).
sw_first_from() { sw_log "$1" | grep -m1 -oE "received packet: from [0-9.]+\[[0-9]+\] to [0-9.]+\[$2\]"; }
port_of() { sed -nE 's/.*\[([0-9]+)\]$/\1/p' <<<"$1"; }

start_sw() {
    sw1_start "$1" "$2" || { fail_now "strongSwan did not start or did not load its config"; return 1; }
}
start_fs() {
    fs_start "$1" "$2" || { fail_now "ferrosec did not start"; return 1; }
    if fs_log_has "$1" 'not served'; then
        fs "$1" show system log 2>/dev/null | grep 'not served' | head -2 | sed 's/^/    | /' | cut -c1-300
        fail_now "ferrosec does not serve the IKEv1 gateway (its log says: not served)"
        return 1
    fi
}
stop_pair() {
    [ -f "$(fs_dir "$1")/pid" ] && fs_stop "$1"
    [ -f "$(fx_sw_dir "$2")/pid" ] && fx_sw_stop "$2"
    return 0
}

# --- 1 and 2: ferrosec behind the NAT initiates ---------------------------------------------
# fs_behind_nat N random|plain
fs_behind_nat() {
    local n=$1 mode=$2 fs=fs$1 sw=sw$1
    topo_up "$mode" || return 1
    sw1_conf "$sw" b responder ike=aes256-sha256-modp2048 esp=aes256-sha256
    fs1_nat_conf "$fs"
    start_sw "$sw" b-gw && start_fs "$fs" a-gw || return 1
    if [ "$mode" = random ]; then
        ck "the NAT randomizes source ports (nft: masquerade random,persistent)" \
            eval 'fx_in nat nft list table ip fxnat | fx_has "masquerade random,persistent"'
    fi
    ck "test vpn ike-sa gateway sw succeeds (main mode from behind the NAT)" fs_test_ike "$fs" ||
        show_out "$FX_WORK/test-ike-$fs.out"
    ck "ferrosec: IKE SA established, ikev1-main, initiator" fx_wait "$WAIT" fs_v1_sa "$fs" initiator
    ck "ferrosec detects the NAT in front of it: local-nat true" ike_field_is "$fs" local-nat true
    ck "ferrosec floated to 4500: local-address $A_PRIV:4500, peer-address $B_WAN:4500" \
        eval 'ike_field_is "$fs" local-address "$A_PRIV:4500" && ike_field_is "$fs" peer-address "$B_WAN:4500"'
    ck "strongSwan: IKEv1 SA ESTABLISHED, main mode (ID_PROT)" \
        fx_wait "$WAIT" eval 'sw_v1_established "$sw" && sw_log_has "$sw" "ID_PROT request"'
    local p500 p4500 first first4500 remote
    p500=$(nat_port 500 500); p4500=$(nat_port 4500 4500)
    first=$(sw_first_from "$sw" 500); first4500=$(sw_first_from "$sw" 4500)
    remote=$(sw_remote "$sw")
    echo "    NAT conntrack: $A_PRIV:500 -> $A_WAN:${p500:-?}, $A_PRIV:4500 -> $A_WAN:${p4500:-?};" \
        "strongSwan: first ${first#received packet: }; first on 4500 ${first4500#received packet: }; remote $remote;" \
        "ferrosec: local-nat $(ike_field "$fs" local-nat), peer-nat $(ike_field "$fs" peer-nat)"
    ck "the NAT maps ferrosec's ports 500 and 4500 (conntrack)" eval '[ -n "$p500" ] && [ -n "$p4500" ]'
    ck "strongSwan got main mode from the NAT's address ($A_WAN), never from $A_PRIV" \
        eval '[ -n "$first" ] && [[ $first == *"from $A_WAN["* ]] && ! sw_log_has "$sw" "from $A_PRIV"'
    ck "IKE floated: strongSwan received the later messages on 4500 from the mapping of ferrosec's 4500" \
        eval '[ -n "$first4500" ] && [ "$(port_of "${first4500%% to *}")" = "$p4500" ]'
    ck "strongSwan's list-sas shows the NAT: local $B_WAN[4500], remote $A_WAN[$p4500] (ferrosec's 4500 as mapped)" \
        eval '[ "$(sw_local "$sw")" = "$B_WAN[4500]" ] && [ "$remote" = "$A_WAN[$p4500]" ]'
    if [ "$mode" = random ]; then
        # Port 500 is not checked for change: Linux NAT maps a source port below 512 to a random
        # one in 1..511, which is 500 again once in 511 runs.
        ck "the port-randomizing NAT changed the ports: 500 -> $p500, 4500 -> $p4500 (4500 not kept, the two differ)" \
            eval '[ "$p4500" != 4500 ] && [ "$p500" != "$p4500" ]'
    fi
    ck "strongSwan's log: remote host is behind NAT" sw_log_has "$sw" "remote host is behind NAT"
    ck "ping a-host -> b-host through the tunnel (quick mode on demand)" fx_wait "$WAIT" ping_ab 1
    ck "quick-mode SA on both sides, SPIs agree, ESP in UDP (ferrosec: udp; strongSwan: TUNNEL-in-UDP)" \
        fx_wait "$WAIT" both_up_udp "$fs" "$sw"
    ck "ping a-host -> b-host, 10 of 10" ping_all a-host "$B_HOST" 10
    ck "ping b-host -> a-host, 10 of 10 (strongSwan sends ESP to the NAT's mapping)" ping_all b-host "$A_HOST" 10
    local ein eout raw
    ein=$(counter in_esp_udp); eout=$(counter out_esp_udp); raw=$(counter in_raw_esp)
    ck "on b-gw's wire: ESP in UDP both ways ($ein in, $eout out), no raw ESP ($raw)" \
        eval '[ "$ein" -ge 20 ] && [ "$eout" -ge 20 ] && [ "$raw" = 0 ]'
    ck "the NAT's 4500 mapping is unchanged after the traffic" eval '[ "$(nat_port 4500 4500)" = "$p4500" ]'
    if [ "$mode" = random ]; then
        local before; before=$(fs_spis "$fs")
        fx_sw_swanctl "$sw" --rekey --child net >"$FX_WORK/rekey-$sw.out" 2>&1
        ck "quick-mode rekey started by strongSwan reaches ferrosec through the mapping: new SPIs on both sides" \
            fx_wait "$WAIT" eval 'o=$(sw_out_spis "$sw"); [ -n "$o" ] && [ "$o" != "$before" ] && [[ " $(fs_spis "$fs") " == *" ${o% } "* ]]'
        ck "ping both ways after the rekey" eval 'ping_all a-host "$B_HOST" 3 && ping_all b-host "$A_HOST" 3'
    fi
}
case_1() { fs_behind_nat 1 plain; }
case_2() { fs_behind_nat 2 random; }

# --- 3 and 5: strongSwan behind the NAT initiates, ferrosec responds --------------------------
sw_behind_nat() {
    local n=$1 mode=$2 fs=fs$1 sw=sw$1
    topo_up "$mode" || return 1
    sw1_conf "$sw" a initiator ike=aes256-sha256-modp2048 esp=aes256-sha256
    fs1_nat_conf "$fs" local="$B_WAN" peer="$A_WAN" local_id=b.ferrosec.test peer_id=a.ferrosec.test \
        lan_local="$B_LAN" lan_remote="$A_LAN" passive=true
    start_fs "$fs" b-gw && start_sw "$sw" a-gw || return 1
    ck "swanctl --initiate from behind the NAT (main mode + quick mode) succeeds" sw_initiate "$sw" ||
        show_out "$FX_WORK/initiate-$sw.out"
    ck "ferrosec: IKE SA established, ikev1-main, responder" fx_wait "$WAIT" fs_v1_sa "$fs" responder
    ck "ferrosec sees the NAT on the peer's side: peer-nat true, local-nat false" \
        eval 'ike_field_is "$fs" peer-nat true && ike_field_is "$fs" local-nat false'
    ck "strongSwan's log: local host is behind NAT" sw_log_has "$sw" "local host is behind NAT"
    local p500 p4500 peer
    p500=$(nat_port 500 500); p4500=$(nat_port 4500 4500); peer=$(ike_field "$fs" peer-address)
    echo "    NAT conntrack: $A_PRIV:500 -> $A_WAN:${p500:-?}, $A_PRIV:4500 -> $A_WAN:${p4500:-?};" \
        "ferrosec: local-address $(ike_field "$fs" local-address), peer-address $peer," \
        "local-nat $(ike_field "$fs" local-nat), peer-nat $(ike_field "$fs" peer-nat)"
    ck "the NAT maps strongSwan's ports 500 and 4500 (conntrack)" eval '[ -n "$p500" ] && [ -n "$p4500" ]'
    ck "ferrosec's peer-address is the NAT's mapping of strongSwan's 4500 ($A_WAN:$p4500); local $B_WAN:4500" \
        eval '[ "$peer" = "$A_WAN:$p4500" ] && ike_field_is "$fs" local-address "$B_WAN:4500"'
    if [ "$mode" = random ]; then
        # Port 500 is not checked for change: Linux NAT maps a source port below 512 to a random
        # one in 1..511, which is 500 again once in 511 runs.
        ck "the port-randomizing NAT changed the ports: 500 -> $p500, 4500 -> $p4500 (4500 not kept, the two differ)" \
            eval '[ "$p4500" != 4500 ] && [ "$p500" != "$p4500" ]'
    fi
    ck "strongSwan: IKEv1 SA ESTABLISHED, local $A_PRIV[4500], remote $B_WAN[4500]" \
        eval 'sw_v1_established "$sw" && [ "$(sw_local "$sw")" = "$A_PRIV[4500]" ] && [ "$(sw_remote "$sw")" = "$B_WAN[4500]" ]'
    ck "quick-mode SA on both sides, SPIs agree, ESP in UDP" fx_wait "$WAIT" both_up_udp "$fs" "$sw"
    ck "ping a-host -> b-host, 10 of 10" ping_all a-host "$B_HOST" 10
    ck "ping b-host -> a-host, 10 of 10 (ferrosec sends ESP to the NAT's mapping)" ping_all b-host "$A_HOST" 10
    local ein eout raw
    ein=$(counter in_esp_udp); eout=$(counter out_esp_udp); raw=$(counter in_raw_esp)
    ck "on b-gw's wire: ESP in UDP both ways ($ein in, $eout out), no raw ESP ($raw)" \
        eval '[ "$ein" -ge 20 ] && [ "$eout" -ge 20 ] && [ "$raw" = 0 ]'
}
case_3() { sw_behind_nat 3 plain; }
case_5() { sw_behind_nat 5 random; }

# --- 4. NAT keepalives keep the mapping ---------------------------------------------------------
case_4() {
    local fs=fs4 sw=sw4
    topo_up plain || return 1
    local host_before; host_before=$(sysctl -n net.netfilter.nf_conntrack_udp_timeout_stream)
    fx_in nat sysctl -qw net.netfilter.nf_conntrack_udp_timeout=$NAT_TIMEOUT \
        net.netfilter.nf_conntrack_udp_timeout_stream=$NAT_TIMEOUT
    ck "the NAT's UDP conntrack timeouts are $NAT_TIMEOUT s (in its namespace only)" \
        eval '[ "$(fx_in nat sysctl -n net.netfilter.nf_conntrack_udp_timeout)" = $NAT_TIMEOUT ] &&
              [ "$(fx_in nat sysctl -n net.netfilter.nf_conntrack_udp_timeout_stream)" = $NAT_TIMEOUT ] &&
              [ "$(sysctl -n net.netfilter.nf_conntrack_udp_timeout_stream)" = "$host_before" ]'
    sw1_conf "$sw" b responder ike=aes256-sha256-modp2048 esp=aes256-sha256
    # No DPD: R-U-THERE would refresh the mapping too. nat-keepalive-interval is not set: 20 s.
    fs1_nat_conf "$fs" dpd='dpd = { enable = false }'
    start_sw "$sw" b-gw && start_fs "$fs" a-gw || return 1
    ck "test vpn ike-sa gateway sw succeeds" fs_test_ike "$fs" || show_out "$FX_WORK/test-ike-$fs.out"
    ck "ping a-host -> b-host brings up quick mode; SAs agree, ESP in UDP" \
        fx_wait "$WAIT" eval 'ping_ab 1 && both_up_udp "$fs" "$sw"'
    ck "ferrosec: local-nat true" ike_field_is "$fs" local-nat true
    local map0 spis0 swspis0 ids0 log0 in0 ka0 out0 oka0
    map0=$(nat_port 4500 4500)
    spis0=$(fs_spis "$fs"); swspis0=$(sw_out_spis "$sw"); ids0=$(sw_ike_ids "$sw")
    log0=$(sw_log "$sw" | wc -l)
    # A control flow that gets no keepalives: one datagram a-gw -> b-gw:9 through the NAT.
    fx_in a-gw bash -c "echo control >/dev/udp/$B_WAN/9" 2>/dev/null || true
    control_there() { nat_ct | fx_has "src=$A_PRIV dst=$B_WAN sport=[0-9]* dport=9 "; }
    local control_at_start=0; control_there && control_at_start=1
    in0=$(counter in_udp); ka0=$(counter in_ka); out0=$(counter out_udp); oka0=$(counter out_ka)
    echo "    idle for $IDLE s (NAT timeout $NAT_TIMEOUT s); mapping $A_PRIV:4500 -> $A_WAN:$map0"
    # Every second: is the mapping there, with which port and how many seconds left; when
    # its timer went up again (a keepalive crossed); is the control flow still there.
    local t gaps=0 lowest=999 prev=999 ports="" m left refreshed="" control_gone_at=""
    for t in $(seq "$IDLE"); do
        sleep 1
        m=$(nat_map 4500 4500)
        if [ -z "$m" ]; then gaps=$((gaps + 1)); else
            left=${m#* }
            [ "$left" -lt "$lowest" ] && lowest=$left
            [ "$left" -gt "$prev" ] && refreshed+=" $t"
            prev=$left
            [[ " $ports " == *" ${m% *} "* ]] || ports+=" ${m% *}"
        fi
        control_there || [ -n "$control_gone_at" ] || control_gone_at=$t
    done
    local din dka dout doka
    din=$(( $(counter in_udp) - in0 )); dka=$(( $(counter in_ka) - ka0 ))
    dout=$(( $(counter out_udp) - out0 )); doka=$(( $(counter out_ka) - oka0 ))
    echo "    during the idle time: $din datagrams from the NAT ($dka keepalives), $dout to it ($doka keepalives);" \
        "the mapping's timer went down to $lowest s and was refreshed at second${refreshed:- -} of the idle time;" \
        "the control flow was gone after ${control_gone_at:-?} s"
    ck "the NAT's timeout is real: the control flow without keepalives expired after ${control_gone_at:-never} s (want $((NAT_TIMEOUT - 3))..$((NAT_TIMEOUT + 3)))" \
        eval '[ "$control_at_start" = 1 ] && [ -n "$control_gone_at" ] &&
              [ "$control_gone_at" -ge $((NAT_TIMEOUT - 3)) ] && [ "$control_gone_at" -le $((NAT_TIMEOUT + 3)) ]'
    ck "only NAT keepalives crossed the NAT while idle: $dka from ferrosec, nothing else either way" \
        eval '[ "$dka" -ge 1 ] && [ "$din" = "$dka" ] && [ "$dout" = "$doka" ] && [ "$doka" = 0 ]'
    ck "ferrosec's keepalive interval is the documented 20 s: $dka in $IDLE s (want 1..2)" \
        eval '[ "$dka" -ge 1 ] && [ "$dka" -le 2 ]'
    ck "the mapping of ferrosec's 4500 never lapsed (sampled every second) and kept its port ($map0)" \
        eval '[ "$gaps" = 0 ] && [ -n "$refreshed" ] && [ "$(echo $ports)" = "$map0" ]'
    ck "ping b-host -> a-host after the idle time (strongSwan sends to the old mapping), 5 of 5" \
        ping_all b-host "$A_HOST" 5
    ck "ping a-host -> b-host, 5 of 5" ping_all a-host "$B_HOST" 5
    ck "no renegotiation: same IKE SA on strongSwan, same quick-mode SPIs on both sides" \
        eval '[ "$(sw_ike_ids "$sw")" = "$ids0" ] && [ "$(fs_spis "$fs")" = "$spis0" ] &&
              [ "$(sw_out_spis "$sw")" = "$swspis0" ] && [ "$(fs_ike_count "$fs")" = 1 ]'
    ck "strongSwan's log shows no IKE exchange since the idle time began" \
        eval '! sw_log "$sw" | tail -n +$((log0 + 1)) | grep -Eq "ID_PROT|QUICK_MODE|INFORMATIONAL_V1"'
}

# --- run ------------------------------------------------------------------------------------
declare -A TITLE=(
    [1]="ferrosec behind the NAT initiates main mode"
    [2]="ferrosec behind a port-randomizing NAT initiates"
    [3]="strongSwan behind the NAT initiates, ferrosec responds"
    [4]="NAT keepalives keep the mapping through 32 s idle"
    [5]="strongSwan behind a port-randomizing NAT initiates, ferrosec responds"
)
t_start=$(date +%s)
for n in "${CASES[@]}"; do
    CASE="case $n (${TITLE[$n]})"
    CASE_OK=1
    echo; echo "=== $CASE"
    "case_$n" || [ "$CASE_OK" = 0 ] || fail_now "the case stopped early"
    stop_pair "fs$n" "sw$n"
    topo_down
    RESULT[$n]=$([ "$CASE_OK" = 1 ] && echo PASS || echo FAIL)
done

echo; echo "=== summary (IKEv1 against strongSwan through a NAT, $(( $(date +%s) - t_start )) s)"
for n in "${CASES[@]}"; do printf '%s  case %s: %s\n' "${RESULT[$n]}" "$n" "${TITLE[$n]}"; done
