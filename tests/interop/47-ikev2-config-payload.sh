#!/usr/bin/env bash
# The IKEv2 configuration payload (R-V2-12, RFC 7296 §2.19, issue 18) against strongSwan 5.9,
# in both roles:
#   1. strongSwan as the client (a-gw, `vips = 0.0.0.0`), ferrosec as the server (b-gw,
#      config-payload = { pool = "10.9.0.0/24", dns, subnets }, a dynamic peer): strongSwan
#      gets 10.9.0.1, puts it on its TUN device; ferrosec shows it (show vpn ike-sa, --json) and
#      routes the pool into tunnel.1 by itself; a-gw (from its virtual IP) pings b-host and
#      b-host pings the virtual IP back through the tunnel; strongSwan rekeys the IKE SA (the
#      address goes with it) and re-authenticates make-before-break (the same address, one
#      IKE SA after); it reconnects and gets the same address;
#   2. the server requires a configuration payload (required = true): a strongSwan client
#      without `vips` is refused with FAILED_CP_REQUIRED, ferrosec's log says why in words and
#      strongSwan's log names the notify;
#   3. strongSwan as the server (b-gw, `pools` with addrs, dns and subnet), ferrosec as the
#      client (a-gw, config-payload = { request = true }, proxy-id local 0.0.0.0/0): ferrosec
#      gets 10.8.0.1 and puts it on tunnel.1 with a route to the subnet 10.2.0.0/24 through it
#      (source 10.8.0.1); a-gw pings b-host from it, b-host pings it back; `show vpn ike-sa`
#      names the address, DNS and subnet; an IKE SA rekey by ferrosec keeps them in place;
#      when the IKE SA is cleared the address and route
#      leave tunnel.1; a new IKE SA brings them back (the same address).
# strongSwan (kernel-libipsec) always encapsulates ESP in UDP 4500 (see lib.sh).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init
fx_topology plain

POOL=10.9.0.0/24 VIP=10.9.0.1
SW_POOL=10.8.0.0/24 SW_VIP=10.8.0.1

# sw_client NAME VIPS: strongSwan at a-gw as a client of b-gw (identity client1.ferrosec.test),
# asking for a virtual IP when VIPS is set.
sw_client() {
    local dir; dir=$(fx_sw_dir "$1"); mkdir -p "$dir"
    cat >"$dir/swanctl.conf" <<EOF
connections {
    rw {
        version = 2
        local_addrs = $A_WAN
        remote_addrs = $B_WAN
        proposals = aes256-sha256-ecp256
        ${2:+vips = $2}
        local { auth = psk
                id = client1.ferrosec.test }
        remote { auth = psk
                 id = b.ferrosec.test }
        children {
            net {
                remote_ts = $B_LAN
                esp_proposals = aes256gcm16-ecp256
                start_action = none
            }
        }
    }
}
secrets {
    ike-rw {
        id-a = client1.ferrosec.test
        id-b = b.ferrosec.test
        secret = "$FS_PSK"
    }
}
EOF
}

# fs_server NAME EXTRA: ferrosec at b-gw as the server of dynamic peers with identity
# client1.ferrosec.test, handing out $POOL; EXTRA goes into config-payload.
fs_server() {
    fs_conf "$1" local="$B_WAN" peer=dynamic local_id=b.ferrosec.test peer_id=client1.ferrosec.test \
        passive=true groups='"group19"' pfs=group19 \
        proxy_ids="{ name = \"rw\", local = \"$B_LAN\", remote = \"$POOL\" }" routes=' ' \
        gateway="config-payload = { pool = \"$POOL\", dns = [\"10.2.0.53\"], subnets = [\"$B_LAN\"]$2 }"
}

# --- 1. strongSwan client, ferrosec server --------------------------------------------------
fs_server srv ""
fx_check "1: config check accepts the server's configuration" \
    eval '"$FS_BIN" config check "$(fs_dir srv)/ferrosec.toml" >"$FX_WORK/check-srv.out" 2>&1'
fs_start srv b-gw
sw_client swc 0.0.0.0
FX_SW_MBB=yes fx_sw_start swc a-gw
fx_check "1: strongSwan (vips = 0.0.0.0) initiates and establishes the tunnel" \
    eval 'fx_sw_swanctl swc --initiate --child net --timeout 15 >"$FX_WORK/init1.out" 2>&1'
fx_check "1: strongSwan installed the virtual IP $VIP it got (its log; the address on its TUN device)" \
    fx_wait 10 eval 'grep -q "installing new virtual IP $VIP" "$(fx_sw_dir swc)/charon.log" &&
        fx_in a-gw ip -o addr show | fx_has " $VIP/"'
