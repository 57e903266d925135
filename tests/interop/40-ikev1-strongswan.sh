#!/usr/bin/env bash
# ferrosec (a-gw) against strongSwan 5.9 (b-gw), IKEv1 with a pre-shared key:
#   1. main mode, modern suite (aes-256-cbc/sha256/group14; ESP aes-256-cbc/sha256), ferrosec
#      initiates: phase 1 by `test vpn ike-sa`, quick mode on demand by a ping from a-host;
#      then `clear vpn ike-sa` deletes the SAs on strongSwan (informational DELETE);
#   2. main mode, strongSwan initiates (ecp256; ESP aes256gcm16), ferrosec responds (passive:
#      a ping from a-host starts nothing, `test vpn ike-sa` refuses in words);
#      then strongSwan's DELETE removes the SAs on ferrosec;
#   3. legacy suite: 3des/sha1/group2 (modp1024), ESP 3des/sha1, IP-address IDs, ferrosec
#      initiates;
#   4. PFS: quick mode with group14 (ESP aes256-sha256-modp2048) started by ferrosec, then a
#      quick-mode rekey with PFS started by strongSwan;
#   5. aggressive mode with fqdn IDs, ferrosec initiates;
#   6. failures explained in ferrosec's system log: wrong pre-shared key (ferrosec responder
#      and initiator), phase-1 proposal mismatch (responder and initiator), proxy-ID mismatch
#      with ferrosec as responder. No tunnel may come up in any of them;
#   7. version = "ikev2-preferred": against an IKEv1-only strongSwan ferrosec falls back to
#      main mode and says why in its log; against an IKEv2 strongSwan it stays on IKEv2; an
#      IKEv1 strongSwan initiating is answered in IKEv1;
#   8. rekeys under a continuous ping (every 50 ms), none lost: quick-mode rekeys started by
#      ferrosec and by strongSwan, a phase-1 rekey started by ferrosec (the phase-2 SAs stay)
#      and one started by strongSwan;
#   9. strongSwan crashes (SIGKILL) and comes back: as a responder that waits, ferrosec's DPD
#      finds it dead and negotiates again (the tunnel back within the DPD window); as an
#      initiator, its new main mode carries INITIAL-CONTACT and ferrosec drops the stale SAs
#      at once.
# strongSwan's kernel-libipsec cannot do raw ESP: it claims NAT and sends ESP in UDP 4500, so
# ferrosec must do RFC 3947 NAT-T in IKEv1 (nat-traversal = true here) for any tunnel to work.
#
# usage: bash tests/interop/40-ikev1-strongswan.sh [CASE...]   (CASE 1-9; none: all)
# Every case prints PASS/FAIL lines and a summary line; the script exits non-zero when any
# check failed. Every wait is bounded (FS_V1_WAIT, default 20 s); logs are kept in the work
# directory on failure (FX_KEEP=1: always). All cases take about a minute.
CASES_ALL=(1 2 3 4 5 6 7 8 9)
for c in "$@"; do
    case $c in [1-9]) ;; *) echo "usage: $0 [CASE...]   (cases: ${CASES_ALL[*]})" >&2; exit 2 ;; esac
