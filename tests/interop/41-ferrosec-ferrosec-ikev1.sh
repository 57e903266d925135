#!/usr/bin/env bash
# ferrosec (a-gw) <-> ferrosec (b-gw) over IKEv1 (RFC 2409, pre-shared key), both gateways
# `version = "ikev1"`, two proxy IDs (lan4: the IPv4 LANs, lan6: the IPv6 LANs), PFS group14:
#   1. main mode, no NAT: on-demand start by the first ping from a-host (that packet is held and
#      answered); one IKE SA (ikev1-main; a initiator, b responder) and two quick-mode SA pairs
#      on both sides, SPIs agreeing; raw ESP (encapsulation esp; nft counts IP protocol 50 into
#      b-gw, no UDP 4500); ping and iperf3 TCP over IPv4 and IPv6, both ways for ping; both
#      sides count packets;
#   2. aggressive mode, site A behind the NAT (nft masquerade, as in 22): ikev1-aggressive,
#      NAT detected (a: local-nat, b: peer-nat), ESP in UDP 4500 (encapsulation udp, no raw
#      ESP on the wire), the same traffic checks;
#   3. phase-2 rekey under continuous pings (IPv4 and IPv6, every 0.1 s): `request vpn rekey
#      ipsec-sa tunnel to-b` on a, then on b; after each, new SPIs on both sides that agree,
#      the old pairs gone, two pairs left; not one ping lost;
#      Both sides' /metrics (a real OpenMetrics parser) count those rekeys by side (two
#      each side started, two the peer did), the IKEv1 negotiation started by a and answered
#      by b, its handshake (version ikev1-main) and the IKE SA, as `show` and the logs;
#   4. `clear vpn ike-sa` on one side (b in 1, a in 2) removes the IKE SA and the quick-mode
#      SAs on both sides (IKEv1 informational DELETE); the next ping brings the tunnel back;
#   5. AH (protocol "ah", HMAC-SHA-256) in quick mode, main mode, no NAT: two AH pairs, IP
#      protocol 51 on the wire and no ESP, ping IPv4 and IPv6, TCP.
# Every wait is bounded (FS_V1_WAIT, default 15 s; FS_V1_REKEY_PINGS pings in 3, default 120);
# about 40 s in all (debug build). Prints PASS/FAIL per check and a summary per part; exits
# non-zero when any check failed. Logs are kept in the work directory on failure (FX_KEEP=1:
# always).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

WAIT=${FS_V1_WAIT:-15}
BASE_PREFIX=$FX_PREFIX

# --- configuration: fs_pair_conf (IKEv2) turned into IKEv1 ------------------------------------
# v1_pair_conf A B A_LOCAL A_PUBLIC MODE key=value...: the mirrored pair of fs_pair_conf, with
# version = "ikev1", exchange-mode MODE and dpd instead of liveness-interval (an IKEv2-only
# key that an ikev1 gateway refuses).
v1_pair_conf() {
    local a=$1 b=$2 a_local=$3 a_public=$4 mode=$5 n; shift 5
    fs_pair_conf "$a" "$b" "$a_local" "$a_public" "$@"
    for n in "$a" "$b"; do
        sed -i -E "s/^version = \"ikev2\"$/version = \"ikev1\"\nexchange-mode = \"$mode\"\ndpd = { interval = \"5s\", retry = 5 }/;
                   /^liveness-interval = /d" "$(fs_dir "$n")/ferrosec.toml"
        grep -qx 'version = "ikev1"' "$(fs_dir "$n")/ferrosec.toml" ||
            { fx_fail "$mode: fs_conf's gateway turned into an IKEv1 one ($n)"; return 1; }
    done
    "$FS_BIN" config check "$(fs_dir "$a")/ferrosec.toml" >"$FX_WORK/check-$a.out" 2>&1 &&
        "$FS_BIN" config check "$(fs_dir "$b")/ferrosec.toml" >"$FX_WORK/check-$b.out" 2>&1 ||
        { fx_fail "$mode: the IKEv1 configurations are valid"; cat "$FX_WORK"/check-*.out >&2; return 1; }
}

