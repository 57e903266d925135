#!/usr/bin/env bash
# ferrosec (a-gw, responder, passive) against strongSwan 5.9 (b-gw, initiator) with 30 % random
# loss each way on a-gw's WAN interface (issue 20 part 3): an nft rule in a-gw's namespace, input
# and output hooks on wan0, `numgen random mod 100 < 30 drop`, matching only UDP 500/4500 (IKE
# and ESP in UDP, which is all the tunnel's traffic here) and raw ESP; everything else passes.
# An exchange therefore succeeds per attempt with 0.7 * 0.7 = 0.49.
#   - the tunnel comes up under the loss (strongSwan initiates, bounded: 60 s);
#   - strongSwan rekeys the IKE SA (rekey_time 18 s, no jitter; ferrosec's IKE lifetime is 8 h,
#     so strongSwan always rekeys and then DELETEs the old IKE SA) and the Child SA (25 s): at
#     least 5 IKE rekeys under the loss (about 95 s of it);
#   - the new behaviour: when ferrosec's answer to the DELETE of the old IKE SA is lost, the
#     retransmitted DELETE gets the cached answer from ferrosec's tombstone, so no old IKE SA
#     stays in DELETING for long (charon's log: each old IKE SA goes from DELETING to
#     DESTROYING within 30 s; strongSwan never gives up on a request), and ferrosec sends no
#     INVALID_IKE_SPI (counted on the wire by an nft rule on a-gw's output, before the loss:
#     unprotected INFORMATIONAL messages whose notify is INVALID_IKE_SPI). ferrosec does not
#     log the INVALID_IKE_SPI it sends, so the wire is where to look; its logs are checked too.
#     The rekeys are counted in `swanctl --list-sas`, sampled every second, and in both logs;
#   - after the loss is removed: pings a-host -> b-host, 10 of 10; 30 s after the last lossy
#     rekey strongSwan has exactly one IKE SA, ESTABLISHED, none in DELETING, and ferrosec one;
#   - `show vpn ike-counters --json`: tombstones (>= 1: the rekeyed-away IKE SAs left them) and
#     tombstone-answers printed; tombstone-answers > 0 means the lossy DELETE path was exercised
#     in this run (random: about 0.3 per rekey, so in 5 rekeys 5 runs in 6; not a failure when
#     it is not).
# strongSwan retransmits on a fast schedule for this link (1 s, then x1.2, 15 retransmissions:
# the last one 72 s after the first, inside ferrosec's tombstone lifetime of 93.5 s, giving up
# after 87 s). With it an exchange fails outright with probability 0.51^16 (2e-5), and an old
# IKE SA stays in DELETING beyond 30 s with probability 0.51^11 (6e-4) per rekey when every
# lost answer is resent from a tombstone. Without tombstones, a DELETE whose answer is lost
# (0.3 of the deletes) is answered INVALID_IKE_SPI ever after: DELETING until strongSwan gives
# up, 87 s, and the INVALID_IKE_SPI counter is not 0 (a build from before the tombstones fails
# here whenever the path is hit). Every wait is bounded; about 2 min 10 s in all.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

LOSS_PCT=${LOSS_PCT:-30}
IKE_REKEY=${IKE_REKEY:-18}        # strongSwan's IKE rekey_time, seconds
CHILD_REKEY=${CHILD_REKEY:-25}    # strongSwan's Child SA rekey_time, seconds
REKEYS=${REKEYS:-5}               # IKE rekeys to see under the loss
TAIL=30                           # seconds after the last lossy rekey for the final state
DELETING_MAX=30                   # the longest an old IKE SA may stay in DELETING, seconds

fx_topology plain

