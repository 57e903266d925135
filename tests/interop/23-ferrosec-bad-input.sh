#!/usr/bin/env bash
# Bad input against a running ferrosec gateway (site A), with a tunnel to ferrosec at site B
# (raw ESP, no NAT). From b-gw, a Python script sends to site A:
#   - UDP 500: random garbage, 3-byte datagrams, IKE headers whose length field lies;
#   - UDP 4500: 2-byte datagrams, the non-ESP marker followed by garbage, ESP with unknown SPIs;
#   - raw ESP (IP protocol 50) with unknown SPIs;
#   - replayed ESP: a real ESP packet of the tunnel (captured on b-gw's wan0) sent again.
# Then: the daemon still runs, each kind of drop is counted in `show vpn flow --json` (the
# `(no SA)` row for drops that belong to no SA, the SA's own row for replays), the system log
# sums them up, and the tunnel still carries pings. Last, SIGHUP with a broken configuration
# file: rejected with a clear error in the system log, the tunnel keeps running.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

fx_topology plain
fs_conf a local="$A_WAN" peer="$B_WAN"
fs_conf b local="$B_WAN" peer="$A_WAN" local_id=b.ferrosec.test peer_id=a.ferrosec.test \
    lan_local="$B_LAN" lan_remote="$A_LAN"
fs_start a a-gw
fs_start b b-gw
fx_check "setup: the tunnel comes up (test vpn ipsec-sa) and carries pings" \
    eval 'fs a test vpn ipsec-sa tunnel to-b >/dev/null 2>&1 && fx_wait 10 fx_ping a-host "$B_HOST" 2'

# drop_sum NAME REASON [ROW]: the count of REASON summed over the rows of show vpn flow --json
# (only the `(no SA)` row with ROW=nosa, only SA rows with ROW=sa).
drop_sum() {
    fs "$1" --json show vpn flow 2>/dev/null | python3 -c '
import json, sys
rows, reason, which = json.load(sys.stdin), sys.argv[1], sys.argv[2]
pick = lambda r: which == "all" or (which == "nosa") == (r["tunnel"] == "(no SA)")
print(sum(r["drops"].get(reason, 0) for r in rows if pick(r)))' "$2" "${3:-all}"
}

fx_in b-gw python3 - "$A_WAN" >"$FX_WORK/inject.out" 2>&1 <<'PY' || true
import os, socket, struct, sys
dst = sys.argv[1]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", 0))
for _ in range(5):
    u.sendto(os.urandom(200), (dst, 500))                       # garbage
    u.sendto(b"\x01\x02\x03", (dst, 500))                         # truncated
    hdr = os.urandom(16) + bytes([33, 0x20, 34, 8]) + b"\0\0\0\0" + struct.pack(">I", 500)
    u.sendto(hdr, (dst, 500))                                     # length field lies
    u.sendto(b"\x00\x01", (dst, 4500))                            # too short for NAT-T
    u.sendto(b"\0\0\0\0" + os.urandom(40), (dst, 4500))           # marker + garbage
    u.sendto(struct.pack(">II", 0xdeadbeef, 1) + os.urandom(60), (dst, 4500))  # unknown SPI
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
for i in range(5):
    r.sendto(struct.pack(">II", 0xfeedf00d, i + 1) + os.urandom(60), (dst, 0))
print("injected")
PY
fx_check "injection ran (garbage, truncated, bad length, NAT-T, unknown SPIs)" grep -q injected "$FX_WORK/inject.out"

# Replay: capture one ESP packet b-gw sends to site A (a ping reply), then send it 5 times more.
fx_bg a-host "$FX_WORK/ping-bg.out" ping -i 0.1 -c 40 "$B_HOST"
fx_in b-gw timeout 10 python3 - "$A_WAN" >"$FX_WORK/replay.out" 2>&1 <<'PY' || true
import socket, sys
dst = sys.argv[1]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("wan0", 0))
while True:
    frame, addr = s.recvfrom(65535)
    if addr[2] != socket.PACKET_OUTGOING or frame[12:14] != b"\x08\x00":
        continue
    ip = frame[14:]
    if ip[9] != 50:
        continue
    ihl = (ip[0] & 15) * 4
    total = int.from_bytes(ip[2:4], "big")
    esp = ip[ihl:total]
    break
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
for _ in range(5):
    r.sendto(esp, (dst, 0))
print("replayed SPI %s seq %d" % (esp[:4].hex(), int.from_bytes(esp[4:8], "big")))
PY
cat "$FX_WORK/replay.out"
fx_check "replay: an ESP packet of the tunnel was captured and sent again 5 times" grep -q replayed "$FX_WORK/replay.out"

fx_check "site A still runs after all of it" kill -0 "$(cat "$(fs_dir a)/pid")"
fx_check "counted: ike-malformed >= 15 (garbage, truncated, bad length on 500; marker+garbage on 4500)" \
    fx_wait 5 eval '[ "$(drop_sum a ike-malformed nosa)" -ge 15 ]'
fx_check "counted: natt-malformed >= 5 (2-byte datagrams on 4500)" \
    eval '[ "$(drop_sum a natt-malformed nosa)" -ge 5 ]'
fx_check "counted: unknown-spi >= 10 (5 in UDP 4500, 5 raw ESP)" \
    eval '[ "$(drop_sum a unknown-spi nosa)" -ge 10 ]'
fx_check "counted: replay >= 5 on the tunnel's SA row" \
    fx_wait 5 eval '[ "$(drop_sum a replay sa)" -ge 5 ]'
fx_check "show vpn flow (table) has the (no SA) row with the reasons" \
    eval 'fs a show vpn flow | grep -E "^\(no SA\)" | fx_has "unknown-spi="'
fx_check "logged: the system log sums up the drops by reason (unknown-spi, replay)" \
    fx_wait 8 eval 'fs a show system log | grep "dropped in the last" | fx_has unknown-spi &&
                    fs a show system log | grep "dropped in the last" | fx_has replay'
fx_check "the tunnel still carries pings, and the IKE SA is the same one" \
    eval 'fx_ping a-host "$B_HOST" 3 && [ "$(fs_field "$(fs_ike_json a)" state | grep -cx established)" = 1 ] &&
          ! fs_log_has a "IKE SA down"'

# SIGHUP with a broken configuration file.
conf=$(fs_dir a)/ferrosec.toml
cp "$conf" "$conf.good"
printf '[ike-gateway.sw]\npeer-address = "not an address"\n[[[broken\n' >>"$conf"
kill -HUP "$(cat "$(fs_dir a)/pid")"
fx_check "SIGHUP with a broken file: rejected with a clear error in the system log" \
    fx_wait 5 eval 'fs a show system log | grep "reload rejected, the running configuration stays in force" | fx_has "ferrosec.toml\|line\|TOML\|toml"'
fx_check "SIGHUP with a broken file: the daemon runs on, the tunnel carries pings" \
    eval 'kill -0 "$(cat "$(fs_dir a)/pid")" && fx_ping a-host "$B_HOST" 3 && fs_ike_established a'
cp "$conf.good" "$conf"
kill -HUP "$(cat "$(fs_dir a)/pid")"
fx_check "SIGHUP with the good file again: reloaded" fx_wait 5 fs_log_has a "configuration reloaded"
fs a show system log | grep -m 3 -E "reload rejected|dropped in the last" | cut -c1-220 | sed "s/^/    /" || true
