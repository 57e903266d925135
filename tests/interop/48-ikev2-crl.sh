#!/usr/bin/env bash
# ferrosec (a-gw) against strongSwan 5.9 (b-gw), IKEv2 with certificates and revocation (issue
# 13; RFC 5280 §5, §6.3). A fresh ECDSA P-256 PKI per case (tests/interop/pki.sh, openssl): a
# root CA that both trust, ferrosec's certificate "left" and strongSwan's "right"; the root's
# CRL made with `openssl ca -gencrl` (hx_pki_revoke).
#   1. certificate.crl lists strongSwan's certificate (keyCompromise): ferrosec initiates, the
#      IKE_AUTH fails, and its system log says which certificate, its serial, the CRL's issuer,
#      the date and the reason; no SA on either side. strongSwan initiating is refused alike.
#   2. the same CA's CRL revoking nothing (DER this time): the tunnel comes up, ping through;
#      then the CRL file is replaced by case 1's and `request system reload` re-reads it: the
#      next IKE SA is refused with the reason.
#   3. crl-fetch = true and no CRL file: strongSwan's certificate names a distribution point
#      on a web server in strongSwan's namespace (python3 -m http.server) serving a CRL that
#      revokes it. ferrosec's IKE_AUTH waits while the daemon fetches it (the web server's log
#      shows the GET, ferrosec's log says what it fetched), and the certificate is refused
#      with the reason; the next IKE_AUTH is refused from the kept CRL without a second GET;
#      `show auth certs` lists the fetched CRL.
#   4. crl-fetch = true with the distribution point unreachable (nothing listens): the fetch
#      fails, ferrosec's log names the URL, and the certificate is accepted (strongSwan's
#      default policy); ping through.
#
# usage: bash tests/interop/48-ikev2-crl.sh [CASE...]   (CASE 1-4; none: all)
CASES_ALL=(1 2 3 4)
for c in "$@"; do
    case $c in [1-4]) ;; *) echo "usage: $0 [CASE...]   (cases: ${CASES_ALL[*]})" >&2; exit 2 ;; esac
