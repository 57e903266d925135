#!/usr/bin/env bash
# pki.sh - test PKI for the certificate scenarios (openssl; tests only, throwaway keys).
# (A copy of ../shared/interop/pki.sh, so that a fresh checkout runs tests/interop/43-*.)
#
# Library: . harness/pki.sh; hx_pki_make DIR KIND CHAIN [EXPIRED_SIDE]
#   KIND  rsa2048 | rsa3072 | ecdsa256 | ecdsa384
#   CHAIN certificates from the root to a gateway's own, inclusive: 2 = root signs the
#         gateways' certificates; 5 = root -> int1 -> int2 -> int3 -> gateway
#   EXPIRED_SIDE (optional) left|right: that gateway's certificate expired yesterday
# Writes in DIR:
#   ca.pem            the root (the only trust anchor either side is given)
#   int1.pem ...      intermediates (PEM), chain.pem = intermediates, nearest the leaf first
#   left.pem right.pem      the gateways' own certificates (SAN DNS:left.hx.test / right.hx.test,
#                           subject CN=<name>,O=hx-test,C=ZZ), left.key right.key (PKCS#8 PEM)
#   left-full.pem right-full.pem   own certificate followed by the intermediates
#   other-ca.pem      a second, unrelated root (for "untrusted CA" cases)
#   byhash/<sha1-hex>  every certificate in DER, named by the SHA-1 of its DER (hash-and-URL)
# CLI: harness/pki.sh DIR KIND CHAIN [EXPIRED_SIDE]

_hx_pki_key() {   # _hx_pki_key KIND OUT
    case $1 in
        rsa2048) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$2" 2>/dev/null ;;
        rsa3072) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$2" 2>/dev/null ;;
        ecdsa256) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$2" 2>/dev/null ;;
        ecdsa384) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$2" 2>/dev/null ;;
        *) echo "hx_pki: unknown key kind $1" >&2; return 1 ;;
    esac
}
_hx_pki_md() { case $1 in ecdsa384) echo sha384;; *) echo sha256;; esac; }

# _hx_pki_ca DIR NAME KIND [ISSUER]  (self-signed when no issuer)
_hx_pki_ca() {
    local d=$1 n=$2 k=$3 iss=${4:-} md; md=$(_hx_pki_md "$k")
    _hx_pki_key "$k" "$d/$n.key" || return 1
    printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' >"$d/$n.ext"
    if [ -z "$iss" ]; then
        openssl req -new -x509 -"$md" -key "$d/$n.key" -subj "/C=ZZ/O=hx-test/CN=$n" -days 30 \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
            -out "$d/$n.pem" 2>/dev/null
    else
        openssl req -new -key "$d/$n.key" -subj "/C=ZZ/O=hx-test/CN=$n" -out "$d/$n.csr" 2>/dev/null &&
        openssl x509 -req -"$md" -in "$d/$n.csr" -CA "$d/$iss.pem" -CAkey "$d/$iss.key" -CAcreateserial \
            -days 30 -extfile "$d/$n.ext" -out "$d/$n.pem" 2>/dev/null
    fi
}

# _hx_pki_leaf DIR NAME KIND ISSUER EXPIRED(0|1)
_hx_pki_leaf() {
    local d=$1 n=$2 k=$3 iss=$4 exp=$5 md ku; md=$(_hx_pki_md "$k")
    _hx_pki_key "$k" "$d/$n.key" || return 1
    case $k in rsa*) ku=digitalSignature,keyEncipherment;; *) ku=digitalSignature;; esac
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,%s\nsubjectAltName=DNS:%s.hx.test\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' \
        "$ku" "$n" >"$d/$n.ext"
    # HX_PKI_CDP=URL: the certificate names a CRL distribution point (RFC 5280 §4.2.1.13).
    [ -n "${HX_PKI_CDP:-}" ] && echo "crlDistributionPoints=URI:$HX_PKI_CDP" >>"$d/$n.ext"
    openssl req -new -key "$d/$n.key" -subj "/C=ZZ/O=hx-test/CN=$n.hx.test" -out "$d/$n.csr" 2>/dev/null || return 1
    if [ "$exp" = 1 ]; then
        # valid from 3 days ago until yesterday (openssl 3.0 x509 has no -not_before: use `ca`)
        : >"$d/index.txt"; echo 1000 >"$d/serial"
        printf '[ca]\ndefault_ca=hx\n[hx]\ndatabase=%s/index.txt\nnew_certs_dir=%s\nserial=%s/serial\ndefault_md=%s\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n' \
            "$d" "$d" "$d" "$md" >"$d/ca.cnf"
        openssl ca -batch -notext -config "$d/ca.cnf" -cert "$d/$iss.pem" -keyfile "$d/$iss.key" \
            -in "$d/$n.csr" -out "$d/$n.pem" -extfile "$d/$n.ext" \
            -startdate "$(date -u -d '3 days ago' +%Y%m%d%H%M%SZ)" -enddate "$(date -u -d '1 day ago' +%Y%m%d%H%M%SZ)" 2>/dev/null
    else
        openssl x509 -req -"$md" -in "$d/$n.csr" -CA "$d/$iss.pem" -CAkey "$d/$iss.key" -CAcreateserial \
            -days 30 -extfile "$d/$n.ext" -out "$d/$n.pem" 2>/dev/null
    fi
}