# --- strongSwan at b-gw: the initiator, with a retransmission schedule for a lossy link -------
# fx_sw_start writes strongswan.conf and starts $FX_CHARON with STRONGSWAN_CONF pointing at it;
# the wrapper starts charon with a file that includes it and overrides the schedule.
SW_DIR=$(fx_sw_dir sw)
mkdir -p "$SW_DIR"
cat >"$FX_WORK/strongswan-lossy.conf" <<EOF
include $SW_DIR/strongswan.conf
charon {
    retransmit_timeout = 1.0
    retransmit_base = 1.2
    retransmit_tries = 15
}
EOF
cat >"$FX_WORK/charon-lossy" <<EOF
#!/bin/sh
STRONGSWAN_CONF=$FX_WORK/strongswan-lossy.conf exec $FX_CHARON "\$@"
EOF
chmod +x "$FX_WORK/charon-lossy"
fx_sw_conf sw local="$B_WAN" remote="$A_WAN" local_ts="$B_LAN" remote_ts="$A_LAN" \
    local_id=b.ferrosec.test remote_id=a.ferrosec.test psk="$FS_PSK" \
    ike=aes256-sha256-ecp256 esp=aes256gcm16-ecp256 rekey="${IKE_REKEY}s" child_rekey="${CHILD_REKEY}s"
# No jitter: the rekeys come at rekey_time exactly. The hard lifetimes are 90 s beyond it (the
# default, 10 % more, would end a rekey that takes a few retransmissions: the expiring IKE SA's
# IKE_DELETE migrates to its successor and strongSwan deletes both).
sed -i -E "s/^(        )rekey_time = .*$/&\\n\\1over_time = 90s\\n\\1rand_time = 0s/;
    s/^(                )rekey_time = .*$/&\\n\\1life_time = $((CHILD_REKEY + 90))s\\n\\1rand_time = 0s/" "$SW_DIR/swanctl.conf"
FX_CHARON=$FX_WORK/charon-lossy fx_sw_start sw b-gw

# --- ferrosec at a-gw: responder only, IKE lifetime 8 h, ESP 1 h (fs_conf's defaults) --------
fs_conf fs local="$A_WAN" peer="$B_WAN" passive=true groups='"group19"' pfs=group19
fs_start fs a-gw

# sw_cli SECS args...: swanctl, bounded.
sw_cli() {
    local secs=$1; shift
    timeout "$secs" env STRONGSWAN_CONF="$SW_DIR/strongswan.conf" SWANCTL_DIR="$SW_DIR" \
        swanctl "$@" --uri "unix://$SW_DIR/charon.vici"
}

# --- the loss, and an observer of what ferrosec sends --------------------------------------
# fxobs (output, priority -10, before the loss): ferrosec's unprotected INFORMATIONAL messages
# (first payload Notify, 41; exchange 37), and those whose notify is INVALID_IKE_SPI (4).
# Offsets in bits from the UDP header: on 4500 the IKE header follows the 4-byte non-ESP marker.
fx_in a-gw nft -f - <<'EOF'
table inet fxobs {
    counter unprotected_info { }
    counter invalid_ike_spi { }
    chain out {
        type filter hook output priority -10; policy accept;
        oifname "wan0" udp sport 4500 @th,64,32 0 @th,224,8 41 @th,240,8 37 counter name "unprotected_info"
        oifname "wan0" udp sport 4500 @th,64,32 0 @th,224,8 41 @th,240,8 37 @th,368,16 4 counter name "invalid_ike_spi"
        oifname "wan0" udp sport 500 @th,192,8 41 @th,208,8 37 counter name "unprotected_info"
        oifname "wan0" udp sport 500 @th,192,8 41 @th,208,8 37 @th,336,16 4 counter name "invalid_ike_spi"
    }
}
EOF
loss_on() {
    fx_in a-gw nft -f - <<EOF
table inet fxloss {
    counter in_seen { }
    counter in_dropped { }
    counter out_seen { }
    counter out_dropped { }
    chain in {
        type filter hook input priority 0; policy accept;
        iifname "wan0" udp dport { 500, 4500 } counter name "in_seen" numgen random mod 100 < $LOSS_PCT counter name "in_dropped" drop
        iifname "wan0" meta l4proto esp counter name "in_seen" numgen random mod 100 < $LOSS_PCT counter name "in_dropped" drop
    }
    chain out {
        type filter hook output priority 0; policy accept;
        oifname "wan0" udp sport { 500, 4500 } counter name "out_seen" numgen random mod 100 < $LOSS_PCT counter name "out_dropped" drop
        oifname "wan0" meta l4proto esp counter name "out_seen" numgen random mod 100 < $LOSS_PCT counter name "out_dropped" drop
    }
}
EOF
}
# nft_counter TABLE NAME: the packets of a named counter.
nft_counter() { fx_in a-gw nft list counter inet "$1" "$2" | awk '$1 == "packets" {print $2}'; }
loss_off() {
    local s d
    for s in in out; do
        d=$(nft_counter fxloss "${s}_dropped"); LOSS_STATS+="$s: $d of $(nft_counter fxloss "${s}_seen") dropped; "
    done
    fx_in a-gw nft delete table inet fxloss
}
LOSS_STATS=""

