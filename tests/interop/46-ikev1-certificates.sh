#!/usr/bin/env bash
# ferrosec (a-gw) against strongSwan 5.9 (b-gw), IKEv1 with certificates (issue 13; RFC 2409
# §5.1 signature authentication, RFC 4754 ECDSA). A fresh PKI per case (tests/interop/pki.sh,
# openssl): a root CA both trust, ferrosec's certificate "left" and strongSwan's "right"
# (SANs left.hx.test / right.hx.test and the WAN addresses). strongSwan: version = 1,
# auth = pubkey. ESP goes in UDP 4500 (strongSwan's kernel-libipsec), so NAT-T is on.
#   1. RSA-2048, main mode, ferrosec initiates; ferrosec expects peer ID fqdn right.hx.test (a
#      SAN of strongSwan's certificate), strongSwan expects ferrosec's subject DN (ferrosec's
#      default ID with a certificate); ping through; `show vpn ike-sa --json` says rsa both
#      ways and names strongSwan's certificate;
#   2. RSA-2048, main mode, strongSwan initiates, ferrosec responds (passive); ping through;
#   3. ECDSA P-256, main mode, ferrosec initiates, subject DNs both ways; ping through;
#      show says ecdsa-256;
#   4. ECDSA P-256, main mode, strongSwan initiates; ping through;
#   5. RSA-2048, aggressive mode, ferrosec initiates; ping through;
#   6. ECDSA P-256, aggressive mode, strongSwan initiates; ping through;
#   7. RSA-2048 with an intermediate CA (chain of 3): ferrosec sends two CERT payloads and
#      checks strongSwan's chain through the intermediate; ferrosec initiates; ping through;
#   8. untrusted CA: ferrosec trusts another root; its system log names strongSwan's
#      certificate and the issuer it does not trust; no SA on either side;
#   9. expired certificate: strongSwan's expired yesterday; ferrosec's log gives the date;
#  10. ID mismatch: ferrosec expects fqdn other.hx.test; its log names both IDs;
#  11. method mismatch: ferrosec has an RSA certificate, strongSwan an ECDSA one; strongSwan
#      initiates (offering ECDSA, method 9) and ferrosec's log names both methods;
#  12. IKEv1 fragmentation (the FRAGMENTATION vendor ID, payload 132): RSA-3072 chains of 5
#      (root, three intermediates, the gateway) across a WAN that drops every IP fragment (nft
#      on both gateways), ferrosec initiates: its message 5 crosses as IKE fragments that
#      strongSwan reassembles, strongSwan's message 6 comes in fragments that ferrosec
#      reassembles; ping through;
#  13. the same, strongSwan initiates;
#  14. the control: case 12 with `fragmentation = false` on ferrosec: message 5 goes as IP
#      fragments, the WAN drops them, no SA comes up.
# strongSwan loads pkcs8 (openssl writes PKCS#8 keys) and constraints (FX_SW_PLUGINS).
#
# usage: bash tests/interop/46-ikev1-certificates.sh [CASE...]   (CASE 1-14; none: all)
CASES_ALL=(1 2 3 4 5 6 7 8 9 10 11 12 13 14)
for c in "$@"; do
    case $c in [1-9]|1[0-4]) ;; *) echo "usage: $0 [CASE...]   (cases: ${CASES_ALL[*]})" >&2; exit 2 ;; esac
