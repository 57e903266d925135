#!/usr/bin/env bash
# ML-KEM hybrid key exchange (RFC 9370 additional key exchange in IKE_INTERMEDIATE, RFC 9242):
#   1. ferrosec (a-gw) <-> ferrosec (b-gw), Curve25519 + ML-KEM-768: the tunnel comes up on
#      demand, pings cross it, `show vpn ike-sa` names the hybrid on both sides
#      (group31+ml-kem-768), and both logs say so;
#   2. the same with ECP-256 + ML-KEM-1024 (KE payloads of 1,568 bytes) across a WAN that
#      drops IP fragments: the IKE_INTERMEDIATE messages go as IKE fragments (RFC 7383); the
#      control with fragmentation = false does not come up;
#   3. against strongSwan 5.9 (no RFC 9370): a profile that requires ML-KEM fails, and the log
#      says so in words naming KE1_ML_KEM_768 (ferrosec initiator and responder);
#   4. a profile that offers ML-KEM as optional (["ml-kem-768", "none"]) still connects to
#      strongSwan without it, and traffic flows; with the same on the IPSec crypto profile a
#      Child SA rekey against strongSwan runs with PFS alone, losing no ping;
#   5. rekeys with ML-KEM (RFC 9370 §2.2.4, IKE_FOLLOWUP_KE), ferrosec <-> ferrosec: IKE and
#      IPSec lifetimes of 3 minutes (the shortest allowed), ML-KEM-768 on both profiles: both
#      the IKE SA and the Child SAs rekey on their own with an IKE_FOLLOWUP_KE exchange, both
#      logs say so, `show vpn ike-sa` and `show vpn ipsec-sa` name group19+ml-kem-768, and a
#      ping every 0.2 s loses nothing across the rekeys;
#   6. against strongSwan 5.9, an IPSec profile that requires ML-KEM: the tunnel comes up (the
#      IKE_AUTH Child SA has no key exchange), its rekey is refused and the log says so naming
#      KE1_ML_KEM_768, and the old Child SA keeps carrying traffic.
# Every wait is bounded; part 5 waits for the lifetimes (about 3 minutes), the rest well under
# a minute.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

fx_topology plain
fs_lan6

# with_addke NAME LIST: sets additional-key-exchange = [LIST] on the instance's IKE crypto
# profile (the IKE profile is the one with lifetime 8h).
with_addke() {
    sed -i "s|^lifetime = \"8h\"\$|lifetime = \"8h\"\nadditional-key-exchange = [$2]|" "$(fs_dir "$1")/ferrosec.toml"
}
# esp_addke NAME LIST: the same on the IPSec crypto profile (the one with lifetime 1h).
esp_addke() {
    sed -i "s|^lifetime = \"1h\"\$|lifetime = \"1h\"\nadditional-key-exchange = [$2]|" "$(fs_dir "$1")/ferrosec.toml"
}
# short_lifetimes NAME: IKE and IPSec lifetimes of 3 minutes (rekeys 144-162 s after).
short_lifetimes() {
    sed -i 's|^lifetime = "8h"$|lifetime = "3m"|; s|^lifetime = "1h"$|lifetime = "3m"|' "$(fs_dir "$1")/ferrosec.toml"
}
ipsec_dh() { fs_field "$(fs_ipsec_json "$1")" dh-group; }
# ipsec_dh_all NAME VALUE: every IPsec SA row of NAME names VALUE (and there is one).
ipsec_dh_all() { local v; v=$(ipsec_dh "$1"); [ -n "$v" ] && ! grep -vqx -- "$2" <<<"$v"; }
show_ipsec() { fs "$1" show vpn ipsec-sa 2>/dev/null | sed 's/^/    /'; }
ike_dh() { fs_field "$(fs_ike_json "$1")" dh-group; }
ike_dh_is() { ike_dh "$1" | fx_has -x "$2"; }
ping4() { fx_ping a-host "$B_HOST" "${1:-3}"; }
ping_all() { fx_in "$1" ping -c "$3" -W 2 -i 0.1 "$2" 2>/dev/null | fx_has " $3 received"; }
show_ike() { fs "$1" show vpn ike-sa 2>/dev/null | sed 's/^/    /'; }

