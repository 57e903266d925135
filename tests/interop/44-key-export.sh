#!/usr/bin/env bash
# Wireshark key export (issue 15, R-OPS-5): ferrosec (a-gw) against strongSwan 5.9 (b-gw),
# with `[global] allow-key-export = true`, in IKEv2 and in IKEv1 (main mode):
#   - a capture on ferrosec's WAN of the negotiation and of pings through the tunnel;
#   - `request vpn export-keys --wireshark DIR` writes esp_sa and the IKE decryption tables,
#     readable by their owner only;
#   - tshark without the tables reads neither the IDs nor the pings; with them
#     (WIRESHARK_CONFIG_DIR=DIR, -o esp.enable_encryption_decode:TRUE) it shows ferrosec's ID
#     from the encrypted IKE_AUTH (IKEv1: main mode message 5) and the pings inside ESP.
# (That the export is refused while allow-key-export is off is tested in tests/cli.rs.)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init
command -v tshark >/dev/null || { echo "tshark is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }

fx_topology plain

# tshark_count PCAP DIR FILTER: frames matching FILTER, with the tables in DIR (none: "").
tshark_count() {
    local pcap=$1 dir=$2 filter=$3
    if [ -n "$dir" ]; then
        WIRESHARK_CONFIG_DIR=$dir tshark -n -o esp.enable_encryption_decode:TRUE -r "$pcap" -Y "$filter" 2>/dev/null | wc -l
    else
        tshark -n -o esp.enable_encryption_decode:TRUE -r "$pcap" -Y "$filter" 2>/dev/null | wc -l
    fi
}
mode_of() { stat -c %a "$1"; }

run() {   # run VERSION(1|2)
    local v=$1 name=fs$1 sw=sw$1 keys pcap out
    keys="$FX_WORK/keys-v$v"; pcap="$FX_WORK/wan-v$v.pcap"; out="$FX_WORK/export-v$v.out"
    if [ "$v" = 1 ]; then
        fx_sw_conf "$sw" version=1 local="$B_WAN" remote=%any local_ts="$B_LAN" remote_ts="$A_LAN" \
            local_id=b.ferrosec.test remote_id=a.ferrosec.test psk="$FS_PSK" \
            ike=aes256-sha256-modp2048 esp=aes256-sha256
        fs_conf "$name" global='allow-key-export = true' esp_encr='"aes-256-cbc"' esp_auth='"sha256"' pfs=no-pfs
        sed -i -e 's/^version = "ikev2"$/version = "ikev1"/' -e '/^liveness-interval = /d' "$(fs_dir "$name")/ferrosec.toml"
    else
        fx_sw_conf "$sw" local="$B_WAN" remote=%any local_ts="$B_LAN" remote_ts="$A_LAN" \
            local_id=b.ferrosec.test remote_id=a.ferrosec.test psk="$FS_PSK"
        fs_conf "$name" global='allow-key-export = true'
    fi
    fx_sw_start "$sw" b-gw
    fx_bg a-gw "$FX_WORK/tcpdump-v$v.out" tcpdump -i wan0 -n -U --immediate-mode -w "$pcap" udp or esp
    local tcpdump=$FX_LAST_PID
    sleep 1
    fs_start "$name" a-gw
    fx_check "IKEv$v: the daemon warns that key export is on" \
        fx_wait 5 fs_log_has "$name" "allow-key-export is on"
    fx_check "IKEv$v: test vpn ipsec-sa tunnel to-b" eval "fs $name test vpn ipsec-sa tunnel to-b >/dev/null 2>&1"
    fx_check "IKEv$v: ping a-host -> b-host through the tunnel" fx_wait 10 fx_ping a-host "$B_HOST" 3
    fx_check "IKEv$v: request vpn export-keys --wireshark writes the tables" \
        eval "fs $name request vpn export-keys --wireshark '$keys' >'$out' 2>&1 &&
              grep -q 'wrote the keys of 1 IKE SA(s) and 2 ESP SA(s)' '$out'"
    sed 's/^/    /' "$out"
    fx_check "IKEv$v: the tables are readable by their owner only (0600)" \
        eval "[ \"\$(mode_of '$keys/esp_sa')\" = 600 ] && [ \"\$(mode_of '$keys/ikev${v}_decryption_table')\" = 600 ]"
    fx_check "IKEv$v: the IKE table has one SA, esp_sa two" \
        eval "[ \"\$(wc -l <'$keys/ikev${v}_decryption_table')\" = 1 ] && [ \"\$(wc -l <'$keys/esp_sa')\" = 2 ]"
    # The first 16 hex digits of every key in the tables appear nowhere in what ferrosec shows.
    fs "$name" show system log >"$FX_WORK/shown-v$v.txt"
    for what in ike-sa ipsec-sa flow; do
        fs "$name" show vpn "$what" >>"$FX_WORK/shown-v$v.txt"
        fs "$name" show vpn "$what" --json >>"$FX_WORK/shown-v$v.txt"
    done
    grep -ohE '0x[0-9a-f]{16,}|,[0-9a-f]{32,}' "$keys/esp_sa" "$keys/ikev${v}_decryption_table" |
        sed -E 's/^(0x|,)//' | cut -c1-16 >"$FX_WORK/key-prefixes-v$v.txt"
    fx_check "IKEv$v: show and the system log print no key ($(wc -l <"$FX_WORK/key-prefixes-v$v.txt") keys looked for)" \
        eval "[ -s '$FX_WORK/key-prefixes-v$v.txt' ] && ! grep -qiFf '$FX_WORK/key-prefixes-v$v.txt' '$FX_WORK/shown-v$v.txt'"
    fx_stop "$tcpdump"
    local ids_plain icmp_plain ids icmp
    ids_plain=$(tshark_count "$pcap" "" 'isakmp.id.data.fqdn == "a.ferrosec.test"')
    icmp_plain=$(tshark_count "$pcap" "" 'esp && icmp')
    ids=$(tshark_count "$pcap" "$keys" 'isakmp.id.data.fqdn == "a.ferrosec.test"')
    icmp=$(tshark_count "$pcap" "$keys" 'esp && icmp')
    echo "    without the tables: $ids_plain frame(s) with ferrosec's ID, $icmp_plain ICMP in ESP; with them: $ids and $icmp"
    fx_check "IKEv$v: without the tables tshark reads neither ferrosec's ID nor the pings" \
        eval "[ '$ids_plain' = 0 ] && [ '$icmp_plain' = 0 ]"
    fx_check "IKEv$v: with the tables tshark decrypts ferrosec's ID from the encrypted exchange" \
        eval "[ '$ids' -ge 1 ]"
    fx_check "IKEv$v: with the tables tshark decrypts the pings inside ESP (both ways)" \
        eval "[ '$icmp' -ge 6 ]"
    fs_stop "$name"; fx_sw_stop "$sw"
}

run 2
run 1

echo; if [ "$FX_FAILED" = 0 ]; then echo "=== Wireshark key export: all checks passed"; else echo "=== Wireshark key export: some checks FAILED"; fi
exit "${FX_FAILED:-0}"
