#!/usr/bin/env bash
# bench/rekey-under-load.sh — Child SA rekeys during a steady ping flood (issue 7, item 4).
#
# a-host pings b-host every HX_PING_INTERVAL s (default 0.002 = 500 packets/s) through the
# tunnel while HX_REKEYS (100) Child SA rekeys are done one after the other, each waited for
# (new SPIs installed on both sides) before the next. Lost = transmitted - received, from ping's
# own summary. A baseline phase pings as long without rekeys, to separate rekey loss from
# background loss on this shared machine.
#
# Modes (HX_MODES, default "ff fs-sw"):
#   ff     ferrosec <-> ferrosec; rekeys alternate between site A and site B
#          (`request vpn rekey ipsec-sa tunnel to-b`). ESP in UDP (a-gw behind the NAT box)
#          unless HX_FF_TOPO=plain (raw ESP, when the build has it)
#   fs-sw  ferrosec (a-gw) <-> strongSwan 5.9 (b-gw); rekeys alternate between ferrosec and
#          strongSwan (`swanctl --rekey --child net`)
#   sw-sw  strongSwan <-> strongSwan (reference)
# Usage (root): bench/rekey-under-load.sh
# Knobs: HX_REKEYS=100 HX_PING_INTERVAL=0.002 HX_BASELINE=1 HX_MODES="ff fs-sw" FERROSEC_BIN
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TGT=${CARGO_TARGET_DIR:-$ROOT/target}
export FERROSEC_BIN=${FERROSEC_BIN:-$TGT/release/ferrosec}
HX_REKEYS=${HX_REKEYS:-100}
HX_PING_INTERVAL=${HX_PING_INTERVAL:-0.002}
HX_BASELINE=${HX_BASELINE:-1}
HX_MODES=${HX_MODES:-"ff fs-sw"}
HX_FF_TOPO=${HX_FF_TOPO:-nat}
RUN_PREFIX=${FX_PREFIX:-rk$$-}
FX_PREFIX=${RUN_PREFIX}x-

source "$ROOT/tests/interop/lib.sh"
source "$ROOT/tests/interop/ferrosec-lib.bash"
fs_require_bin
fx_init

SW_IKE=aes256gcm16-prfsha256-ecp256
SW_ESP=aes256gcm16-ecp256
TOPO=""
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

topo() {
    [ "$TOPO" = "$1" ] && return 0
    local ns
    for ns in "${FX_NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    FX_NS=()
    FX_PREFIX=${RUN_PREFIX}${1:0:1}-
    fx_topology "$1"
    TOPO=$1
}

fs_conf_a() {
    fs_conf "$1" local="$(fx_a_local)" peer="$B_WAN" groups='"group19"' \
        ike_encr='"aes-256-gcm"' esp_encr='"aes-256-gcm"' esp_auth='"none"' pfs=group19
}
fs_conf_b() {
    fs_conf "$1" local="$B_WAN" peer="$A_WAN" local_id=b.ferrosec.test peer_id=a.ferrosec.test \
        lan_local="$B_LAN" lan_remote="$A_LAN" passive=true groups='"group19"' \
        ike_encr='"aes-256-gcm"' esp_encr='"aes-256-gcm"' esp_auth='"none"' pfs=group19
}
sw_conf_side() {
    if [ "$2" = a ]; then
        fx_sw_conf "$1" local="$A_WAN" remote="$B_WAN" local_ts="$A_LAN" remote_ts="$B_LAN" \
            local_id=a.ferrosec.test remote_id=b.ferrosec.test psk="$FS_PSK" ike="$SW_IKE" esp="$SW_ESP"
    else
        fx_sw_conf "$1" local="$B_WAN" remote=%any local_ts="$B_LAN" remote_ts="$A_LAN" \
            local_id=b.ferrosec.test remote_id=a.ferrosec.test psk="$FS_PSK" ike="$SW_IKE" esp="$SW_ESP"
    fi
}

# Rekey helpers: each starts one rekey and waits (≤ 10 s) until the SPIs changed on the side
# that started it and exactly one Child SA pair is left there.
fs_pairs() { fs_spi_in "$1" | wc -w; }
rekey_fs() {
    local name=$1 before; before=$(fs_spi_in "$name")
    fs "$name" request vpn rekey ipsec-sa tunnel to-b >>"$FX_WORK/rekey-$name.out" 2>&1 || return 1
    fx_wait 10 eval '[ "$(fs_spi_in '"$name"')" != "'"$before"'" ] && [ "$(fs_pairs '"$name"')" = 1 ]'
}
sw_in_spis() { fx_sw_swanctl "$1" --list-sas 2>/dev/null | grep -oE '^ +in +[0-9a-f]{8}' | awk '{print $2}' | sort | tr '\n' ' '; }
rekey_sw() {
    local name=$1 before; before=$(sw_in_spis "$name")
    fx_sw_swanctl "$name" --rekey --child net >>"$FX_WORK/rekey-$name.out" 2>&1 || return 1
    fx_wait 10 eval '[ "$(sw_in_spis '"$name"')" != "'"$before"'" ] && [ "$(sw_in_spis '"$name"' | wc -w)" = 1 ]'
}

