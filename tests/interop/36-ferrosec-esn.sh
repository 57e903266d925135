#!/usr/bin/env bash
# Extended sequence numbers (RFC 4304, issue 18), ferrosec (a-gw) <-> ferrosec (b-gw):
#   - esn = true on both sides: the Child SAs use ESN (show vpn ipsec-sa says so on both);
#     with both daemons impaired so that every new outbound SA starts 40 packets below 2^32
#     (FERROSEC_IMPAIR_ESP_SEQ_START), 100 pings each way cross 2^32 and every one is
#     answered: the high-order 32 bits are carried in the ICV and inferred by the receiver;
#   - the control: esn = false with the same start: the sender stops at 2^32 rather than let
#     its counter cycle (RFC 4303 §3.3.3), and the drop report names it (sequence-exhausted);
#   - esn = "either" (the default) against esn = false: 32-bit sequence numbers, up.
# (Against strongSwan, whose userspace ESP has no ESN, "either" falls back to 32-bit
# sequence numbers in every other scenario, and esn = true is refused: 10-ikev2-strongswan.)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

fx_topology plain
fs_lan6
START=$((2 ** 32 - 40))

# pings FROM TO N: N echo requests 20 ms apart; prints how many were answered.
pings() { fx_in "$1" ping -c "$3" -W 2 -i 0.02 -q "$2" 2>/dev/null | sed -n 's/.* \([0-9]*\) received.*/\1/p'; }
esn_rows() { fs_field "$(fs_ipsec_json "$1")" esn | grep -cx "$2" || true; }

run() {   # run TAG ESN_A ESN_B
    local tag=$1 ea=$2 eb=$3
    fs_pair_conf "a-$tag" "b-$tag" "$A_WAN" "$A_WAN"
    sed -i "s/^\[ipsec-crypto-profile.esp\]$/&\nesn = $ea/" "$(fs_dir "a-$tag")/ferrosec.toml"
    sed -i "s/^\[ipsec-crypto-profile.esp\]$/&\nesn = $eb/" "$(fs_dir "b-$tag")/ferrosec.toml"
    FERROSEC_IMPAIR_ESP_SEQ_START=$START fs_start "a-$tag" a-gw
    FERROSEC_IMPAIR_ESP_SEQ_START=$START fs_start "b-$tag" b-gw
    fx_check "$tag: the impairment is on (sequence numbers start at 2^32 - 40)" \
        fs_log_has "a-$tag" "FERROSEC_IMPAIR_ESP_SEQ_START: new outbound ESP SAs continue after sequence number 0xffffffd8"
    fx_check "$tag: the tunnel comes up" eval "fs a-$tag test vpn ipsec-sa tunnel to-b >/dev/null 2>&1"
}

# --- esn = true on both sides -------------------------------------------------------------
run esn true true
fx_check "esn: the Child SAs use ESN on both sides (lan4 and lan6, none without)" \
    fx_wait 10 eval '[ "$(esn_rows a-esn true)" -ge 2 ] && [ "$(esn_rows b-esn true)" -ge 2 ] &&
                     [ "$(esn_rows a-esn false)" = 0 ] && [ "$(esn_rows b-esn false)" = 0 ]'
fs a-esn show vpn ipsec-sa | sed 's/^/    /'
n=$(pings a-host "$B_HOST" 100); echo "    a-host -> b-host across 2^32: ${n:-0} of 100 answered"
fx_check "esn: 100 pings a-host -> b-host cross 2^32 in both directions, all answered" [ "${n:-0}" = 100 ]
n=$(pings b-host "$A_HOST" 100); echo "    b-host -> a-host: ${n:-0} of 100 answered"
fx_check "esn: and 100 the other way" [ "${n:-0}" = 100 ]
sleep 5   # one drop report period
fx_check "esn: no SA ran out of sequence numbers (no sequence-exhausted in either log)" \
    eval '! fs_log_has a-esn sequence-exhausted && ! fs_log_has b-esn sequence-exhausted'
