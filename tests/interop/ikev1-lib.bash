#!/usr/bin/env bash
# tests/interop/ikev1-lib.bash — what the IKEv1 scenarios against strongSwan (40, 42) share: the
# ferrosec configuration and the checks. Source it after lib.sh and ferrosec-lib.bash; the
# scenario sets WAIT (seconds, the bound of each CLI call and negotiation).

# fs1_conf NAME key=value...: an IKEv1 configuration for site A facing strongSwan at site B:
# ferrosec-lib's fs_conf with IKEv1's defaults (main mode, ESP AES-256-CBC/SHA-256, no PFS, DPD
# every 5 s). Keys: fs_conf's, and dpd (the gateway's dpd line; empty: none, DPD's default).
# Later keys override earlier ones.
fs1_conf() {
    local name=$1 kv args=(); shift
    for kv in "$@"; do
        case $kv in
            dpd=*) args+=("liveness=${kv#*=}") ;;
            *) args+=("$kv") ;;
        esac
    done
    fs_conf "$name" version=ikev1 mode=main esp_encr='"aes-256-cbc"' esp_auth='"sha256"' pfs=no-pfs \
        liveness='dpd = { interval = "5s", retry = 5 }' "${args[@]}"
}

# Checks of the running case: $CASE names it, $CASE_OK turns 0 once one fails (the scenario
# sets both).
ck() {
    local name=$1; shift
    if "$@"; then fx_pass "$CASE: $name"; else fx_fail "$CASE: $name"; CASE_OK=0; fi
}
fail_now() { fx_fail "$CASE: $*"; CASE_OK=0; }

# The CLI, bounded by $WAIT (a hung daemon must not hang the scenario).
fsb() { local name=$1; shift; timeout $((WAIT + 10)) "$FS_BIN" --socket "$(fs_dir "$name")/ferrosec.sock" "$@"; }
fs_test_ike() { fsb "$1" test vpn ike-sa gateway sw >"$FX_WORK/test-ike-$1.out" 2>&1; }
show_out() { [ -s "$1" ] && sed 's/^/    | /' "$1" | cut -c1-300 | head -5; return 0; }
sw_initiate() { fx_sw_swanctl "$1" --initiate --child net --timeout "$WAIT" >"$FX_WORK/initiate-$1.out" 2>&1; }

ike_field() { fs_field "$(fs_ike_json "$1")" "$2"; }
ike_field_is() { ike_field "$1" "$2" | fx_has -x -- "$3"; }
ipsec_field_is() { fs_field "$(fs_ipsec_json "$1")" "$2" | fx_has -x -- "$3"; }
sw_list() { fx_sw_swanctl "$1" --list-sas 2>/dev/null; }
sw_v1_established() { sw_list "$1" | fx_has 'ESTABLISHED, IKEv1'; }
sw_has() { sw_list "$1" | fx_has -- "$2"; }
# SPIs: ferrosec's inbound ones (hex, no 0x), strongSwan's outbound ones of INSTALLED
# children (a child REKEYED but not yet deleted is left out).
fs_spis() { fs_field "$(fs_ipsec_json "$1")" spi-in | sed 's/^0x//' | sort | tr '\n' ' '; }
sw_out_spis() {
    sw_list "$1" | awk '/, reqid /{on = /INSTALLED/} on && /^ +out +[0-9a-f]+,/{sub(",", "", $2); print $2}' | sort | tr '\n' ' '
}
