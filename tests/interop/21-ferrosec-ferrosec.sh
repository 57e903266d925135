#!/usr/bin/env bash
# ferrosec (a-gw) <-> ferrosec (b-gw), no NAT between them, so ESP travels raw (IP protocol 50):
#   - on-demand start: the first ping from a-host brings the IKE SA and the Child SAs up;
#   - two proxy IDs (IPv4 LANs and IPv6 LANs) give two Child SAs under one IKE SA;
#   - ping and TCP (iperf3) through the tunnel, IPv4 and IPv6 inside;
#   - AES-256-GCM, then AES-256-CBC with HMAC-SHA-256 (a second pair of daemons);
#   - both sides count the traffic; no drops;
#   - site A sends raw ESP through its packet socket, past netfilter's output hook; site B
#     drops what its packet ring has read before IP input (an nf_tables table of its own,
#     gone with the daemon); a third pair with esp-packet-ring, esp-packet-socket and
#     esp-early-drop false in [global] sends and receives through the kernel's IP layer;
#   - both sites serve Prometheus metrics (metrics-listen); a real OpenMetrics parser
#     (python3-prometheus-client, tools/metrics-check.py) reads each scrape and every value is
#     checked against `show`: IKE SAs, pairs, packets in and out, negotiations started (by
#     A, answered by B), SAs established and installed, the handshake histogram (one handshake, timed on both sides), build info (the
#     features of `show system info`), process start time (against its uptime), memory, fds;
#   - every `show` command answers --json with an array of kebab-case rows (and a table
#     without it);
#   - site A rekeys the IKE SA, site B the tunnel's two IPsec SAs: each site's metrics count
#     them by kind and side (ours / the peer's) as its system log does, and the per-tunnel
#     packet counters keep the counts of the pairs replaced (they never go down).
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
    sed -i 's|^\[global\]$|[global]\nmetrics-listen = "127.0.0.1:9750"|' "$(fs_dir "a-$tag")/ferrosec.toml" \
        "$(fs_dir "b-$tag")/ferrosec.toml"
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
    fx_check "$tag: site A sends its ESP through a packet socket (nft's output hook sees at most 6 of 20)" \
        esp_by_packet_socket
    fx_check "$tag: show system info says raw ESP comes in through a packet ring, out through a packet socket" \
        eval 'fs a-'"$tag"' show system info | fx_has -F "$A_WAN: in packet ring, out packet socket" &&
              fs_json_value a-'"$tag"' "[0][\"raw-esp\"][0]" show system info | fx_has -F "in packet ring, out packet socket"'
    fx_check "$tag: site B drops the ESP its ring has read before IP input (its nft table counts the pings; show system info names it)" \
        early_drop "$tag"
    fx_check "$tag: GET /metrics: 404 for other paths" \
        eval '[ "$(fx_in a-gw curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1:9750/other)" = 404 ]'
    fx_check "$tag: /metrics at site A (parser) equals show: SAs, packets, handshake, build, process" \
        metrics_vs_show a-gw "a-$tag"
    fx_check "$tag: /metrics at site B (parser) equals show: SAs, packets, handshake, build, process" \
        metrics_vs_show b-gw "b-$tag"
    fx_check "$tag: every show command answers --json with an array of kebab-case rows, and a table" \
        show_json_all "a-$tag"
    fx_check "$tag: site A rekeys the IKE SA, site B the IPsec SAs of to-b; both logs say so" rekey_both "$tag"
    fx_check "$tag: /metrics counts the rekeys by kind and side on both sites, as their logs" \
        rekeys_counted "$tag"
    fs_stop "a-$tag"
    fs_stop "b-$tag"
    fx_check "$tag: the early-drop tables left with the daemons (nft lists none on either gateway)" \
        eval '! fx_in a-gw nft list tables | fx_has ferrosec_esp_ && ! fx_in b-gw nft list tables | fx_has ferrosec_esp_'
}

# early_drop TAG: b-gw's nf_tables table that drops raw ESP to B_WAN before IP input (the
# packet ring has read it) is named by show system info and counts 3 pings' ESP.
early_drop() { fs_early_drop "b-$1" b-gw ip "$B_WAN"; }