fs_stop a-esn; fs_stop b-esn

# --- the control: no ESN ------------------------------------------------------------------
run noesn false false
fx_check "noesn: the Child SAs use 32-bit sequence numbers" \
    fx_wait 10 eval '[ "$(esn_rows a-noesn false)" -ge 2 ] && [ "$(esn_rows b-noesn false)" -ge 2 ] &&
                     [ "$(esn_rows a-noesn true)" = 0 ]'
n=$(pings a-host "$B_HOST" 100); echo "    a-host -> b-host at 2^32 without ESN: ${n:-0} of 100 answered"
fx_check "noesn: fewer than 100 answered: the sender stops at 2^32" [ "${n:-0}" -lt 100 ]
fx_check "noesn: the system log counts the refused packets (sequence-exhausted)" \
    fx_wait 8 eval 'fs_log_has a-noesn "sequence-exhausted=" || fs_log_has b-noesn "sequence-exhausted="'
fs_stop a-noesn; fs_stop b-noesn

# --- "either" meets false: no ESN, up -------------------------------------------------------
fs_pair_conf a-mix b-mix "$A_WAN" "$A_WAN"
sed -i 's/^\[ipsec-crypto-profile.esp\]$/&\nesn = false/' "$(fs_dir b-mix)/ferrosec.toml"
fs_start a-mix a-gw; fs_start b-mix b-gw
fx_check "either vs false: the tunnel comes up" eval 'fs a-mix test vpn ipsec-sa tunnel to-b >/dev/null 2>&1'
fx_check "either vs false: without ESN on both sides" \
    fx_wait 10 eval '[ "$(esn_rows a-mix false)" -ge 2 ] && [ "$(esn_rows a-mix true)" = 0 ] && [ "$(esn_rows b-mix true)" = 0 ]'
fx_check "either vs false: ping through" fx_wait 10 fx_ping a-host "$B_HOST" 3
fs_stop a-mix; fs_stop b-mix

# --- against strongSwan (no ESN in its userspace ESP): "either" falls back, true is refused -
fx_sw_conf sw local="$B_WAN" remote=%any local_ts="$B_LAN" remote_ts="$A_LAN" \
    local_id=b.ferrosec.test remote_id=a.ferrosec.test psk="$FS_PSK"
fx_sw_start sw b-gw
fs_conf fs-req
sed -i 's/^\[ipsec-crypto-profile.esp\]$/&\nesn = true/' "$(fs_dir fs-req)/ferrosec.toml"
fs_start fs-req a-gw
fx_check "strongSwan, esn = true: the Child SA is refused" eval '! fs fs-req test vpn ipsec-sa tunnel to-b >/dev/null 2>&1'
fs fs-req show system log | grep -iE "proposal|esn" | tail -2 | sed 's/^/    /'
fx_check "strongSwan, esn = true: the system log says the offer required extended sequence numbers" \
    fx_wait 5 fs_log_has fs-req "NO_PROPOSAL_CHOSEN.*ESN\|ESN.*NO_PROPOSAL_CHOSEN\|extended sequence"
fs_stop fs-req
fs_conf fs-either
fs_start fs-either a-gw
fx_check "strongSwan, esn = either (the default): up without ESN" \
    eval 'fs fs-either test vpn ipsec-sa tunnel to-b >/dev/null 2>&1 && [ "$(esn_rows fs-either false)" -ge 1 ] && [ "$(esn_rows fs-either true)" = 0 ]'
fx_check "strongSwan, esn = either: ping through" fx_wait 10 fx_ping a-host "$B_HOST" 3
fs_stop fs-either; fx_sw_stop sw

echo; if [ "$FX_FAILED" = 0 ]; then echo "=== ESN: all checks passed"; else echo "=== ESN: some checks FAILED"; fi
exit "${FX_FAILED:-0}"
