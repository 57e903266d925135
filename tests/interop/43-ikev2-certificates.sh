#!/usr/bin/env bash
# ferrosec (a-gw) against strongSwan 5.9 (b-gw), IKEv2 with certificates (issue 13; RFC 7296
# §3.6-3.8, RFC 7427). A fresh PKI per case (tests/interop/pki.sh, openssl): a root CA that
# both trust, ferrosec's certificate "left" and strongSwan's "right".
#   1. RSA-2048, ferrosec initiates; ferrosec expects peer ID fqdn right.hx.test (a SAN of
#      strongSwan's certificate), strongSwan expects ferrosec's subject DN; ping through;
#   2. RSA-2048, strongSwan initiates, ferrosec responds (passive); ping through;
#   3. ECDSA P-256, ferrosec initiates, subject DNs both ways; ping through;
#   4. ECDSA P-256, strongSwan initiates, ferrosec responds; ping through;
#   5. untrusted CA: ferrosec trusts another root; its system log names strongSwan's
#      certificate and the issuer it does not trust; no SA on either side;
#   6. expired certificate: strongSwan's expired yesterday; ferrosec's log gives the date.
#   7. RSA-2048 with an intermediate CA (chain of 3), ferrosec initiates: its IKE_AUTH (about
#      2.3 KB) exceeds the WAN MTU; IKE fragmentation (RFC 7383, on by default on both sides)
#      splits it;
#   8. RSA-3072, a chain of 5 (root, three intermediates, the gateway), across a WAN that
#      drops every IP fragment (nft on both gateways), ferrosec initiates: its IKE_AUTH
#      crosses as IKE fragments, strongSwan reassembles them; ping through;
#   9. the same, strongSwan initiates: ferrosec reassembles strongSwan's fragments and
#      answers in fragments; ping through;
#  10. the control: case 8 with `fragmentation = false` on ferrosec: its IKE_AUTH goes as IP
#      fragments, the WAN drops them, and no SA comes up;
#  11. hash-and-URL (RFC 7296 §3.6): ferrosec publishes its DER certificate on a web server in
#      its namespace and sets certificate.hash-and-url; strongSwan (hash_and_url = yes, curl)
#      announces HTTP_CERT_LOOKUP_SUPPORTED, gets the SHA-1 and URL instead of the
#      certificate, fetches it (the web server's log shows the GET), and the tunnel comes up,
#      ferrosec initiating and then responding;
#  12. hash-and-URL the other way: ferrosec sets certificate.hash-and-url-fetch and announces
#      HTTP_CERT_LOOKUP_SUPPORTED; strongSwan (cert_uri_base) sends its certificate as hash
#      and URL; ferrosec fetches it from a web server in strongSwan's namespace, checks the
#      hash and comes up, initiating and then responding. Both ways at once in the same run:
#      each side fetches the other's certificate.
#  13-16. the presets of R-CFG-3 end to end (issue 13): ferrosec's gateway uses the built-in
#      Suite-B-GCM-128 (13), Suite-B-GCM-256 (14), PRIME-128 (15) and PRIME-256 (16) as both its
#      ike-crypto-profile and its ipsec-crypto-profile, with ECDSA certificates on the suite's
#      curve (P-256 for the 128-bit suites, P-384 for the 256-bit ones); strongSwan proposes the
#      same suite; `config check` passes without a warning (the key fits); ferrosec initiates,
#      then responds; ping through; `show vpn ike-sa --json` names the negotiated suite, both
#      AUTH methods and both certificates (subject, issuer, not-after), the text table the
#      subjects;
#  17. certificates made by `ferrosec pki` (a P-384 CA, P-384 gateway certificates with SANs,
#      for strongSwan too) with Suite-B-GCM-256, both roles: strongSwan accepts them;
#  18. ID mismatch: ferrosec expects another FQDN than strongSwan's; its log says both.
#  19. cases 13 and 16 with strongSwan's RFC 7427 signature authentication off: no
#      SIGNATURE_HASH_ALGORITHMS, so both sides sign with ECDSA methods 9 and 10 (RFC 4754),
#      and ferrosec shows ecdsa-256, then ecdsa-384, both ways.
# strongSwan loads pkcs8 (openssl writes PKCS#8 keys) and constraints here (FX_SW_PLUGINS).
#
# usage: bash tests/interop/43-ikev2-certificates.sh [CASE...]   (CASE 1-19; none: all)
CASES_ALL=(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19)
for c in "$@"; do
    case $c in [1-9]|1[0-9]) ;; *) echo "usage: $0 [CASE...]   (cases: ${CASES_ALL[*]})" >&2; exit 2 ;; esac
