#!/usr/bin/env bash
# interop: alone (a line-rate flood: its ping and read-share bounds need the CPU to itself)
# Bad input at line rate against a ferrosec gateway (site A) with tunnels up to ferrosec at site
# B (raw ESP, no NAT): an ESP tunnel (10.1.0.0/24 <-> 10.2.0.0/24) and an AH tunnel (10.91.0.0/24
# <-> 10.92.0.0/24) on one IKE SA. From an address of its own on b-gw's WAN (198.51.100.77, not
# the peer's), `wan-flood` (crates/bench) sends, as fast as one thread can, nine kinds in turn:
# random and truncated datagrams to UDP 500; truncated ones, the non-ESP marker with lying IKE,
# and ESP with unknown SPIs to UDP 4500; raw ESP (protocol 50) and raw AH (51) with unknown SPIs,
# and with the tunnels' real inbound SPIs and bad ICVs. Meanwhile a-host pings through a tunnel
# every 0.2 s, and the CLI asks `show vpn ike-sa` every second.
#   phase "all": every kind for 30 s, pings through the ESP tunnel;
#   phase "esp-udp": UDP 500/4500 and raw ESP for 6 s, pings through the AH tunnel.
# Checks:
#   - the daemon stays up, and every `show` during the floods answers within 5 s;
#   - a's RSS grows by less than 32 MiB (before, max and after printed, and a's CPU share);
#   - every packet is accounted for, by reason: the counters of `show vpn flow --json` grow by
#     at least 90 % of what each kind should produce (ike-malformed, natt-malformed and
#     unknown-spi in the `(no SA)` row, auth-failed on the ESP and on the AH SA), less what the
#     kernel dropped at that socket's full receive buffer (socket-full-udp500, -udp4500, -esp,
#     -ah in the same row, from SO_MEMINFO), and by no more than was sent; sent and counted
#     packets/s printed;
#   - no socket starves: of the receive worker's sockets (UDP 4500, raw ESP, raw AH), the least
#     read under the flood gets at least 1/4 of the best-read one's share (a fixed serving
#     order read 3 % of raw AH against 80-96 % of UDP 4500);
#   - pings: the ESP tunnel's packets share the raw ESP socket's queue with the flood, so they
#     are dropped in the same proportion when the daemon cannot read it all (how much it reads
#     depends on the machine and the build: printed); the bound is that share less 10 points
#     for the bursts, and at least 10 %. Through the AH tunnel, whose socket is not flooded in
#     phase "esp-udp", at least 95 % of the pings are answered;
#   - afterwards the tunnel carries pings, the IKE SA is the same one, and the system log sums
#     the drops up by reason.
# Wall time about 60 s.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init
FLOOD=${WAN_FLOOD_BIN:-$(dirname "$FS_BIN")/wan-flood}
[ -x "$FLOOD" ] || { echo "no wan-flood at $FLOOD (cargo build -p ferrosec-bench, or set WAN_FLOOD_BIN)" >&2; exit 1; }
SECONDS_FLOOD=${FLOOD_SECONDS:-30}
RSS_BOUND_KIB=$((32 * 1024))
ATTACKER=198.51.100.77

fx_topology plain
fx_in b-gw ip addr add "$ATTACKER/24" dev wan0
# A second tunnel, AH, on the same IKE SA (selectors that no traffic uses).
ah_tunnel() {
    cat <<EOF
[ipsec-crypto-profile.ah]
protocol = "ah"
authentication = ["sha256"]
dh-group = "group14"
lifetime = "1h"

[ipsec-tunnel.to-b-ah]
tunnel-interface = "tunnel.1"
ike-gateway = "sw"
ipsec-crypto-profile = "ah"
proxy-id = [ { name = "ah", local = "$1", remote = "$2" } ]
EOF
}
# The AH tunnel joins a second pair of LANs: 10.91.0.0/24 on a's LAN side, 10.92.0.0/24 on b's.
A_AH_HOST=10.91.0.10 B_AH_HOST=10.92.0.10
fx_in a-gw ip addr add 10.91.0.1/24 dev lan0
fx_in a-host ip addr add "$A_AH_HOST/24" dev eth0
fx_in b-gw ip addr add 10.92.0.1/24 dev lan0
fx_in b-host ip addr add "$B_AH_HOST/24" dev eth0
route() { printf '{ name = "%s", destination = "%s", interface = "tunnel.1" }' "$@"; }
fs_conf a local="$A_WAN" peer="$B_WAN" extra="$(ah_tunnel 10.91.0.0/24 10.92.0.0/24)" \
    routes="$(route b-lan "$B_LAN"), $(route b-ah 10.92.0.0/24)"
