//! Manual-key tunnels (R-CFG-6, the seeds' "legacy device"): static ESP or AH SA pairs from
//! the configured SPIs, algorithms and keys, no IKE. Each direction has its SPI; both use the
//! configured keys (as PAN-OS' manual-key tunnels). The pair goes into the data plane at start
//! like a negotiated one and shows in `show vpn ipsec-sa` as `manual`; the keys are never
//! printed.
//!
//! Anti-replay follows the tunnel's `replay-window` as for negotiated SAs. A manual SA is
//! never rekeyed, so a peer that restarts starts its sequence numbers again: restart both ends
//! together, or set the window off (RFC 4303 §3.3.3 and §3.4.3 on manual keying).

use std::net::SocketAddr;

use ferrosec_config::algo::IpsecProtocol;
use ferrosec_config::{Config, Keying};
use ferrosec_crypto::{Encryption, Integrity, Secret};
use ferrosec_ike::event::{ChildKeys, ChildSaInfo, IkeSaHandle};
use ferrosec_ike::ts::ProxyId;
use ferrosec_wire::ikev2::ProtocolId;
use ferrosec_wire::{IkeSpi, Spi};

/// One manual-key tunnel, ready for the data plane.
#[derive(Debug, Clone)]
pub(crate) struct ManualSa {
    pub(crate) tunnel: String,
    pub(crate) replay_window: Option<u32>,
    pub(crate) info: ChildSaInfo,
}

/// The IKE SA handle manual SAs are filed under (no IKE SA has SPI 0).
pub(crate) const NO_IKE_SA: IkeSaHandle = IkeSaHandle(IkeSpi(0));

/// The manual-key tunnels of `config`, or why one cannot run.
pub(crate) fn manual_sas(config: &Config) -> Vec<Result<ManualSa, (String, String)>> {
    config
        .ipsec_tunnels
        .values()
        .filter_map(|t| match &t.keying {
            Keying::ManualKey(m) => Some((t, m)),
            Keying::AutoKey { .. } => None,
        })
        .map(|(t, m)| {
            let fail = |why: String| (t.name.clone(), why);
            let encr = match m.encryption {
                Some(e) if m.protocol == IpsecProtocol::Esp => Some(
                    Encryption::from_id(e.iana_id(), e.key_bits())
                        .map_err(|e| fail(format!("manual-key encryption: {e}")))?,
                ),
                _ => None,
            };
            let integ = match m.authentication.hash() {
                Some(h) => Some(
                    Integrity::from_id(h.iana_id())
                        .map_err(|e| fail(format!("manual-key authentication: {e}")))?,
                ),
                None => None,
            };
            let keys = || ChildKeys {
                encr: Secret::from_slice(m.encryption_key.expose()),
                integ: Secret::from_slice(m.authentication_key.expose()),
            };
            // The proxy IDs as selectors; none: any to any, both families.
            let ts = match t.proxy_ids.first() {
                None => ProxyId::any("any").to_policy(),
                Some(_) => {
                    let mut local = ferrosec_ike::ts::TsSet::default();
                    let mut remote = ferrosec_ike::ts::TsSet::default();
                    for p in &t.proxy_ids {
                        let pol = crate::ikecfg::proxy_policy(&p.name, p).map_err(fail)?;
                        local.0.extend(pol.local.0);
                        remote.0.extend(pol.remote.0);
                    }
                    ferrosec_ike::ts::TsPolicy {
                        name: "manual".into(),
                        local,
                        remote,
                    }
                }
            };
            Ok(ManualSa {
                tunnel: t.name.clone(),
                replay_window: t.replay_window,
                info: ChildSaInfo {
                    ike_sa: NO_IKE_SA,
                    policy: format!("{}/manual", t.name),
                    protocol: match m.protocol {
                        IpsecProtocol::Esp => ProtocolId::ESP,
                        IpsecProtocol::Ah => ProtocolId::AH,
                    },
                    inbound_spi: Spi(m.local_spi.0),
                    outbound_spi: Spi(m.remote_spi.0),
                    encr,
                    integ,
                    esn: false,
                    inbound: keys(),
                    outbound: keys(),
                    local_ts: ts.local,
                    remote_ts: ts.remote,
                    local: SocketAddr::new(m.local_address, 500),
                    remote: SocketAddr::new(m.peer_address, 500),
                    udp_encap: false,
                    outbound_deferred: false,
                    lifesize: None,
                    initiator: true,
                    key_exchanges: None,
                },
            })
        })
        .collect()
}
