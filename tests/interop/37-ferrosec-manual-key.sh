#!/usr/bin/env bash
# Manual-key tunnels (R-CFG-6, issue 14), ferrosec (a-gw) <-> ferrosec (b-gw), no IKE at all:
#   - ESP with AES-128-CBC and HMAC-SHA-256, SPIs 0x1000/0x2000, anti-replay on: up at start,
#     pings both ways, `show vpn ipsec-sa` says manual on both sides, `show vpn tunnel` up;
#   - the configured keys appear nowhere in show or the log;
#   - tshark decrypts a capture of the WAN with an esp_sa table made from the configured keys
#     (the packets are standard ESP);
#   - AES-256-GCM with a wrong key on one side: no ping passes and the data plane's drop
#     report names the failed integrity checks (auth-failed).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

fx_topology plain

ENC_CBC=0x00112233445566778899aabbccddeeff
AUTH_SHA=0x0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
ENC_GCM=0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fcafebabe
WRONG_GCM=0xff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fcafebabe

# mk_conf NAME LOCAL PEER LOCAL_LAN PEER_LAN IN_SPI OUT_SPI KEYS: a daemon with one manual-key
# tunnel and a route to the peer's LAN through it (KEYS: the TOML of the algorithms and keys).
mk_conf() {
    local name=$1 local=$2 peer=$3 lan=$4 peer_lan=$5 in=$6 out=$7 keys=$8 dir
    dir=$(fs_dir "$name"); mkdir -p "$dir"
    cat >"$dir/ferrosec.toml" <<EOF2
[global]
control-socket = "$dir/ferrosec.sock"
log-file = "$dir/system.log"

[tunnel-interface."tunnel.1"]
zone = "vpn"
mtu = 1400

[ipsec-tunnel.legacy]
tunnel-interface = "tunnel.1"
type = "manual-key"
replay-window = 64
manual-key = { local-spi = "$in", remote-spi = "$out", protocol = "esp", $keys, local-address = "$local", peer-address = "$peer" }

[virtual-router.default]
static-route = [ { name = "peer", destination = "$peer_lan", interface = "tunnel.1" } ]

[zone.vpn]
interfaces = ["tunnel.1"]
EOF2
}
pair() {   # pair TAG KEYS_A KEYS_B
    mk_conf "a-$1" "$A_WAN" "$B_WAN" "$A_LAN" "$B_LAN" 0x1000 0x2000 "$2"
    mk_conf "b-$1" "$B_WAN" "$A_WAN" "$B_LAN" "$A_LAN" 0x2000 0x1000 "$3"
    fs_start "a-$1" a-gw && fs_start "b-$1" b-gw
}
manual_rows() { fs_field "$(fs_ipsec_json "$1")" state | grep -cx manual || true; }

CBC="encryption = \"aes-128-cbc\", encryption-key = \"$ENC_CBC\", authentication = \"sha256\", authentication-key = \"$AUTH_SHA\""
fx_check "config check calls a manual-key tunnel valid, with no warning" \
    eval 'mk_conf chk "$A_WAN" "$B_WAN" "$A_LAN" "$B_LAN" 0x1000 0x2000 "$CBC" &&
          out=$("$FS_BIN" config check "$(fs_dir chk)/ferrosec.toml" 2>&1) && grep -q "configuration is valid; 0 warnings" <<<"$out"'
fx_bg a-gw "$FX_WORK/tcpdump.out" tcpdump -i wan0 -n -U --immediate-mode -w "$FX_WORK/wan.pcap" esp
TCPDUMP=$FX_LAST_PID
sleep 1
pair cbc "$CBC" "$CBC"
fx_check "cbc: both sides installed the pair at start (system log)" \
    eval 'fs_log_has a-cbc "manual-key SA pair installed: SPI in 0x00001000 out 0x00002000, aes-128-cbc/sha256, ESP" &&
          fs_log_has b-cbc "manual-key SA pair installed: SPI in 0x00002000 out 0x00001000"'
fx_check "cbc: show vpn ipsec-sa says manual on both sides" \
    eval '[ "$(manual_rows a-cbc)" = 1 ] && [ "$(manual_rows b-cbc)" = 1 ]'
fs a-cbc show vpn ipsec-sa | sed 's/^/    /'
fx_check "cbc: show vpn tunnel says up" eval 'fs a-cbc --json show vpn tunnel | fx_has "\"state\": \"up\""'
fx_check "cbc: ping a-host -> b-host" fx_wait 10 fx_ping a-host "$B_HOST" 5
fx_check "cbc: ping b-host -> a-host" fx_ping b-host "$A_HOST" 5
shown() { local n; for n in a-cbc b-cbc; do fs "$n" show system log; fs "$n" --json show vpn ipsec-sa; fs "$n" --json show vpn flow; done; cat "$(fs_dir a-cbc)/ferrosec.toml" >/dev/null; }
fx_check "cbc: neither key appears in show or the log" \
    eval 'out=$(shown); ! grep -qi "${ENC_CBC#0x}\|${AUTH_SHA#0x}\|00112233445566" <<<"$out"'
fx_stop "$TCPDUMP"
mkdir -p "$FX_WORK/ws"
{
    printf '"IPv4","*","*","0x00001000","AES-CBC [RFC3602]","%s","HMAC-SHA-256-128 [RFC4868]","%s"\n' "$ENC_CBC" "$AUTH_SHA"
    printf '"IPv4","*","*","0x00002000","AES-CBC [RFC3602]","%s","HMAC-SHA-256-128 [RFC4868]","%s"\n' "$ENC_CBC" "$AUTH_SHA"
} >"$FX_WORK/ws/esp_sa"
icmp=$(WIRESHARK_CONFIG_DIR=$FX_WORK/ws tshark -n -o esp.enable_encryption_decode:TRUE -r "$FX_WORK/wan.pcap" -Y 'esp && icmp' 2>/dev/null | wc -l)
echo "    tshark with the configured keys: $icmp ICMP packets inside ESP"
fx_check "cbc: tshark decrypts the pings with the configured keys (standard ESP)" [ "$icmp" -ge 10 ]
fs_stop a-cbc; fs_stop b-cbc

GCM="encryption = \"aes-256-gcm\", encryption-key = \"$ENC_GCM\", authentication = \"none\""
BAD="encryption = \"aes-256-gcm\", encryption-key = \"$WRONG_GCM\", authentication = \"none\""
pair bad "$GCM" "$BAD"
fx_check "wrong key: no ping passes" eval '! fx_ping a-host "$B_HOST" 3'
fx_check "wrong key: the drop report names the failed integrity checks" \
    fx_wait 8 eval 'fs_log_has b-bad "dropped in the last 5 s: .*auth-failed" || fs_log_has a-bad "dropped in the last 5 s: .*auth-failed"'
{ fs a-bad show system log; fs b-bad show system log; } | grep "dropped" | tail -2 | sed "s/^/    /" || true
fs_stop a-bad; fs_stop b-bad

echo; if [ "$FX_FAILED" = 0 ]; then echo "=== manual keys: all checks passed"; else echo "=== manual keys: some checks FAILED"; fi
exit "${FX_FAILED:-0}"