fs_conf b local="$B_WAN" peer="$A_WAN" local_id=b.ferrosec.test peer_id=a.ferrosec.test \
    lan_local="$B_LAN" lan_remote="$A_LAN" extra="$(ah_tunnel 10.92.0.0/24 10.91.0.0/24)" \
    routes="$(route a-lan "$A_LAN"), $(route a-ah 10.91.0.0/24)"
fs_start a a-gw
fs_start b b-gw
A_PID=$(cat "$(fs_dir a)/pid")
fx_check "setup: the ESP tunnel comes up and carries pings" \
    eval 'fs a test vpn ipsec-sa tunnel to-b >/dev/null 2>&1 && fx_wait 10 fx_ping a-host "$B_HOST" 2'
ah_ping() { fx_in a-host ping -c 2 -W 2 -i 0.2 -q -I "$A_AH_HOST" "$B_AH_HOST" >/dev/null 2>&1; }
ah_up() { fs_field "$(fs_ipsec_json a)" encapsulation | grep -qx ah; }
fs a test vpn ipsec-sa tunnel to-b-ah >/dev/null 2>&1 || true
fx_check "setup: the AH tunnel comes up and carries pings" \
    eval 'fx_wait 10 ah_up && fx_wait 10 ah_ping'

# spi_in TUNNEL: a's inbound SPI of the tunnel's SA (hex, no 0x).
spi_in() {
    fs a --json show vpn ipsec-sa 2>/dev/null | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    if r["tunnel"] == sys.argv[1]:
        print(r["spi-in"].removeprefix("0x")); break' "$1"
}
ESP_SPI=$(spi_in to-b) AH_SPI=$(spi_in to-b-ah)
echo "    a's inbound SPIs: ESP $ESP_SPI, AH $AH_SPI"
fx_check "the SAs' inbound SPIs are known (ESP and AH)" eval '[ -n "$ESP_SPI" ] && [ -n "$AH_SPI" ]'

rss_kib() { awk '/^VmRSS:/ { print $2; f = 1 } END { if (!f) print 0 }' /proc/"$1"/status 2>/dev/null || echo 0; }
# cpu_ticks PID: user + system clock ticks used so far.
cpu_ticks() { awk '{ print $14 + $15 }' /proc/"$1"/stat 2>/dev/null || echo 0; }

# flood NAME SECONDS SOCKETS FROM TO: wan-flood at SOCKETS for SECONDS while a-host pings TO
# from its address FROM every 0.2 s through a tunnel and a watcher samples a's RSS and asks `show vpn ike-sa` every
# second. Leaves NAME-flood.out, -ping.out, -rss.txt, -show.txt, -flow-before/after.json and
# sets RECEIVED, PINGS, RSS0, RSS1, RSS_MAX, CPU (a's share of one core, %).
flood() {
    local name=$1 secs=$2 sockets=$3 from=$4 to=$5 fpid ppid t0 c0 w0 _
    local out=$FX_WORK/$name
    fs a --json show vpn flow >"$out-flow-before.json" 2>/dev/null
    RSS0=$(rss_kib "$A_PID")
    c0=$(cpu_ticks "$A_PID") w0=$(date +%s%N)
    fx_bg b-gw "$out-flood.out" "$FLOOD" --target "$A_WAN" --source "$ATTACKER" \
        --seconds "$secs" --esp-spi "$ESP_SPI" --ah-spi "$AH_SPI" --sockets "$sockets"
    fpid=$FX_LAST_PID
    PINGS=$((secs * 5))
    fx_bg a-host "$out-ping.out" ping -i 0.2 -W 1 -c "$PINGS" -I "$from" "$to"
    ppid=$FX_LAST_PID
    : >"$out-rss.txt"; : >"$out-show.txt"
    for _ in $(seq "$secs"); do
        rss_kib "$A_PID" >>"$out-rss.txt"
        t0=$(date +%s%N)
        if timeout 5 "$FS_BIN" --socket "$(fs_dir a)/ferrosec.sock" show vpn ike-sa >/dev/null 2>&1; then
            echo "ok $(( ($(date +%s%N) - t0) / 1000000 ))" >>"$out-show.txt"
        else
            echo "failed $(( ($(date +%s%N) - t0) / 1000000 ))" >>"$out-show.txt"
        fi
        kill -0 "$fpid" 2>/dev/null || break
        sleep 0.5
    done
    # Both end on their own (bounded by their arguments); wait at most 10 s more for each.
    for _ in $(seq 50); do kill -0 "$fpid" 2>/dev/null || break; sleep 0.2; done
    CPU=$(( ($(cpu_ticks "$A_PID") - c0) * 100 * 1000000000 / $(getconf CLK_TCK) / ($(date +%s%N) - w0) ))
    for _ in $(seq 50); do kill -0 "$ppid" 2>/dev/null || break; sleep 0.2; done
    # Parked unknown-SPI packets are counted 250 ms after they came.
    sleep 1
    RSS1=$(rss_kib "$A_PID")
    RSS_MAX=$(sort -n "$out-rss.txt" | tail -1)
    [ "${RSS_MAX:-0}" -ge "$RSS1" ] || RSS_MAX=$RSS1
    fs a --json show vpn flow >"$out-flow-after.json" 2>/dev/null
    RECEIVED=$(grep -o '[0-9]* received' "$out-ping.out" | awk '{print $1}')
    RECEIVED=${RECEIVED:-0}
    echo "    $name: flood $(tr -d '\n' <"$out-flood.out" | cut -c1-400)"
    echo "    $name: RSS of a before $RSS0 KiB, max $RSS_MAX KiB, after $RSS1 KiB; a used $CPU % of a core"
    echo "    $name: pings: $RECEIVED of $PINGS answered"
    echo "    $name: show vpn ike-sa: $(awk '{ n++; if ($1 == "ok") ok++; if ($2 > m) m = $2 } END { printf "%d of %d answered, slowest %d ms", ok, n, m }' "$out-show.txt")"
}

