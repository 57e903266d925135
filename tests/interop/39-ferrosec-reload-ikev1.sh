#!/usr/bin/env bash
# Live reload (R-OPS-4) over IKEv1: 39-ferrosec-reload.sh with both gateways on
# `version = "ikev1"` (main mode, DPD): the same cases and checks (quick-mode SAs kept,
# rekeyed, added and deleted with Delete notifications; the ISAKMP SA deleted and negotiated
# again when the gateway changes).
RELOAD_IKE=ikev1 exec bash "$(dirname "$0")/39-ferrosec-reload.sh" "$@"