# --- checks -----------------------------------------------------------------------------------
fsb() { local name=$1; shift; timeout $((WAIT + 10)) "$FS_BIN" --socket "$(fs_dir "$name")/ferrosec.sock" "$@"; }
# One echo request, sent before any SA exists: answered only if it was held, not dropped.
first_ping() { fx_in a-host ping -c 1 -W 8 -q "$B_HOST" >/dev/null 2>&1; }
ping4() { fx_ping a-host "$B_HOST" "${1:-3}"; }
ping6() { fx_in a-host ping -6 -c "${1:-3}" -W 2 -i 0.2 -q "$B_HOST6" >/dev/null 2>&1; }
# ping_all FROM TO N: N pings, every one answered.
ping_all() { fx_in "$1" ping -c "$3" -W 2 -i 0.1 "$2" 2>/dev/null | fx_has " $3 received"; }

ike_json_field() { fs_field "$(fs_ike_json "$1")" "$2"; }
# v1_sa NAME VERSION ROLE: exactly one IKE SA, established, of VERSION (ikev1-main|-aggressive)
# and ROLE (initiator|responder).
v1_sa() {
    local json; json=$(fs_ike_json "$1")
    [ "$(fs_field "$json" state | grep -cx established)" = 1 ] && [ "$(fs_field "$json" state | wc -l)" = 1 ] &&
        fs_field "$json" version | fx_has -x "$2" && fs_field "$json" role | fx_has -x "$3"
}
# two_pairs NAME: one quick-mode SA pair per proxy ID, no more.
two_pairs() { [ "$(fs_count "$1" proxy-id lan4)" = 1 ] && [ "$(fs_count "$1" proxy-id lan6)" = 1 ]; }
# SPIs, hex without 0x: the inbound ones of NAME, the outbound ones of NAME.
spis_in() { fs_field "$(fs_ipsec_json "$1")" spi-in | sed 's/^0x//' | sort | tr '\n' ' '; }
spis_out() { fs_field "$(fs_ipsec_json "$1")" spi-out | sed 's/^0x//' | sort | tr '\n' ' '; }
# spis_agree A B: each side's inbound SPIs are the other side's outbound ones (and there are 2).
spis_agree() {
    local ain aout bin bout
    ain=$(spis_in "$1"); aout=$(spis_out "$1"); bin=$(spis_in "$2"); bout=$(spis_out "$2")
    [ "$(wc -w <<<"$ain")" = 2 ] && [ "$ain" = "$bout" ] && [ "$bin" = "$aout" ]
}
# all_new "SPIS" "BEFORE": none of SPIS is in BEFORE.
all_new() {
    local s
    for s in $1; do [[ " $2 " != *" $s "* ]] || return 1; done
    return 0
}
no_sa() { fs_no_ike_sa "$1" && [ -z "$(fs_spi_in "$1")" ]; }
# unknown_spi NAME...: on a failure, the lines of the system logs that name an ESP packet for an
# SPI the receiver had no SA for yet (what a lost first packet or a lost ping looks like).
unknown_spi() {
    local n out
    for n in "$@"; do
        out=$(fs "$n" show system log 2>/dev/null || true)
        grep -E 'matches no SA of ours|unknown-spi' <<<"$out" | cut -c1-220 | sed "s/^/    $n log: /" || true
    done
}
# missing_seqs FILE: the icmp_seq numbers a ping output lacks.
missing_seqs() {
    awk -v n="$2" '/icmp_seq=/{match($0, /icmp_seq=[0-9]+/); seen[substr($0, RSTART + 9, RLENGTH - 9)] = 1}
        END {for (i = 1; i <= n; i++) if (!(i in seen)) printf " %d", i; print ""}' "$1"
}
packets_both_ways() {
    [ "$(fs_flow_sum "$1" packets-in)" -gt 100 ] && [ "$(fs_flow_sum "$1" packets-out)" -gt 100 ]
}

