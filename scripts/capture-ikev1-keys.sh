#!/usr/bin/env bash
# capture-ikev1-keys.sh - known answers for the IKEv1 key derivation: two strongSwan 5.9
# gateways in network namespaces negotiate IKEv1 Main Mode with a pre-shared key and two Quick
# Modes (the first with PFS, the second without), with charon's log at the levels that print
# the key material (ike=4: g^xy, SKEYID, SKEYID_d/a/e, Ka, the IVs, HASH_I/R, HASH(1)-(3);
# chd=4: the PFS secret, the KEYMAT seeds and the ESP keys), and tcpdump on the responder's
# outside interface. Writes one text fixture per scenario: the inputs, strongSwan's values
# and the hex of every datagram (crates/ike/src/v1/kat.rs checks ferrosec against it).
#
# usage: scripts/capture-ikev1-keys.sh [scenario ...]   (run as root)
# scenarios:
#   ikev1-main-psk-keys         AES-256-CBC/SHA-1/MODP-2048 (SKEYID_e is 20 bytes: the 32-byte
#                               key needs the Appendix B expansion); quick mode 1:
#                               AES-256/HMAC-SHA-1 with PFS MODP-2048, quick mode 2:
#                               AES-128/HMAC-SHA-256, no PFS
#   ikev1-main-psk-sha256-keys  AES-128-CBC/SHA-256/MODP-2048 (no expansion); quick mode 1:
#                               AES-128/HMAC-SHA-256 with PFS MODP-2048, quick mode 2:
#                               AES-256/HMAC-SHA-1, no PFS
# env: FIXTURE_DIR (default crates/ike/tests/fixtures), INTEROP (../shared/interop),
#      KEEP=1 keeps the work directory (logs, pcap)
#
# Uses ../shared/interop (netns.sh, strongswan-peer.sh): addresses 198.51.100.0/24 and 10.x
# inside namespaces this script creates; the namespaces and the processes it started (by PID)
# are removed on exit. The logs it reads hold secrets: test keys only.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${INTEROP:=$(cd "$ROOT/../shared/interop" && pwd)}"
: "${FIXTURE_DIR:=$ROOT/crates/ike/tests/fixtures}"
: "${HX_PREFIX:=fxk$$-}"
: "${HX_WORKDIR:=${TMPDIR:-/tmp}/${HX_PREFIX%-}-ikev1-keys}"
BASE=$HX_WORKDIR
export HX_SW_LOG="default=1 ike=4 chd=4 cfg=1 knl=1 net=1 enc=1"
. "$INTEROP/netns.sh"
. "$INTEROP/strongswan-peer.sh"

PSK=hx-test-psk-0123456789abcdef
LEFT_ID=left.hx.test
RIGHT_ID=right.hx.test