# esp_on_wire: nft counters on b-gw's input while a-host pings: ESP (protocol 50) arrives,
# no UDP 4500 does.
esp_on_wire() {
    fx_in b-gw nft -f - <<'NFT' || return 1
table inet fsesp {
    counter esp_in { }
    counter udp_in { }
    chain in {
        type filter hook prerouting priority -600; policy accept;
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

# esp_by_packet_socket: of a-host's 20 pings, at most 6 ESP packets leave a-gw through the IP
# output path (fs_esp_output): the rest through its packet socket.
esp_by_packet_socket() {
    local out
    out=$(fs_esp_output a-gw)
    fx_log "a-gw: ${out:-?} of 20 ESP packets went through the IP output path"
    [ -n "$out" ] && [ "$out" -le 6 ]
}

# metrics_vs_show ROLE NAME: the instance's /metrics, read by a real OpenMetrics parser, says
# what its `show` commands say. Keeps the packet counts in PKT_IN_NAME / PKT_OUT_NAME.
metrics_vs_show() {
    local role=$1 name=$2 f ike pairs flow_in flow_out feats ver uptime now side other
    # Site A started the negotiation (on demand), site B answered it.
    if [ "$role" = a-gw ]; then side=local other=peer; else side=peer other=local; fi
    local wan=$B_WAN; [ "$role" = a-gw ] && wan=$A_WAN
    f="$FX_WORK/metrics-$name.txt"
    fs_scrape "$role" 9750 "$f" || return 1
    ike=$(fs_field "$(fs_ike_json "$name")" state | grep -cx established || true)
    pairs=$(fs_field "$(fs_ipsec_json "$name")" spi-in | grep -c . || true)
    flow_in=$(fs_flow_sum "$name" packets-in); flow_out=$(fs_flow_sum "$name" packets-out)
    feats=$(fs_json_value "$name" '[0]["features"]' show system info)
    ver=$(fs_json_value "$name" '[0]["version"]' show system info)
    uptime=$(fs_json_value "$name" '[0]["uptime"]' show system info); now=$(date +%s)
    printf -v "PKT_IN_${name//-/_}" %s "$flow_in"; printf -v "PKT_OUT_${name//-/_}" %s "$flow_out"
    echo "    show: $ike IKE SA established, $pairs pairs, packets in/out $flow_in/$flow_out, version $ver, uptime ${uptime}s, features $feats"
    [ "$ike" = 1 ] && [ "$pairs" = 2 ] && [ "$flow_in" -gt 100 ] && [ -n "$feats" ] || return 1
    fs_metrics_check "$f" \
        type:ferrosec_ike_sas=gauge type:ferrosec_tunnel_packets=counter type:ferrosec_build_info=gauge \
        type:ferrosec_ike_handshake_duration_seconds=histogram type:process_cpu_seconds=counter \
        "ferrosec_ike_sas{gateway=sw,version=ikev2,state=established} == $ike" \
        "ferrosec_ike_sas == $ike" \
        "ferrosec_ipsec_sa_pairs == $pairs" \
        "ferrosec_ipsec_sa_pairs{tunnel=to-b,proxy_id=lan4} == 1" \
        "ferrosec_ipsec_sa_pairs{tunnel=to-b,proxy_id=lan6} == 1" \
        "ferrosec_tunnel_packets_total{tunnel=to-b,direction=in} == $flow_in" \
        "ferrosec_tunnel_packets_total{tunnel=to-b,direction=out} == $flow_out" \
        "ferrosec_tunnel_packets_total{tunnel=to-b,proxy_id=lan4,direction=in} > 0" \
        "ferrosec_ike_sas_established_total{gateway=sw,version=ikev2} == 1" \
        "ferrosec_negotiations_started_total{version=ikev2,side=$side} == 1" \
        "absent:ferrosec_negotiations_started_total{side=$other}" \
        "ferrosec_ipsec_sas_installed_total{tunnel=to-b,kind=new} == 2" \
        "ferrosec_ike_handshake_duration_seconds_count{gateway=sw,version=ikev2} == 1" \
        "ferrosec_ike_handshake_duration_seconds_sum{gateway=sw,version=ikev2} > 0" \
        "ferrosec_ike_handshake_duration_seconds_sum{gateway=sw,version=ikev2} < 5" \
        "ferrosec_ike_handshake_duration_seconds_bucket{gateway=sw,version=ikev2,le=+Inf} == 1" \
        "ferrosec_build_info{version=$ver,features=\"$feats\"} == 1" \
        "ferrosec_raw_esp_path{address=$wan,receive=packet-ring,send=packet-socket,early_drop=true} == 1" \
        "ferrosec_raw_esp_path == 1" \
        "process_start_time_seconds >= $((now - uptime - 3))" \
        "process_start_time_seconds <= $((now - uptime + 3))" \
        "process_resident_memory_bytes > 1000000" "process_open_fds >= 5" \
        "process_cpu_seconds_total > 0" \
        absent:ferrosec_rekeys_total absent:ferrosec_liveness_failures_total \
        absent:ferrosec_negotiations_failed_total
}

# show_json_all NAME: every show command answers --json with a JSON array of objects whose
# keys are kebab-case (non-empty, but for the security rules this file has none of), and
# prints a table without --json.
show_json_all() {
    local name=$1 cmd out bad=0
    for cmd in "vpn ike-sa" "vpn ipsec-sa" "vpn flow" "vpn ike-counters" "vpn tunnel" \
        "security rules" "system info" "system log"; do
        # shellcheck disable=SC2086
        if ! out=$(fs "$name" --json show $cmd 2>&1); then
            echo "    show $cmd --json failed: $out"; bad=1; continue
        fi
        /usr/bin/python3 -c '
import json, sys
rows = json.load(sys.stdin)
assert isinstance(rows, list), "not an array"
assert rows or sys.argv[1] == "security rules", "no rows"
for r in rows:
    assert isinstance(r, dict), "a row is not an object"
    for k in r:
        assert k == k.lower() and "_" not in k and " " not in k, "key %r is not kebab-case" % k
print("    show %s --json: %d row(s)" % (sys.argv[1], len(rows)))' "$cmd" <<<"$out" ||
            { echo "    show $cmd --json: not an array of kebab-case rows"; bad=1; }
        # shellcheck disable=SC2086
        fs "$name" show $cmd >/dev/null 2>&1 || { echo "    show $cmd (table) failed"; bad=1; }
    done
    return "$bad"
}

# rekey_both TAG: A rekeys the IKE SA, B the two IPsec SAs of to-b; bounded wait for both
# logs to say so (IKE SA rekeyed once, IPsec SA rekeyed twice, on each side).
rekey_both() {
    local tag=$1
    fs "a-$tag" request vpn rekey ike-sa gateway sw >/dev/null || return 1
    fx_wait 10 eval '[ "$(fs_log_count a-'"$tag"' "IKE SA rekeyed")" = 1 ] && [ "$(fs_log_count b-'"$tag"' "IKE SA rekeyed")" = 1 ]' || return 1
    fs "b-$tag" request vpn rekey ipsec-sa tunnel to-b >/dev/null || return 1
    fx_wait 10 eval '[ "$(fs_log_count a-'"$tag"' "IPsec SA rekeyed")" = 2 ] && [ "$(fs_log_count b-'"$tag"' "IPsec SA rekeyed")" = 2 ]'
}

# rekeys_counted TAG: each site's metrics count the rekeys as its log does, by kind and by the
# side that started them; the packets of the replaced pairs are still counted (no traffic
# since: the counters equal the earlier scrape, though `show vpn flow` starts again from 0).
rekeys_counted() {
    local tag=$1 side role name ike child ok=0 in_var out_var
    for side in a b; do
        role=$side-gw name=$side-$tag
        fs_scrape "$role" 9750 "$FX_WORK/metrics-$name-rekeyed.txt" || return 1
        ike=$(fs_log_count "$name" "IKE SA rekeyed"); child=$(fs_log_count "$name" "IPsec SA rekeyed")
        in_var=PKT_IN_${name//-/_}; out_var=PKT_OUT_${name//-/_}
        echo "    site $side: its log has $ike IKE SA and $child IPsec SA rekeys; packets in/out before ${!in_var}/${!out_var}, show vpn flow now $(fs_flow_sum "$name" packets-in)/$(fs_flow_sum "$name" packets-out)"
        [ "$ike" = 1 ] && [ "$child" = 2 ] || ok=1
        local ours theirs
        if [ "$side" = a ]; then ours=ike-sa theirs=ipsec-sa; else ours=ipsec-sa theirs=ike-sa; fi
        local n_ours=$ike n_theirs=$child
        [ "$side" = b ] && { n_ours=$child; n_theirs=$ike; }
        fs_metrics_check "$FX_WORK/metrics-$name-rekeyed.txt" \
            type:ferrosec_rekeys=counter \
            "ferrosec_rekeys_total{gateway=sw,kind=$ours,side=local} == $n_ours" \
            "ferrosec_rekeys_total{gateway=sw,kind=$theirs,side=peer} == $n_theirs" \
            "absent:ferrosec_rekeys_total{kind=$ours,side=peer}" \
            "absent:ferrosec_rekeys_total{kind=$theirs,side=local}" \
            "absent:ferrosec_rekeys_total{kind=reauthentication}" \
            "ferrosec_ipsec_sas_installed_total{tunnel=to-b,kind=rekey} == $child" \
            "ferrosec_ike_sas{state=established} == 1" "ferrosec_ipsec_sa_pairs == 2" \
            "ferrosec_tunnel_packets_total{tunnel=to-b,direction=in} >= ${!in_var}" \
            "ferrosec_tunnel_packets_total{tunnel=to-b,direction=out} >= ${!out_var}" || ok=1
    done
    return "$ok"
}

# esp_seen GW HOOK: nft on GW counts the ESP of 10 pings at HOOK (input or output), the
# kernel's IP path; prints the count.
esp_seen() {
    fx_in "$1" nft -f - <<NFT || return 1
table inet fsk {
    counter seen { }
    chain c {
        type filter hook $2 priority 0; policy accept;
        meta l4proto esp counter name seen
    }
}
NFT
    fx_in a-host ping -c 10 -i 0.05 -W 2 -q "$B_HOST" >/dev/null 2>&1
    fx_in "$1" nft list counter inet fsk seen | grep -o 'packets [0-9]*' | awk '{print $2}'
    fx_in "$1" nft delete table inet fsk
}

# kernel_paths: a pair with esp-packet-ring, esp-packet-socket and esp-early-drop false in
# [global]: raw ESP goes through the kernel's IP layer both ways, netfilter's hooks see it,
# and the daemons make no nf_tables table.
kernel_paths() {
    local tag=k
    fs_pair_conf "a-$tag" "b-$tag" "$A_WAN" "$A_WAN" esp_encr='"aes-256-gcm"' esp_auth='"none"'
    sed -i 's|^\[global\]$|[global]\nesp-packet-ring = false\nesp-packet-socket = false\nesp-early-drop = false|' \
        "$(fs_dir "a-$tag")/ferrosec.toml" "$(fs_dir "b-$tag")/ferrosec.toml"
    fx_check "$tag: config check says raw ESP goes through the kernel's IP layer" \
        eval '"$FS_BIN" config check "$(fs_dir a-'"$tag"')/ferrosec.toml" | fx_has -F "through the kernel'"'"'s IP layer: esp-packet-ring, esp-packet-socket, esp-early-drop off"'
    fs_start "a-$tag" a-gw
    fs_start "b-$tag" b-gw
    fx_check "$tag: pings a-host -> b-host bring the tunnel up" fx_wait 15 ping4 1
    fx_check "$tag: show system info says raw socket both ways on both sites, no table" \
        eval 'fs a-'"$tag"' show system info | fx_has -F "$A_WAN: in raw socket, out raw socket" &&
              fs b-'"$tag"' show system info | fx_has -F "$B_WAN: in raw socket, out raw socket" &&
              ! fs b-'"$tag"' show system info | fx_has "dropped before IP input"'
    fx_check "$tag: no ferrosec_esp_ table on either gateway" \
        eval '! fx_in a-gw nft list tables | fx_has ferrosec_esp_ && ! fx_in b-gw nft list tables | fx_has ferrosec_esp_'
    local n
    n=$(esp_seen b-gw input || true)
    fx_check "$tag: b-gw's input hook sees the ESP of 10 pings (${n:-?})" eval '[ "${n:-0}" -ge 10 ]'
    n=$(esp_seen a-gw output || true)
    fx_check "$tag: a-gw's output hook sees the ESP of 10 pings (${n:-?})" eval '[ "${n:-0}" -ge 10 ]'
    fs_stop "a-$tag"
    fs_stop "b-$tag"
}

run_pair gcm aes-256-gcm esp_encr='"aes-256-gcm"' esp_auth='"none"'
run_pair cbc aes-256-cbc esp_encr='"aes-256-cbc"' esp_auth='"sha256"'
kernel_paths
