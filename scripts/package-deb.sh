#!/usr/bin/env bash
# package-deb.sh - build the Debian package of ferrosec with dpkg-deb.
#
# usage: scripts/package-deb.sh [--debug] [OUTDIR]      (default: target/debian)
# Builds the binary (release; --debug uses the dev profile, for tests), generates the man
# page and the shell completions from the clap definitions (`ferrosec manpage`,
# `ferrosec completions SHELL`), and lays out:
#   /usr/bin/ferrosec
#   /lib/systemd/system/ferrosec.service         (packaging/ferrosec.service)
#   /usr/share/man/man1/ferrosec.1.gz
#   /usr/share/bash-completion/completions/ferrosec, zsh and fish completions
#   /usr/share/doc/ferrosec/{README.md,configuration.md,examples/}
#   /etc/ferrosec/                                (empty: the operator writes ferrosec.toml)
# Prints the path of the .deb on its last line.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
profile=release
if [ "${1:-}" = --debug ]; then profile=debug; shift; fi
OUT=${1:-$ROOT/target/debian}
cd "$ROOT"
if [ "$profile" = release ]; then cargo build --release -p ferrosec --locked; else cargo build -p ferrosec --locked; fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$profile/ferrosec
VERSION=$("$BIN" --version | awk '{print $2}')
ARCH=$(dpkg --print-architecture)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
P=$STAGE/ferrosec_${VERSION}_$ARCH
install -D -m 0755 "$BIN" "$P/usr/bin/ferrosec"
install -D -m 0644 packaging/ferrosec.service "$P/lib/systemd/system/ferrosec.service"
mkdir -p "$P/usr/share/man/man1" "$P/usr/share/bash-completion/completions" \
    "$P/usr/share/zsh/vendor-completions" "$P/usr/share/fish/vendor_completions.d" \
    "$P/usr/share/doc/ferrosec" "$P/etc/ferrosec" "$P/DEBIAN"
"$BIN" manpage | gzip -9n >"$P/usr/share/man/man1/ferrosec.1.gz"
"$BIN" completions bash >"$P/usr/share/bash-completion/completions/ferrosec"
"$BIN" completions zsh >"$P/usr/share/zsh/vendor-completions/_ferrosec"
"$BIN" completions fish >"$P/usr/share/fish/vendor_completions.d/ferrosec.fish"
install -m 0644 README.md docs/configuration.md "$P/usr/share/doc/ferrosec/"
cp -r examples "$P/usr/share/doc/ferrosec/examples"
SIZE=$(du -sk "$P" | awk '{print $1}')
cat >"$P/DEBIAN/control" <<CONTROL
Package: ferrosec
Version: $VERSION
Architecture: $ARCH
Maintainer: ferrosec maintainers <maintainers@ferrosec.invalid>
Installed-Size: $SIZE
Depends: libc6
Section: net
Priority: optional
Description: site-to-site IPsec VPN gateway (IKEv1 and IKEv2)
 ferrosec negotiates IKEv1 and IKEv2 and carries traffic in ESP or AH through
 route-based tunnel interfaces, configured with the objects of next-generation
 firewalls (crypto profiles, IKE gateways, IPsec tunnels with proxy IDs, zones).
CONTROL
mkdir -p "$OUT"
dpkg-deb --root-owner-group --build "$P" "$OUT/" >/dev/null
echo "$OUT/ferrosec_${VERSION}_$ARCH.deb"