# esp_on_wire: nft counters on b-gw's input while a-host pings: ESP (protocol 50) arrives, no
# UDP 4500 does (as in 21).
esp_on_wire() {
    fx_in b-gw nft -f - <<'NFT' || return 1
table inet fsesp {
    counter esp_in { }
    counter udp_in { }
    chain in {
        type filter hook prerouting priority -600; policy accept;
        meta l4proto esp counter name esp_in
        udp dport 4500 counter name udp_in
    }
}
NFT
    fx_ping a-host "$B_HOST" 3 || { fx_in b-gw nft delete table inet fsesp; return 1; }
    local esp udp
    esp=$(fx_in b-gw nft list counter inet fsesp esp_in | grep -o 'packets [0-9]*' | awk '{print $2}')
    udp=$(fx_in b-gw nft list counter inet fsesp udp_in | grep -o 'packets [0-9]*' | awk '{print $2}')
    fx_in b-gw nft delete table inet fsesp
    [ "${esp:-0}" -ge 3 ] && [ "${udp:-1}" = 0 ]
}

# udp_on_wire: the same while a-host pings through the NAT: ESP in UDP 4500 arrives, no raw ESP.
udp_on_wire() {
    fx_in b-gw nft -f - <<'NFT' || return 1
table inet fsudp {
    counter esp_in { }
    counter udp_in { }
    chain in {
        type filter hook prerouting priority -600; policy accept;
        meta l4proto esp counter name esp_in
        udp dport 4500 udp length > 12 counter name udp_in
    }
}
NFT
    fx_ping a-host "$B_HOST" 3 || { fx_in b-gw nft delete table inet fsudp; return 1; }
    local esp udp
    esp=$(fx_in b-gw nft list counter inet fsudp esp_in | grep -o 'packets [0-9]*' | awk '{print $2}')
    udp=$(fx_in b-gw nft list counter inet fsudp udp_in | grep -o 'packets [0-9]*' | awk '{print $2}')
    fx_in b-gw nft delete table inet fsudp
    [ "${udp:-0}" -ge 3 ] && [ "${esp:-1}" = 0 ]
}

# --- parts --------------------------------------------------------------------------------------
PART=""
declare -A PART_OK=()
ck() {
    local name=$1; shift
    if "$@"; then fx_pass "$PART: $name"; else fx_fail "$PART: $name"; PART_OK[$PART]=FAIL; fi
}
part() { PART=$1; PART_OK[$PART]=${PART_OK[$PART]:-PASS}; echo; echo "=== $PART: $2"; }

# A fresh topology for each of the parts that need one: its own namespace prefix (all are
# removed by fx_cleanup; the previous ones are removed here already).
topology() {
    local ns
    for ns in "${FX_NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    FX_PREFIX=${BASE_PREFIX}$1-
    fx_topology "$2"
    fs_lan6
}

# traffic TAG A B: the traffic checks common to 1 and 2.
traffic() {
    local a=$2 b=$3
    ck "IPv4 ping a-host -> b-host, 10 of 10 answered" ping_all a-host "$B_HOST" 10
    ck "IPv6 ping a-host -> b-host, 10 of 10 answered" ping_all a-host "$B_HOST6" 10
    ck "IPv4 ping b-host -> a-host, 5 of 5 answered" ping_all b-host "$A_HOST" 5
    ck "IPv6 ping b-host -> a-host, 5 of 5 answered" ping_all b-host "$A_HOST6" 5
    ck "TCP (iperf3 2 s) over IPv4 a-host -> b-host" fs_tcp a-host "$B_HOST" b-host
    ck "TCP (iperf3 2 s) over IPv6 a-host -> b-host" fs_tcp a-host "$B_HOST6" b-host
    ck "both sides count packets in and out (show vpn flow)" \
        eval "packets_both_ways $a && packets_both_ways $b"
}