cleanup() {
    hx_bg_stop_all; hx_sw_stop_all; hx_topo_down
    [ "${KEEP:-0}" = 1 ] || rm -rf "$BASE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# gen_conf SIDE FILE IKE ESP1 ESP2: two children over one IKEv1 SA; dpd off, no rekeys.
gen_conf() {
    local side=$1 out=$2 ike=$3 esp1=$4 esp2=$5 laddr raddr lid rid l1 r1 l2 r2
    if [ "$side" = left ]; then
        laddr=$HX_LEFT_WAN raddr=$HX_RIGHT_WAN lid=$LEFT_ID rid=$RIGHT_ID
        l1=10.1.0.0/24 r1=10.2.0.0/24 l2=10.1.1.0/24 r2=10.2.1.0/24
    else
        laddr=$HX_RIGHT_WAN raddr=%any lid=$RIGHT_ID rid=$LEFT_ID
        l1=10.2.0.0/24 r1=10.1.0.0/24 l2=10.2.1.0/24 r2=10.1.1.0/24
    fi
    mkdir -p "$(dirname "$out")"
    cat >"$out" <<EOF
connections {
    s2s {
        version = 1
        aggressive = no
        local_addrs = $laddr
        remote_addrs = $raddr
        proposals = $ike
        dpd_delay = 0s
        rekey_time = 4h
        reauth_time = 0s
        local {
            auth = psk
            id = $lid
        }
        remote {
            auth = psk
            id = $rid
        }
        children {
            net {
                local_ts = $l1
                remote_ts = $r1
                esp_proposals = $esp1
                rekey_time = 1h
            }
            net2 {
                local_ts = $l2
                remote_ts = $r2
                esp_proposals = $esp2
                rekey_time = 1h
            }
        }
    }
}
secrets {
    ike-s2s {
        id-1 = $LEFT_ID
        id-2 = $RIGHT_ID
        secret = "$PSK"
    }
}
EOF
}

# log_values LOG: every chunk charon dumped ("LABEL => n bytes @ p" and "   0: 01 02 ..."
# lines) that the fixture keeps, as "key hex" lines in log order. Quick modes are numbered by
# their Hash(1), informational exchanges by their Hash; their message ID is the one of the
# last "parsed/generating ... request|response MID" line before it.
log_values() {
    awk '
        function key_of(label,    m) {
            if (label == "shared Diffie Hellman secret") return "g_xy"
            if (label == "SKEYID") return "skeyid"
            if (label == "SKEYID_d") return "skeyid_d"
            if (label == "SKEYID_a") return "skeyid_a"
            if (label == "SKEYID_e") return "skeyid_e"
            if (label == "encryption key Ka") return "ka"
            if (label == "initial IV") return "iv_p1"
            if (label == "HASH_I data") return "hash_i_data"
            if (label == "HASH_I") return "hash_i"
            if (label == "HASH_R data") return "hash_r_data"
            if (label == "HASH_R") return "hash_r"
            if (label ~ /^next IV for MID [0-9]+$/) { m = label; sub(/^next IV for MID /, "", m); return "next_iv " m }
            if (label == "Hash(1)") { qm++; print "qm" qm ".mid " mid; return "qm" qm ".hash1" }
            if (label == "Hash(2)") return "qm" qm ".hash2"
            if (label == "Hash(3)") return "qm" qm ".hash3"
            if (label == "DH secret") return "qm" qm ".g_qm"
            if (label == "initiator SA seed") return "qm" qm ".seed_i"
            if (label == "responder SA seed") return "qm" qm ".seed_r"
            if (label == "encryption initiator key") return "qm" qm ".encr_i"
            if (label == "encryption responder key") return "qm" qm ".encr_r"
            if (label == "integrity initiator key") return "qm" qm ".integ_i"
            if (label == "integrity responder key") return "qm" qm ".integ_r"
            if (label == "Hash") { info++; print "info" info ".mid " mid; return "info" info ".hash" }
            return ""
        }
        function flush() { if (on && key != "") print key " " out; on = 0 }
        {
            line = $0
            sub(/^[0-9:]+ [0-9]+\[[A-Z]+\] (<[^>]*> )?/, "", line)
        }
        on && line ~ /^ *[0-9]+: / {
            sub(/^ *[0-9]+: /, "", line)
            line = substr(line, 1, 47)
            gsub(/ /, "", line)
            out = out tolower(line)
            next
        }
        { flush() }
        line ~ /^(parsed|generating) (QUICK_MODE|INFORMATIONAL_V1) (request|response) [0-9]+ / {
            split(line, w, " "); mid = w[4]
        }
        line ~ / => [0-9]+ bytes @ / {
            label = line; sub(/ => [0-9]+ bytes @ .*$/, "", label)
            key = key_of(label); on = 1; out = ""
        }
        END { flush() }
    ' "$1"
}

# tshark_field PCAP FRAME FIELD: one field of one frame
tshark_field() {
    tshark -n -r "$1" -Y "frame.number == $2" -T fields -E occurrence=f -e "$3" 2>/dev/null | tr -d ':\n'
}

# write_fixture NAME IKE ESP1 ESP2 DIR OUT
write_fixture() {
    local name=$1 ike=$2 esp1=$3 esp2=$4 dir=$5 out=$6 pcap=$5/$1.pcap
    local rlog=$dir/sw-right/charon.log llog=$dir/sw-left/charon.log
    log_values "$rlog" >"$dir/right.values"
    log_values "$llog" >"$dir/left.values"
    # Both gateways must have computed the same values. The initiator logs the IVs, message IDs
    # and quick-mode steps in another order, so the comparison is of sorted lines, without the
    # IVs and message IDs; the responder may have missed an informational before it went down.
    local pat='^(next_iv|[a-z]+[0-9]+\.mid|info[0-9]+\.hash) '
    if ! diff <(grep -vE "$pat" "$dir/right.values" | sort) \
              <(grep -vE "$pat" "$dir/left.values" | sort) >"$dir/values.diff" ||
        grep '^info[0-9]*\.hash ' "$dir/right.values" | cut -d' ' -f2 |
            grep -vxFf <(grep '^info[0-9]*\.hash ' "$dir/left.values" | cut -d' ' -f2) >>"$dir/values.diff"; then
        echo "the two gateways logged different key material:" >&2; head -20 "$dir/values.diff" >&2
        return 1
    fi
    local n; n=$(grep -c '^qm[0-9]*\.hash3 ' "$dir/right.values")
    [ "$n" = 2 ] || { echo "expected 2 quick modes in the log, got $n" >&2; return 1; }
    grep -q '^qm1\.g_qm ' "$dir/right.values" && ! grep -q '^qm2\.g_qm ' "$dir/right.values" ||
        { echo "expected PFS in quick mode 1 only" >&2; return 1; }
    local sver; sver=$(/usr/lib/ipsec/charon --version 2>/dev/null | awk '{print $NF}')
    {
        echo "# IKEv1 Main Mode (PSK) and two Quick Modes between two strongSwan $sver gateways,"
        echo "# written by scripts/capture-ikev1-keys.sh $name; read by crates/ike/src/v1/kat.rs."
        echo "# Lines: 'key value'. Inputs and what tshark $(tshark --version 2>/dev/null | awk 'NR==1{print $3}') dissected from the datagrams first,"
        echo "# then the values charon logged (responder's log, ike=4 chd=4; the initiator logged the"
        echo "# same), then every datagram (dgram N SRC DST UDP-payload-hex, port 4500 with the"
        echo "# 4-byte non-ESP marker). Test keys only."
        echo "scenario $name"
        echo "ike_proposal $ike"
        echo "esp_proposal_1 $esp1"
        echo "esp_proposal_2 $esp2"
        echo "psk $PSK"
        echo "id_i $LEFT_ID"
        echo "id_r $RIGHT_ID"
        echo "cky_i $(tshark_field "$pcap" 1 isakmp.ispi)"
        echo "cky_r $(tshark_field "$pcap" 2 isakmp.rspi)"
        echo "ni $(tshark_field "$pcap" 3 isakmp.nonce)"
        echo "nr $(tshark_field "$pcap" 4 isakmp.nonce)"
        echo "g_xi $(tshark_field "$pcap" 3 isakmp.key_exchange.data)"
        echo "g_xr $(tshark_field "$pcap" 4 isakmp.key_exchange.data)"
        cat "$dir/right.values"
        tshark -n -r "$pcap" -T fields -E separator=' ' \
            -e frame.number -e ip.src -e udp.srcport -e ip.dst -e udp.dstport -e udp.payload 2>/dev/null |
            awk '{ printf "dgram %s %s:%s %s:%s %s\n", $1, $2, $3, $4, $5, $6 }'
    } >"$out.tmp" && mv "$out.tmp" "$out" || return 1
    echo "    $(grep -c '^dgram ' "$out") datagrams, $(grep -vc '^\(#\|dgram \)' "$out") values -> $out"
}

# capture NAME IKE ESP1 ESP2 DIR: topology, tcpdump, both charons, main mode and two quick
# modes, then the DELETEs; leaves the processes and namespaces for run to remove.
capture() {
    local name=$1 ike=$2 esp1=$3 esp2=$4 dir=$5 child
    hx_topo_up plain || return 1
    # the second child's subnets: charon routes through an address of the gateway inside them
    ip -n "$(hx_ns left)" addr add 10.1.1.1/24 dev lan0 &&
        ip -n "$(hx_ns right)" addr add 10.2.1.1/24 dev lan0 || return 1
    hx_bg right "$dir/tcpdump.log" tcpdump -i wan0 -n -U --immediate-mode -s 0 -w "$dir/$name.pcap" 'udp port 500 or udp port 4500'
    TCPDUMP_PID=$HX_BG_PID
    for _ in $(seq 1 25); do grep -q 'listening on' "$dir/tcpdump.log" 2>/dev/null && break; sleep 0.2; done
    gen_conf right "$dir/conf-right/swanctl.conf" "$ike" "$esp1" "$esp2"
    gen_conf left "$dir/conf-left/swanctl.conf" "$ike" "$esp1" "$esp2"
    hx_sw_start right "$(hx_ns right)" "$dir/conf-right/swanctl.conf" &&
        hx_sw_start left "$(hx_ns left)" "$dir/conf-left/swanctl.conf" || return 1
    for child in net net2; do
        hx_sw_swanctl left --initiate --child "$child" --timeout 30 >"$dir/initiate-$child.out" 2>&1 ||
            { echo "initiate $child failed:" >&2; tail -5 "$dir/initiate-$child.out" >&2; return 1; }
    done
    hx_sw_swanctl left --list-sas >"$dir/list-sas.out" 2>&1
    hx_sw_swanctl left --terminate --ike s2s --timeout 10 >/dev/null 2>&1
    sleep 1
}

run() {
    local name=$1 ike esp1 esp2 dir rc
    case $name in
        ikev1-main-psk-keys)
            ike=aes256-sha1-modp2048 esp1=aes256-sha1-modp2048 esp2=aes128-sha256 ;;
        ikev1-main-psk-sha256-keys)
            ike=aes128-sha256-modp2048 esp1=aes128-sha256-modp2048 esp2=aes256-sha1 ;;
        *) echo "unknown scenario $name" >&2; return 1 ;;
    esac
    dir=$BASE/$name; rm -rf "$dir"; mkdir -p "$dir"; HX_WORKDIR=$dir
    echo "=== $name"
    TCPDUMP_PID=
    capture "$name" "$ike" "$esp1" "$esp2" "$dir"; rc=$?
    [ -n "$TCPDUMP_PID" ] && hx_bg_stop "$TCPDUMP_PID" INT
    hx_sw_stop_all; hx_bg_stop_all; hx_topo_down
    [ "$rc" = 0 ] || return 1
    # one clean run: 6 main-mode messages (no retransmission), then the rest
    local mm; mm=$(tshark -n -r "$dir/$name.pcap" -Y 'isakmp.exchangetype == 2' 2>/dev/null | wc -l)
    [ "$mm" = 6 ] || { echo "expected 6 main-mode datagrams, got $mm" >&2; return 1; }
    write_fixture "$name" "$ike" "$esp1" "$esp2" "$dir" "$FIXTURE_DIR/$name.txt"
}

mkdir -p "$FIXTURE_DIR"
rc=0
for s in ${*:-ikev1-main-psk-keys ikev1-main-psk-sha256-keys}; do
    run "$s" || rc=1
done
exit $rc