# --- the history of strongSwan's IKE SAs ------------------------------------------------------
T0=$EPOCHREALTIME
elapsed() { awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}'; }
TIMELINE=$FX_WORK/ike-timeline.txt
: >"$TIMELINE"
# sample: one line per IKE SA strongSwan has now: "<seconds> <unique id> <state>".
sample() {
    local out t
    out=$(sw_cli 5 --list-sas 2>/dev/null) || true
    t=$(elapsed)
    sed -nE 's/^s2s: #([0-9]+), ([A-Z_]+),.*/\1 \2/p' <<<"$out" | while read -r id st; do
        echo "$t $id $st"
    done >>"$TIMELINE"
    SAMPLE_OUT=$out
}
# established_ids: the IKE SAs that were ever ESTABLISHED, in order of first appearance.
established_ids() { awk '$3 == "ESTABLISHED" && !seen[$2]++ {print $2}' "$TIMELINE"; }
first_established_at() { awk -v id="$1" '$2 == id && $3 == "ESTABLISHED" {print $1; exit}' "$TIMELINE"; }
sw_log() { cat "$SW_DIR/charon.log" 2>/dev/null || true; }
count_in() { grep -c -- "$2" <<<"$1" || true; }

# A ping from a-host every 0.5 s for the whole lossy phase (not checked: printed).
loss_on
fx_bg a-host "$FX_WORK/ping-lossy.out" ping -i 0.5 -W 2 "$B_HOST"
PINGER=$FX_LAST_PID
fx_log "loss on: $LOSS_PCT % each way on a-gw's wan0 (UDP 500/4500 and ESP)"

