#!/usr/bin/env bash
# tests/interop/ikev1-lib.bash — what the IKEv1 scenarios against strongSwan (40, 42) share: the
# ferrosec configuration and the checks. Source it after lib.sh and ferrosec-lib.bash; the
# scenario sets WAIT (seconds, the bound of each CLI call and negotiation).

# fs1_conf NAME key=value...: an IKEv1 configuration for site A facing strongSwan at site B.
# Keys: local peer psk groups ike_auth ike_encr esp_encr esp_auth pfs passive mode
# (main|aggressive) local_id peer_id (fqdn; empty: no key, the IP address is the ID) lan_local
# lan_remote gateway (extra lines for [ike-gateway.sw]) version (ikev1) dpd (the gateway's dpd
# line; empty: none, DPD's default) global (extra lines for [global]) tunnel (the IPSec tunnel's
# name, to-b) route (the static route's name, b-lan). Later keys override earlier ones.
fs1_conf() {
    local name=$1; shift
    local -A k=([local]="$A_WAN" [peer]="$B_WAN" [psk]="$FS_PSK" [groups]='"group14"'
        [ike_auth]='"sha256"' [ike_encr]='"aes-256-cbc"' [esp_encr]='"aes-256-cbc"'
        [esp_auth]='"sha256"' [pfs]=no-pfs [passive]=false [mode]=main
        [local_id]=a.ferrosec.test [peer_id]=b.ferrosec.test
        [lan_local]="$A_LAN" [lan_remote]="$B_LAN" [gateway]="" [version]=ikev1
        [dpd]='dpd = { interval = "5s", retry = 5 }' [global]="" [tunnel]=to-b [route]=b-lan)
    local kv dir
    for kv in "$@"; do k[${kv%%=*}]=${kv#*=}; done
    dir=$(fs_dir "$name"); mkdir -p "$dir"
    cat >"$dir/ferrosec.toml" <<EOF
[global]
control-socket = "$dir/ferrosec.sock"
log-file = "$dir/system.log"
${k[global]}

[ike-crypto-profile.ike]
dh-group = [${k[groups]}]
authentication = [${k[ike_auth]}]
encryption = [${k[ike_encr]}]
lifetime = "8h"

[ipsec-crypto-profile.esp]
protocol = "esp"
encryption = [${k[esp_encr]}]
authentication = [${k[esp_auth]}]
dh-group = "${k[pfs]}"
lifetime = "1h"

[ike-gateway.sw]
version = "${k[version]}"
exchange-mode = "${k[mode]}"
local-address = "${k[local]}"
peer-address = "${k[peer]}"
pre-shared-key = "${k[psk]}"
$([ -n "${k[local_id]}" ] && echo "local-id = { type = \"fqdn\", value = \"${k[local_id]}\" }")
$([ -n "${k[peer_id]}" ] && echo "peer-id = { type = \"fqdn\", value = \"${k[peer_id]}\" }")
ike-crypto-profile = "ike"
${k[dpd]}
nat-traversal = true
passive-mode = ${k[passive]}
${k[gateway]}

[tunnel-interface."tunnel.1"]
zone = "vpn"
mtu = 1400

[ipsec-tunnel.${k[tunnel]}]
tunnel-interface = "tunnel.1"
ike-gateway = "sw"
ipsec-crypto-profile = "esp"
proxy-id = [ { name = "lan", local = "${k[lan_local]}", remote = "${k[lan_remote]}" } ]

[virtual-router.default]
static-route = [ { name = "${k[route]}", destination = "${k[lan_remote]}", interface = "tunnel.1" } ]

[zone.vpn]
interfaces = ["tunnel.1"]
EOF
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