done
if [ $# -gt 0 ]; then CASES=("$@"); else CASES=("${CASES_ALL[@]}"); fi

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
source "$(dirname "$0")/ikev1-lib.bash"
fs_require_bin
fx_init

WAIT=${FS_V1_WAIT:-20}   # bound of every wait for a negotiation or a log line, seconds


# --- strongSwan: IKEv1 at b-gw facing ferrosec ---------------------------------------------
# sw1_conf NAME initiator|responder key=value...: fx_sw_conf with version 1, our LANs and IDs;
# extra key aggressive=yes (Aggressive Mode: the connection's `aggressive`, and the responder's
# permission for Aggressive Mode with PSK, see sw1_start).
sw1_conf() {
    local name=$1 role=$2; shift 2
    local remote=%any aggressive=no kv args=()
    [ "$role" = initiator ] && remote=$A_WAN
    for kv in "$@"; do
        case $kv in aggressive=*) aggressive=${kv#*=} ;; *) args+=("$kv") ;; esac
    done
    fx_sw_conf "$name" version=1 local="$B_WAN" remote="$remote" local_ts="$B_LAN" remote_ts="$A_LAN" \
        local_id=b.ferrosec.test remote_id=a.ferrosec.test psk="$FS_PSK" "${args[@]}"
    if [ "$aggressive" = yes ]; then
        sed -i 's/^\( *\)version = 1$/&\n\1aggressive = yes/' "$(fx_sw_dir "$name")/swanctl.conf"
        touch "$(fx_sw_dir "$name")/aggressive"
    fi
}

# sw1_start NAME: charon at b-gw (lib.sh's fx_sw_start). For Aggressive Mode, strongSwan as
# responder refuses PSK unless strongswan.conf allows it; charon reads that setting when it
# needs it, so it is added and the settings reloaded.
sw1_start() {
    local name=$1 dir; dir=$(fx_sw_dir "$1")
    fx_sw_start "$name" b-gw || return 1
    # (swanctl lists the credential folders it does not find; anything else failing is an error)
    if grep -v 'opening directory' "$dir/load.out" | grep -Eqi 'fail|error|invalid' ||
        ! grep -q 'successfully loaded 1 connections' "$dir/load.out"; then
        grep -v 'opening directory' "$dir/load.out" | sed 's/^/    swanctl: /'
        return 1
    fi
    if [ -e "$dir/aggressive" ]; then
        printf 'charon {\n    i_dont_care_about_security_and_use_aggressive_mode_psk = yes\n}\n' >>"$dir/strongswan.conf"
        fx_sw_swanctl "$name" --reload-settings >>"$dir/load.out" 2>&1 || return 1
    fi
    return 0
}

# --- checks ---------------------------------------------------------------------------------
CASE=""        # label of the running case
CASE_OK=1      # 0 once a check of the running case failed
FC_STARTED=0   # fail_case: both sides started
declare -A RESULT

fs_test_ipsec() { fsb "$1" test vpn ipsec-sa tunnel to-b >"$FX_WORK/test-ipsec-$1.out" 2>&1; }
# ferrosec has an established IKEv1 SA with ROLE (and optionally DH group).
fs_v1_sa() {
    local json; json=$(fs_ike_json "$1")
    fs_field "$json" state | fx_has -x established && fs_field "$json" version | grep -Eqx "ikev1-(main|aggressive)" &&
        fs_field "$json" role | fx_has -x "$2" && { [ -z "${3:-}" ] || fs_field "$json" dh-group | fx_has -x "$3"; }
}
fs_no_sa() { fs_no_ike_sa "$1" && [ -z "$(fs_spi_in "$1")" ]; }
# Quick-mode SAs on both sides, and ferrosec's inbound SPIs are strongSwan's outbound ones.
spis_agree() {
    local ours theirs
    ours=$(fs_spis "$1"); theirs=$(sw_out_spis "$2")
    [ -n "$ours" ] && [ "$ours" = "$theirs" ]
}
# After a rekey: strongSwan's installed outbound SPIs are new, and ferrosec has them inbound
# (ferrosec may still list the old SA until its DELETE).
rekeyed_spis_agree() {
    local before=$3 ours theirs spi
    ours=$(fs_spis "$1"); theirs=$(sw_out_spis "$2")
    [ -n "$theirs" ] || return 1
    for spi in $theirs; do
        [[ " $ours " == *" $spi "* ]] && [[ " $before " != *" $spi "* ]] || return 1
    done
}
# ferrosec's PFS group of the IPsec SAs: GROUP, or "n/a" while the daemon does not report it
# (strongSwan's list-sas is the proof of PFS then).
fs_pfs_is() {
    local g; g=$(fs_field "$(fs_ipsec_json "$1")" dh-group | sort -u)
    [ "$g" = "$2" ] && return 0
    [ "$g" = n/a ] && { echo "    INFO  ferrosec reports the IPsec SA's PFS group as n/a"; return 0; }
    return 1
}
both_up() { fs_ike_established "$1" && sw_established "$2" && spis_agree "$1" "$2"; }
ping_ok() { fx_ping a-host "$B_HOST" "${1:-2}"; }
flow_sum() { fs "$1" --json show vpn flow 2>/dev/null | grep -o "\"$2\": *[0-9]*" | awk '{s += $2} END {print s + 0}'; }
no_tunnel() { [ -z "$(fs_spi_in "$1")" ] && ! sw_established "$2"; }

# start_pair FS SW: strongSwan first (its config written already), then ferrosec.
start_pair() {
    sw1_start "$2" || { fail_now "strongSwan did not start or did not load its config"; return 1; }
    fs_start "$1" a-gw || { fail_now "ferrosec did not start"; return 1; }
    # The gateway must be served: today's build leaves an IKEv1 gateway out and says so.
    if fs_log_has "$1" 'not served'; then
        fs "$1" show system log 2>/dev/null | grep 'not served' | head -2 | sed 's/^/    | /' | cut -c1-300
        fail_now "ferrosec does not serve the IKEv1 gateway (its log says: not served)"
        return 1
    fi
    return 0
}
# stop_pair FS SW: stops whichever of the two was started.
stop_pair() {
    [ -f "$(fs_dir "$1")/pid" ] && fs_stop "$1"
    [ -f "$(fx_sw_dir "$2")/pid" ] && fx_sw_stop "$2"
    return 0
}

# --- 1. main mode, modern suite, ferrosec initiates -----------------------------------------
case_1() {
    sw1_conf sw1 responder ike=aes256-sha256-modp2048 esp=aes256-sha256
    fs1_conf fs1 groups='"group14"' esp_encr='"aes-256-cbc"' esp_auth='"sha256"'
    start_pair fs1 sw1 || return 1
    ck "test vpn ike-sa gateway sw succeeds (phase 1)" fs_test_ike fs1 || show_out "$FX_WORK/test-ike-fs1.out"
    ck "ferrosec: IKE SA established, ikev1, initiator, group14, aes-256-cbc, sha256" \
        fx_wait "$WAIT" eval 'fs_v1_sa fs1 initiator group14 && ike_field_is fs1 encryption aes-256-cbc && ike_field_is fs1 integrity sha256'
    ck "strongSwan: IKEv1 SA ESTABLISHED, AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048" \
        fx_wait "$WAIT" eval 'sw_v1_established sw1 && sw_has sw1 "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"'
    ck "strongSwan received Main Mode (ID_PROT), not Aggressive Mode" \
        eval 'sw_log_has sw1 "ID_PROT request" && ! sw_log_has sw1 "AGGRESSIVE request"'
    ck "ping a-host -> b-host through the tunnel (quick mode on demand)" fx_wait "$WAIT" ping_ok 1
    ck "quick-mode SA on both sides, SPIs agree, ESP in UDP" \
        fx_wait "$WAIT" eval 'both_up fs1 sw1 && ipsec_field_is fs1 encapsulation udp'
    ck "ESP aes-256-cbc / sha256 without PFS: ferrosec's ipsec-sa; strongSwan ESP:AES_CBC-256/HMAC_SHA2_256_128" \
        eval 'ipsec_field_is fs1 encryption aes-256-cbc && ipsec_field_is fs1 integrity sha256 && fs_pfs_is fs1 no-pfs &&
              sw_has sw1 "ESP:AES_CBC-256/HMAC_SHA2_256_128$"'
    ck "show vpn flow counts packets both ways" \
        eval '[ "$(flow_sum fs1 packets-in)" -gt 0 ] && [ "$(flow_sum fs1 packets-out)" -gt 0 ]'
    fsb fs1 clear vpn ike-sa gateway sw >"$FX_WORK/clear-fs1.out" 2>&1
    ck "clear vpn ike-sa: strongSwan has no SA left (informational DELETE)" fx_wait "$WAIT" sw_no_sa sw1
    ck "clear vpn ike-sa: ferrosec has no IKE or IPsec SA left" fx_wait "$WAIT" fs_no_sa fs1
}

# --- 2. main mode, strongSwan initiates -----------------------------------------------------
case_2() {
    sw1_conf sw2 initiator ike=aes256-sha256-ecp256 esp=aes256gcm16
    fs1_conf fs2 groups='"group19", "group14"' esp_encr='"aes-256-gcm"' esp_auth='"none"' passive=true
    start_pair fs2 sw2 || return 1
    # passive-mode on an IKEv1 gateway (the seeds' "respond only"): traffic starts nothing and
    # `test vpn ike-sa` says why.
    ck "passive: a ping from a-host starts no IKEv1 negotiation" \
        eval '! fx_ping a-host "$B_HOST" 2 && fs_no_sa fs2 && ! fs_log_has fs2 "negotiation started"'
    ck "passive: test vpn ike-sa refuses in words" \
        eval 'fs fs2 test vpn ike-sa gateway sw >"$FX_WORK/test-passive.out" 2>&1; fx_has "is passive" "$FX_WORK/test-passive.out"'
    ck "swanctl --initiate (main mode + quick mode) succeeds" sw_initiate sw2 || show_out "$FX_WORK/initiate-sw2.out"
    ck "ferrosec: IKE SA established, ikev1, responder, group19" fx_wait "$WAIT" fs_v1_sa fs2 responder group19
    ck "strongSwan: IKEv1 SA ESTABLISHED, child INSTALLED, SPIs agree" \
        fx_wait "$WAIT" eval 'sw_v1_established sw2 && both_up fs2 sw2'
    ck "ferrosec: ipsec-sa aes-256-gcm; strongSwan AES_GCM_16-256" \
        eval 'ipsec_field_is fs2 encryption aes-256-gcm && sw_has sw2 "ESP:AES_GCM_16-256$"'
    ck "ping a-host -> b-host through the tunnel" fx_wait "$WAIT" ping_ok 2
    fx_sw_swanctl sw2 --terminate --ike s2s --timeout 10 >"$FX_WORK/terminate-sw2.out" 2>&1
    ck "strongSwan's DELETE: ferrosec has no IKE or IPsec SA left" fx_wait "$WAIT" fs_no_sa fs2
}

# --- 3. legacy suite: 3des / sha1 / group2, ESP 3des / sha1; IP-address IDs ---------------------
case_3() {
    sw1_conf sw3 responder ike=3des-sha1-modp1024 esp=3des-sha1 local_id="$B_WAN" remote_id="$A_WAN"
    fs1_conf fs3 groups='"group2"' ike_auth='"sha1"' ike_encr='"3des"' esp_encr='"3des"' esp_auth='"sha1"' \
        local_id= peer_id=
    start_pair fs3 sw3 || return 1
    ck "test vpn ipsec-sa tunnel to-b succeeds (main mode + quick mode)" fs_test_ipsec fs3 || show_out "$FX_WORK/test-ipsec-fs3.out"
    ck "ferrosec: IKE SA ikev1, initiator, group2, 3des, sha1" \
        fx_wait "$WAIT" eval 'fs_v1_sa fs3 initiator group2 && ike_field_is fs3 encryption 3des && ike_field_is fs3 integrity sha1'
    ck "strongSwan: IKEv1 SA 3DES_CBC/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024, IDs are the addresses" \
        fx_wait "$WAIT" eval 'sw_v1_established sw3 && sw_has sw3 "3DES_CBC/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024" && sw_has sw3 "remote .$A_WAN. @"'
    ck "quick-mode SA on both sides, SPIs agree; ESP 3des / sha1 (strongSwan 3DES_CBC/HMAC_SHA1_96)" \
        fx_wait "$WAIT" eval 'both_up fs3 sw3 && ipsec_field_is fs3 encryption 3des && ipsec_field_is fs3 integrity sha1 && sw_has sw3 "ESP:3DES_CBC/HMAC_SHA1_96$"'
    ck "ping a-host -> b-host through the tunnel" fx_wait "$WAIT" ping_ok 2
}

# --- 4. PFS: quick mode with group14 ---------------------------------------------------------
case_4() {
    sw1_conf sw4 responder ike=aes256-sha256-modp2048 esp=aes256-sha256-modp2048
    fs1_conf fs4 groups='"group14"' esp_encr='"aes-256-cbc"' esp_auth='"sha256"' pfs=group14
    start_pair fs4 sw4 || return 1
    ck "test vpn ipsec-sa tunnel to-b succeeds (quick mode with PFS)" fs_test_ipsec fs4 || show_out "$FX_WORK/test-ipsec-fs4.out"
    ck "quick-mode SA on both sides, SPIs agree" fx_wait "$WAIT" both_up fs4 sw4
    ck "PFS group14: strongSwan ESP:AES_CBC-256/HMAC_SHA2_256_128/MODP_2048; ferrosec's ipsec-sa group14" \
        eval 'sw_has sw4 "ESP:AES_CBC-256/HMAC_SHA2_256_128/MODP_2048$" && fs_pfs_is fs4 group14'
    ck "ping a-host -> b-host through the tunnel" fx_wait "$WAIT" ping_ok 2
    local before; before=$(fs_spis fs4)
    fx_sw_swanctl sw4 --rekey --child net >"$FX_WORK/rekey-sw4.out" 2>&1
    ck "quick mode with PFS started by strongSwan (rekey): new SPIs known to ferrosec, MODP_2048" \
        fx_wait "$WAIT" eval 'rekeyed_spis_agree fs4 sw4 "$before" && sw_has sw4 "ESP:AES_CBC-256/HMAC_SHA2_256_128/MODP_2048$"'
    ck "ping still passes after the rekey" fx_wait "$WAIT" ping_ok 2
}

# --- 5. aggressive mode, fqdn IDs, ferrosec initiates -----------------------------------------
case_5() {
    sw1_conf sw5 responder ike=aes256-sha256-modp2048 esp=aes256gcm16 aggressive=yes
    fs1_conf fs5 mode=aggressive groups='"group14"' esp_encr='"aes-256-gcm"' esp_auth='"none"' \
        local_id=a.ferrosec.test peer_id=b.ferrosec.test
    start_pair fs5 sw5 || return 1
    ck "test vpn ike-sa gateway sw succeeds (aggressive mode)" fs_test_ike fs5 || show_out "$FX_WORK/test-ike-fs5.out"
    ck "ferrosec: IKE SA established, ikev1, initiator, group14" fx_wait "$WAIT" fs_v1_sa fs5 initiator group14
    ck "strongSwan received Aggressive Mode, not Main Mode" \
        eval 'sw_log_has sw5 "AGGRESSIVE request" && ! sw_log_has sw5 "ID_PROT request"'
    ck "strongSwan: IKEv1 SA ESTABLISHED with the fqdn IDs (b.ferrosec.test / a.ferrosec.test)" \
        fx_wait "$WAIT" eval 'sw_v1_established sw5 && sw_has sw5 "local  .b\.ferrosec\.test. @" && sw_has sw5 "remote .a\.ferrosec\.test. @"'
    ck "ping a-host -> b-host through the tunnel (quick mode on demand)" fx_wait "$WAIT" ping_ok 1
    ck "quick-mode SA on both sides, SPIs agree, aes-256-gcm" \
        fx_wait "$WAIT" eval 'both_up fs5 sw5 && ipsec_field_is fs5 encryption aes-256-gcm'
}

# --- 6. failures explained in ferrosec's system log -------------------------------------------
# explained NAME KEY WHAT=REGEX...: waits (≤ $WAIT s) for a line of `show system log` matching
# KEY (grep -Ei), prints it, and checks that the same line matches every REGEX (grep -E).
log_line() { local out; out=$(fs "$1" show system log 2>/dev/null) || return 1; grep -Ei -m1 -- "$2" <<<"$out"; }
has_line() { log_line "$1" "$2" >/dev/null; }
explained() {
    local name=$1 key=$2 line spec missing=""; shift 2
    fx_wait "$WAIT" has_line "$name" "$key" || true
    line=$(log_line "$name" "$key" || true)
    printf '    show system log: %s\n' "${line:-<no line matching /$key/>}" | cut -c1-600
    if [ -z "$line" ]; then
        fail_now "show system log has no line matching /$key/"
        return 1
    fi
    for spec in "$@"; do grep -Eq -- "${spec#*=}" <<<"$line" || missing+=" ${spec%%=*}"; done
    if [ -n "$missing" ]; then
        fail_now "the log line does not name:$missing"
        for spec in "$@"; do
            grep -Eq -- "${spec#*=}" <<<"$line" || printf '        missing %s: /%s/\n' "${spec%%=*}" "${spec#*=}"
        done
        return 1
    fi
    fx_pass "$CASE: the log explains it (${*%%=*})"
}
re() { sed -E 's/[][\.*^$+?(){}|]/\\&/g' <<<"$1"; }
GW_RE='gateway[ =:"]*sw\b'

# fail_case TAG who=ferrosec|strongswan [sw key=value...] -- [fs key=value...]: both sides
# configured with one mismatch; the initiator tries; nothing may come up.
fail_case() {
    local tag=$1 who=$2; shift 2
    local sw_args=() fs_args=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do sw_args+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    fs_args=("$@")
    if [ "$who" = ferrosec ]; then
        sw1_conf "sw$tag" responder "${sw_args[@]}"
        fs1_conf "fs$tag" "${fs_args[@]}"
    else
        sw1_conf "sw$tag" initiator "${sw_args[@]}"
        fs1_conf "fs$tag" passive=true "${fs_args[@]}"
    fi
    FC_STARTED=0
    start_pair "fs$tag" "sw$tag" || return 1
    FC_STARTED=1
    if [ "$who" = ferrosec ]; then
        ck "test vpn ipsec-sa tunnel to-b fails" eval "! fs_test_ipsec fs$tag"
        show_out "$FX_WORK/test-ipsec-fs$tag.out"
    else
        ck "strongSwan's initiate fails" eval "! sw_initiate sw$tag"
    fi
}
end_fail_case() {
    [ "$FC_STARTED" = 1 ] && ck "no tunnel on either side" no_tunnel "fs$1" "sw$1"
    stop_pair "fs$1" "sw$1"
}

# Our phase-1 proposal as fs1_conf writes it (aes-256-cbc/sha256/group14); strongSwan's
# mismatching one.
SW_IKE_BAD=aes128-sha1-modp1024
SW_LAN_BAD=10.9.0.0/24

case_6() {
    local base=$CASE
    # 6a. wrong PSK, strongSwan initiates: ferrosec decrypts main mode message 5 with its key.
    CASE="case 6a (wrong PSK, ferrosec responder)"
    if fail_case 6a strongswan psk=not-the-right-key --; then
        explained fs6a 'pre-shared key|authentication fail|AUTHENTICATION_FAILED' "gateway=$GW_RE"
    fi
    end_fail_case 6a

    # 6b. wrong PSK, ferrosec initiates: strongSwan cannot decrypt message 5.
    CASE="case 6b (wrong PSK, ferrosec initiator)"
    if fail_case 6b ferrosec psk=not-the-right-key --; then
        explained fs6b 'pre-shared key|authentication fail|AUTHENTICATION_FAILED' "gateway=$GW_RE"
    fi
    end_fail_case 6b

    # 6c. phase-1 proposal mismatch, strongSwan initiates: ferrosec has both sides' proposals.
    CASE="case 6c (phase-1 proposal mismatch, ferrosec responder)"
    if fail_case 6c strongswan ike="$SW_IKE_BAD" --; then
        if explained fs6c 'no proposal chosen|NO_PROPOSAL_CHOSEN|no matching proposal' "gateway=$GW_RE"; then
            local line; line=$(log_line fs6c 'no proposal chosen|NO_PROPOSAL_CHOSEN|no matching proposal')
            if grep -Eiq 'MODP_1024|modp1024|group ?2\b' <<<"$line" && grep -Eiq 'MODP_2048|modp2048|group ?14\b' <<<"$line"; then
                echo "    INFO  $CASE: the line names both sides' proposals"
            else
                echo "    INFO  $CASE: the line does not name both sides' proposals (not required)"
            fi
        fi
    fi
    end_fail_case 6c

    # 6d. phase-1 proposal mismatch, ferrosec initiates: strongSwan answers NO_PROPOSAL_CHOSEN.
    CASE="case 6d (phase-1 proposal mismatch, ferrosec initiator)"
    if fail_case 6d ferrosec ike="$SW_IKE_BAD" --; then
        explained fs6d 'no proposal chosen|NO_PROPOSAL_CHOSEN|no matching proposal' "gateway=$GW_RE"
    fi
    end_fail_case 6d

    # 6e. proxy-ID mismatch, strongSwan initiates: main mode succeeds, quick mode offers
    # 10.9.0.0/24 <-> 10.1.0.0/24 where ferrosec has 10.1.0.0/24 <-> 10.2.0.0/24.
    CASE="case 6e (proxy-ID mismatch, ferrosec responder)"
    if fail_case 6e strongswan local_ts="$SW_LAN_BAD" --; then
        explained fs6e "proxy[ -]?id.*$(re "$SW_LAN_BAD")|$(re "$SW_LAN_BAD").*proxy[ -]?id" \
            "words=[Pp]roxy[ -]?I[Dd]" "gateway-or-tunnel=$GW_RE|to-b" \
            "peer=$(re "$SW_LAN_BAD")" "ours-local=$(re "$A_LAN")" "ours-remote=$(re "$B_LAN")"
    fi
    end_fail_case 6e
    CASE=$base
}

# --- 7. ikev2-preferred ------------------------------------------------------------------------
fs_v2_sa() {
    local json; json=$(fs_ike_json "$1")
    fs_field "$json" state | fx_has -x established && fs_field "$json" version | fx_has -x ikev2 &&
        fs_field "$json" role | fx_has -x "$2"
}
sw_v2_established() { sw_list "$1" | fx_has 'ESTABLISHED, IKEv2'; }
case_7() {
    local base=$CASE
    # 7a. strongSwan speaks IKEv1 only: it answers IKE_SA_INIT with NO_PROPOSAL_CHOSEN (no
    # IKEv2 config for us); ferrosec waits for a genuine answer until its retransmission
    # (RFC 7296 §2.21.1), then runs main mode.
    CASE="case 7a (ikev2-preferred against an IKEv1-only strongSwan)"
    sw1_conf sw7a responder ike=aes256-sha256-modp2048 esp=aes256-sha256
    fs1_conf fs7a version=ikev2-preferred
    if start_pair fs7a sw7a; then
        ck "test vpn ike-sa gateway sw succeeds" fs_test_ike fs7a || show_out "$FX_WORK/test-ike-fs7a.out"
        ck "ferrosec: IKE SA established in IKEv1 main mode, initiator" \
            fx_wait "$WAIT" eval 'fs_v1_sa fs7a initiator && ike_field_is fs7a version ikev1-main'
        ck "strongSwan: IKEv1 SA ESTABLISHED" fx_wait "$WAIT" sw_v1_established sw7a
        if sw_log_has sw7a "IKE_SA_INIT"; then
            echo "    INFO  strongSwan's log: $(grep -m1 -E 'no IKE config|NO_PROPOSAL' "$(fx_sw_dir sw7a)/charon.log" | cut -c1-200)"
        fi
        explained fs7a 'ikev2-preferred' "gateway=$GW_RE" "why=IKE_SA_INIT" "what=falling back to IKEv1 main mode"
        ck "ping a-host -> b-host through the tunnel" fx_wait "$WAIT" ping_ok 1
        ck "quick-mode SA on both sides, SPIs agree" fx_wait "$WAIT" both_up fs7a sw7a
    fi
    stop_pair fs7a sw7a

    # 7b. strongSwan speaks IKEv2: no fallback.
    CASE="case 7b (ikev2-preferred against an IKEv2 strongSwan)"
    sw1_conf sw7b responder version=2 ike=aes256-sha256-modp2048 esp=aes256-sha256
    fs1_conf fs7b version=ikev2-preferred
    if start_pair fs7b sw7b; then
        ck "test vpn ipsec-sa tunnel to-b succeeds" fs_test_ipsec fs7b || show_out "$FX_WORK/test-ipsec-fs7b.out"
        ck "ferrosec: IKE SA established in IKEv2, initiator" fx_wait "$WAIT" fs_v2_sa fs7b initiator
        ck "strongSwan: IKEv2 SA ESTABLISHED, SPIs agree" fx_wait "$WAIT" eval 'sw_v2_established sw7b && both_up fs7b sw7b'
        ck "no fallback in ferrosec's log" eval '! fs_log_has fs7b "falling back"'
        ck "ping a-host -> b-host through the tunnel" fx_wait "$WAIT" ping_ok 2
    fi
    stop_pair fs7b sw7b

    # 7c. strongSwan initiates IKEv1: the preferred gateway answers in IKEv1.
    CASE="case 7c (ikev2-preferred answers an IKEv1 initiator)"
    sw1_conf sw7c initiator ike=aes256-sha256-modp2048 esp=aes256-sha256
    fs1_conf fs7c version=ikev2-preferred passive=true
    if start_pair fs7c sw7c; then
        ck "swanctl --initiate (main mode + quick mode) succeeds" sw_initiate sw7c || show_out "$FX_WORK/initiate-sw7c.out"
        ck "ferrosec: IKEv1 SA established, responder" fx_wait "$WAIT" fs_v1_sa fs7c responder
        ck "SPIs agree; ping passes" fx_wait "$WAIT" eval 'both_up fs7c sw7c && ping_ok 1'
    fi
    stop_pair fs7c sw7c
    CASE=$base
}

# --- 8. rekeys under a continuous ping --------------------------------------------------------
# pinger_start / pinger_stop: a-host pings b-host every 50 ms with timestamps; lost() prints
# how many echo requests below the highest answered sequence number got no answer (the tail,
# in flight when the pinger stops, is not counted).
pinger_start() { fx_bg a-host "$FX_WORK/ping-$1.out" ping -D -i 0.05 -W 1 "$B_HOST"; PINGER=$FX_LAST_PID; }
pinger_stop() {
    kill -INT "$PINGER" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$PINGER" 2>/dev/null || break; sleep 0.1; done
    fx_stop "$PINGER"
}
answered() { grep -c "bytes from" "$FX_WORK/ping-$1.out" || true; }
lost() {
    grep -oE 'icmp_seq=[0-9]+' "$FX_WORK/ping-$1.out" | cut -d= -f2 | sort -n | uniq |
        awk 'NR == 1 { first = $1 } { n++; last = $1 } END { if (n) print last - first + 1 - n; else print -1 }'
}
# strongSwan's IKE SAs as "#N" unique IDs (all states), and those ESTABLISHED.
sw_ike_ids() { sw_list "$1" | grep -oE '^s2s: #[0-9]+' | cut -d' ' -f2 | tr '\n' ' '; }
sw_ike_established_ids() { sw_list "$1" | grep -E '^s2s: #[0-9]+, ESTABLISHED' | grep -oE '#[0-9]+' | tr '\n' ' '; }
fs_ike_count() { fs_field "$(fs_ike_json "$1")" state | grep -cx established || true; }
case_8() {
    sw1_conf sw8 responder ike=aes256-sha256-modp2048 esp=aes256-sha256-modp2048
    fs1_conf fs8 pfs=group14
    start_pair fs8 sw8 || return 1
    ck "test vpn ipsec-sa tunnel to-b succeeds" fs_test_ipsec fs8 || show_out "$FX_WORK/test-ipsec-fs8.out"
    ck "quick-mode SA on both sides, SPIs agree" fx_wait "$WAIT" both_up fs8 sw8
    pinger_start 8
    ck "the ping runs through the tunnel" fx_wait "$WAIT" eval '[ "$(answered 8)" -ge 10 ]'
    local dpd_before; dpd_before=$(grep -c 'INFORMATIONAL_V1 request .*N(DPD)' "$(fx_sw_dir sw8)/charon.log" || true)
    local before ike_before
    before=$(fs_spis fs8)
    fsb fs8 request vpn rekey ipsec-sa tunnel to-b >"$FX_WORK/rekey-ipsec-fs8.out" 2>&1
    ck "quick-mode rekey started by ferrosec: new SPIs on both sides" \
        fx_wait "$WAIT" eval 'rekeyed_spis_agree fs8 sw8 "$before"'
    ck "ferrosec deletes the old pair: one pair left on both sides" \
        fx_wait "$WAIT" eval '[ "$(fs_spis fs8 | wc -w)" = 1 ] && [ "$(sw_out_spis sw8 | wc -w)" = 1 ]'
    sleep 1
    before=$(fs_spis fs8)
    fx_sw_swanctl sw8 --rekey --child net >"$FX_WORK/rekey-sw8.out" 2>&1
    ck "quick-mode rekey started by strongSwan: new SPIs on both sides" \
        fx_wait "$WAIT" eval 'rekeyed_spis_agree fs8 sw8 "$before"'
    # strongSwan 5.9 does not delete the old pair of its IKEv1 rekey; ferrosec, the responder,
    # deletes it 30 s after the switch (packets in flight still arrive on it until then).
    ck "the old pair goes (ferrosec deletes it 30 s after strongSwan's rekey): one pair left" \
        fx_wait 40 eval '[ "$(fs_spis fs8 | wc -w)" = 1 ] && [ "$(sw_out_spis sw8 | wc -w)" = 1 ]'
    sleep 1
    before=$(fs_spis fs8)
    ike_before=$(sw_ike_ids sw8)
    fsb fs8 request vpn rekey ike-sa gateway sw >"$FX_WORK/rekey-ike-fs8.out" 2>&1
    ck "phase-1 rekey started by ferrosec: a new ISAKMP SA on strongSwan, the old one deleted" \
        fx_wait "$WAIT" eval '[ -n "$(sw_ike_ids sw8)" ] && [ "$(sw_ike_ids sw8)" != "$ike_before" ] && [ "$(sw_ike_ids sw8 | wc -w)" = 1 ]'
    ck "strongSwan adopted the phase-2 SAs into the new ISAKMP SA" sw_log_has sw8 "adopting [1-9][0-9]* children"
    ck "one established IKE SA on ferrosec" eval '[ "$(fs_ike_count fs8)" = 1 ]'
    ck "ferrosec's log says the IKE SA was rekeyed" fs_log_has fs8 "IKE SA rekeyed"
    ck "the phase-2 SAs survive the phase-1 rekey (same SPIs)" eval '[ "$(fs_spis fs8)" = "$before" ] && spis_agree fs8 sw8'
    sleep 1
    ike_before=$(sw_ike_ids sw8)
    fx_sw_swanctl sw8 --rekey --ike s2s >"$FX_WORK/rekey-ike-sw8.out" 2>&1
    # strongSwan keeps its old ISAKMP SA (REKEYING) after its own IKEv1 rekey; ferrosec moves
    # the phase-2 SAs to the new one and shows one IKE SA.
    ck "phase-1 rekey started by strongSwan: a new ESTABLISHED ISAKMP SA there, one IKE SA on ferrosec" \
        fx_wait "$WAIT" eval 'sw_ike_established_ids sw8 | fx_has -vF -- "$ike_before" && [ "$(fs_ike_count fs8)" = 1 ] &&
                               fs_log_has fs8 "IKE SA rekeyed with .* replace"'
    ck "the tunnel still agrees after it" fx_wait "$WAIT" spis_agree fs8 sw8
    sleep 2
    pinger_stop
    local dpd_after; dpd_after=$(grep -c 'INFORMATIONAL_V1 request .*N(DPD)' "$(fx_sw_dir sw8)/charon.log" || true)
    ck "no R-U-THERE while ESP flows (dpd interval 5 s; RFC 3706: only when idle): $((dpd_after - dpd_before)) sent" \
        eval '[ "$dpd_after" = "$dpd_before" ]'
    local n l; n=$(answered 8); l=$(lost 8)
    echo "    ping every 50 ms across four rekeys: $n answered, $l lost"
    ck "no ping lost across the four rekeys" eval '[ "$n" -ge 100 ] && [ "$l" = 0 ]'
}

# --- 9. strongSwan crashes and comes back -----------------------------------------------------
case_9() {
    local base=$CASE
    # 9a. strongSwan responds only: ferrosec's DPD (interval 5 s, retry 5 below) finds it dead.
    CASE="case 9a (strongSwan responder SIGKILLed, DPD)"
    sw1_conf sw9a responder ike=aes256-sha256-modp2048 esp=aes256-sha256
    fs1_conf fs9a gateway=''
    sed -i 's/^dpd = .*/dpd = { interval = "2s", retry = 3 }/' "$(fs_dir fs9a)/ferrosec.toml"
    if start_pair fs9a sw9a; then
        ck "test vpn ipsec-sa tunnel to-b succeeds" fs_test_ipsec fs9a
        pinger_start 9a
        ck "the ping runs through the tunnel" fx_wait "$WAIT" eval '[ "$(answered 9a)" -ge 10 ]'
        local killed_at; killed_at=$(date +%s)
        kill -KILL "$(cat "$(fx_sw_dir sw9a)/pid")"
        sleep 1
        sw1_start sw9a
        ck "ferrosec declares the peer dead (DPD) and says so" fx_wait 30 fs_log_has fs9a "IKE SA down"
        ck "the tunnel is back: a new IKEv1 SA and quick-mode SAs on both sides" \
            fx_wait 30 eval 'sw_v1_established sw9a && both_up fs9a sw9a'
        local a0; a0=$(answered 9a)
        ck "pings are answered again" fx_wait 20 eval '[ "$(answered 9a)" -gt "$a0" ]'
        echo "    tunnel back $(( $(date +%s) - killed_at )) s after the SIGKILL (dpd interval 2 s, retry 3)"
        fs fs9a show system log 2>/dev/null | grep -E "R-U-THERE|DPD|IKE SA down|negotiation started" | tail -4 | cut -c1-220 | sed 's/^/    | /'
        pinger_stop
    fi
    stop_pair fs9a sw9a

    # 9b. strongSwan initiates (start_action = start): after its restart its main mode carries
    # INITIAL-CONTACT and ferrosec drops the stale SAs at once (no DPD wait: DPD is off).
    CASE="case 9b (strongSwan initiator SIGKILLed, INITIAL-CONTACT)"
    sw1_conf sw9b initiator ike=aes256-sha256-modp2048 esp=aes256-sha256 start=start
    fs1_conf fs9b passive=true
    sed -i '/^dpd = /d' "$(fs_dir fs9b)/ferrosec.toml"
    if start_pair fs9b sw9b; then
        ck "strongSwan brings the tunnel up by itself" fx_wait "$WAIT" both_up fs9b sw9b
        local old; old=$(fs_spis fs9b)
        kill -KILL "$(cat "$(fx_sw_dir sw9b)/pid")"
        sleep 1
        sw1_start sw9b
        ck "strongSwan sent INITIAL_CONTACT" fx_wait "$WAIT" sw_log_has sw9b "INITIAL_CONTACT"
        ck "ferrosec drops the stale SAs and says why" fx_wait "$WAIT" fs_log_has fs9b "INITIAL-CONTACT"
        ck "exactly the new pair on ferrosec, agreeing with strongSwan" \
            fx_wait "$WAIT" eval 'spis_agree fs9b sw9b && [ "$(fs_spis fs9b | wc -w)" = 1 ] && [ "$(fs_spis fs9b)" != "$old" ]'
        ck "one IKEv1 SA on ferrosec" eval '[ "$(fs_field "$(fs_ike_json fs9b)" state | grep -cx established)" = 1 ]'
        ck "ping a-host -> b-host through the new tunnel" fx_wait "$WAIT" ping_ok 2
    fi
    stop_pair fs9b sw9b
    CASE=$base
}

# --- run ------------------------------------------------------------------------------------
declare -A TITLE=(
    [1]="main mode, aes-256-cbc/sha256/group14, ferrosec initiates"
    [2]="main mode, strongSwan initiates"
    [3]="legacy 3des/sha1/group2"
    [4]="PFS group14 in quick mode"
    [5]="aggressive mode, fqdn IDs"
    [6]="failures explained in the system log"
    [7]="ikev2-preferred falls back to IKEv1 only when the peer lacks IKEv2"
    [8]="rekeys of both phases, both sides, under a continuous ping"
    [9]="strongSwan crashes: DPD, INITIAL-CONTACT"
)
fx_topology plain
for n in "${CASES[@]}"; do
    CASE="case $n (${TITLE[$n]})"
    CASE_OK=1
    echo; echo "=== $CASE"
    "case_$n" || [ "$CASE_OK" = 0 ] || fail_now "the case stopped early"
    stop_pair "fs$n" "sw$n"
    RESULT[$n]=$([ "$CASE_OK" = 1 ] && echo PASS || echo FAIL)
done

echo; echo "=== summary (IKEv1 against strongSwan)"
for n in "${CASES[@]}"; do printf '%s  case %s: %s\n' "${RESULT[$n]}" "$n" "${TITLE[$n]}"; done