done
if [ $# -gt 0 ]; then CASES=("$@"); else CASES=("${CASES_ALL[@]}"); fi

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
source "$(dirname "$0")/pki.sh"
fs_require_bin
fx_init

export FX_SW_PLUGINS="random nonce openssl aes sha1 sha2 hmac gcm gmp curve25519 kdf pem pkcs1 pkcs8 x509 pubkey constraints kernel-libipsec kernel-netlink socket-default vici"
WAIT=${FS_CERT_WAIT:-15}

# sw_cert NAME PKI ROLE: strongSwan (right) with its certificate, trusting the root.
sw_cert() { sw_cert_conf "$1" "$2" "$3" local_id=right.hx.test ike=aes256gcm16-prfsha256-ecp256; }

# fs_cert NAME PKI PASSIVE EXTRA: ferrosec (left) with its certificate, trusting the root;
# EXTRA is added to the certificate block (e.g. `, crl = ["…"]`).
fs_cert() {
    fs_cert_conf "$1" "$2" passive="$3" groups='"group19"' ike_encr='"aes-256-gcm"' pfs=no-pfs \
        peer_id_line='peer-id = { type = "fqdn", value = "right.hx.test" }' cert_extra="$4"
}

fs_test_ike() { fs "$1" test vpn ike-sa gateway sw >"$FX_WORK/test-$1.out" 2>&1; }
both_up() { fs_ike_established "$1" && sw_established "$2" && [ -n "$(fs_spi_in "$1")" ]; }
ping_ok() { fx_ping a-host "$B_HOST" "${1:-3}"; }
sw_initiate() { fx_sw_swanctl "$1" --initiate --child net --timeout 15 >"$FX_WORK/initiate-$1.out" 2>&1; }
mkpki() { fs_mkpki "$1" ecdsa256 2; }
# the words ferrosec must log for strongSwan's revoked certificate
revoked_words() {
    local serial
    serial=$(openssl x509 -in "$1/right.pem" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/../&:/g; s/:$//')
    printf 'peer certificate "C=ZZ, O=hx-test, CN=right.hx.test" serial %s revoked by "C=ZZ, O=hx-test, CN=ca" on %s' \
        "$serial" "$(date -u +%Y-%m-%d)"
}
show_log() { fs "$1" show system log 2>/dev/null | grep -iE "$2" | tail -"${3:-2}" | sed 's/^/    ferrosec: /'; }

fx_topology plain

for c in "${CASES[@]}"; do
    case $c in
        1)
            pki=$(mkpki 1) || fx_fail "case 1: PKI"
            hx_pki_revoke "$pki" right keyCompromise || fx_fail "case 1: CRL"
            words=$(revoked_words "$pki")
            sw_cert sw1 "$pki" responder
            fx_sw_start sw1 b-gw
            fs_cert fs1 "$pki" false ", crl = [\"$pki/ca.crl\"]"
            "$FS_BIN" config check "$(fs_dir fs1)/ferrosec.toml" >"$FX_WORK/check-1.out" 2>&1 || true
            fx_check "1: config check: valid with the CRL, 0 warnings" \
                fx_has -F "configuration is valid; 0 warnings" "$FX_WORK/check-1.out"
            fs_start fs1 a-gw
            fx_check "1: ferrosec initiates: test vpn ike-sa fails" eval "! fs_test_ike fs1"
            fx_check "1: ferrosec's log: $words (reason keyCompromise)" \
                fx_wait 5 fs_log_has fs1 "$words [0-9:]* UTC (reason keyCompromise)"
            show_log fs1 revoked 1
            fx_check "1: no SA on either side" eval "fs_no_ike_sa fs1 && sw_no_sa sw1"
            fs fs1 show auth certs >"$FX_WORK/show-1.out" 2>&1 || true
            sed 's/^/    show auth certs: /' "$FX_WORK/show-1.out"
            fx_check "1: show auth certs lists the CRL file (issuer, 1 revoked, gateway sw)" \
                eval "fx_has -F 'C=ZZ, O=hx-test, CN=ca' '$FX_WORK/show-1.out' && fx_has -E ' 1 +file +sw +$pki/ca.crl' '$FX_WORK/show-1.out'"
            fs_stop fs1; fx_sw_stop sw1
            sw_cert sw1r "$pki" initiator
            fx_sw_start sw1r b-gw
            fs_cert fs1r "$pki" true ", crl = [\"$pki/ca.crl\"]"
            fs_start fs1r a-gw
            fx_check "1: strongSwan initiates: refused" eval "! sw_initiate sw1r"
            fx_check "1 (responder): ferrosec's log gives the reason" \
                fx_wait 5 fs_log_has fs1r "$words [0-9:]* UTC (reason keyCompromise)"
            fx_check "1 (responder): strongSwan heard AUTHENTICATION_FAILED" \
                fx_wait 5 eval "grep -q 'AUTHENTICATION_FAILED' '$(fx_sw_dir sw1r)/charon.log'"
            fx_check "1 (responder): no SA on either side" eval "fs_no_ike_sa fs1r && sw_no_sa sw1r"
            fs_stop fs1r; fx_sw_stop sw1r ;;
        2)
            pki=$(mkpki 2) || fx_fail "case 2: PKI"
            hx_pki_revoke "$pki" - || fx_fail "case 2: CRL"
            cp "$pki/ca.crl.der" "$pki/current.crl"
            sw_cert sw2 "$pki" responder
            fx_sw_start sw2 b-gw
            fs_cert fs2 "$pki" false ", crl = [\"$pki/current.crl\"]"
            fs_start fs2 a-gw
            fx_check "2: a CRL (DER) that revokes nothing: test vpn ike-sa succeeds" fs_test_ike fs2
            fx_check "2: both sides established, SAs installed" fx_wait "$WAIT" both_up fs2 sw2
            fx_check "2: ping a-host -> b-host through the tunnel" fx_wait 10 ping_ok 2
            hx_pki_revoke "$pki" right superseded || fx_fail "case 2: second CRL"
            cp "$pki/ca.crl" "$pki/current.crl"
            words=$(revoked_words "$pki")
            fs fs2 request system reload >"$FX_WORK/reload-2.out" 2>&1 || true
            sed 's/^/    reload: /' "$FX_WORK/reload-2.out" | head -5
            fs fs2 clear vpn ike-sa >/dev/null 2>&1 || true
            fx_wait 10 eval "fs_no_ike_sa fs2" || true
            fx_check "2: after the reload with the new CRL: test vpn ike-sa fails" eval "! fs_test_ike fs2"
            fx_check "2: ferrosec's log: $words (reason superseded)" \
                fx_wait 5 fs_log_has fs2 "$words [0-9:]* UTC (reason superseded)"
            show_log fs2 revoked 1
            fs_stop fs2; fx_sw_stop sw2 ;;
        3)
            d="$FX_WORK/pki-3"; rm -rf "$d"
            HX_PKI_CDP="http://$B_WAN:8080/ca.crl.der" hx_pki_make "$d" ecdsa256 2 >&2 || fx_fail "case 3: PKI"
            hx_pki_revoke "$d" right keyCompromise || fx_fail "case 3: CRL"
            words=$(revoked_words "$d")
            fx_bg b-gw "$FX_WORK/http-3.log" python3 -u -m http.server 8080 --bind "$B_WAN" --directory "$d"
            http_pid=$FX_LAST_PID
            fx_wait 5 eval "grep -q 'Serving HTTP' '$FX_WORK/http-3.log'" || true
            sw_cert sw3 "$d" responder
            fx_sw_start sw3 b-gw
            fs_cert fs3 "$d" false ", crl-fetch = true"
            fs_start fs3 a-gw
            fx_check "3: ferrosec initiates: test vpn ike-sa fails (the IKE_AUTH waited for the CRL)" eval "! fs_test_ike fs3"
            fx_check "3: ferrosec fetched the CRL from strongSwan's distribution point (GET /ca.crl.der 200)" \
                fx_wait 10 eval "grep -q 'GET /ca.crl.der HTTP/1.[01]\" 200' '$FX_WORK/http-3.log'"
            fx_check "3: ferrosec's log says what it fetched" \
                fx_wait 5 fs_log_has fs3 "fetched the CRL of \"C=ZZ, O=hx-test, CN=ca\" from http://$B_WAN:8080/ca.crl.der (1 revoked"
            fx_check "3: ferrosec's log: $words (reason keyCompromise)" \
                fx_wait 5 fs_log_has fs3 "$words [0-9:]* UTC (reason keyCompromise)"
            show_log fs3 "crl|revoked" 3
            fx_check "3: no SA on either side" fx_wait 10 eval "fs_no_ike_sa fs3 && sw_no_sa sw3"
            gets=$(grep -c 'GET /ca.crl.der' "$FX_WORK/http-3.log" || true)
            fx_check "3: the next IKE_AUTH is refused from the kept CRL, without fetching again" \
                eval "! fs_test_ike fs3 && [ \"\$(grep -c 'GET /ca.crl.der' '$FX_WORK/http-3.log')\" = $gets ]"
            fx_check "3: ferrosec's log gives the reason twice" \
                eval "[ \"\$(fs_log_count fs3 'revoked by')\" -ge 2 ]"
            fs fs3 show auth certs >"$FX_WORK/show-3.out" 2>&1 || true
            sed 's/^/    show auth certs: /' "$FX_WORK/show-3.out"
            fx_check "3: show auth certs lists the fetched CRL (issuer, 1 revoked, its URL)" \
                eval "fx_has -F 'C=ZZ, O=hx-test, CN=ca' '$FX_WORK/show-3.out' && fx_has -F 'http://$B_WAN:8080/ca.crl.der' '$FX_WORK/show-3.out' && fx_has -E ' 1 +fetched' '$FX_WORK/show-3.out'"
            fs_stop fs3; fx_sw_stop sw3
            fx_stop "$http_pid" ;;
        4)
            d="$FX_WORK/pki-4"; rm -rf "$d"
            HX_PKI_CDP="http://$B_WAN:8081/ca.crl.der" hx_pki_make "$d" ecdsa256 2 >&2 || fx_fail "case 4: PKI"
            sw_cert sw4 "$d" responder
            fx_sw_start sw4 b-gw
            fs_cert fs4 "$d" false ", crl-fetch = true"
            fs_start fs4 a-gw
            fx_check "4: crl-fetch with nothing at the distribution point: test vpn ike-sa succeeds" fs_test_ike fs4
            fx_check "4: both sides established" fx_wait "$WAIT" both_up fs4 sw4
            fx_check "4: ferrosec's log names the URL it could not fetch and accepts the certificate" \
                fx_wait 10 fs_log_has fs4 "could not fetch the CRL at http://$B_WAN:8081/ca.crl.der"
            show_log fs4 "crl" 1
            fx_check "4: ping through" fx_wait 10 ping_ok 2
            fs_stop fs4; fx_sw_stop sw4 ;;
    esac
done

echo; if [ "$FX_FAILED" = 0 ]; then echo "=== IKEv2 CRLs against strongSwan: all checks passed"; else echo "=== IKEv2 CRLs against strongSwan: some checks FAILED"; fi
[ "$FX_FAILED" = 0 ]