# --- 1. ferrosec <-> ferrosec, Curve25519 + ML-KEM-768 -----------------------------------------
L="1 ferrosec<->ferrosec group31+ml-kem-768"
fs_pair_conf a1 b1 "$A_WAN" "$A_WAN" groups='"group31"' ike_encr='"aes-256-gcm"'
with_addke a1 '"ml-kem-768"'
with_addke b1 '"ml-kem-768"'
fx_check "$L: config check accepts additional-key-exchange" \
    eval '"$FS_BIN" config check "$(fs_dir a1)/ferrosec.toml" >/dev/null 2>&1'
fs_start a1 a-gw
fs_start b1 b-gw
fx_check "$L: pings from a-host bring the tunnel up on demand" fx_wait 20 ping4 1
fx_check "$L: IPv4 ping a-host -> b-host, 10 of 10 answered" ping_all a-host "$B_HOST" 10
fx_check "$L: IPv4 ping b-host -> a-host" fx_ping b-host "$A_HOST" 3
show_ike a1
fx_check "$L: show vpn ike-sa on site A: dh group31+ml-kem-768" ike_dh_is a1 group31+ml-kem-768
fx_check "$L: show vpn ike-sa on site B: dh group31+ml-kem-768" ike_dh_is b1 group31+ml-kem-768
fx_check "$L: the table (not only --json) shows it" \
    eval 'fs a1 show vpn ike-sa 2>/dev/null | fx_has "group31+ml-kem-768"'
fx_check "$L: both system logs name the hybrid key exchange" \
    eval 'fs_log_has a1 "group31+ml-kem-768" && fs_log_has b1 "group31+ml-kem-768"'
fs_stop a1
fs_stop b1

# --- 2. ECP-256 + ML-KEM-1024 across a WAN that drops IP fragments: IKE fragments ------------
# The IKE_INTERMEDIATE messages (1,568-byte KE payloads, about 1,640 bytes) exceed the 1,280
# bytes ferrosec allows an IKE datagram; with fragmentation (on by default) they go as IKE
# fragments. The control: fragmentation = false on site A, and nothing comes up.
# big_ike_datagrams ROLE: how many UDP 500 datagrams over 1,280 bytes left ROLE (nft counter).
count_big_ike() {
    fx_in "$1" nft -f - <<'NFT'
table ip fsbig {
    counter big { }
    chain out {
        type filter hook output priority 0; policy accept;
        udp dport 500 meta length > 1280 counter name big
    }
}
NFT
}
big_ike() { fx_in "$1" nft list counter ip fsbig big | grep -o 'packets [0-9]*' | awk '{print $2}'; }
L="2 ferrosec<->ferrosec group19+ml-kem-1024, IP fragments dropped"
fx_no_ip_fragments on
count_big_ike a-gw
fs_pair_conf a2 b2 "$A_WAN" "$A_WAN" groups='"group19"' ike_encr='"aes-256-gcm"'
with_addke a2 '"ml-kem-1024"'
with_addke b2 '"ml-kem-1024"'
fs_start a2 a-gw
fs_start b2 b-gw
fx_check "$L: pings bring the tunnel up" fx_wait 20 ping4 1
fx_check "$L: IPv4 ping a-host -> b-host, 10 of 10 answered" ping_all a-host "$B_HOST" 10
fx_check "$L: show vpn ike-sa on both sides: group19+ml-kem-1024" \
    eval 'ike_dh_is a2 group19+ml-kem-1024 && ike_dh_is b2 group19+ml-kem-1024'
fx_check "$L: no IKE datagram from site A was over 1,280 bytes (it sent IKE fragments)" \
    eval '[ "$(big_ike a-gw)" = 0 ]'