done
if [ $# -gt 0 ]; then CASES=("$@"); else CASES=("${CASES_ALL[@]}"); fi

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
source "$(dirname "$0")/pki.sh"
fs_require_bin
fx_init

export FX_SW_PLUGINS="random nonce openssl aes sha1 sha2 hmac gcm gmp curve25519 kdf pem pkcs1 pkcs8 x509 pubkey constraints kernel-libipsec kernel-netlink socket-default vici"
WAIT=${FS_CERT_WAIT:-20}

# sw1_cert NAME PKI ROLE key=value...: strongSwan (right), IKEv1 with its certificate
# (ferrosec-lib.bash's sw_cert_conf: local_id, remote_id, ike, esp, trust, aggressive yes|no).
sw1_cert() { local name=$1 pki=$2 role=$3; shift 3; sw_cert_conf "$name" "$pki" "$role" version=1 esp=aes256-sha256 "$@"; }

# fs1_cert NAME PKI key=value...: ferrosec (left), IKEv1, with its certificate (ferrosec-lib.bash's
# fs_cert_conf: trust, peer_id_line, mode main|aggressive, passive), AES-256-CBC/SHA-256 ESP
# without PFS.
fs1_cert() {
    local name=$1 pki=$2; shift 2
    fs_cert_conf "$name" "$pki" version=ikev1 esp_encr='"aes-256-cbc"' esp_auth='"sha256"' pfs=no-pfs "$@"
}

fs_test_ike() { timeout $((WAIT + 10)) "$FS_BIN" --socket "$(fs_dir "$1")/ferrosec.sock" test vpn ike-sa gateway sw >"$FX_WORK/test-$1.out" 2>&1; }
sw_v1_established() { fx_sw_swanctl "$1" --list-sas 2>/dev/null | fx_has 'ESTABLISHED, IKEv1'; }
both_up() { fs_ike_established "$1" && sw_v1_established "$2" && [ -n "$(fs_spi_in "$1")" ]; }
ping_ok() { fx_ping a-host "$B_HOST" "${1:-3}"; }
sw_initiate() { fx_sw_swanctl "$1" --initiate --child net --timeout "$WAIT" >"$FX_WORK/initiate-$1.out" 2>&1; }
not_served() {
    if fs_log_has "$1" 'not served'; then
        fs "$1" show system log 2>/dev/null | grep 'not served' | head -2 | cut -c1-300 | sed 's/^/    | /'
        return 0
    fi
    return 1
}


fx_topology plain

# case_up N KIND CHAIN ROLE MODE PEER_ID_LINE AUTH: a tunnel that must come up.
case_up() {
    local n=$1 kind=$2 chain=$3 role=$4 mode=$5 pid_line=$6 auth=$7 pki sw_id="" aggr=no passive=false sw_role=responder
    pki=$(fs_mkpki "$n" "$kind" "$chain") || { fx_fail "case $n: PKI"; return; }
    case $pid_line in *fqdn*) sw_id=right.hx.test ;; esac
    [ "$mode" = aggressive ] && aggr=yes
    [ "$role" = responder ] && { passive=true; sw_role=initiator; }
    sw1_cert "sw$n" "$pki" "$sw_role" local_id="$sw_id" aggressive="$aggr"
    fx_sw_start "sw$n" b-gw
    fs1_cert "fs$n" "$pki" peer_id_line="$pid_line" mode="$mode" passive="$passive"
    "$FS_BIN" config check "$(fs_dir "fs$n")/ferrosec.toml" >"$FX_WORK/check-$n.out" 2>&1
    fx_check "$n: config check: valid and served (exit 0)" eval "[ $? = 0 ]"
    fs_start "fs$n" a-gw
    fx_check "$n: ferrosec serves the IKEv1 certificate gateway" eval "! not_served fs$n"
    if [ "$role" = initiator ]; then
        fx_check "$n: $kind chain $chain, $mode mode, ferrosec initiates: test vpn ike-sa succeeds" fs_test_ike "fs$n"
        # Quick mode follows phase 1; a ping also asks for it.
        fx_ping a-host "$B_HOST" 1 >/dev/null 2>&1 || true
    else
        fx_check "$n: $kind chain $chain, $mode mode, strongSwan initiates, ferrosec responds" sw_initiate "sw$n"
    fi
    fx_check "$n: both sides established (IKEv1), quick-mode SAs installed" fx_wait "$WAIT" both_up "fs$n" "sw$n"
    fx_check "$n: ping a-host -> b-host through the tunnel" fx_wait 10 ping_ok 2
    fx_check "$n: show vpn ike-sa: version ikev1-$mode, local-auth and peer-auth $auth" \
        eval "[ \"\$(fs_ike fs$n \"['version']\")\" = ikev1-$mode ] && [ \"\$(fs_ike fs$n \"['local-auth']\")\" = $auth ] && [ \"\$(fs_ike fs$n \"['peer-auth']\")\" = $auth ]"
    fx_check "$n: show vpn ike-sa names strongSwan's certificate" \
        eval "fs_ike fs$n \"['peer-certificate']['subject']\" | grep -q 'CN=right.hx.test'"
    fx_check "$n: strongSwan authenticated ferrosec with a signature" \
        eval "grep -qE \"authentication of '.*CN=left.hx.test.*' with (RSA|ECDSA).* successful\" \"$(fx_sw_dir "sw$n")/charon.log\""
    sw_auth_line "sw$n"
    fs_stop "fs$n"; fx_sw_stop "sw$n"
}

# case_fail N KIND EXPIRED_SIDE TRUST PEER_ID_LINE TEXT...: no tunnel, and ferrosec's log says
# each TEXT (ferrosec initiates, main mode).
case_fail() {
    local n=$1 kind=$2 expired=$3 trust=$4 pid_line=$5 pki sw_id=""; shift 5
    pki=$(fs_mkpki "$n" "$kind" 2 "$expired") || { fx_fail "case $n: PKI"; return; }
    case $pid_line in *fqdn*) sw_id=right.hx.test ;; esac
    sw1_cert "sw$n" "$pki" responder local_id="$sw_id"
    fx_sw_start "sw$n" b-gw
    fs1_cert "fs$n" "$pki" trust="$trust" peer_id_line="$pid_line"
    fs_start "fs$n" a-gw
    fx_check "$n: test vpn ike-sa fails" eval "! fs_test_ike fs$n"
    local t
    for t in "$@"; do
        fx_check "$n: ferrosec's system log says: $t" fx_wait 5 fs_log_has "fs$n" "$t"
    done
    fs "fs$n" show system log 2>/dev/null | grep -E "certificate|signature|ID" | tail -2 | cut -c1-400 | sed 's/^/    ferrosec: /'
    fx_check "$n: no SA on either side" eval "fs_no_ike_sa fs$n && sw_no_sa sw$n"
    fs_stop "fs$n"; fx_sw_stop "sw$n"
}