hx_pki_make() {
    local d=$1 k=$2 chain=$3 expired=${4:-} issuer=ca i n
    mkdir -p "$d/byhash" || return 1
    _hx_pki_ca "$d" ca "$k" || { echo "hx_pki: root failed" >&2; return 1; }
    _hx_pki_ca "$d" other-ca "$k" || return 1
    : >"$d/chain.pem"
    for ((i = 1; i <= chain - 2; i++)); do
        _hx_pki_ca "$d" "int$i" "$k" "$issuer" || { echo "hx_pki: int$i failed" >&2; return 1; }
        issuer=int$i
    done
    for ((i = chain - 2; i >= 1; i--)); do cat "$d/int$i.pem" >>"$d/chain.pem"; done
    for n in left right; do
        _hx_pki_leaf "$d" "$n" "$k" "$issuer" "$([ "$expired" = "$n" ] && echo 1 || echo 0)" ||
            { echo "hx_pki: $n failed" >&2; return 1; }
        cat "$d/$n.pem" "$d/chain.pem" >"$d/$n-full.pem"
    done
    for n in "$d"/*.pem; do
        case $n in *-full.pem|*/chain.pem) continue;; esac
        openssl x509 -in "$n" -outform DER -out "$d/byhash/$(hx_pki_sha1 "$n")" 2>/dev/null || return 1
    done
    return 0
}

# hx_pki_revoke DIR NAME [REASON]: a CRL of the root (X.509 v2, CRL number, next update in 7
# days) revoking NAME's certificate (reason keyCompromise by default): DIR/ca.crl (PEM) and
# DIR/ca.crl.der. With NAME "-" the CRL revokes nothing.
hx_pki_revoke() {
    local d=$1 n=$2 reason=${3:-keyCompromise}
    : >"$d/crl-index.txt"; [ -f "$d/crlnumber" ] || echo 01 >"$d/crlnumber"
    printf '[ca]\ndefault_ca=crl\n[crl]\ndatabase=%s/crl-index.txt\ncrlnumber=%s/crlnumber\ndefault_md=sha256\ndefault_crl_days=7\ncrl_extensions=crl_ext\n[crl_ext]\nauthorityKeyIdentifier=keyid:always\n' \
        "$d" "$d" >"$d/crl.cnf"
    if [ "$n" != - ]; then
        openssl ca -config "$d/crl.cnf" -cert "$d/ca.pem" -keyfile "$d/ca.key" -revoke "$d/$n.pem" \
            -crl_reason "$reason" 2>/dev/null || return 1
    fi
    openssl ca -gencrl -config "$d/crl.cnf" -cert "$d/ca.pem" -keyfile "$d/ca.key" -out "$d/ca.crl" 2>/dev/null &&
        openssl crl -in "$d/ca.crl" -outform DER -out "$d/ca.crl.der" 2>/dev/null
}

# hx_pki_sha1 PEM -> SHA-1 hex of the DER (the hash-and-URL hash)
hx_pki_sha1() { openssl x509 -in "$1" -outform DER 2>/dev/null | sha1sum | cut -c1-40; }

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    [ $# -ge 3 ] || { echo "usage: $0 DIR KIND CHAIN [EXPIRED_SIDE]" >&2; exit 2; }
    hx_pki_make "$@"
fi

# hx_cert_prep "OPTS": for a scenario whose options have auth=pubkey, make its PKI under
# $HX_WORKDIR/pki (certkind=KIND chain=N expired=left|right) and set HX_CERT_EXTRA to the
# options both sides then need (pki=DIR, and with hashurl=yes the base URL of a web server that
# this function starts in the right namespace, serving byhash/; its log is $HX_WORKDIR/http.log).
HX_CERT_EXTRA="" HX_HTTP_PID=""
hx_cert_prep() {
    local opts=$1 kind=rsa2048 chain=2 expired="" hu="" kv
    HX_CERT_EXTRA=""
    case " $opts " in *" auth=pubkey "*) ;; *) return 0 ;; esac
    for kv in $opts; do
        case $kv in certkind=*) kind=${kv#*=};; chain=*) chain=${kv#*=};; expired=*) expired=${kv#*=};;
                    hashurl=yes) hu=1;; esac
    done
    hx_pki_make "$HX_WORKDIR/pki" "$kind" "$chain" "$expired" || return 1
    HX_CERT_EXTRA="pki=$HX_WORKDIR/pki"
    if [ -n "$hu" ]; then
        hx_bg right "$HX_WORKDIR/http.log" python3 -u -m http.server 8080 --bind "$HX_RIGHT_WAN" \
            --directory "$HX_WORKDIR/pki/byhash"
        HX_HTTP_PID=$HX_BG_PID
        export HX_SW_HASHURL=1
        HX_CERT_EXTRA+=" hashurl=http://$HX_RIGHT_WAN:8080/"
    fi
    return 0
}
# hx_hashurl_fetched: both gateways' certificates were fetched by hash (GET /<sha1> 200)
hx_hashurl_fetched() {
    local n h ok=0
    for n in left right; do
        h=$(hx_pki_sha1 "$HX_WORKDIR/pki/$n.pem")
        if grep -q "GET /$h HTTP/1.[01]\" 200" "$HX_WORKDIR/http.log" 2>/dev/null; then echo "$n cert fetched by hash"
        else echo "$n cert NOT fetched"; ok=1; fi
    done
    return $ok
}
hx_cert_done() { [ -n "$HX_HTTP_PID" ] && hx_bg_stop "$HX_HTTP_PID"; HX_HTTP_PID=""; unset HX_SW_HASHURL; return 0; }