done
if [ $# -gt 0 ]; then CASES=("$@"); else CASES=("${CASES_ALL[@]}"); fi

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
source "$(dirname "$0")/pki.sh"
fs_require_bin
fx_init

export FX_SW_PLUGINS="random nonce openssl aes sha1 sha2 hmac gcm gmp curve25519 kdf pem pkcs1 pkcs8 x509 pubkey constraints curl kernel-libipsec kernel-netlink socket-default vici"
WAIT=${FS_CERT_WAIT:-15}

# fs_cert NAME PKI key=value...: ferrosec (left) with its certificate, without PFS
# (ferrosec-lib.bash's fs_cert_conf: trust, peer_id_line, passive, groups, ike_encr).
fs_cert() { local name=$1 pki=$2; shift 2; fs_cert_conf "$name" "$pki" pfs=no-pfs "$@"; }

fs_test_ike() { fs "$1" test vpn ike-sa gateway sw >"$FX_WORK/test-$1.out" 2>&1; }
both_up() { fs_ike_established "$1" && sw_established "$2" && [ -n "$(fs_spi_in "$1")" ]; }
ping_ok() { fx_ping a-host "$B_HOST" "${1:-3}"; }
sw_initiate() { fx_sw_swanctl "$1" --initiate --child net --timeout 15 >"$FX_WORK/initiate-$1.out" 2>&1; }

fx_topology plain

case_up() {   # case_up N KIND CHAIN ROLE peer_id_line ike esp groups ike_encr
    local n=$1 kind=$2 chain=$3 role=$4 pid_line=$5 ike=$6 esp=$7 groups=$8 encr=$9 pki sw_id=""
    pki=$(fs_mkpki "$n" "$kind" "$chain") || { fx_fail "case $n: PKI"; return; }
    case $pid_line in *fqdn*) sw_id=right.hx.test ;; esac
    if [ "$role" = initiator ]; then
        sw_cert_conf "sw$n" "$pki" responder ike="$ike" esp="$esp" local_id="$sw_id"
        fx_sw_start "sw$n" b-gw
        fs_cert "fs$n" "$pki" peer_id_line="$pid_line" groups="$groups" ike_encr="$encr"
        fs_start "fs$n" a-gw
        fx_check "$n: $kind chain $chain, ferrosec initiates: test vpn ike-sa succeeds" fs_test_ike "fs$n"
    else
        sw_cert_conf "sw$n" "$pki" initiator ike="$ike" esp="$esp" local_id="$sw_id"
        fx_sw_start "sw$n" b-gw
        fs_cert "fs$n" "$pki" peer_id_line="$pid_line" passive=true groups="$groups" ike_encr="$encr"
        fs_start "fs$n" a-gw
        fx_check "$n: $kind chain $chain, strongSwan initiates, ferrosec responds" sw_initiate "sw$n"
    fi
    fx_check "$n: both sides established, SAs installed" fx_wait "$WAIT" both_up "fs$n" "sw$n"
    fx_check "$n: ping a-host -> b-host through the tunnel" fx_wait 10 ping_ok 2
    sw_auth_line "sw$n"
    fs_stop "fs$n"; fx_sw_stop "sw$n"
}


case_fail() {   # case_fail N EXPIRED_SIDE TRUST TEXT...
    local n=$1 expired=$2 trust=$3 pki; shift 3
    pki=$(fs_mkpki "$n" ecdsa256 2 "$expired") || { fx_fail "case $n: PKI"; return; }
    sw_cert_conf "sw$n" "$pki" responder ike=aes256gcm16-prfsha256-ecp256
    fx_sw_start "sw$n" b-gw
    fs_cert "fs$n" "$pki" trust="$trust" groups='"group19"' ike_encr='"aes-256-gcm"'
    fs_start "fs$n" a-gw
    fx_check "$n: test vpn ike-sa fails" eval "! fs_test_ike fs$n"
    local t
    for t in "$@"; do
        fx_check "$n: ferrosec's system log says: $t" fx_wait 5 fs_log_has "fs$n" "$t"
    done
    fs "fs$n" show system log 2>/dev/null | grep -E "certificate|signature" | tail -2 | sed 's/^/    ferrosec: /'
    fx_check "$n: no SA on either side" eval "fs_no_ike_sa fs$n && sw_no_sa sw$n"
    fs_stop "fs$n"; fx_sw_stop "sw$n"
}