# ping_start SECONDS: a-host -> b-host at the fixed rate; ping_stop: SIGINT, then its summary.
ping_start() {
    PING_OUT=$FX_WORK/ping-$1.out
    # -D: timestamps; -O: a line for each request that got no reply before the next one.
    fx_bg a-host "$PING_OUT" ping -D -O -i "$HX_PING_INTERVAL" -W 1 -w "$2" "$B_HOST"
    PING_PID=$FX_LAST_PID
}
ping_stop() {
    local i
    kill -INT "$PING_PID" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$PING_PID" 2>/dev/null || break; sleep 0.1; done
    fx_stop "$PING_PID"
    sed -nE 's/^([0-9]+) packets transmitted, ([0-9]+) received.*/\1 \2/p' "$PING_OUT"
}

declare -A RES
# run_mode TAG REKEY_A REKEY_B: baseline, then HX_REKEYS rekeys alternating between the commands.
run_mode() {
    local tag=$1 ra=$2 rb=$3 i ok=0 fail=0 t0 t1 sent recv load rlog
    rlog=$FX_WORK/rekeys-$tag.txt; : >"$rlog"
    fx_wait 10 fx_ping a-host "$B_HOST" 1 || { RES[$tag]="no path|||||"; return 0; }
    load=$(loadavg)
    # Baseline: as long as the rekey phase is expected to take (~0.3 s per rekey), min 10 s.
    if [ "$HX_BASELINE" = 1 ]; then
        ping_start "$tag-base" 600
        sleep $(( HX_REKEYS * 3 / 10 > 10 ? HX_REKEYS * 3 / 10 : 10 ))
        read -r bsent brecv < <(ping_stop)
    fi
    ping_start "$tag" 600
    sleep 1
    t0=$(date +%s.%N)
    for i in $(seq "$HX_REKEYS"); do
        if (( i % 2 )); then cmd=$ra; else cmd=$rb; fi
        echo "$(date +%s.%N) ${cmd#* }" >>"$rlog"
        if $cmd; then ok=$((ok + 1)); else fail=$((fail + 1)); fx_log "$tag rekey $i ($cmd) not confirmed"; fi
    done
    t1=$(date +%s.%N)
    sleep 1
    read -r sent recv < <(ping_stop)
    fx_log "$tag: $ok rekeys confirmed, $fail not; ping $recv/$sent in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s of rekeys; baseline ${brecv:-?}/${bsent:-?}"
    # Unanswered requests, attributed to the gateway that started the latest rekey before them.
    local by
    by=$(awk 'NR == FNR { t[NR] = $1; w[NR] = $2; n = NR; next }
        /no answer yet/ { ts = substr($1, 2, length($1) - 2) + 0; who = "before-any"
            for (i = 1; i <= n; i++) if (t[i] <= ts) who = w[i]; c[who]++ }
        END { for (k in c) printf "%s:%d ", k, c[k] }' "$rlog" "$PING_OUT")
    fx_log "$tag: unanswered pings by the side that started the preceding rekey: ${by:-none}"
    RES[$tag]="$ok|$fail|$sent|$((sent - recv)) (${by% })|${bsent:--}|$(( ${bsent:-0} - ${brecv:-0} ))|$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')|$load"
}

for mode in $HX_MODES; do
    case $mode in
        ff)
            topo "$HX_FF_TOPO"
            fs_conf_a ffa; fs_conf_b ffb
            fs_start ffb b-gw; fs_start ffa a-gw
            fs ffa test vpn ipsec-sa tunnel to-b >"$FX_WORK/test-ffa.out" 2>&1 || fx_log "ff: tunnel not up"
            run_mode ff "rekey_fs ffa" "rekey_fs ffb"
            fs ffa show system log >"$FX_WORK/ffa-system.log" 2>&1 || true
            fs_stop ffa; fs_stop ffb ;;
        fs-sw)
            topo plain
            sw_conf_side rsw b; fx_sw_start rsw b-gw
            fs_conf_a rfs; fs_start rfs a-gw
            fs rfs test vpn ipsec-sa tunnel to-b >"$FX_WORK/test-rfs.out" 2>&1 || fx_log "fs-sw: tunnel not up"
            run_mode fs-sw "rekey_fs rfs" "rekey_sw rsw"
            fs_stop rfs; fx_sw_stop rsw ;;
        sw-sw)
            topo plain
            sw_conf_side ssb b; fx_sw_start ssb b-gw
            sw_conf_side ssa a; fx_sw_start ssa a-gw
            fx_sw_swanctl ssa --initiate --child net --timeout 20 >"$FX_WORK/sw-initiate.out" 2>&1 || fx_log "sw-sw: initiate failed"
            run_mode sw-sw "rekey_sw ssa" "rekey_sw ssb"
            fx_sw_stop ssa; fx_sw_stop ssb ;;
        *) echo "unknown mode $mode" >&2; exit 2 ;;
    esac
done

echo
echo "Child SA rekeys under a ping flood a-host -> b-host every ${HX_PING_INTERVAL} s; ESP AES-256-GCM, PFS group19; $(date -u +%FT%TZ)"
echo "| mode  | rekeys ok | not confirmed | pings sent | lost | baseline sent | baseline lost | rekey phase s | load avg |"
echo "|-------|-----------|---------------|------------|------|---------------|---------------|---------------|----------|"
for mode in $HX_MODES; do
    IFS='|' read -r ok fail sent lost bsent blost secs load <<<"${RES[$mode]:-||||||||}"
    printf '| %-5s | %9s | %13s | %10s | %4s | %13s | %13s | %13s | %s |\n' "$mode" "$ok" "$fail" "$sent" "$lost" "$bsent" "$blost" "$secs" "$load"
done
