#!/usr/bin/env bash
# ferrosec (a-gw) <-> ferrosec (b-gw) with a byte lifetime (the IPSec crypto profile's lifesize,
# R-DP-7): near 4 MB (90 % sent, 95 % received) on a Child SA, the side that counted it rekeys
# the pair (make-before-break), so a TCP transfer much larger than the lifesize crosses several
# rekeys and completes; the tunnel keeps one pair per proxy ID; pings pass afterwards.
# Every wait is bounded.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

fx_topology plain
fs_lan6

ping4() { fx_ping a-host "$B_HOST" 1; }
ping_all() { fx_in "$1" ping -c "$3" -W 2 -i 0.1 "$2" 2>/dev/null | fx_has " $3 received"; }
# rekeys NAME: how many volume rekeys the side started.
rekeys() { fs "$1" show system log 2>/dev/null | grep -c "near its lifesize (90 % sent or 95 % received); rekeying" || true; }
spis() { fs_spi_in "$1"; }

fs_pair_conf a b "$A_WAN" "$A_WAN" profile='lifesize = "4MB"'
fs_start a a-gw
fs_start b b-gw
fx_check "lifesize: pings bring the tunnel up" fx_wait 15 ping4
before=$(spis a)
fx_check "lifesize: TCP (iperf3 2 s, many times the lifesize) crosses the rekeys and completes" \
    fs_tcp a-host "$B_HOST" b-host
fx_check "lifesize: the sides rekeyed by volume (a: $(rekeys a), b: $(rekeys b) at the time)" \
    fx_wait 10 eval '[ $(( $(rekeys a) + $(rekeys b) )) -ge 2 ]'
fx_check "lifesize: new SPIs after the transfer" eval '[ "$(spis a)" != "$before" ]'
fx_check "lifesize: still one pair per proxy ID on both sides" \
    fx_wait 10 eval '[ "$(fs_count a proxy-id lan4)" = 1 ] && [ "$(fs_count b proxy-id lan4)" = 1 ]'
fx_check "lifesize: IPv4 ping a-host -> b-host, 10 of 10 answered afterwards" ping_all a-host "$B_HOST" 10
fs a show system log | grep -m 4 -E "lifesize|rekeyed" | cut -c1-200 | sed "s/^/    /" || true
fs_stop a
fs_stop b