# --- 1. the tunnel under the loss ------------------------------------------------------------
t_init=$EPOCHREALTIME
rc=0
sw_cli 65 --initiate --child net --timeout 60 >"$FX_WORK/initiate.out" 2>&1 || rc=$?
up_s=$(awk -v a="$t_init" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
both_up() { sw_established sw && fs_ike_established fs && [ -n "$(fs_spi_in fs)" ]; }
fx_check "loss: strongSwan brings the tunnel up under $LOSS_PCT % loss each way within 60 s (${up_s} s, swanctl rc $rc)" \
    eval '[ "$rc" = 0 ] && fx_wait 10 both_up'
sample

# --- 2. rekeys under the loss ----------------------------------------------------------------
# Until REKEYS new IKE SAs were ESTABLISHED after the first one; bounded: REKEYS rekey times
# plus 60 s for the exchanges' retransmissions.
gone=0
deadline=$(awk -v t="$(elapsed)" -v n="$REKEYS" -v r="$IKE_REKEY" 'BEGIN {print t + n * r + 60}')
while :; do
    sample
    n=$(( $(established_ids | wc -l) - 1 ))
    [ "$n" -ge "$REKEYS" ] && break
    awk -v t="$(elapsed)" -v d="$deadline" 'BEGIN {exit !(t >= d)}' && break
    # No IKE SA at all for 10 s: the tunnel is gone, no use waiting.
    if grep -q "^s2s: #" <<<"$SAMPLE_OUT"; then gone=0; else gone=$((gone + 1)); fi
    [ "$gone" -ge 10 ] && break
    sleep 1
done
ids=$(established_ids | tr '\n' ' ')
n_ike=$(( $(wc -w <<<"$ids") - 1 ))
last_id=$(established_ids | tail -1)
t_last=$(first_established_at "$last_id")
log=$(sw_log)
n_ike_log=$(count_in "$log" "IKE_SA s2s\[[0-9]*\] rekeyed between")
fx_check "loss: strongSwan rekeyed the IKE SA $n_ike times under the loss (>= $REKEYS; IKE SAs #${ids% }; last at ${t_last} s; charon: $n_ike_log 'IKE_SA ... rekeyed')" \
    eval '[ "$n_ike" -ge "$REKEYS" ] && [ "$n_ike_log" -ge "$REKEYS" ]'
fs_log=$(fs fs show system log 2>/dev/null || true)
n_child_fs=$(count_in "$fs_log" "IPsec SA rekeyed")
n_child_sw=$(count_in "$log" "outbound CHILD_SA net{[0-9]*} established")
fx_check "loss: Child SA rekeys under the loss (ferrosec: $n_child_fs 'IPsec SA rekeyed'; strongSwan: $n_child_sw rekeyed CHILD_SAs)" \
    eval '[ "$n_child_fs" -ge 1 ] && [ "$n_child_sw" -ge 1 ]'
fx_check "loss: ferrosec logged the IKE SA rekeys ($(count_in "$fs_log" "IKE SA rekeyed") 'IKE SA rekeyed')" \
    [ "$(count_in "$fs_log" "IKE SA rekeyed")" -ge "$REKEYS" ]

# --- 3. the loss removed -------------------------------------------------------------------
loss_off
fx_log "loss off at $(elapsed) s ($LOSS_STATS)"
kill -INT "$PINGER" 2>/dev/null || true
for _ in $(seq 30); do kill -0 "$PINGER" 2>/dev/null || break; sleep 0.1; done
fx_stop "$PINGER"
echo "    under the loss: $LOSS_STATS"
echo "    ping a-host -> b-host every 0.5 s under the loss: $(grep 'packets transmitted' "$FX_WORK/ping-lossy.out" || echo none)"
ping10() { fx_in a-host ping -c 10 -W 2 -i 0.2 "$B_HOST" 2>/dev/null | fx_has " 10 received"; }
fx_check "no loss: ping a-host -> b-host, 10 of 10 answered" fx_wait 10 ping10

# The rest of the TAIL seconds after the last lossy rekey, still sampling.
while awk -v t="$(elapsed)" -v d="$t_last" -v w="$TAIL" 'BEGIN {exit !(t < d + w)}'; do
    sample
    sleep 1
done
final_ok() {
    sample
    local est del all
    est=$(grep -c "^s2s: #[0-9]*, ESTABLISHED," <<<"$SAMPLE_OUT" || true)
    del=$(grep -c "^s2s: #[0-9]*, DELETING," <<<"$SAMPLE_OUT" || true)
    all=$(grep -c "^s2s: #" <<<"$SAMPLE_OUT" || true)
    FINAL="$est ESTABLISHED, $del DELETING, $all in all"
    [ "$est" = 1 ] && [ "$del" = 0 ] && [ "$all" = 1 ] &&
        [ "$(fs_field "$(fs_ike_json fs)" state | grep -c .)" = 1 ] && fs_ike_established fs
}
# (fx_wait 5: a lossless rekey may be under way at that very moment, for milliseconds.)
fx_wait 5 final_ok || true
fx_check "$TAIL s after the last lossy rekey: strongSwan has exactly one IKE SA, ESTABLISHED, none DELETING ($FINAL); ferrosec one" \
    final_ok

# --- 4. DELETING, give-ups, INVALID_IKE_SPI -------------------------------------------------
# Per old IKE SA, from charon's log (1 s resolution): from its change to DELETING to its change
# to DESTROYING (after the answer to its DELETE, or when strongSwan gives up).
log=$(sw_log)
deleting=$(awk '
    function sec(t,  a) { split(t, a, ":"); return a[1] * 3600 + a[2] * 60 + a[3] }
    function sa(  s) { match($0, /s2s\[[0-9]+\]/); return substr($0, RSTART + 4, RLENGTH - 5) }
    / state change: [A-Z]+ => DELETING$/ { id = sa(); if (!(id in f)) f[id] = sec($1) }
    / state change: DELETING => DESTROYING$/ {
        id = sa()
        if (id in f) { d = sec($1) - f[id]; if (d < 0) d += 86400; printf "#%s:%ds ", id, d; delete f[id] }
    }
    END { for (id in f) printf "#%s:still ", id }' <<<"$log")
max_del=$({ grep -oE '[0-9]+s' <<<"$deleting" || true; } | tr -d s | sort -n | tail -1)
still=$({ grep -oE '#[0-9]+:still' <<<"$deleting" || true; } | sed 's/:still//' | tr '\n' ' ')
echo "    old IKE SAs, time in DELETING (charon's log): ${deleting:-none}"
fx_check "every old IKE SA left DELETING within $DELETING_MAX s (longest: ${max_del:-none} s; still DELETING: ${still:-none})" \
    eval '[ -n "$max_del" ] && [ -z "$still" ] && [ "$max_del" -le "$DELETING_MAX" ]'
fx_check "strongSwan never gave up on a request ($(count_in "$log" "giving up after") 'giving up after')" \
    [ "$(count_in "$log" "giving up after")" = 0 ]
unprot=$(nft_counter fxobs unprotected_info)
invspi=$(nft_counter fxobs invalid_ike_spi)
fx_check "ferrosec sent no INVALID_IKE_SPI (on the wire, before the loss: $invspi INVALID_IKE_SPI, $unprot unprotected INFORMATIONAL in all)" \
    [ "$invspi" = 0 ]
# (charon logs an INVALID_IKE_SPI answer as "received unencrypted informational", "payload type
# NOTIFY was not encrypted", and ignores it.)
unenc=$(count_in "$log" "received unencrypted informational\|INVALID_IKE_SPI")
fx_check "strongSwan received no unprotected INFORMATIONAL / INVALID_IKE_SPI ($unenc 'received unencrypted informational' lines)" \
    [ "$unenc" = 0 ]
fs_log=$(fs fs show system log 2>/dev/null || true)
fs_out=$(cat "$(fs_dir fs)/daemon.out" 2>/dev/null || true)
fx_check "ferrosec's system log and stderr have no INVALID_IKE_SPI line" \
    eval '! grep -qi "invalid.ike.spi" <<<"$fs_log$fs_out"'
fx_check "ferrosec kept its IKE SA through the loss (no 'IKE SA down' in its system log)" \
    eval '! grep -q "IKE SA down" <<<"$fs_log"'
# The drop in the output hook makes sendto fail (EPERM): the data plane counts it as send-failed
# and says so every 5 s; IKE takes it for a lost datagram. Other warnings are printed.
echo "    ferrosec: $(count_in "$fs_log" "send-failed") data-plane 'send-failed' summaries (the output-hook drop: sendto gets EPERM)"
{ grep -iE "error|fail|warn" <<<"$fs_log"$'\n'"$fs_out" || true; } | { grep -v "send-failed" || true; } |
    cut -c1-200 | sed 's/^/    ferrosec log: /'

# --- 5. ike-counters ---------------------------------------------------------------------
if "$FS_BIN" show vpn --help 2>/dev/null | fx_has ike-counters; then
    counters=$(fs fs --json show vpn ike-counters 2>&1) || true
    echo "$counters" >"$FX_WORK/ike-counters.json"
    echo "    ike-counters: $(tr -s ' \n' ' ' <<<"$counters" | cut -c1-400)"
    read -r tomb answers < <(python3 - "$counters" <<'PY'
import json, sys
def find(o, key):
    if isinstance(o, dict):
        if key in o:
            return o[key]
        for v in o.values():
            r = find(v, key)
            if r is not None:
                return r
    elif isinstance(o, list):
        for v in o:
            r = find(v, key)
            if r is not None:
                return r
    return None
try:
    doc = json.loads(sys.argv[1])
except ValueError:
    doc = {}
print(find(doc, "tombstones"), find(doc, "tombstone-answers"))
PY
    ) || true
    echo "    tombstones: $tomb, tombstone-answers: $answers"
    fx_check "ike-counters has tombstones and tombstone-answers; the rekeyed-away IKE SAs left tombstones (>= 1 kept now)" \
        eval '[[ "$tomb" =~ ^[0-9]+$ ]] && [[ "$answers" =~ ^[0-9]+$ ]] && [ "$tomb" -ge 1 ]'
    if [[ "$answers" =~ ^[0-9]+$ ]] && [ "$answers" -gt 0 ]; then
        echo "    the lossy DELETE path was exercised: $answers retransmitted request(s) answered from a tombstone"
    else
        echo "    note: no retransmission was answered from a tombstone in this run (the loss is random)"
    fi
else
    echo "    note: this ferrosec has no 'show vpn ike-counters'; tombstone counters not shown"
fi
echo "    rekeys under the loss: IKE $n_ike, Child (ferrosec) $n_child_fs; time $(elapsed) s"
fs_stop fs
fx_sw_stop sw