fx_check "1: show vpn ike-sa --json: virtual-ip $VIP, from the pool" \
    eval '[ "$(fs_json_value srv "[0][\"virtual-ip\"]" show vpn ike-sa)" = "$VIP" ] &&
        [ "$(fs_json_value srv "[0][\"virtual-ip-from\"]" show vpn ike-sa)" = pool ]'
fx_check "1: show vpn ike-sa (text) shows the address, DNS and subnet" \
    eval 'fs srv show vpn ike-sa | fx_has "configuration payload: address $VIP assigned to the peer from our pool; DNS 10.2.0.53; subnets $B_LAN"'
fx_check "1: the system log says which address went to which identity" \
    fs_log_has srv "address $VIP assigned to peer fqdn:client1.ferrosec.test"
fx_check "1: the IPsec SA's remote side is narrowed to the virtual IP" \
    eval 'fs srv show system log | fx_has "remote \[$VIP/32\]"'
fx_check "1: ferrosec routes the pool into tunnel.1 by itself" \
    eval 'fx_in b-gw ip route show | fx_has "^$POOL dev tunnel.1"'
fx_check "1: a-gw pings b-host from its virtual IP through the tunnel" \
    fx_wait 10 eval 'fx_in a-gw ping -c 2 -W 2 -i 0.2 -q -I "$VIP" "$B_HOST" >/dev/null 2>&1'
fx_check "1: b-host pings the virtual IP back through the tunnel" \
    fx_wait 10 fx_ping b-host "$VIP" 2
# An IKE SA rekey by strongSwan: the address goes with the new IKE SA.
fx_sw_swanctl swc --rekey --ike rw >/dev/null 2>&1 || true
fx_check "1: after strongSwan's IKE SA rekey, the new IKE SA shows $VIP and traffic flows" \
    fx_wait 10 eval 'fs_log_has srv "IKE SA rekeyed" &&
        [ "$(fs_json_value srv "[0][\"virtual-ip\"]" show vpn ike-sa)" = "$VIP" ] &&
        fx_in a-gw ping -c 1 -W 2 -q -I "$VIP" "$B_HOST" >/dev/null 2>&1'
# A re-authentication by strongSwan (make-before-break): the new IKE SA gets the same address
# while the old one still holds it; then one IKE SA, one lease.
fx_sw_swanctl swc --rekey --ike rw --reauth >/dev/null 2>&1 || true
fx_check "1: after strongSwan's re-authentication: the same address $VIP, one IKE SA, traffic flows" \
    fx_wait 15 eval '[ "$(fs_log_count srv "address $VIP assigned to peer fqdn:client1.ferrosec.test")" -ge 2 ] &&
        [ "$(fs_field "$(fs_ike_json srv)" state | grep -cx established)" = 1 ] &&
        [ "$(fs_json_value srv "[0][\"virtual-ip\"]" show vpn ike-sa)" = "$VIP" ] &&
        fx_in a-gw ping -c 1 -W 2 -q -I "$VIP" "$B_HOST" >/dev/null 2>&1'
fx_sw_swanctl swc --terminate --ike rw --timeout 10 >/dev/null 2>&1 || true
fx_check "1: after strongSwan's delete, ferrosec has no IKE SA" fx_wait 10 fs_no_ike_sa srv
fx_check "1: strongSwan reconnects and gets the same address $VIP again" \
    eval 'fx_sw_swanctl swc --initiate --child net --timeout 15 >"$FX_WORK/init1b.out" 2>&1 &&
        fx_wait 10 eval "[ \"\$(grep -c \"installing new virtual IP $VIP\" \"$(fx_sw_dir swc)/charon.log\")\" -ge 2 ]" &&
        [ "$(fs_log_count srv "address $VIP assigned to peer fqdn:client1.ferrosec.test")" -ge 3 ]'
fx_check "1: and the tunnel carries traffic again" \
    fx_wait 10 eval 'fx_in a-gw ping -c 2 -W 2 -i 0.2 -q -I "$VIP" "$B_HOST" >/dev/null 2>&1'
fx_sw_stop swc
fs_stop srv

# --- 2. required = true, a client without vips ------------------------------------------------
fs_server req ", required = true"
fs_start req b-gw
sw_client swn ""
fx_sw_start swn a-gw
fx_sw_swanctl swn --initiate --child net --timeout 10 >"$FX_WORK/init2.out" 2>&1 || true
fx_check "2: ferrosec refuses the peer without a configuration payload, in words" \
    fx_wait 10 fs_log_has req "sent no configuration payload (CFG_REQUEST), which config-payload.required demands; answered FAILED_CP_REQUIRED"
fx_check "2: strongSwan received FAILED_CP_REQUIRED and has no IPsec SA" \
    eval 'grep -q "FAILED_CP_REQUIRED" "$(fx_sw_dir swn)/charon.log" && ! fx_sw_swanctl swn --list-sas 2>/dev/null | fx_has INSTALLED'
fx_sw_stop swn
fs_stop req

# --- 3. strongSwan server (pools), ferrosec client -----------------------------------------
dir=$(fx_sw_dir sws); mkdir -p "$dir"
cat >"$dir/swanctl.conf" <<EOF
connections {
    rw {
        version = 2
        local_addrs = $B_WAN
        remote_addrs = %any
        proposals = aes256-sha256-ecp256
        pools = p4
        local { auth = psk
                id = b.ferrosec.test }
        remote { auth = psk
                 id = a.ferrosec.test }
        children {
            net {
                local_ts = $B_LAN
                esp_proposals = aes256gcm16-ecp256
            }
        }
    }
}
pools {
    p4 {
        addrs = $SW_POOL
        dns = 10.2.0.53
        subnet = $B_LAN
    }
}
secrets {
    ike-rw {
        id-a = a.ferrosec.test
        id-b = b.ferrosec.test
        secret = "$FS_PSK"
    }
}
EOF
fx_sw_start sws b-gw
fs_conf cli local="$A_WAN" peer="$B_WAN" groups='"group19"' pfs=group19 \
    proxy_ids="{ name = \"lan\", local = \"0.0.0.0/0\", remote = \"$B_LAN\" }" routes=' ' \
    gateway='config-payload = { request = true }'
fx_check "3: config check accepts the client's configuration" \
    eval '"$FS_BIN" config check "$(fs_dir cli)/ferrosec.toml" >"$FX_WORK/check-cli.out" 2>&1'
fs_start cli a-gw
fx_check "3: ferrosec (request = true) brings the tunnel up" \
    eval 'fs cli test vpn ipsec-sa tunnel to-b >"$FX_WORK/test3.out" 2>&1'
fx_check "3: strongSwan assigned $SW_VIP to a.ferrosec.test (its log)" \
    fx_wait 10 eval 'grep -q "assigning virtual IP $SW_VIP to peer .a.ferrosec.test." "$(fx_sw_dir sws)/charon.log"'
fx_check "3: show vpn ike-sa --json: virtual-ip $SW_VIP from the peer, DNS and subnet" \
    eval '[ "$(fs_json_value cli "[0][\"virtual-ip\"]" show vpn ike-sa)" = "$SW_VIP" ] &&
        [ "$(fs_json_value cli "[0][\"virtual-ip-from\"]" show vpn ike-sa)" = peer ] &&
        [ "$(fs_json_value cli "[0][\"dns\"]" show vpn ike-sa)" = 10.2.0.53 ] &&
        [ "$(fs_json_value cli "[0][\"subnets\"]" show vpn ike-sa)" = "$B_LAN" ]'
fx_check "3: the address is on tunnel.1 and the subnet routed through it from the address" \
    fx_wait 5 eval 'fx_in a-gw ip -o addr show dev tunnel.1 | fx_has " $SW_VIP/32" &&
        fx_in a-gw ip route show | fx_has "^$B_LAN dev tunnel.1 .*src $SW_VIP"'
fx_check "3: the IPsec SA's local side is the address" \
    eval 'fs cli show system log | fx_has "local \[$SW_VIP/32\] remote \[$B_LAN\]"'
fx_check "3: a-gw pings b-host from the address through the tunnel" \
    fx_wait 10 fx_ping a-gw "$B_HOST" 2
fx_check "3: b-host pings the address back through the tunnel" \
    fx_wait 10 fx_ping b-host "$SW_VIP" 2
fs cli request vpn rekey ike-sa gateway sw >"$FX_WORK/rekey3.out" 2>&1 || true
fx_check "3: after ferrosec's IKE SA rekey the address stays on tunnel.1, shown on the new IKE SA; traffic flows" \
    fx_wait 10 eval 'fs_log_has cli "IKE SA rekeyed" &&
        [ "$(fs_json_value cli "[0][\"virtual-ip\"]" show vpn ike-sa)" = "$SW_VIP" ] &&
        fx_in a-gw ip -o addr show dev tunnel.1 | fx_has " $SW_VIP/32" && fx_ping a-gw "$B_HOST" 1'
fs cli clear vpn ike-sa gateway sw >"$FX_WORK/clear3.out" 2>&1 || true
fx_check "3: clearing the IKE SA takes the address and the route off tunnel.1" \
    fx_wait 10 eval '! fx_in a-gw ip -o addr show dev tunnel.1 | fx_has " $SW_VIP/" &&
        ! fx_in a-gw ip route show | fx_has "^$B_LAN dev tunnel.1"'
fx_check "3: a new IKE SA asks again and gets the same address back, traffic flows" \
    eval 'fs cli test vpn ipsec-sa tunnel to-b >"$FX_WORK/test3b.out" 2>&1 &&
        fx_wait 5 eval "fx_in a-gw ip -o addr show dev tunnel.1 | fx_has \" $SW_VIP/32\"" &&
        fx_wait 10 fx_ping a-gw "$B_HOST" 2'
fs cli show vpn ike-sa | sed 's/^/    /' || true
