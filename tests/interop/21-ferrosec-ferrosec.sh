#!/usr/bin/env bash
# ferrosec (a-gw) <-> ferrosec (b-gw), no NAT between them, so ESP travels raw (IP protocol 50):
#   - on-demand start: the first ping from a-host brings the IKE SA and the Child SAs up;
#   - two proxy IDs (IPv4 LANs and IPv6 LANs) give two Child SAs under one IKE SA;
#   - ping and TCP (iperf3) through the tunnel, IPv4 and IPv6 inside;
#   - AES-256-GCM, then AES-256-CBC with HMAC-SHA-256 (a second pair of daemons);
#   - both sides count the traffic; no drops;
#   - site A serves Prometheus metrics (metrics-listen): the IKE SA, both pairs, their
#     traffic and the negotiation counters are there.
# Every wait is bounded; the file runs in well under a minute.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

fx_topology plain
fs_lan6

ping4() { fx_ping a-host "$B_HOST" "${1:-3}"; }
# One echo request, sent before any SA exists: answered only if it was held, not dropped.
first_ping() { fx_in a-host ping -c 1 -W 5 -q "$B_HOST" >/dev/null 2>&1; }
ping6() { fx_in a-host ping -6 -c "${1:-3}" -W 2 -i 0.2 -q "$B_HOST6" >/dev/null 2>&1; }
ping6_back() { fx_in b-host ping -6 -c "${1:-3}" -W 2 -i 0.2 -q "$A_HOST6" >/dev/null 2>&1; }
# ping_all FROM TO N: N pings, every one answered.
ping_all() { fx_in "$1" ping -c "$3" -W 2 -i 0.1 "$2" 2>/dev/null | fx_has " $3 received"; }
one_ike_two_children() {
    [ "$(fs_field "$(fs_ike_json "$1")" state | grep -cx established)" = 1 ] &&
        [ "$(fs_count "$1" proxy-id lan4)" = 1 ] && [ "$(fs_count "$1" proxy-id lan6)" = 1 ]
}

# run_pair TAG esp_encr=… esp_auth=…: one pair of daemons, the checks, then both stopped.
run_pair() {
    local tag=$1 encr=$2; shift 2
    fs_pair_conf "a-$tag" "b-$tag" "$A_WAN" "$A_WAN" "$@"
    sed -i 's|^\[global\]$|[global]\nmetrics-listen = "127.0.0.1:9750"|' "$(fs_dir "a-$tag")/ferrosec.toml"
    fs_start "a-$tag" a-gw
    fs_start "b-$tag" b-gw
    fx_check "$tag: no SA before any traffic" eval 'fs_no_ike_sa a-'"$tag"' && fs_no_ike_sa b-'"$tag"
    fx_check "$tag: on demand: the very first packet waits for the negotiation and is answered" first_ping
    fx_check "$tag: on demand: pings from a-host bring the tunnel up (IPv4)" fx_wait 15 ping4 1
    fx_check "$tag: on demand: the system log of site A says why it started" \
        fs_log_has "a-$tag" "negotiation started with $B_WAN:500 (on demand: traffic for ipsec-tunnel to-b)"
    fx_check "$tag: site B did not initiate (it only answered)" \
        eval '! fs_log_has b-'"$tag"' "negotiation started"'
    fx_check "$tag: IPv6 inside: ping6 a-host -> b-host (the lan6 Child SA on demand)" fx_wait 15 ping6 1
    fx_check "$tag: one IKE SA and two Child SAs (lan4, lan6) on both sides" \
        fx_wait 10 eval 'one_ike_two_children a-'"$tag"' && one_ike_two_children b-'"$tag"
    fx_check "$tag: no NAT: encapsulation esp (raw ESP) on both sides, local-nat/peer-nat false" \
        eval '[ "$(fs_count a-'"$tag"' encapsulation esp)" = 2 ] && [ "$(fs_count b-'"$tag"' encapsulation esp)" = 2 ] &&
              ! fs_field "$(fs_ike_json a-'"$tag"')" peer-nat | fx_has -x true'
    fx_check "$tag: Child SAs use $encr" eval '[ "$(fs_count a-'"$tag"' encryption '"$encr"')" = 2 ]'
    fx_check "$tag: IPv4 ping a-host -> b-host, 10 of 10 answered" ping_all a-host "$B_HOST" 10
    fx_check "$tag: IPv4 ping b-host -> a-host" fx_ping b-host "$A_HOST" 3
    fx_check "$tag: IPv6 ping b-host -> a-host" ping6_back 3
    fx_check "$tag: TCP (iperf3 2 s) over IPv4 a-host -> b-host" fs_tcp a-host "$B_HOST" b-host
    fx_check "$tag: TCP (iperf3 2 s) over IPv6 a-host -> b-host" fs_tcp a-host "$B_HOST6" b-host
    fx_check "$tag: both sides count packets in and out" \
        eval '[ "$(fs_flow_sum a-'"$tag"' packets-in)" -gt 100 ] && [ "$(fs_flow_sum a-'"$tag"' packets-out)" -gt 100 ] &&
              [ "$(fs_flow_sum b-'"$tag"' packets-in)" -gt 100 ] && [ "$(fs_flow_sum b-'"$tag"' packets-out)" -gt 100 ]'
    fx_check "$tag: on the wire it is IP protocol 50 (nft counts ESP into b-gw, no UDP 4500)" esp_on_wire
    fx_check "$tag: GET /metrics at site A: IKE SA, both pairs, traffic, negotiation counters" metrics_ok "a-$tag"
    fs_stop "a-$tag"
    fs_stop "b-$tag"
}