# mkpki_fs N KEY: the layout of pki.sh (ca.pem, left-full.pem, left.key, right.pem, right.key)
# made with `ferrosec pki` instead of openssl: a CA and both gateways' certificates, with the
# subjects and SANs of pki.sh's.
mkpki_fs() {
    local d="$FX_WORK/pki-$1" key=$2 n wan
    rm -rf "$d"
    "$FS_BIN" pki ca create --subject "C=ZZ, O=hx-test, CN=ca" --key "$key" --out "$d/ca" >"$FX_WORK/pki-$1.out" || return 1
    for n in left right; do
        wan=$A_WAN; [ "$n" = right ] && wan=$B_WAN
        "$FS_BIN" pki cert issue --ca "$d/ca" --subject "C=ZZ, O=hx-test, CN=$n.hx.test" \
            --san "fqdn:$n.hx.test" --san "ip:$wan" --key "$key" --out "$d/$n" >>"$FX_WORK/pki-$1.out" || return 1
    done
    cp "$d/ca/ca.pem" "$d/ca.pem"; cp "$d/left/cert.pem" "$d/left-full.pem"; cp "$d/left/key.pem" "$d/left.key"
    cp "$d/right/cert.pem" "$d/right.pem"; cp "$d/right/key.pem" "$d/right.key"
    echo "$d"
}

