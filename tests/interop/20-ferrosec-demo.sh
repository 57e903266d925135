#!/usr/bin/env bash
# `ferrosec demo` as a test: two ferrosec gateways from examples/site-{a,b}.toml in namespaces
# of its own, the IKEv2 tunnel with raw ESP (no NAT between the sites), ping and a 64 MiB TCP
# transfer through it, the show tables, and nothing left behind afterwards, also when it is
# interrupted with SIGINT (Ctrl-C) while the gateways run. Then `demo --certificates`: a CA and
# both gateways' certificates made by `ferrosec pki`, the tunnel authenticated with them.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ferrosec-lib.bash"
fs_require_bin
fx_init

out=$FX_WORK/demo.out
start=$(date +%s)
rc=0
timeout 90 "$FS_BIN" demo >"$out" 2>&1 || rc=$?
took=$(( $(date +%s) - start ))
sed 's/^/    | /' "$out"

fx_check "demo: exits 0 (got $rc) within 60 s (took ${took}s)" eval '[ "$rc" = 0 ] && [ "$took" -le 60 ]'
fx_check "demo: a progress line per step, the teardown last" \
    eval 'grep -q "^\[ *[0-9.]*s\] building two sites" "$out" && tail -1 "$out" | fx_has "tearing down"'
fx_check "demo: ping through the tunnel, 5 of 5 answered" grep -q "5 packets transmitted, 5 received" "$out"
fx_check "demo: the TCP transfer arrives intact" grep -q "MiB received intact" "$out"
fx_check "demo: the IKE SA is established with no NAT (no/no)" \
    eval 'grep -E "^site-b +established +ikev2 +initiator" "$out" | fx_has " no/no "'
fx_check "demo: the IPsec SA is raw ESP (encap esp) and counted traffic both ways" \
    eval 'grep -E "^to-site-b +lan +installed" "$out" | awk "{exit !(\$6 == \"esp\")}" &&
          grep -E "^to-site-b +lan +0x" "$out" | awk "{exit !(\$5 > 0 && \$6 > 0)}"'
fx_check "demo: no drops in show vpn flow" \
    eval 'grep -E "^to-site-b +lan +0x" "$out" | awk "{exit !(\$9 == 0)}"'
fx_check "demo: no namespace and no daemon left behind" \
    eval '! ip netns list | fx_has "^fsdemo" && ! pgrep -f "ferrosec-demo-[0-9]+/site-" >/dev/null'

# With certificates made by `ferrosec pki` instead of the pre-shared key.
cert_out=$FX_WORK/demo-cert.out
start=$(date +%s)
rc=0
timeout 90 "$FS_BIN" demo --certificates >"$cert_out" 2>&1 || rc=$?
took=$(( $(date +%s) - start ))
sed 's/^/    | /' "$cert_out"
fx_check "demo --certificates: exits 0 (got $rc) within 60 s (took ${took}s)" eval '[ "$rc" = 0 ] && [ "$took" -le 60 ]'
fx_check "demo --certificates: the CA and both certificates come from ferrosec pki" \
    eval '[ "$(grep -cE "^ +\\$ ferrosec pki (ca create|cert issue)" "$cert_out")" = 3 ]'
fx_check "demo --certificates: the IKE SA authenticated with site-b's certificate" \
    grep -qE "authenticated: site-a (digital-signature|ecdsa-256), site-b (digital-signature|ecdsa-256) with certificate \"CN=site-b.example.net" "$cert_out"
fx_check "demo --certificates: show vpn ike-sa names both certificates" \
    eval 'grep -q "^  local certificate  CN=site-a.example.net, O=ferrosec demo (issuer CN=ferrosec demo CA" "$cert_out" &&
          grep -q "^  peer certificate   CN=site-b.example.net, O=ferrosec demo (issuer CN=ferrosec demo CA" "$cert_out"'
fx_check "demo --certificates: ping through the tunnel, 5 of 5 answered" grep -q "5 packets transmitted, 5 received" "$cert_out"
demo_dir=$(grep -oE -- "--out [^ ]*/ferrosec-demo-[0-9]+/" "$cert_out" | head -1 | sed 's/^--out //')
fx_check "demo --certificates: no namespace, daemon or key left behind (${demo_dir:-?} removed)" \
    eval '[ -n "$demo_dir" ] && [ ! -e "$demo_dir" ] && ! ip netns list | fx_has "^fsdemo" &&
          ! pgrep -f "ferrosec-demo-[0-9]+/site-" >/dev/null'

# Interrupted (Ctrl-C) once the gateways run: it still stops them and removes everything.
int_out=$FX_WORK/demo-int.out
"$FS_BIN" demo >"$int_out" 2>&1 &
demo_pid=$!
FX_PIDS+=("$demo_pid")
for _ in $(seq 100); do grep -q "bringing up the IKEv2 tunnel" "$int_out" && break; sleep 0.1; done
fx_check "demo interrupted: it had started both gateways" \
    eval 'grep -q "bringing up the IKEv2 tunnel" "$int_out" && ip netns list | fx_has "^fsdemo"'
kill -INT "$demo_pid" 2>/dev/null || true
int_rc=0
for _ in $(seq 150); do kill -0 "$demo_pid" 2>/dev/null || break; sleep 0.1; done
wait "$demo_pid" 2>/dev/null || int_rc=$?
sed 's/^/    | /' "$int_out"
fx_check "demo interrupted: it exits on SIGINT within 15 s, not 0 (got $int_rc)" \
    eval '! kill -0 "$demo_pid" 2>/dev/null && [ "$int_rc" != 0 ]'
fx_check "demo interrupted: no namespace and no daemon left behind" \
    eval 'ns=$(ip netns list); ! grep -q "^fsdemo" <<<"$ns" && ! pgrep -f "ferrosec-demo-[0-9]+/site-" >/dev/null'