# v1_metrics: after part 3, each side's /metrics: the quick-mode rekeys it started and those
# the peer started (two each: lan4 and lan6), as many as its log's rekeys; the one IKEv1
# negotiation (a started it, b answered), its handshake timed, the IKE SA established.
v1_metrics() {
    local side name role f rekeys mine theirs ok=0
    for side in a b; do
        name=${side}1 role=$side-gw f="$FX_WORK/metrics-${side}1.txt"
        if [ "$side" = a ]; then mine=local theirs=peer; else mine=peer theirs=local; fi
        fs_scrape "$role" 9750 "$f" || return 1
        rekeys=$(fs_log_count "$name" "IPsec SA rekeyed for proxy-id")
        echo "    $name: its log has $rekeys IPsec SA rekeys"
        [ "$rekeys" = 4 ] || ok=1
        fs_metrics_check "$f" \
            "ferrosec_rekeys_total{gateway=sw,kind=ipsec-sa,side=local} == 2" \
            "ferrosec_rekeys_total{gateway=sw,kind=ipsec-sa,side=peer} == 2" \
            "ferrosec_rekeys_total == $rekeys" \
            "ferrosec_ipsec_sas_installed_total{tunnel=to-b,kind=rekey} == $rekeys" \
            "ferrosec_negotiations_started_total{version=ikev1,side=$mine} == 1" \
            "absent:ferrosec_negotiations_started_total{side=$theirs}" \
            "ferrosec_ike_handshake_duration_seconds_count{gateway=sw,version=ikev1-main} == 1" \
            "ferrosec_ike_handshake_duration_seconds_sum{gateway=sw,version=ikev1-main} > 0" \
            "ferrosec_ike_sas_established_total{gateway=sw,version=ikev1-main} == 1" \
            "ferrosec_ike_sas{gateway=sw,version=ikev1-main,state=established} == 1" || ok=1
    done
    return "$ok"
}

