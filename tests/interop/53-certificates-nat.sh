#!/usr/bin/env bash
# Certificates behind a NAT (issue 13): ferrosec (a-gw, 192.0.2.2 behind lib.sh's NAT box,
# seen as 198.51.100.1) initiates to strongSwan 5.9 (b-gw, 198.51.100.2) with RSA-2048
# certificates in a chain of 3 (root -> intermediate -> gateway; tests/interop/pki.sh), across
# a WAN whose gateways drop every IP fragment (nft before defragmentation, as 43 cases 8-10).
# NAT detection moves IKE to UDP 4500 before IKE_AUTH, so the CERT payloads (about 2.3 KB with
# the intermediate) cross the NAT on port 4500 as IKE fragments.
#   1. IKEv2 (RFC 7427 signatures, RFC 7383 fragmentation), main checks below;
#   2. IKEv1 main mode (RFC 2409 §5.1 RSA signatures, the FRAGMENTATION vendor ID), the same
#      checks;
#   3. the control: case 1 with `fragmentation = false` on ferrosec: its IKE_AUTH leaves as IP
#      fragments, the gateways drop them (counted) and no SA comes up.
# Checks of cases 1 and 2: the tunnel comes up (`test vpn ike-sa`); both sides established;
# ferrosec's `show vpn ike-sa --json` says local-nat, transport udp-encap, local port 4500,
# rsa / digital-signature both ways, and names its own certificate and strongSwan's; strongSwan
# received ferrosec's IKE message in fragments and sent its own in fragments; strongSwan's
# `swanctl --list-sas` has the SA established with ferrosec's DN at the NAT's public address,
# port 4500, its own DN, and marks the remote side as NATed; pings cross both ways.
#
# usage: bash tests/interop/53-certificates-nat.sh [CASE...]   (CASE 1-3; none: all)
CASES_ALL=(1 2 3)
for c in "$@"; do
    case $c in [1-3]) ;; *) echo "usage: $0 [CASE...]   (cases: ${CASES_ALL[*]})" >&2; exit 2 ;; esac