# case_suite N PRESET KIND SW_IKE SW_ESP [fs-pki|openssl [AUTH]]: ferrosec with the built-in
# PRESET as both profiles and KIND certificates, against strongSwan proposing the same suite;
# both roles; AUTH: the methods show must name both ways (default: either RFC 7427 or the
# curve's RFC 4754 method).
case_suite() {
    local n=$1 preset=$2 kind=$3 ike=$4 esp=$5 tool=${6:-openssl} auth=${7:-} pki role m f curve
    if [ "$tool" = fs-pki ]; then
        pki=$(mkpki_fs "$n" "$kind") || { fx_fail "$n: ferrosec pki"; return; }
        fx_check "$n: ferrosec pki made the CA and both gateways' certificates" \
            eval "[ -s $pki/left-full.pem ] && [ -s $pki/right.key ] && fx_has -c 'BEGIN CERTIFICATE' $pki/right.pem"
        openssl verify -CAfile "$pki/ca.pem" "$pki/left-full.pem" "$pki/right.pem" 2>&1 | sed 's/^/    openssl: /'
    else
        pki=$(fs_mkpki "$n" "$kind" 2) || { fx_fail "case $n: PKI"; return; }
    fi
    case $kind in *256|*p256) curve=256 ;; *) curve=384 ;; esac
    [ -n "$auth" ] || auth="digital-signature|ecdsa-$curve"
    for role in initiator responder; do
        m="$n${role:0:1}"
        if [ "$role" = initiator ]; then
            sw_cert_conf "sw$m" "$pki" responder ike="$ike" esp="$esp" local_id=right.hx.test
        else
            sw_cert_conf "sw$m" "$pki" initiator ike="$ike" esp="$esp" local_id=right.hx.test
        fi
        fx_sw_start "sw$m" b-gw
        fs_cert "fs$m" "$pki" peer_id_line='peer-id = { type = "fqdn", value = "right.hx.test" }' \
            passive="$([ "$role" = responder ] && echo true || echo false)" groups='"group19"' ike_encr='"aes-256-cbc"'
        f="$(fs_dir "fs$m")/ferrosec.toml"
        sed -i -e "s|^ike-crypto-profile = \"ike\"|ike-crypto-profile = \"$preset\"|" \
            -e "s|^ipsec-crypto-profile = \"esp\"|ipsec-crypto-profile = \"$preset\"|" "$f"
        fx_check "$n ($role): the gateway and the tunnel use the preset $preset" \
            eval "[ \"\$(grep -cE '^(ike|ipsec)-crypto-profile = \"$preset\"' $f)\" = 2 ]"
        "$FS_BIN" config check "$f" >"$FX_WORK/check-$m.out" 2>&1 || true
        fx_check "$n ($role): config check: valid, 0 warnings (the P-$curve key fits $preset)" \
            fx_has -F "configuration is valid; 0 warnings" "$FX_WORK/check-$m.out"
        fs_start "fs$m" a-gw
        if [ "$role" = initiator ]; then
            fx_check "$n: $preset, ferrosec initiates: test vpn ike-sa succeeds" fs_test_ike "fs$m"
        else
            fx_check "$n: $preset, strongSwan initiates, ferrosec responds" sw_initiate "sw$m"
        fi
        fx_check "$n ($role): both sides established, SAs installed" fx_wait "$WAIT" both_up "fs$m" "sw$m"
        fx_check "$n ($role): ping a-host -> b-host through the tunnel" fx_wait 10 ping_ok 2
        echo "    ferrosec IKE SA: $(fs_ike "fs$m" '["encryption"]')/$(fs_ike "fs$m" '["integrity"]')/prf-$(fs_ike "fs$m" '["prf"]')/$(fs_ike "fs$m" '["dh-group"]'); IPsec SA: $(fs_field "$(fs_ipsec_json "fs$m")" encryption | head -1)"
        echo "    strongSwan: $(fx_sw_swanctl "sw$m" --list-sas 2>/dev/null | grep -m1 -oE '(AES|ECP)[^ ]*/[^ ]*' || true)"
        fx_check "$n ($role): show vpn ike-sa --json: local-auth and peer-auth are $auth" \
            eval "fs_ike fs$m '[\"local-auth\"]' | fx_has -xE '$auth' &&
                  fs_ike fs$m '[\"peer-auth\"]' | fx_has -xE '$auth'"
        fx_check "$n ($role): --json peer-certificate: strongSwan's subject and issuer, and a not-after" \
            eval "[ \"\$(fs_ike fs$m '[\"peer-certificate\"][\"subject\"]')\" = 'C=ZZ, O=hx-test, CN=right.hx.test' ] &&
                  [ \"\$(fs_ike fs$m '[\"peer-certificate\"][\"issuer\"]')\" = 'C=ZZ, O=hx-test, CN=ca' ] &&
                  fs_ike fs$m '[\"peer-certificate\"][\"not-after\"]' | fx_has -xE '20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z'"
        fx_check "$n ($role): --json local-certificate: ours" \
            eval "[ \"\$(fs_ike fs$m '[\"local-certificate\"][\"subject\"]')\" = '$LEFT_DN' ]"
        fs "fs$m" show vpn ike-sa >"$FX_WORK/show-$m.out" 2>&1 || true
        fx_check "$n ($role): show vpn ike-sa prints both certificates' subjects" \
            eval "fx_has -F 'local certificate  $LEFT_DN' $FX_WORK/show-$m.out &&
                  fx_has -F 'peer certificate   C=ZZ, O=hx-test, CN=right.hx.test (issuer C=ZZ, O=hx-test, CN=ca' $FX_WORK/show-$m.out"
        echo "    $(fs_ike "fs$m" '["local-auth"]')/$(fs_ike "fs$m" '["peer-auth"]'); $(grep 'peer certificate' "$FX_WORK/show-$m.out")"
        fx_check "$n ($role): the system log names how each side authenticated" \
            fs_log_has "fs$m" "the peer with .* (certificate \"C=ZZ, O=hx-test, CN=right.hx.test\" issued by"
        sw_auth_line "sw$m"
        fs_stop "fs$m"; fx_sw_stop "sw$m"
    done
}