# --- 1 (main mode, no NAT), then 3 (rekey) and 4 (clear from b) on the same pair ---------------
part "1 main" "main mode, no NAT, raw ESP, on demand"
topology p plain
if v1_pair_conf a1 b1 "$A_WAN" "$A_WAN" main esp_encr='"aes-256-gcm"' esp_auth='"none"' &&
    sed -i 's|^\[global\]$|[global]\nmetrics-listen = "127.0.0.1:9750"|' "$(fs_dir a1)/ferrosec.toml" \
        "$(fs_dir b1)/ferrosec.toml" &&
    fs_start a1 a-gw && fs_start b1 b-gw; then
    ck "no SA before any traffic" eval 'no_sa a1 && no_sa b1'
    ck "on demand: the very first packet waits for main mode + quick mode and is answered" first_ping
    [ "${PART_OK[$PART]}" = PASS ] || unknown_spi a1 b1
    ck "on demand: the system log of site A says why it started" \
        fs_log_has a1 "negotiation started with $B_WAN:500 (on demand: traffic for ipsec-tunnel to-b)"
    ck "site B did not initiate (it only answered)" eval '! fs_log_has b1 "negotiation started"'
    ck "IPv6 inside: ping6 a-host -> b-host (the lan6 quick mode on demand)" fx_wait "$WAIT" ping6 1
    ck "one IKEv1 SA, version ikev1-main: a initiator, b responder" \
        fx_wait "$WAIT" eval 'v1_sa a1 ikev1-main initiator && v1_sa b1 ikev1-main responder'
    ck "two quick-mode SA pairs (lan4, lan6) on both sides, SPIs agree" \
        fx_wait "$WAIT" eval 'two_pairs a1 && two_pairs b1 && spis_agree a1 b1'
    ck "no NAT: encapsulation esp on both sides, peer-nat/local-nat not true" \
        eval '[ "$(fs_count a1 encapsulation esp)" = 2 ] && [ "$(fs_count b1 encapsulation esp)" = 2 ] &&
              ! ike_json_field a1 peer-nat | fx_has -x true && ! ike_json_field a1 local-nat | fx_has -x true'
    ck "quick-mode SAs use aes-256-gcm" eval '[ "$(fs_count a1 encryption aes-256-gcm)" = 2 ] && [ "$(fs_count b1 encryption aes-256-gcm)" = 2 ]'
    traffic "1 main" a1 b1
    ck "on the wire it is IP protocol 50 (nft counts ESP into b-gw, no UDP 4500)" esp_on_wire

    # --- 3. phase-2 rekey under continuous pings ---
    part "3 rekey" "phase-2 rekey (request vpn rekey ipsec-sa) under pings every 0.1 s"
    N=${FS_V1_REKEY_PINGS:-120}   # 12 s of pings at 0.1 s
    fx_bg a-host "$FX_WORK/rekey-ping4.out" ping -c "$N" -i 0.1 -W 2 "$B_HOST"; p4=$FX_LAST_PID
    fx_bg a-host "$FX_WORK/rekey-ping6.out" ping -6 -c "$N" -i 0.1 -W 2 "$B_HOST6"; p6=$FX_LAST_PID
    sleep 1
    for side in a1 b1; do
        before="$(spis_in a1 || true) $(spis_in b1 || true)"
        rc=0; fsb "$side" request vpn rekey ipsec-sa tunnel to-b >"$FX_WORK/rekey-$side.out" 2>&1 || rc=$?
        ck "request vpn rekey ipsec-sa tunnel to-b on $side is accepted" test "$rc" = 0
        [ "$rc" = 0 ] || sed 's/^/    | /' "$FX_WORK/rekey-$side.out"
        ck "rekey from $side: new SPIs on both sides, agreeing; the old pairs deleted (two pairs left)" \
            fx_wait "$WAIT" eval 'two_pairs a1 && two_pairs b1 && spis_agree a1 b1 && all_new "$(spis_in a1) $(spis_in b1)" "$before"'
        echo "    SPIs in before: $before; after: a1 $(spis_in a1)| b1 $(spis_in b1)"
        [ "$side" = a1 ] && ck "after a's rekey: a's /metrics count 2 it started, b's 2 the peer started" \
            eval 'fs_scrape a-gw 9750 "$FX_WORK/metrics-a1-first.txt" && fs_scrape b-gw 9750 "$FX_WORK/metrics-b1-first.txt" &&
                  fs_metrics_check "$FX_WORK/metrics-a1-first.txt" "ferrosec_rekeys_total{kind=ipsec-sa,side=local} == 2" "absent:ferrosec_rekeys_total{side=peer}" &&
                  fs_metrics_check "$FX_WORK/metrics-b1-first.txt" "ferrosec_rekeys_total{kind=ipsec-sa,side=peer} == 2" "absent:ferrosec_rekeys_total{side=local}"'
        sleep 1
    done
    fx_wait $((N / 10 + WAIT)) eval "! kill -0 $p4 2>/dev/null && ! kill -0 $p6 2>/dev/null" || true
    for f in rekey-ping4 rekey-ping6; do grep -E 'transmitted' "$FX_WORK/$f.out" | sed "s/^/    $f: /" || true; done
    ck "IPv4 pings across both rekeys: $N of $N answered, 0% loss" grep -q " $N received, 0% packet loss" "$FX_WORK/rekey-ping4.out"
    ck "IPv6 pings across both rekeys: $N of $N answered, 0% loss" grep -q " $N received, 0% packet loss" "$FX_WORK/rekey-ping6.out"
    if [ "${PART_OK[$PART]}" != PASS ]; then
        echo "    unanswered icmp_seq: IPv4:$(missing_seqs "$FX_WORK/rekey-ping4.out" "$N") IPv6:$(missing_seqs "$FX_WORK/rekey-ping6.out" "$N")"
        unknown_spi a1 b1
    fi
    ck "the system logs say rekeyed for lan4 and lan6, twice each, on both sides" \
        eval '[ "$(fs a1 show system log | grep -cE "IPsec SA rekeyed for proxy-id lan[46]:")" = 4 ] &&
              [ "$(fs b1 show system log | grep -cE "IPsec SA rekeyed for proxy-id lan[46]:")" = 4 ]'
    ck "still the one IKEv1 SA on each side (phase 1 untouched)" eval 'v1_sa a1 ikev1-main initiator && v1_sa b1 ikev1-main responder'
    ck "/metrics on both sides (parser): rekeys by side as the logs, the IKEv1 handshake and SA" v1_metrics

    # --- 4. clear on b ---
    part "4 clear" "clear vpn ike-sa on one side removes the SAs on both (IKEv1 DELETE)"
    rc=0; fsb b1 clear vpn ike-sa gateway sw >"$FX_WORK/clear-b1.out" 2>&1 || rc=$?
    ck "main: clear vpn ike-sa gateway sw on b is accepted" test "$rc" = 0
    ck "main: b (cleared) has no IKE SA and no quick-mode SA" fx_wait "$WAIT" no_sa b1
    ck "main: a (the peer) has no IKE SA and no quick-mode SA left (DELETE received)" fx_wait "$WAIT" no_sa a1
    ck "main: a ping from a-host brings the tunnel back (main mode again)" fx_wait "$WAIT" ping4 1
    ck "main: again one ikev1-main SA and two pairs that agree" \
        fx_wait "$WAIT" eval 'v1_sa a1 ikev1-main initiator && two_pairs a1 && two_pairs b1 && spis_agree a1 b1'
