#!/usr/bin/env bash
# Installs the Debian packages that ferrosec's tests and benchmarks use (idempotent).
#   strongSwan 5.9 (charon, swanctl, kernel-libipsec in libcharon-extra-plugins,
#   curve25519 in libstrongswan-extra-plugins) is the interop peer; iproute2/nftables/iptables
#   build the namespaces and NAT; iperf3, tcpdump and tshark measure and capture; curl and
#   python3-prometheus-client (its OpenMetrics parser) check the /metrics endpoint.
# Never install libreswan beside it: the packages conflict.
set -euo pipefail
PKGS=(strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins
      libstrongswan-standard-plugins iproute2 nftables iptables iputils-ping iperf3 tcpdump tshark
      util-linux procps curl python3-prometheus-client)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" != 0 ]; then
        echo "install-deps: missing packages (${missing[*]}); run as root to install them" >&2
        exit 1
    fi
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # tshark asks whether non-root users may capture; answer it up front.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "install-deps: all test dependencies present"