# account NAME: sent vs counted per kind (see the header); prints the rates and the read
# share of each socket (READ_ESP: of the raw ESP socket, in %); fails when a reason counted
# less than 90 % of what reached the daemon for it, or more than was sent.
account() {
    local out=$FX_WORK/$1 r
    r=$(python3 - "$out-flood.out" "$out-flow-before.json" "$out-flow-after.json" <<'PY'
import json, sys
flood = json.load(open(sys.argv[1]))
sent, secs = flood["sent"], flood["seconds"]
def rows(path):
    out = {}
    for r in json.load(open(path)):
        key = "nosa" if r["tunnel"] == "(no SA)" else r["tunnel"]
        d = out.setdefault(key, {})
        for k, v in r["drops"].items():
            d[k] = d.get(k, 0) + v
    return out
before, after = rows(sys.argv[2]), rows(sys.argv[3])
def grown(row, reason):
    return after.get(row, {}).get(reason, 0) - before.get(row, {}).get(reason, 0)
sockets = {"udp500": ["udp500-garbage", "udp500-truncated"],
           "udp4500": ["udp4500-truncated", "udp4500-marker-garbage", "udp4500-esp-unknown"],
           "esp": ["esp-unknown", "esp-bad-icv"], "ah": ["ah-unknown", "ah-bad-icv"]}
kernel = {s: grown("nosa", "socket-full-" + s) for s in sockets}
socket_of = {k: s for s, ks in sockets.items() for k in ks}
offered = {s: sum(sent.get(k, 0) for k in ks) for s, ks in sockets.items()}
# The share of a socket's packets the daemon got to read (the rest the kernel dropped).
read = {s: max(0.0, 1 - kernel[s] / offered[s]) if offered[s] else 1.0 for s in sockets}
for s in sockets:
    if offered[s]:
        print(f"    socket {s:7}: sent {offered[s] / secs:9,.0f}/s, dropped by the kernel (receive "
              f"buffer full) {kernel[s] / secs:9,.0f}/s, read by the daemon {read[s]:4.0%}")
reasons = [("nosa", "ike-malformed", ["udp500-garbage", "udp500-truncated", "udp4500-marker-garbage"]),
           ("nosa", "natt-malformed", ["udp4500-truncated"]),
           ("nosa", "unknown-spi", ["udp4500-esp-unknown", "esp-unknown", "ah-unknown"]),
           ("to-b", "auth-failed", ["esp-bad-icv"]),
           ("to-b-ah", "auth-failed", ["ah-bad-icv"])]
ok = True
for row, reason, kinds in reasons:
    n = sum(sent.get(k, 0) for k in kinds)
    if n == 0:
        continue
    expect = sum(sent.get(k, 0) * read[socket_of[k]] for k in kinds)
    got = grown(row, reason)
    good = got >= 0.9 * expect and got <= n
    ok &= good
    print(f"    {'ok ' if good else 'BAD'} {reason:14} ({row:7}): sent {n / secs:9,.0f}/s, expected "
          f"{expect / secs:9,.0f}/s, counted {got / secs:9,.0f}/s ({', '.join(kinds)})")
total_sent = sum(sent.values())
total = sum(grown(r, k) for r, k, _ in reasons) + sum(kernel.values())
print(f"    in all: sent {total_sent:,} ({total_sent / secs:,.0f}/s), accounted for {total:,} "
      f"({total / total_sent:.1%}: counted by reason or as a kernel drop)")
print(f"READ_ESP={round(read['esp'] * 100)}")
# The receive worker's sockets that were flooded: the least-read one's share against the
# best-read one's, in %.
shares = [read[s] for s in ("udp4500", "esp", "ah") if offered[s]]
print(f"FAIRNESS={round(100 * min(shares) / max(max(shares), 1e-9))}")
print("RESULT=" + ("ok" if ok else "bad"))
PY
) || true
    grep -v '^READ_ESP=\|^RESULT=\|^FAIRNESS=' <<<"$r"
    READ_ESP=$(sed -n 's/^READ_ESP=//p' <<<"$r")
    FAIRNESS=$(sed -n 's/^FAIRNESS=//p' <<<"$r")
    grep -qx 'RESULT=ok' <<<"$r"
}