else
    fx_fail "1 main: the pair of daemons started"; PART_OK["1 main"]=FAIL
fi
fs_stop a1 2>/dev/null || true
fs_stop b1 2>/dev/null || true

# --- 2 (aggressive mode through the NAT), then 4 (clear from a) ---------------------------------
part "2 aggressive+nat" "aggressive mode, site A behind a NAT, ESP in UDP 4500"
topology n nat
if v1_pair_conf a2 b2 "$A_PRIV" "$A_WAN" aggressive esp_encr='"aes-256-cbc"' esp_auth='"sha256"' &&
    fs_start a2 a-gw && fs_start b2 b-gw; then
    ck "no SA before any traffic" eval 'no_sa a2 && no_sa b2'
    ck "on demand: the very first packet waits for aggressive mode + quick mode and is answered" first_ping
    [ "${PART_OK[$PART]}" = PASS ] || unknown_spi a2 b2
    ck "on demand: the system log of site A says why it started" \
        fs_log_has a2 "negotiation started with $B_WAN:500 (on demand: traffic for ipsec-tunnel to-b)"
    ck "IPv6 inside: ping6 a-host -> b-host" fx_wait "$WAIT" ping6 1
    ck "one IKEv1 SA, version ikev1-aggressive: a initiator, b responder" \
        fx_wait "$WAIT" eval 'v1_sa a2 ikev1-aggressive initiator && v1_sa b2 ikev1-aggressive responder'
    ck "NAT detected: a local-nat true, b peer-nat true" \
        eval 'ike_json_field a2 local-nat | fx_has -x true && ike_json_field b2 peer-nat | fx_has -x true'
    ck "two quick-mode SA pairs (lan4, lan6) on both sides, SPIs agree" \
        fx_wait "$WAIT" eval 'two_pairs a2 && two_pairs b2 && spis_agree a2 b2'
    ck "ESP in UDP: encapsulation udp on both sides" \
        eval '[ "$(fs_count a2 encapsulation udp)" = 2 ] && [ "$(fs_count b2 encapsulation udp)" = 2 ]'
    ck "quick-mode SAs use aes-256-cbc / sha256" \
        eval '[ "$(fs_count a2 encryption aes-256-cbc)" = 2 ] && [ "$(fs_count a2 integrity sha256)" = 2 ]'
    traffic "2 aggressive+nat" a2 b2
    ck "on the wire: ESP in UDP 4500 into b-gw, no raw ESP" udp_on_wire

    part "4 clear" "clear vpn ike-sa on one side removes the SAs on both (IKEv1 DELETE)"
    rc=0; fsb a2 clear vpn ike-sa gateway sw >"$FX_WORK/clear-a2.out" 2>&1 || rc=$?
    ck "nat: clear vpn ike-sa gateway sw on a (behind the NAT) is accepted" test "$rc" = 0
    ck "nat: a (cleared) has no IKE SA and no quick-mode SA" fx_wait "$WAIT" no_sa a2
    ck "nat: b (the peer) has no IKE SA and no quick-mode SA left (DELETE received)" fx_wait "$WAIT" no_sa b2
    ck "nat: a ping from a-host brings the tunnel back (aggressive mode again)" fx_wait "$WAIT" ping4 1
    ck "nat: again one ikev1-aggressive SA and two pairs that agree" \
        fx_wait "$WAIT" eval 'v1_sa a2 ikev1-aggressive initiator && two_pairs a2 && two_pairs b2 && spis_agree a2 b2'