done
if [ $# -gt 0 ]; then CASES=("$@"); else CASES=("${CASES_ALL[@]}"); fi

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
source "$(dirname "$0")/pki.sh"
fs_require_bin
fx_init

export FX_SW_PLUGINS="random nonce openssl aes sha1 sha2 hmac gcm gmp curve25519 kdf pem pkcs1 pkcs8 x509 pubkey constraints kernel-libipsec kernel-netlink socket-default vici"
WAIT=${FS_CERT_WAIT:-20}

# sw_resp NAME PKI VERSION: strongSwan (b-gw) responding to any address with its certificate,
# trusting the root (the intermediate in x509ca too), expecting ferrosec's subject DN.
sw_resp() { sw_cert_conf "$1" "$2" responder version="$3" esp=aes256-sha256; }

# fs_init NAME PKI VERSION: ferrosec (a-gw, behind the NAT) with its certificate and the
# intermediate, expecting strongSwan's subject DN.
fs_init() {
    fs_cert_conf "$1" "$2" version="ikev$3" local="$A_PRIV" groups='"group14"' pfs=no-pfs \
        esp_encr='"aes-256-cbc"' esp_auth='"sha256"' peer_id_line="peer-id = { type = \"dn\", value = \"$RIGHT_DN\" }"
}

both_up() { fs_ike_established "$1" && sw_established "$2" && [ -n "$(fs_spi_in "$1")" ]; }

fx_topology nat
fx_no_ip_fragments on

# case_nat N VERSION(1|2): the main case.
case_nat() {
    local n=$1 ver=$2 pki auth sas raw
    pki=$(fs_mkpki "$n" rsa2048 3) || { fx_fail "$n: PKI"; return; }
    auth=digital-signature; [ "$ver" = 1 ] && auth=rsa
    sw_resp "sw$n" "$pki" "$ver"
    fx_sw_start "sw$n" b-gw
    fs_init "fs$n" "$pki" "$ver"
    fs_start "fs$n" a-gw
    fx_check "$n: IKEv$ver, RSA chain of 3, ferrosec behind the NAT initiates: test vpn ike-sa succeeds" \
        eval "fs fs$n test vpn ike-sa gateway sw >$FX_WORK/test-$n.out 2>&1"
    fx_check "$n: both sides established, SAs installed" fx_wait "$WAIT" both_up "fs$n" "sw$n"
    fx_check "$n: ferrosec --json: local-nat true, transport udp-encap, local address $A_PRIV:4500" \
        eval "[ \"\$(fs_ike fs$n '[\"local-nat\"]')\" = True ] &&
              [ \"\$(fs_ike fs$n '[\"transport\"]')\" = udp-encap ] &&
              [ \"\$(fs_ike fs$n '[\"local-address\"]')\" = $A_PRIV:4500 ]"
    fx_check "$n: ferrosec --json: local-auth and peer-auth $auth" \
        eval "[ \"\$(fs_ike fs$n '[\"local-auth\"]')\" = $auth ] && [ \"\$(fs_ike fs$n '[\"peer-auth\"]')\" = $auth ]"
    fx_check "$n: ferrosec --json: local-certificate is ferrosec's, peer-certificate strongSwan's (issued by the intermediate)" \
        eval "[ \"\$(fs_ike fs$n '[\"local-certificate\"][\"subject\"]')\" = '$LEFT_DN' ] &&
              [ \"\$(fs_ike fs$n '[\"peer-certificate\"][\"subject\"]')\" = '$RIGHT_DN' ] &&
              [ \"\$(fs_ike fs$n '[\"peer-certificate\"][\"issuer\"]')\" = 'C=ZZ, O=hx-test, CN=int1' ]"
    echo "    ferrosec: $(fs_ike "fs$n" '["local-address"]') -> $(fs_ike "fs$n" '["peer-address"]'), local-nat $(fs_ike "fs$n" '["local-nat"]'), $(fs_ike "fs$n" '["transport"]'), auth $(fs_ike "fs$n" '["local-auth"]')/$(fs_ike "fs$n" '["peer-auth"]')"
    fx_check "$n: strongSwan reassembled ferrosec's IKE fragments and sent its own in fragments" \
        eval "sw_log_has sw$n 'received fragment #[0-9].*, reassembled fragmented IKE message' &&
              sw_log_has sw$n 'splitting IKE message .* into [0-9]* fragments'"
    fx_check "$n: strongSwan received ferrosec's IKE messages from the NAT's port 4500" \
        sw_log_has "sw$n" "received packet: from $A_WAN\[4500\] to $B_WAN\[4500\]"
    sas=$(fx_sw_swanctl "sw$n" --list-sas 2>/dev/null || true)
    raw=$(fx_sw_swanctl "sw$n" --list-sas --raw 2>/dev/null || true)
    fx_check "$n: swanctl --list-sas: ESTABLISHED, IKEv$ver, ferrosec's DN at the NAT's $A_WAN[4500], strongSwan's DN at $B_WAN[4500], remote NATed" \
        eval "fx_has -E 's2s: #[0-9]+, ESTABLISHED, IKEv$ver' <<<\"\$sas\" &&
              fx_has -F \"remote '$LEFT_DN' @ $A_WAN[4500]\" <<<\"\$sas\" &&
              fx_has -F \"local  '$RIGHT_DN' @ $B_WAN[4500]\" <<<\"\$sas\" &&
              fx_has -F 'nat-remote=yes' <<<\"\$raw\""
    grep -E "ESTABLISHED|local |remote " <<<"$sas" | head -3 | sed 's/^/    strongSwan: /'
    fx_check "$n: ping a-host -> b-host through the tunnel" fx_wait 10 fx_ping a-host "$B_HOST" 2
    fx_check "$n: ping b-host -> a-host through the tunnel" fx_wait 10 fx_ping b-host "$A_HOST" 2
    echo "    IP fragments dropped by the gateways so far: $(fx_fragments_dropped)"
    fs_stop "fs$n"; fx_sw_stop "sw$n"
}

for c in "${CASES[@]}"; do
    case $c in
        1) case_nat 1 2 ;;
        2) case_nat 2 1 ;;
        3)
            pki=$(fs_mkpki 3 rsa2048 3) || fx_fail "3: PKI"
            sw_resp sw3 "$pki" 2
            fx_sw_start sw3 b-gw
            fs_init fs3 "$pki" 2
            sed -i '/^\[ike-gateway\.sw\]/a fragmentation = false' "$(fs_dir fs3)/ferrosec.toml"
            fx_check "3: fragmentation = false is in ferrosec's file" grep -qx "fragmentation = false" "$(fs_dir fs3)/ferrosec.toml"
            before=$(fx_fragments_dropped)
            fs_start fs3 a-gw
            fs fs3 test vpn ike-sa gateway sw >"$FX_WORK/test-3.out" 2>&1 &
            fx_check "3: without IKE fragmentation the IKE_AUTH crosses the NAT as IP fragments and the gateways drop them" \
                fx_wait 15 eval '[ "$(fx_fragments_dropped)" -gt "$before" ]'
            fx_check "3: no SA up on either side" eval '! fs_ike_established fs3 && ! sw_established sw3'
            echo "    IP fragments dropped: $(( $(fx_fragments_dropped) - before ))"
            wait $! 2>/dev/null || true
            fs_stop fs3; fx_sw_stop sw3 ;;
    esac
done
fx_no_ip_fragments off

echo; if [ "$FX_FAILED" = 0 ]; then echo "=== certificates behind a NAT: all checks passed"; else echo "=== certificates behind a NAT: some checks FAILED"; fi