FQDN_RIGHT='peer-id = { type = "fqdn", value = "right.hx.test" }'
for n in "${CASES[@]}"; do
    echo; echo "=== case $n"
    case $n in
        1) case_up 1 rsa2048 2 initiator main "$FQDN_RIGHT" rsa ;;
        2) case_up 2 rsa2048 2 responder main "$FQDN_RIGHT" rsa ;;
        3) case_up 3 ecdsa256 2 initiator main "" ecdsa-256 ;;
        4) case_up 4 ecdsa256 2 responder main "" ecdsa-256 ;;
        5) case_up 5 rsa2048 2 initiator aggressive "$FQDN_RIGHT" rsa ;;
        6) case_up 6 ecdsa256 2 responder aggressive "" ecdsa-256 ;;
        7) case_up 7 rsa2048 3 initiator main "" rsa ;;
        8) case_fail 8 rsa2048 "" other-ca "" \
               "the peer's certificate is not trusted: \".*CN=right.hx.test\" was issued by \".*CN=.*\", which is not one of our CA certificates" ;;
        9) case_fail 9 ecdsa256 right ca "" \
               "the peer's certificate \".*CN=right.hx.test\" expired on $(date -u -d '1 day ago' +%Y-%m-%d)" ;;
        10) case_fail 10 ecdsa256 "" ca 'peer-id = { type = "fqdn", value = "other.hx.test" }' \
               "peer ID mismatch: peer presented fqdn:right.hx.test, we expect fqdn:other.hx.test" ;;
        11)
            pki=$(fs_mkpki 11 rsa2048 2) || fx_fail "case 11: PKI"
            pki_ec=$(fs_mkpki 11-ec ecdsa256 2) || fx_fail "case 11: PKI"
            # strongSwan: an ECDSA certificate that ferrosec's root does not sign, but that
            # does not matter: the methods differ before any certificate is sent.
            sw1_cert sw11 "$pki_ec" initiator
            fx_sw_start sw11 b-gw
            fs1_cert fs11 "$pki" passive=true
            fs_start fs11 a-gw
            fx_check "11: strongSwan (ECDSA) initiates against ferrosec (RSA): refused" eval "! sw_initiate sw11"
            fx_check "11: ferrosec's system log names both methods" \
                fx_wait 5 fs_log_has fs11 "offers IKEv1 authentication by ECDSA P-256 signatures (9) only, but this gateway authenticates with RSA signatures (3)"
            fs fs11 show system log 2>/dev/null | grep -F "IKEv1 authentication" | tail -1 | cut -c1-400 | sed 's/^/    ferrosec: /'
            fx_check "11: no SA on either side" eval "fs_no_ike_sa fs11 && sw_no_sa sw11"
            fs_stop fs11; fx_sw_stop sw11 ;;
        12|13)
            fx_no_ip_fragments on
            role=initiator; [ "$n" = 13 ] && role=responder
            case_up "$n" rsa3072 5 "$role" main "$FQDN_RIGHT" rsa
            fx_check "$n: strongSwan reassembled ferrosec's IKEv1 fragments" \
                sw_log_has "sw$n" "received fragment #[0-9]*, reassembled fragmented IKE message"
            fx_check "$n: strongSwan sent its message in IKEv1 fragments (ferrosec reassembled them)" \
                sw_log_has "sw$n" "splitting IKE message .* into [0-9]* fragments"
            echo "    IP fragments dropped by the WAN so far: $(fx_fragments_dropped)"
            fx_no_ip_fragments off ;;
        14)
            fx_no_ip_fragments on
            pki=$(fs_mkpki 14 rsa3072 5) || fx_fail "case 14: PKI"
            sw1_cert sw14 "$pki" responder local_id=right.hx.test
            fx_sw_start sw14 b-gw
            fs1_cert fs14 "$pki" peer_id_line="$FQDN_RIGHT"
            sed -i 's/^passive-mode = .*/&\nfragmentation = false/' "$(fs_dir fs14)/ferrosec.toml"
            fs_start fs14 a-gw
            fs_test_ike fs14 || true
            fx_check "14: without IKEv1 fragmentation message 5 goes as IP fragments and the WAN drops them" \
                fx_wait 15 eval '[ "$(fx_fragments_dropped)" -gt 0 ]'
            fx_check "14: no IKE SA established on either side" eval "! fs_ike_established fs14 && ! sw_v1_established sw14"
            echo "    IP fragments dropped by the WAN: $(fx_fragments_dropped)"
            fs_stop fs14; fx_sw_stop sw14
            fx_no_ip_fragments off ;;
    esac
done

echo; if [ "$FX_FAILED" = 0 ]; then echo "=== IKEv1 certificates against strongSwan: all checks passed"; else echo "=== IKEv1 certificates against strongSwan: some checks FAILED"; fi
[ "$FX_FAILED" = 0 ]