else
    fx_fail "2 aggressive+nat: the pair of daemons started"; PART_OK["2 aggressive+nat"]=FAIL
fi
fs_stop a2 2>/dev/null || true
fs_stop b2 2>/dev/null || true

# --- 5 (AH in quick mode, main mode, no NAT) -------------------------------------------------
part "5 ah" "AH (HMAC-SHA-256) in quick mode, main mode, no NAT"
topology h plain
ah_on_wire() {
    fx_in b-gw nft -f - <<'NFT' || return 1
table ip fsah1 {
    counter ah_in { }
    counter esp_in { }
    chain in {
        type filter hook prerouting priority -600; policy accept;
        meta l4proto ah counter name ah_in
        meta l4proto esp counter name esp_in
    }
}
NFT
    fx_ping a-host "$B_HOST" 3 >/dev/null
    local ah esp
    ah=$(fx_in b-gw nft list counter ip fsah1 ah_in | grep -o 'packets [0-9]*' | awk '{print $2}')
    esp=$(fx_in b-gw nft list counter ip fsah1 esp_in | grep -o 'packets [0-9]*' | awk '{print $2}')
    fx_in b-gw nft delete table ip fsah1
    echo "    on the wire into b-gw: AH $ah, ESP $esp"
    [ "${ah:-0}" -ge 3 ] && [ "${esp:-1}" = 0 ]
}
if v1_pair_conf a5 b5 "$A_WAN" "$A_WAN" main esp_proto=ah esp_encr= esp_auth='"sha256"' &&
    fs_start a5 a-gw && fs_start b5 b-gw; then
    ck "on demand: pings from a-host bring the tunnel up (IPv4 inside)" fx_wait "$WAIT" ping4 1
    ck "IPv6 inside too (the lan6 quick mode)" fx_wait "$WAIT" ping6 1
    ck "two AH pairs on both sides (encapsulation ah, encryption none, integrity sha256), SPIs agree" \
        fx_wait "$WAIT" eval '[ "$(fs_count a5 encapsulation ah)" = 2 ] && [ "$(fs_count b5 encapsulation ah)" = 2 ] &&
                              [ "$(fs_count a5 encryption none)" = 2 ] && [ "$(fs_count b5 integrity sha256)" = 2 ] && spis_agree a5 b5'
    ck "ikev1-main on both sides" eval 'v1_sa a5 ikev1-main initiator && v1_sa b5 ikev1-main responder'
    ck "IPv4 ping a-host -> b-host, 10 of 10 answered" ping_all a-host "$B_HOST" 10
    ck "IPv6 ping b-host -> a-host, 5 of 5 answered" ping_all b-host "$A_HOST6" 5
    ck "TCP (iperf3 2 s) over IPv4 a-host -> b-host" fs_tcp a-host "$B_HOST" b-host
    ck "on the wire: IP protocol 51 into b-gw, no ESP" ah_on_wire
else
    fx_fail "5 ah: the pair of daemons started"; PART_OK["5 ah"]=FAIL
fi
fs_stop a5 2>/dev/null || true
fs_stop b5 2>/dev/null || true

echo; echo "=== summary (ferrosec <-> ferrosec, IKEv1)"
for p in "1 main" "2 aggressive+nat" "3 rekey" "4 clear" "5 ah"; do
    printf '%s  %s\n' "${PART_OK[$p]:-FAIL}" "$p"
done