fs_stop a2
fs_stop b2
L="2c control: the same with fragmentation = false on site A"
fs_pair_conf a2c b2c "$A_WAN" "$A_WAN" groups='"group19"' ike_encr='"aes-256-gcm"'
sed -i 's|^passive-mode = false$|passive-mode = false\nfragmentation = false|' "$(fs_dir a2c)/ferrosec.toml"
with_addke a2c '"ml-kem-1024"'
with_addke b2c '"ml-kem-1024"'
fs_start a2c a-gw
fs_start b2c b-gw
fx_check "$L: no tunnel comes up within 10 s" eval '! fx_wait 10 ping4 1'
fx_check "$L: site A has no established IKE SA" eval '! fs_ike_established a2c'
fs_stop a2c
fs_stop b2c
fx_in a-gw nft delete table ip fsbig
fx_no_ip_fragments off

# --- strongSwan 5.9 at b-gw (no RFC 9370) ------------------------------------------------------
sw_conf() {
    local name=$1 role=$2; shift 2
    local remote=%any
    [ "$role" = initiator ] && remote=$A_WAN
    fx_sw_conf "$name" local="$B_WAN" remote="$remote" local_ts="$B_LAN" remote_ts="$A_LAN" \
        local_id=b.ferrosec.test remote_id=a.ferrosec.test psk="$FS_PSK" "$@"
}
fs_test_ike() { timeout 25 "$FS_BIN" --socket "$(fs_dir "$1")/ferrosec.sock" test vpn ike-sa gateway sw >"$FX_WORK/test-ike-$1.out" 2>&1; }
sw_initiate() { fx_sw_swanctl "$1" --initiate --child net --timeout 10 >"$FX_WORK/initiate-$1.out" 2>&1; }
# failure_line NAME: the log's lines that name the ML-KEM transform.
failure_line() { fs "$1" show system log 2>/dev/null | grep 'KE1_ML_KEM_768' | tail -2 | cut -c1-400 | sed 's/^/    /'; }

# --- 3a. required ML-KEM, ferrosec initiates -> strongSwan -------------------------------------
L="3a ML-KEM required, ferrosec initiator, strongSwan 5.9 responder"
sw_conf sw3a responder ike=aes256-sha256-modp2048 esp=aes256gcm16-modp2048
fx_sw_start sw3a b-gw
fs_conf fs3a groups='"group14"'
with_addke fs3a '"ml-kem-768"'
fs_start fs3a a-gw
fx_check "$L: test vpn ike-sa fails" eval '! fs_test_ike fs3a'
failure_line fs3a
fx_check "$L: the log says no proposal was agreed and names KE1_ML_KEM_768" \
    fs_log_has fs3a 'proposal.*KE1_ML_KEM_768'
fx_check "$L: no IKE SA on either side" eval 'fs_no_ike_sa fs3a && sw_no_sa sw3a'
fs_stop fs3a
fx_sw_stop sw3a

# --- 3b. required ML-KEM, strongSwan initiates -> ferrosec ------------------------------------
L="3b ML-KEM required, ferrosec responder, strongSwan 5.9 initiator"
sw_conf sw3b initiator ike=aes256-sha256-modp2048 esp=aes256gcm16-modp2048
fs_conf fs3b groups='"group14"' passive=true
with_addke fs3b '"ml-kem-768"'
fx_sw_start sw3b b-gw
fs_start fs3b a-gw
fx_check "$L: strongSwan's initiate fails" eval '! sw_initiate sw3b'
failure_line fs3b
fx_check "$L: the log says what the peer offered and that we accept only with KE1_ML_KEM_768" \
    fs_log_has fs3b 'peer offered IKE: AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048.*we accept .*MODP_2048/KE1_ML_KEM_768'
fx_check "$L: no IKE SA on either side" eval 'fs_no_ike_sa fs3b && sw_no_sa sw3b'
fs_stop fs3b
fx_sw_stop sw3b

