#!/usr/bin/env bash
# The harness proves itself: two strongSwan gateways bring up an IKEv2 tunnel across the
# namespaces (plain, then through a NAT), and a ping from site A's host reaches site B's host
# only through it. When this passes and a ferrosec scenario fails, the fault is ferrosec's.
source "$(dirname "$0")/lib.sh"
fx_init

initiate() {
    fx_sw_swanctl "$1" --initiate --child net --timeout 20 >"$FX_WORK/initiate-$1.out" 2>&1
}

no_route() { ! fx_ping a-host "$B_HOST" 1; }
udp_encapsulated() { fx_sw_swanctl "$1" --list-sas | fx_has 'TUNNEL-in-UDP'; }

run() {
    local mode=$1
    FX_PREFIX="fx$$-$mode-"
    fx_topology "$mode"
    fx_check "$mode: no route between the LANs before the tunnel" no_route
    fx_sw_conf "b-$mode" local="$B_WAN" remote=%any local_ts="$B_LAN" remote_ts="$A_LAN" \
        local_id=b.ferrosec.test remote_id=a.ferrosec.test
    fx_sw_conf "a-$mode" local="$(fx_a_local)" remote="$B_WAN" local_ts="$A_LAN" remote_ts="$B_LAN" \
        local_id=a.ferrosec.test remote_id=b.ferrosec.test
    fx_sw_start "b-$mode" b-gw
    fx_sw_start "a-$mode" a-gw
    fx_check "$mode: IKEv2 tunnel up" initiate "a-$mode"
    fx_check "$mode: ping a-host -> b-host through the tunnel" fx_wait 10 fx_ping a-host "$B_HOST" 2
    fx_check "$mode: b-gw sees ESP-in-UDP" udp_encapsulated "b-$mode"
    fx_sw_stop "a-$mode"
    fx_sw_stop "b-$mode"
}

run plain
run nat