# esp_on_wire: nft counters on b-gw's input while a-host pings: ESP (protocol 50) arrives,
# no UDP 4500 does.
esp_on_wire() {
    fx_in b-gw nft -f - <<'NFT' || return 1
table inet fsesp {
    counter esp_in { }
    counter udp_in { }
    chain in {
        type filter hook input priority 0; policy accept;
        meta l4proto esp counter name esp_in
        udp dport 4500 counter name udp_in
    }
}
NFT
    fx_ping a-host "$B_HOST" 3 || return 1
    local esp udp
    esp=$(fx_in b-gw nft list counter inet fsesp esp_in | grep -o 'packets [0-9]*' | awk '{print $2}')
    udp=$(fx_in b-gw nft list counter inet fsesp udp_in | grep -o 'packets [0-9]*' | awk '{print $2}')
    fx_in b-gw nft delete table inet fsesp
    [ "${esp:-0}" -ge 3 ] && [ "${udp:-1}" = 0 ]
}

# metrics_ok: site A's /metrics (metrics-listen 127.0.0.1:9750 in its namespace) shows what
# show vpn shows.
metrics_ok() {
    local m
    m=$(fx_in a-gw curl -s --max-time 5 http://127.0.0.1:9750/metrics) || return 1
    grep -E '^ferrosec_(ike_sas|ipsec_sa_pairs|tunnel_packets_total|ike_sas_established_total)\b' <<<"$m" |
        head -8 | sed 's/^/    /'
    grep -q '^ferrosec_ike_sas{gateway="sw",version="ikev2",state="established"} 1$' <<<"$m" &&
        grep -q '^ferrosec_ipsec_sa_pairs{tunnel="to-b",proxy_id="lan4"} 1$' <<<"$m" &&
        grep -q '^ferrosec_ipsec_sa_pairs{tunnel="to-b",proxy_id="lan6"} 1$' <<<"$m" &&
        grep -qE '^ferrosec_tunnel_packets_total\{tunnel="to-b",proxy_id="lan4",direction="in"\} [1-9]' <<<"$m" &&
        grep -q '^ferrosec_ike_sas_established_total{gateway="sw",version="ikev2"} 1$' <<<"$m" &&
        grep -q '^ferrosec_ipsec_sas_installed_total{tunnel="to-b",kind="new"} 2$' <<<"$m" &&
        [ "$(fx_in a-gw curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9750/other)" = 404 ] &&
        metrics_parse_and_match "$m" "$1"
}

# metrics_parse_and_match TEXT NAME: a real OpenMetrics parser (Debian's
# python3-prometheus-client) reads the scrape, and its packets in and out of the tunnel equal
# what `show vpn flow` says (the traffic has stopped by now).
metrics_parse_and_match() {
    local sums flow_in flow_out
    sums=$(/usr/bin/python3 -c '
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
for n in ("ferrosec_ike_sas", "ferrosec_tunnel_packets", "ferrosec_build_info"):
    assert n in fams, n
pk = fams["ferrosec_tunnel_packets"]
assert pk.type == "counter", pk.type
s = {"in": 0, "out": 0}
for x in pk.samples:
    if x.name.endswith("_total"):
        s[x.labels["direction"]] += int(x.value)
print(s["in"], s["out"])' <<<"$1") || return 1
    flow_in=$(fs_flow_sum "$2" packets-in); flow_out=$(fs_flow_sum "$2" packets-out)
    echo "    OpenMetrics parser: packets in/out $sums; show vpn flow: $flow_in $flow_out"
    [ "$sums" = "$flow_in $flow_out" ]
}

run_pair gcm aes-256-gcm esp_encr='"aes-256-gcm"' esp_auth='"none"'
run_pair cbc aes-256-cbc esp_encr='"aes-256-cbc"' esp_auth='"sha256"'