# --- 4. optional ML-KEM: strongSwan without it still connects ---------------------------------
L="4 ML-KEM optional, ferrosec initiator, strongSwan 5.9"
sw_conf sw4 responder ike=aes256-sha256-modp2048 esp=aes256gcm16-modp2048
fx_sw_start sw4 b-gw
fs_conf fs4 groups='"group14"'
with_addke fs4 '"ml-kem-768", "none"'
fs_start fs4 a-gw
fx_check "$L: test vpn ike-sa succeeds" fs_test_ike fs4
fx_check "$L: pings from a-host cross the tunnel" fx_wait 15 ping4 1
fx_check "$L: strongSwan has the IKE SA and the Child SA" sw_established sw4
show_ike fs4
fx_check "$L: show vpn ike-sa: dh group14, no additional key exchange" ike_dh_is fs4 group14
fs_stop fs4
fx_sw_stop sw4

L="4b ML-KEM optional on the IPSec profile too, Child SA rekey against strongSwan 5.9"
sw_conf sw4b responder ike=aes256-sha256-modp2048 esp=aes256gcm16-modp2048
fx_sw_start sw4b b-gw
fs_conf fs4b groups='"group14"'
with_addke fs4b '"ml-kem-768", "none"'
esp_addke fs4b '"ml-kem-768", "none"'
fs_start fs4b a-gw
fx_check "$L: pings from a-host bring the tunnel up" fx_wait 15 ping4 1
fx_check "$L: the IKE_AUTH Child SA has no key exchange of its own (dh none)" ipsec_dh_all fs4b none
fs_pinger_start a-host "$B_HOST" 0.2 opt-rekey
fx_check "$L: request vpn rekey ipsec-sa is accepted" \
    eval 'fs fs4b request vpn rekey ipsec-sa tunnel to-b >/dev/null 2>&1'
fx_check "$L: the log says the IPsec SA was rekeyed, with PFS group14 alone" \
    fx_wait 15 fs_log_has fs4b 'IPsec SA rekeyed.*/group14, '
fx_check "$L: show vpn ipsec-sa names group14 for the new pair" fx_wait 10 ipsec_dh_all fs4b group14
show_ipsec fs4b
fx_check "$L: strongSwan has the IKE SA and the rekeyed Child SA" sw_established sw4b
sleep 4
fx_check "$L: not one ping lost across the rekey (ping -i 0.2)" fs_pinger_stop opt-rekey fs4b
fs_stop fs4b
fx_sw_stop sw4b

# --- 5. rekeys with ML-KEM in IKE_FOLLOWUP_KE, ferrosec <-> ferrosec --------------------------
L="5 ferrosec<->ferrosec rekeys with ML-KEM (IKE_FOLLOWUP_KE)"
fs_pair_conf a5 b5 "$A_WAN" "$A_WAN" groups='"group19"' ike_encr='"aes-256-gcm"' pfs=group19
for n in a5 b5; do
    with_addke "$n" '"ml-kem-768"'
    esp_addke "$n" '"ml-kem-768"'
    short_lifetimes "$n"
done
fx_check "$L: config check accepts additional-key-exchange on the IPSec profile" \
    eval '"$FS_BIN" config check "$(fs_dir a5)/ferrosec.toml" >/dev/null 2>&1'
fs_start a5 a-gw
fs_start b5 b-gw
fx_check "$L: pings bring the tunnel up" fx_wait 20 ping4 1
fx_check "$L: IPv6 too (second proxy ID)" fx_wait 10 eval 'fx_in a-host ping -6 -c 1 -W 2 "$B_HOST6" >/dev/null 2>&1'
# lan4 came up in IKE_AUTH (no key exchange of its own); lan6 by CREATE_CHILD_SA, with PFS and
# ML-KEM in IKE_FOLLOWUP_KE.
fx_check "$L: before the rekeys: the IKE_AUTH pair has dh none, the CREATE_CHILD_SA pair group19+ml-kem-768" \
    eval '[ "$(ipsec_dh a5 | sort | tr "\n" " ")" = "group19+ml-kem-768 none " ] && [ "$(ipsec_dh b5 | sort | tr "\n" " ")" = "group19+ml-kem-768 none " ]'