# Phase 1: every kind, 30 s.
flood all "$SECONDS_FLOOD" udp500,udp4500,esp,ah "$A_HOST" "$B_HOST"
fx_check "all: the flood ran (wan-flood reported what it sent)" grep -q '"sent"' "$FX_WORK/all-flood.out"
fx_check "all: site A still runs" kill -0 "$A_PID"
fx_check "all: show answered every time during the flood (within 5 s)" \
    eval '[ -s "$FX_WORK/all-show.txt" ] && ! grep -q failed "$FX_WORK/all-show.txt"'
fx_check "all: RSS of a grew by less than 32 MiB" eval '[ $((RSS_MAX - RSS0)) -lt "$RSS_BOUND_KIB" ]'
fx_check "all: every kind is counted by its reason (>= 90 % of what reached the daemon; kernel drops counted too)" \
    account all
# One receive worker reads UDP 4500, raw ESP and raw AH: none of them may starve the others.
# (Its loop used to serve them in a fixed order, and under this flood read 80-96 % of UDP 4500,
# 47-73 % of raw ESP and 3-4 % of raw AH; now a ready socket is picked at random each time.)
fx_check "all: no socket starved: the least-read flooded socket of the receive worker got >= 1/4 of the best-read one's share (got $FAIRNESS %)" \
    eval '[ "${FAIRNESS:-0}" -ge 25 ]'
# The tunnel's ESP and the flood's raw ESP meet in one socket queue: when the daemon cannot
# read all of it, the kernel drops the tunnel's packets in the same proportion as the flood's
# (what this machine reads depends on its cores and on the build: printed above). The bound:
# the pings lose no more than that share, with a margin of 10 points for the bursts.
fx_check "all: the tunnel kept carrying pings: answered >= (read share of the raw ESP socket - 10 points), and >= 10 %" \
    eval '[ -n "$READ_ESP" ] && [ $((RECEIVED * 100)) -ge $((PINGS * (READ_ESP - 10))) ] && [ "$RECEIVED" -ge $((PINGS / 10)) ]'

# Phase 2: UDP 500/4500 and raw ESP flooded, more than the daemon reads; the pings go through
# the AH tunnel, whose raw AH socket carries nothing else: none of them may be lost to a flood
# on the other sockets.
flood esp-udp 6 udp500,udp4500,esp "$A_AH_HOST" "$B_AH_HOST"
fx_check "esp-udp: every kind is counted by its reason" account esp-udp
fx_check "esp-udp: at least 95 % of the pings through the AH tunnel answered while UDP and ESP are flooded" \
    eval '[ $((RECEIVED * 100)) -ge $((PINGS * 95)) ]'
fx_check "esp-udp: show answered every time (within 5 s)" \
    eval '[ -s "$FX_WORK/esp-udp-show.txt" ] && ! grep -q failed "$FX_WORK/esp-udp-show.txt"'

fx_check "after the flood: the tunnel carries pings, and the IKE SA is the same one" \
    eval 'fx_ping a-host "$B_HOST" 3 && [ "$(fs_field "$(fs_ike_json a)" state | grep -cx established)" = 1 ] &&
          ! fs_log_has a "IKE SA down"'
fx_check "the system log sums the drops up by reason" \
    fx_wait 12 eval 'fs a show system log | grep "dropped in the last" | fx_has "unknown-spi"'
fs a show system log | grep -m 2 "dropped in the last" | cut -c1-300 | sed "s/^/    /" || true
