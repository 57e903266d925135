#!/usr/bin/env bash
# interop: alone (it builds a package: CPU and disk)
# The Debian package (scripts/package-deb.sh, built from the debug binary here): its metadata
# and files; the systemd unit passes `systemd-analyze verify` (with the unit's binary path
# pointed at the extracted binary); the bash completions load and complete subcommands; the
# man page renders. No daemon runs; nothing is installed on the host. About 10 s.
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

deb=$(bash "$ROOT/scripts/package-deb.sh" --debug "$WORK/out" | tail -1)
fx_check "package: scripts/package-deb.sh builds a .deb" test -s "$deb"
# The output is read whole first: `dpkg-deb | grep -q` under pipefail fails
# when grep stops reading early and dpkg-deb dies of SIGPIPE.
info=$(dpkg-deb --info "$deb")
fx_check "package: dpkg-deb --info names ferrosec, its version and architecture" \
    eval 'grep -q "Package: ferrosec" <<<"$info" && grep -q "Version: [0-9]" <<<"$info" && grep -q "Architecture: [a-z]" <<<"$info"'
contents=$(dpkg-deb --contents "$deb")
for f in ./usr/bin/ferrosec ./lib/systemd/system/ferrosec.service ./usr/share/man/man1/ferrosec.1.gz \
    ./usr/share/bash-completion/completions/ferrosec ./usr/share/zsh/vendor-completions/_ferrosec \
    ./usr/share/fish/vendor_completions.d/ferrosec.fish ./usr/share/doc/ferrosec/examples/appendix-a.toml; do
    fx_check "package: holds $f" grep -q " $f\$" <<<"$contents"
done
fx_check "package: files are owned by root" eval '! grep -v " root/root " <<<"$contents" | fx_has .'

R=$WORK/root
dpkg-deb -x "$deb" "$R"
# systemd-analyze checks the unit's syntax, directives and executables; it finds ferrosec at
# the extracted path.
sed "s|/usr/bin/ferrosec|$R/usr/bin/ferrosec|g" "$R/lib/systemd/system/ferrosec.service" >"$WORK/ferrosec.service"
verify() { local out; out=$(systemd-analyze verify --man=no "$WORK/ferrosec.service" 2>&1); [ -z "$out" ] || sed "s/^/    | /" <<<"$out"; [ -z "$out" ]; }
fx_check "package: systemd-analyze verify accepts ferrosec.service" verify
fx_check "package: the unit keeps only CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE and reloads with SIGHUP" \
    eval 'grep -qx "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE" "$WORK/ferrosec.service" &&
          grep -qx "ExecReload=kill -HUP \$MAINPID" "$WORK/ferrosec.service"'
complete_show() {
    bash -c 'source "$1"; COMP_WORDS=(ferrosec sh); COMP_CWORD=1; _ferrosec ferrosec sh ferrosec; printf "%s\n" "${COMPREPLY[@]}"' \
        _ "$R/usr/share/bash-completion/completions/ferrosec" >"$WORK/completions.txt" && grep -qx show "$WORK/completions.txt"
}
fx_check "package: the bash completions load and complete 'ferrosec sh' to show" complete_show
zcat "$R/usr/share/man/man1/ferrosec.1.gz" >"$WORK/ferrosec.1"
man -l "$WORK/ferrosec.1" >"$WORK/ferrosec.1.txt" 2>/dev/null || true
fx_check "package: the man page renders with its NAME and the subcommands" \
    eval 'grep -q "site-to-site IPsec VPN gateway" "$WORK/ferrosec.1.txt" && grep -q "ferrosec\\\\-run" "$WORK/ferrosec.1"'
fx_check "package: the packaged binary runs (--version)" "$R/usr/bin/ferrosec" --version
exit "${FX_FAILED:-0}"