for c in "${CASES[@]}"; do
    case $c in
        1) case_up 1 rsa2048 2 initiator 'peer-id = { type = "fqdn", value = "right.hx.test" }' \
               aes256-sha256-modp2048 aes256gcm16 '"group14"' '"aes-256-cbc"' ;;
        2) case_up 2 rsa2048 2 responder "" aes256-sha256-modp2048 aes256gcm16 '"group14"' '"aes-256-cbc"' ;;
        3) case_up 3 ecdsa256 2 initiator 'peer-id = { type = "dn", value = "C=ZZ, O=hx-test, CN=right.hx.test" }' \
               aes256gcm16-prfsha256-ecp256 aes256gcm16 '"group19"' '"aes-256-gcm"' ;;
        4) case_up 4 ecdsa256 2 responder "" aes256gcm16-prfsha256-ecp256 aes256gcm16 '"group19"' '"aes-256-gcm"' ;;
        5) case_fail 5 "" other-ca "the peer's certificate is not trusted" \
               "CN=right.hx.test\" was issued by \"C=ZZ, O=hx-test, CN=ca\"" ;;
        7) case_up 7 rsa2048 3 initiator 'peer-id = { type = "fqdn", value = "right.hx.test" }' \
               aes256-sha256-modp2048 aes256gcm16 '"group14"' '"aes-256-cbc"' ;;
        8|9)
            fx_no_ip_fragments on
            role=initiator; [ "$c" = 9 ] && role=responder
            case_up "$c" rsa3072 5 "$role" 'peer-id = { type = "fqdn", value = "right.hx.test" }' \
                aes256-sha256-modp3072 aes256gcm16 '"group15"' '"aes-256-cbc"'
            if [ "$c" = 8 ]; then
                fx_check "8: strongSwan reassembled ferrosec's IKE fragments" \
                    sw_log_has sw8 "received fragment #[0-9]* of [0-9]*, reassembled fragmented IKE message"
            else
                fx_check "9: strongSwan sent its IKE_AUTH in fragments, and reassembled ferrosec's answer" \
                    eval 'sw_log_has sw9 "splitting IKE message .* into [0-9]* fragments" &&
                          sw_log_has sw9 "received fragment #[0-9]* of [0-9]*, reassembled fragmented IKE message"'
            fi
            echo "    IP fragments dropped by the WAN so far: $(fx_fragments_dropped)"
            fx_no_ip_fragments off ;;
        10)
            fx_no_ip_fragments on
            pki=$(fs_mkpki 10 rsa3072 5) || fx_fail "case 10: PKI"
            sw_cert_conf sw10 "$pki" responder ike=aes256-sha256-modp3072 esp=aes256gcm16 local_id=right.hx.test
            fx_sw_start sw10 b-gw
            fs_cert fs10 "$pki" peer_id_line='peer-id = { type = "fqdn", value = "right.hx.test" }' \
                groups='"group15"' ike_encr='"aes-256-cbc"'
            sed -i '/^\[ike-gateway\.sw\]/a fragmentation = false' "$(fs_dir fs10)/ferrosec.toml"
            fs_start fs10 a-gw
            fx_check "10: fragmentation = false is in ferrosec's file" grep -qx "fragmentation = false" "$(fs_dir fs10)/ferrosec.toml"
            fs_test_ike fs10 || true
            fx_check "10: without IKE fragmentation the IKE_AUTH goes as IP fragments and the WAN drops them" \
                fx_wait 15 eval '[ "$(fx_fragments_dropped)" -gt 0 ]'
            fx_check "10: no IKE SA established on either side" eval "! fs_ike_established fs10 && ! sw_established sw10"
            echo "    IP fragments dropped by the WAN: $(fx_fragments_dropped)"
            fs_stop fs10; fx_sw_stop sw10
            fx_no_ip_fragments off ;;
        11)
            pki=$(fs_mkpki 11 rsa2048 2) || fx_fail "case 11: PKI"
            left_sha1=$(hx_pki_sha1 "$pki/left.pem")
            fx_bg a-gw "$FX_WORK/http-11.log" python3 -u -m http.server 8080 --bind "$A_WAN" --directory "$pki/byhash"
            http_pid=$FX_LAST_PID
            for role in initiator responder; do
                n=11${role:0:1}
                export FX_SW_HASHURL=1
                if [ "$role" = initiator ]; then
                    sw_cert_conf "sw$n" "$pki" responder ike=aes256-sha256-modp2048 esp=aes256gcm16 local_id=right.hx.test
                else
                    sw_cert_conf "sw$n" "$pki" initiator ike=aes256-sha256-modp2048 esp=aes256gcm16 local_id=right.hx.test
                fi
                fx_sw_start "sw$n" b-gw
                unset FX_SW_HASHURL
                passive=false; [ "$role" = responder ] && passive=true
                fs_cert "fs$n" "$pki" peer_id_line='peer-id = { type = "fqdn", value = "right.hx.test" }' \
                    passive=$passive groups='"group14"' ike_encr='"aes-256-cbc"'
                sed -i "s|^certificate = { \(.*\) }$|certificate = { \1, hash-and-url = \"http://$A_WAN:8080/$left_sha1\" }|" "$(fs_dir "fs$n")/ferrosec.toml"
                fx_check "11 ($role): hash-and-url is in ferrosec's file" grep -q "hash-and-url = \"http://$A_WAN:8080/$left_sha1\"" "$(fs_dir "fs$n")/ferrosec.toml"
                fs_start "fs$n" a-gw
                : >"$FX_WORK/http-11.log.mark"; before=$(grep -c "GET /$left_sha1 HTTP/1.[01]\" 200" "$FX_WORK/http-11.log" || true)
                if [ "$role" = initiator ]; then
                    fx_check "11: ferrosec initiates with hash-and-URL: test vpn ike-sa succeeds" fs_test_ike "fs$n"
                else
                    fx_check "11: strongSwan initiates, ferrosec answers with hash-and-URL" sw_initiate "sw$n"
                fi
                fx_check "11 ($role): both sides established" fx_wait "$WAIT" both_up "fs$n" "sw$n"
                fx_check "11 ($role): strongSwan fetched ferrosec's certificate by its hash (GET /$left_sha1 200)" \
                    eval '[ "$(grep -c "GET /$left_sha1 HTTP/1.[01]\" 200" "$FX_WORK/http-11.log" || true)" -gt "$before" ]'
                grep -iE "hash.and.url|fetch" "$(fx_sw_dir "sw$n")/charon.log" | head -3 | sed 's/^/    strongSwan: /'
                fx_check "11 ($role): ping through" fx_wait 10 ping_ok 2
                fs_stop "fs$n"; fx_sw_stop "sw$n"
            done
            fx_stop "$http_pid" ;;
        12)
            pki=$(fs_mkpki 12 rsa2048 2) || fx_fail "case 12: PKI"
            left_sha1=$(hx_pki_sha1 "$pki/left.pem"); right_sha1=$(hx_pki_sha1 "$pki/right.pem")
            fx_bg a-gw "$FX_WORK/http-12a.log" python3 -u -m http.server 8080 --bind "$A_WAN" --directory "$pki/byhash"
            http_a=$FX_LAST_PID
            fx_bg b-gw "$FX_WORK/http-12b.log" python3 -u -m http.server 8080 --bind "$B_WAN" --directory "$pki/byhash"
            http_b=$FX_LAST_PID
            for role in initiator responder; do
                n=12${role:0:1}
                export FX_SW_HASHURL=1
                sw_role=responder; [ "$role" = responder ] && sw_role=initiator
                sw_cert_conf "sw$n" "$pki" "$sw_role" ike=aes256-sha256-modp2048 esp=aes256gcm16 local_id=right.hx.test \
                    uri_base="http://$B_WAN:8080/"
                fx_sw_start "sw$n" b-gw
                unset FX_SW_HASHURL
                passive=false; [ "$role" = responder ] && passive=true
                fs_cert "fs$n" "$pki" peer_id_line='peer-id = { type = "fqdn", value = "right.hx.test" }' \
                    passive=$passive groups='"group14"' ike_encr='"aes-256-cbc"'
                sed -i "s|^certificate = { \(.*\) }$|certificate = { \1, hash-and-url = \"http://$A_WAN:8080/$left_sha1\", hash-and-url-fetch = true }|" "$(fs_dir "fs$n")/ferrosec.toml"
                fs_start "fs$n" a-gw
                before_a=$(grep -c "GET /$left_sha1 HTTP/1.[01]\" 200" "$FX_WORK/http-12a.log" || true)
                before_b=$(grep -c "GET /$right_sha1 HTTP/1.[01]\" 200" "$FX_WORK/http-12b.log" || true)
                if [ "$role" = initiator ]; then
                    fx_check "12: ferrosec initiates, both send hash and URL: test vpn ike-sa succeeds" fs_test_ike "fs$n"
                else
                    fx_check "12: strongSwan initiates, both send hash and URL" sw_initiate "sw$n"
                fi
                fx_check "12 ($role): both sides established" fx_wait "$WAIT" both_up "fs$n" "sw$n"
                fx_check "12 ($role): ferrosec fetched strongSwan's certificate by its hash (GET /$right_sha1 200)" \
                    eval '[ "$(grep -c "GET /$right_sha1 HTTP/1.[01]\" 200" "$FX_WORK/http-12b.log" || true)" -gt "$before_b" ]'
                fx_check "12 ($role): strongSwan fetched ferrosec's certificate by its hash" \
                    eval '[ "$(grep -c "GET /$left_sha1 HTTP/1.[01]\" 200" "$FX_WORK/http-12a.log" || true)" -gt "$before_a" ]'
                fx_check "12 ($role): ferrosec's system log says it fetched the certificate" \
                    fs_log_has "fs$n" "fetched the peer's certificate from http://$B_WAN:8080/$right_sha1"
                fx_check "12 ($role): ping through" fx_wait 10 ping_ok 2
                fs_stop "fs$n"; fx_sw_stop "sw$n"
            done
            fx_stop "$http_a"; fx_stop "$http_b" ;;
        13) case_suite 13 Suite-B-GCM-128 ecdsa256 aes128-sha256-ecp256 aes128gcm16-ecp256 ;;
        14) case_suite 14 Suite-B-GCM-256 ecdsa384 aes256-sha384-ecp384 aes256gcm16-ecp384 ;;
        15) case_suite 15 PRIME-128 ecdsa256 aes128gcm16-prfsha256-ecp256 aes128gcm16-ecp256 ;;
        16) case_suite 16 PRIME-256 ecdsa384 aes256gcm16-prfsha384-ecp384 aes256gcm16-ecp384 ;;
        17) case_suite 17 Suite-B-GCM-256 ecdsa-p384 aes256-sha384-ecp384 aes256gcm16-ecp384 fs-pki ;;
        19) export FX_SW_SIGAUTH=no
            case_suite 19 Suite-B-GCM-128 ecdsa256 aes128-sha256-ecp256 aes128gcm16-ecp256 openssl ecdsa-256
            case_suite 19-p384 PRIME-256 ecdsa384 aes256gcm16-prfsha384-ecp384 aes256gcm16-ecp384 openssl ecdsa-384
            unset FX_SW_SIGAUTH ;;
        18)
            pki=$(fs_mkpki 18 ecdsa256 2) || fx_fail "case 18: PKI"
            sw_cert_conf sw18 "$pki" responder ike=aes256gcm16-prfsha256-ecp256 local_id=right.hx.test
            fx_sw_start sw18 b-gw
            fs_cert fs18 "$pki" peer_id_line='peer-id = { type = "fqdn", value = "other.hx.test" }' \
                groups='"group19"' ike_encr='"aes-256-gcm"'
            fs_start fs18 a-gw
            fx_check "18: test vpn ike-sa fails" eval "! fs_test_ike fs18"
            fx_check "18: ferrosec's system log names both IDs" \
                fx_wait 5 fs_log_has fs18 "peer ID mismatch: peer presented fqdn:right.hx.test, we expect fqdn:other.hx.test"
            fs fs18 show system log 2>/dev/null | grep -F "ID mismatch" | tail -1 | sed 's/^/    ferrosec: /'
            fx_check "18: no SA on either side" eval "fs_no_ike_sa fs18 && sw_no_sa sw18"
            fs_stop fs18; fx_sw_stop sw18 ;;
        6) case_fail 6 right ca "the peer's certificate \".*CN=right.hx.test\" expired on $(date -u -d '1 day ago' +%Y-%m-%d)" ;;
    esac
done

echo; if [ "$FX_FAILED" = 0 ]; then echo "=== IKEv2 certificates against strongSwan: all checks passed"; else echo "=== IKEv2 certificates against strongSwan: some checks FAILED"; fi
