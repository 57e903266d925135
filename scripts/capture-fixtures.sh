#!/usr/bin/env bash
# capture-fixtures.sh - capture real strongSwan 5.9 IKE/ESP traffic in network
# namespaces and write wire-crate fixtures: one TSV per scenario with each
# frame's UDP payload (hex) and tshark's dissection of the fields the tests check.
#
# usage: scripts/capture-fixtures.sh [scenario ...]   (run as root)
# scenarios: ikev2-proposals ikev2-ecp ikev1-main ikev1-aggr ikev2-nat ikev1-nat
# env: FIXTURE_DIR (default crates/wire/tests/fixtures), INTEROP (../shared/interop)
#
# Uses ../shared/interop (netns.sh, strongswan-peer.sh): both gateways are
# strongSwan, addresses 198.51.100.0/24, 192.0.2.0/24 and 10.x only. Namespaces
# and processes are this script's own and are removed on exit (by PID).
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${INTEROP:=$(cd "$ROOT/../shared/interop" && pwd)}"
: "${FIXTURE_DIR:=$ROOT/crates/wire/tests/fixtures}"
: "${HX_PREFIX:=fxw$$-}"
: "${HX_WORKDIR:=${TMPDIR:-/tmp}/${HX_PREFIX%-}-fixtures}"
BASE=$HX_WORKDIR
export HX_SW_LOG="default=1 ike=2 cfg=1 knl=1 net=1"
. "$INTEROP/netns.sh"
. "$INTEROP/strongswan-peer.sh"

cleanup() { hx_bg_stop_all; hx_sw_stop_all; hx_topo_down; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# Fields written per frame (tshark -T fields, multiple occurrences joined by ',').
FIELDS=(frame.number udp.srcport udp.dstport udpencap.non_esp_marker udpencap.nat_keepalive
    esp.spi esp.sequence isakmp.ispi isakmp.rspi isakmp.version isakmp.exchangetype
    isakmp.flags isakmp.messageid isakmp.length isakmp.typepayload isakmp.criticalpayload
    isakmp.payloadlength isakmp.prop.number isakmp.prop.protoid isakmp.prop.transforms
    isakmp.tf.type isakmp.tf.id.encr isakmp.tf.id.prf isakmp.tf.id.integ isakmp.tf.id.dh
    isakmp.tf.id.esn isakmp.ike2.attr.key_length isakmp.trans.id
    isakmp.ike.attr.type isakmp.ike.attr.value isakmp.key_exchange.dh_group
    isakmp.notify.msgtype isakmp.vid_bytes isakmp.id.type isakmp.ike.nat_hash
    udp.payload)

run() {
    local name=$1 topo=plain left_addr=${HX_LEFT_WAN:-198.51.100.1} dir pcap
    local -a lopts ropts
    case $name in
        ikev2-proposals)
            lopts=(version=2 "ike=aes256-sha256-modp2048,aes128gcm16-prfsha256-ecp256-curve25519,aes128-sha1-modp1024" "esp=aes256gcm16,aes128-sha256-modp2048")
            ropts=(version=2 ike=aes256-sha256-modp2048 esp=aes256gcm16) ;;
        ikev2-ecp)
            # the initiator guesses ecp256 first; the responder wants curve25519:
            # INVALID_KE_PAYLOAD, then a retry
            lopts=(version=2 "ike=aes128gcm16-prfsha256-ecp256-curve25519" esp=aes128gcm16)
            ropts=(version=2 "ike=aes128gcm16-prfsha256-curve25519" esp=aes128gcm16) ;;
        ikev1-main)
            lopts=(version=1 "ike=aes256-sha256-modp2048,aes128-sha1-modp2048" "esp=aes256-sha256-modp2048")
            ropts=(version=1 ike=aes256-sha256-modp2048 esp=aes256-sha256-modp2048) ;;
        ikev1-aggr)
            lopts=(version=1 aggressive=yes ike=aes128-sha256-modp2048 esp=aes128-sha1-modp2048)
            ropts=(version=1 aggressive=yes ike=aes128-sha256-modp2048 esp=aes128-sha1-modp2048) ;;
        ikev2-nat)
            topo=nat; left_addr=$HX_LEFT_PRIV
            lopts=(version=2 ike=aes256-sha256-modp2048 esp=aes256gcm16)
            ropts=(version=2 ike=aes256-sha256-modp2048 esp=aes256gcm16) ;;
        ikev1-nat)
            topo=nat; left_addr=$HX_LEFT_PRIV
            lopts=(version=1 ike=aes256-sha256-modp2048 esp=aes256-sha256-modp2048)
            ropts=(version=1 ike=aes256-sha256-modp2048 esp=aes256-sha256-modp2048) ;;
        *) echo "unknown scenario $name" >&2; return 1 ;;
    esac
    dir=$BASE/$name; rm -rf "$dir"; mkdir -p "$dir"; pcap=$dir/$name.pcap; HX_WORKDIR=$dir
    echo "=== $name ($topo)"
    hx_topo_up "$topo" || return 1
    hx_bg right "$dir/tcpdump.log" tcpdump -i wan0 -n -U --immediate-mode -s 0 -w "$pcap" 'udp port 500 or udp port 4500'
    local tcpdump_pid=$HX_BG_PID
    for _ in $(seq 1 25); do grep -q 'listening on' "$dir/tcpdump.log" 2>/dev/null && break; sleep 0.2; done
    hx_sw_gen_s2s right "$dir/conf-right/swanctl.conf" "${ropts[@]}" dpd_delay=2s
    hx_sw_gen_s2s left "$dir/conf-left/swanctl.conf" "${lopts[@]}" local_addrs="$left_addr" dpd_delay=2s
    hx_sw_start right "$(hx_ns right)" "$dir/conf-right/swanctl.conf" &&
        hx_sw_start left "$(hx_ns left)" "$dir/conf-left/swanctl.conf" || return 1
    hx_sw_swanctl left --initiate --child net --timeout 30 >"$dir/initiate.out" 2>&1 ||
        tail -5 "$dir/initiate.out"
    hx_exec lhost ping -c 2 -i 0.3 -W 2 -q "${HX_RHOST:-10.2.0.10}" >/dev/null
    sleep 3   # DPD/keepalive traffic
    hx_sw_swanctl left --terminate --ike s2s --timeout 10 >/dev/null 2>&1
    sleep 1
    hx_bg_stop "$tcpdump_pid" INT
    hx_sw_stop left; hx_sw_stop right
    hx_topo_down
    {
        printf '%s\t' "${FIELDS[@]}" | sed 's/\t$//'; echo
        local args=() f
        for f in "${FIELDS[@]}"; do args+=(-e "$f"); done
        tshark -n -r "$pcap" -T fields -E separator=/t -E aggregator=, -E occurrence=a "${args[@]}" 2>/dev/null
    } >"$FIXTURE_DIR/$name.tsv"
    tshark -n -r "$pcap" 2>/dev/null >"$FIXTURE_DIR/$name.summary.txt"
    echo "    $(($(wc -l <"$FIXTURE_DIR/$name.tsv") - 1)) frames -> $FIXTURE_DIR/$name.tsv"
}

mkdir -p "$FIXTURE_DIR"
rc=0
for s in ${*:-ikev2-proposals ikev2-ecp ikev1-main ikev1-aggr ikev2-nat ikev1-nat}; do
    run "$s" || rc=1
done
exit $rc