show_ipsec a5
fs_pinger_start a-host "$B_HOST" 0.2 followup
rekeyed_both() {
    local n
    for n in a5 b5; do
        fs_log_has "$n" 'IKE SA rekeyed.*group19+ml-kem-768 (1 additional key exchange in IKE_FOLLOWUP_KE)' || return 1
        fs_log_has "$n" 'IPsec SA rekeyed for proxy-id lan4.*/group19+ml-kem-768 (1 additional key exchange in IKE_FOLLOWUP_KE)' || return 1
    done
}
fx_check "$L: within 175 s both logs say the IKE SA and the IPsec SA rekeyed with ML-KEM in IKE_FOLLOWUP_KE" \
    fx_wait 175 rekeyed_both
fs a5 show system log 2>/dev/null | grep -E 'rekeyed' | head -4 | cut -c1-300 | sed 's/^/    /' || true
sleep 3
show_ike a5
show_ipsec a5
fx_check "$L: show vpn ike-sa on both sides: group19+ml-kem-768" \
    eval 'ike_dh_is a5 group19+ml-kem-768 && ike_dh_is b5 group19+ml-kem-768'
fx_check "$L: show vpn ipsec-sa on both sides names group19+ml-kem-768 for the rekeyed pairs" \
    fx_wait 20 eval 'fs_log_has a5 "IPsec SA rekeyed for proxy-id lan6" && ipsec_dh_all a5 group19+ml-kem-768 && ipsec_dh_all b5 group19+ml-kem-768'
fx_check "$L: one IKE SA on each side" \
    eval '[ "$(fs_field "$(fs_ike_json a5)" state | grep -cx established)" = 1 ] && [ "$(fs_field "$(fs_ike_json b5)" state | grep -cx established)" = 1 ]'
fx_check "$L: no failure in either log" \
    eval '! fs_log_has a5 "IKE_FOLLOWUP_KE.*failed\|failed.*IKE_FOLLOWUP_KE" && ! fs_log_has b5 "IKE_FOLLOWUP_KE.*failed\|failed.*IKE_FOLLOWUP_KE"'
fx_check "$L: not one ping lost across the rekeys (ping -i 0.2 throughout)" fs_pinger_stop followup a5
fx_check "$L: IPv6 ping after the rekeys" eval 'fx_in a-host ping -6 -c 2 -W 2 "$B_HOST6" >/dev/null 2>&1'
fs_stop a5
fs_stop b5

# --- 6. an IPSec profile that requires ML-KEM against strongSwan 5.9 --------------------------
L="6 ML-KEM required on the IPSec profile, strongSwan 5.9"
sw_conf sw6 responder ike=aes256-sha256-modp2048 esp=aes256gcm16-modp2048
fx_sw_start sw6 b-gw
fs_conf fs6 groups='"group14"'
esp_addke fs6 '"ml-kem-768"'
fs_start fs6 a-gw
fx_check "$L: the tunnel comes up (the IKE_AUTH Child SA has no key exchange)" fx_wait 15 ping4 1
fx_check "$L: request vpn rekey ipsec-sa is accepted" \
    eval 'fs fs6 request vpn rekey ipsec-sa tunnel to-b >/dev/null 2>&1'
fx_check "$L: the log says strongSwan refused the rekey, naming what we offered (KE1_ML_KEM_768)" \
    fx_wait 15 fs_log_has fs6 'refused the Child SA.*NO_PROPOSAL_CHOSEN.*KE1_ML_KEM_768'
fs fs6 show system log 2>/dev/null | grep 'KE1_ML_KEM_768' | tail -1 | cut -c1-400 | sed 's/^/    /' || true
fx_check "$L: the old Child SA still carries traffic" fx_ping a-host "$B_HOST" 3
fs_stop fs6
fx_sw_stop sw6
