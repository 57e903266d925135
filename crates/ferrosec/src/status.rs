//! The rows of the `show` tables, shared by the daemon (which fills them) and the CLI (which
//! prints them). Their JSON form (`--json`) is a contract for scripts: field names are kebab-case
//! and only ever added to.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One IKE SA (`show vpn ike-sa`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct IkeSaRow {
    /// The IKE gateway object.
    pub(crate) gateway: String,
    /// `connecting`, `established`, `rekeying`, `deleting`.
    pub(crate) state: String,
    /// `ikev1` or `ikev2`.
    pub(crate) version: String,
    /// `initiator` or `responder`.
    pub(crate) role: String,
    /// Our address and port.
    pub(crate) local_address: String,
    /// The peer's address and port.
    pub(crate) peer_address: String,
    /// We are behind a NAT.
    pub(crate) local_nat: bool,
    /// The peer is behind a NAT.
    pub(crate) peer_nat: bool,
    /// How IKE and ESP travel: `udp` (ports 500 and raw ESP), `udp-encap` (port 4500, NAT)
    /// or `tcp` (RFC 9329).
    #[serde(default)]
    pub(crate) transport: String,
    /// Negotiated encryption.
    pub(crate) encryption: String,
    /// Negotiated integrity (`none` for AEAD).
    pub(crate) integrity: String,
    /// Negotiated PRF.
    pub(crate) prf: String,
    /// Negotiated DH group.
    pub(crate) dh_group: String,
    /// Seconds until the IKE SA must be rekeyed.
    pub(crate) remaining_lifetime: u64,
    /// Seconds until we re-authenticate it (`authentication-multiple`), or null.
    #[serde(default)]
    pub(crate) next_reauthentication: Option<u64>,
    /// Seconds without a message from the peer before a liveness check (0: off).
    #[serde(default)]
    pub(crate) liveness_interval: f64,
    /// Retransmissions of an unanswered liveness check.
    #[serde(default)]
    pub(crate) liveness_retransmissions: u32,
    /// Seconds between them.
    #[serde(default)]
    pub(crate) liveness_retransmit_every: f64,
    /// Seconds from the check until the peer is declared dead (at most
    /// `liveness-interval` more after its last message).
    #[serde(default)]
    pub(crate) liveness_gives_up_after: f64,
    /// How we authenticated: `psk`, `rsa`, `ecdsa-256`, `ecdsa-384`, `ecdsa-521` or
    /// `digital-signature` (RFC 7427); `-` while connecting.
    #[serde(default)]
    pub(crate) local_auth: String,
    /// How the peer authenticated (the same names).
    #[serde(default)]
    pub(crate) peer_auth: String,
    /// Our certificate, or null (pre-shared key, or not established yet).
    #[serde(default)]
    pub(crate) local_certificate: Option<CertificateRow>,
    /// The certificate the peer authenticated with, or null.
    #[serde(default)]
    pub(crate) peer_certificate: Option<CertificateRow>,
    /// The configuration payload's addresses (R-V2-12): ours, assigned by the peer, or the
    /// peer's, from our pool; empty without a configuration payload.
    #[serde(default)]
    pub(crate) virtual_ip: Vec<String>,
    /// `peer` (the peer assigned `virtual-ip` to us), `pool` (we assigned it to the peer), or
    /// empty.
    #[serde(default)]
    pub(crate) virtual_ip_from: String,
    /// DNS servers the configuration payload carried.
    #[serde(default)]
    pub(crate) dns: Vec<String>,
    /// Subnets the configuration payload carried.
    #[serde(default)]
    pub(crate) subnets: Vec<String>,
}

/// A certificate in `show vpn ike-sa`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct CertificateRow {
    /// Its subject DN.
    pub(crate) subject: String,
    /// Its issuer DN.
    pub(crate) issuer: String,
    /// Its notAfter, RFC 3339 in UTC (`2027-01-01T00:00:00Z`).
    pub(crate) not_after: String,
}

impl CertificateRow {
    /// The row of what the engine reported.
    pub(crate) fn of(c: &ferrosec_ike::v2::CertificateInfo) -> Self {
        CertificateRow {
            subject: c.subject.clone(),
            issuer: c.issuer.clone(),
            not_after: rfc3339(c.not_after),
        }
    }
}

/// Unix seconds as RFC 3339 in UTC (`2027-01-01T00:00:00Z`).
pub(crate) fn rfc3339(secs: i64) -> String {
    // fmt_utc gives `2027-01-01 00:00:00 UTC`.
    let s = ferrosec_crypto::x509::fmt_utc(secs);
    format!("{}Z", s.trim_end_matches(" UTC").replacen(' ', "T", 1))
}

/// The IKE responder's half-open counters (`show vpn ike-counters`): one row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct IkeCountersRow {
    /// IKE SAs now (every state).
    pub(crate) ike_sas: u64,
    /// Half-open IKE SAs now (responder, waiting for IKE_AUTH).
    pub(crate) half_open: u64,
    /// `cookie-activation-threshold`.
    pub(crate) cookie_threshold: u64,
    /// `max-half-opened-sa`.
    pub(crate) half_open_limit: u64,
    /// `max-half-opened-sa-per-address` (0 = none).
    pub(crate) half_open_per_address: u64,
    /// COOKIE notifies sent since start.
    pub(crate) cookies_sent: u64,
    /// IKE_SA_INIT requests refused: their address held too many half-open SAs.
    pub(crate) refused_per_address: u64,
    /// Refused at the global half-open limit.
    pub(crate) refused_global: u64,
    /// Refused by the key-exchange budget under pressure.
    pub(crate) refused_dh_rate: u64,
    /// Half-open SAs replaced by a newer request at the global limit.
    pub(crate) evicted: u64,
    /// Deleted IKE SAs whose last response is kept for the peer's retransmissions.
    pub(crate) tombstones: u64,
    /// Retransmitted requests of deleted IKE SAs answered from a tombstone.
    pub(crate) tombstone_answers: u64,
}

/// One Child SA pair (`show vpn ipsec-sa`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct IpsecSaRow {
    /// The IPsec tunnel object.
    pub(crate) tunnel: String,
    /// The proxy ID the SA carries.
    pub(crate) proxy_id: String,
    /// `installed`, `rekeying`, `expiring`.
    pub(crate) state: String,
    /// Inbound SPI, hex.
    pub(crate) spi_in: String,
    /// Outbound SPI, hex.
    pub(crate) spi_out: String,
    /// `esp` (raw, protocol 50), `udp` (ESP in UDP, RFC 3948), `tcp` (ESP on the TCP stream
    /// of RFC 9329) or `ah` (raw, protocol 51).
    pub(crate) encapsulation: String,
    /// Negotiated encryption.
    pub(crate) encryption: String,
    /// Negotiated integrity.
    pub(crate) integrity: String,
    /// PFS group or `no-pfs`.
    pub(crate) dh_group: String,
    /// Extended (64-bit) sequence numbers (RFC 4304).
    pub(crate) esn: bool,
    /// Packets decrypted.
    pub(crate) packets_in: u64,
    /// Packets encrypted.
    pub(crate) packets_out: u64,
    /// Bytes decrypted.
    pub(crate) bytes_in: u64,
    /// Bytes encrypted.
    pub(crate) bytes_out: u64,
    /// Seconds until the SA is rekeyed.
    pub(crate) remaining_lifetime: u64,
}

/// Per-SA traffic and drops (`show vpn flow`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct FlowRow {
    /// The IPsec tunnel object.
    pub(crate) tunnel: String,
    /// The proxy ID.
    pub(crate) proxy_id: String,
    /// Inbound SPI, hex.
    pub(crate) spi_in: String,
    /// Outbound SPI, hex.
    pub(crate) spi_out: String,
    /// Packets decrypted.
    pub(crate) packets_in: u64,
    /// Packets encrypted.
    pub(crate) packets_out: u64,
    /// Bytes decrypted.
    pub(crate) bytes_in: u64,
    /// Bytes encrypted.
    pub(crate) bytes_out: u64,
    /// Dropped packets by reason (`replay`, `auth-failed`, `selector`, …).
    pub(crate) drops: BTreeMap<String, u64>,
}

/// One IPsec tunnel (`show vpn tunnel`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct TunnelRow {
    /// The IPsec tunnel object.
    pub(crate) tunnel: String,
    /// Its tunnel interface.
    pub(crate) interface: String,
    /// `auto-key` or `manual-key`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// The IKE gateway (auto-key) or empty.
    pub(crate) gateway: String,
    /// The IPSec crypto profile (auto-key) or empty.
    pub(crate) profile: String,
    /// Number of proxy IDs (0 = 0.0.0.0/0 both ways).
    pub(crate) proxy_ids: usize,
    /// `up` when every proxy ID has a Child SA, `partial`, or `down`.
    pub(crate) state: String,
    /// The tunnel monitor: `up`, `down-by-monitor`, or `none` (no monitor runs).
    #[serde(default)]
    pub(crate) monitor: String,
    /// Seconds since the monitor's last echo reply; null before the first (or without one).
    #[serde(default)]
    pub(crate) last_reply: Option<u64>,
    /// Consecutive unanswered echo requests.
    #[serde(default)]
    pub(crate) misses: u32,
    /// Seconds the monitor's last answered echo request took there and back; null before
    /// the first reply (or without a monitor).
    #[serde(default)]
    pub(crate) rtt: Option<f64>,
    /// The routes we installed through its interface: `active`, `withdrawn` (by a fail-over
    /// monitor) or `none`.
    #[serde(default)]
    pub(crate) routes: String,
    /// The tunnel interface's MTU now: the configured one, lowered to what its SAs carry
    /// without fragmenting the outer packet (R-DP-8); null without a device.
    #[serde(default)]
    pub(crate) mtu: Option<u32>,
}

/// A plain text table: a header row and aligned columns.
#[derive(Debug, Default)]
pub(crate) struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &mut dyn Iterator<Item = &str>| {
            let mut out = String::new();
            for (i, (cell, w)) in cells.zip(&widths).enumerate() {
                if i > 0 {
                    out.push_str("  ");
                }
                out.push_str(cell);
                out.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
            }
            writeln!(f, "{}", out.trim_end())
        };
        line(f, &mut self.headers.iter().copied())?;
        line(
            f,
            &mut widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .iter()
                .map(|s| s.as_str()),
        )?;
        for row in &self.rows {
            line(f, &mut row.iter().map(String::as_str))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&["gateway", "state"]);
        t.row(vec!["branch1".into(), "established".into()]);
        t.row(vec!["b".into(), "down".into()]);
        let text = t.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "gateway  state");
        assert_eq!(lines[1], "-------  -----------");
        assert_eq!(lines[2], "branch1  established");
        assert_eq!(lines[3], "b        down");
    }

    #[test]
    fn ike_sa_json_has_the_contract_fields() {
        let row = IkeSaRow {
            gateway: "g".into(),
            state: "established".into(),
            version: "ikev2".into(),
            role: "initiator".into(),
            local_address: "198.51.100.1:4500".into(),
            peer_address: "198.51.100.2:4500".into(),
            local_nat: false,
            peer_nat: true,
            transport: "udp-encap".into(),
            encryption: "aes-256-gcm".into(),
            integrity: "none".into(),
            prf: "sha256".into(),
            dh_group: "group19".into(),
            remaining_lifetime: 100,
            next_reauthentication: Some(90),
            liveness_interval: 5.0,
            liveness_retransmissions: 8,
            liveness_retransmit_every: 2.0,
            liveness_gives_up_after: 18.0,
            local_auth: "ecdsa-256".into(),
            peer_auth: "digital-signature".into(),
            local_certificate: None,
            peer_certificate: Some(CertificateRow {
                subject: "CN=b".into(),
                issuer: "CN=ca".into(),
                not_after: rfc3339(1_798_761_600),
            }),
            virtual_ip: vec!["10.9.0.1".into()],
            virtual_ip_from: "peer".into(),
            dns: vec!["10.2.0.53".into()],
            subnets: vec!["10.2.0.0/24".into()],
        };
        let v = serde_json::to_value(&row).unwrap();
        for key in [
            "virtual-ip",
            "virtual-ip-from",
            "gateway",
            "state",
            "version",
            "local-address",
            "peer-address",
            "local-nat",
            "peer-nat",
            "next-reauthentication",
            "liveness-interval",
            "liveness-retransmissions",
            "liveness-retransmit-every",
            "liveness-gives-up-after",
            "local-auth",
            "peer-auth",
            "local-certificate",
            "peer-certificate",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {v}");
        }
        assert_eq!(v["peer-nat"], serde_json::Value::Bool(true));
        assert_eq!(v["local-auth"], "ecdsa-256");
        assert_eq!(v["peer-auth"], "digital-signature");
        assert!(v["local-certificate"].is_null());
        assert_eq!(v["peer-certificate"]["subject"], "CN=b");
        assert_eq!(v["peer-certificate"]["issuer"], "CN=ca");
        assert_eq!(v["peer-certificate"]["not-after"], "2027-01-01T00:00:00Z");
    }

    #[test]
    fn ipsec_sa_json_has_the_contract_fields() {
        let row = IpsecSaRow {
            tunnel: "t".into(),
            proxy_id: "lan".into(),
            state: "installed".into(),
            spi_in: "0xc1234567".into(),
            spi_out: "0xc7654321".into(),
            encapsulation: "udp".into(),
            encryption: "aes-256-gcm".into(),
            integrity: "none".into(),
            dh_group: "no-pfs".into(),
            esn: true,
            packets_in: 1,
            packets_out: 2,
            bytes_in: 3,
            bytes_out: 4,
            remaining_lifetime: 5,
        };
        let v = serde_json::to_value(&row).unwrap();
        for key in [
            "tunnel",
            "proxy-id",
            "state",
            "spi-in",
            "spi-out",
            "encapsulation",
            "esn",
            "packets-in",
            "packets-out",
            "bytes-in",
            "bytes-out",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {v}");
        }
        assert_eq!(v["bytes-out"], 4);
    }
}

/// `show auth certs`: one CRL, from a `certificate.crl` file of a gateway or fetched from a
/// distribution point (`crl-fetch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct CrlRow {
    /// The gateway whose file it is; none for a fetched CRL (those are shared).
    pub(crate) gateway: Option<String>,
    /// `file` or `fetched`.
    pub(crate) source: String,
    /// The file or the URL.
    pub(crate) location: String,
    /// The CRL's issuer.
    pub(crate) issuer: String,
    /// thisUpdate and nextUpdate, `YYYY-MM-DD HH:MM:SS UTC`.
    pub(crate) this_update: String,
    pub(crate) next_update: Option<String>,
    /// Certificates it revokes.
    pub(crate) revoked: usize,
    /// Past its nextUpdate (still used).
    pub(crate) stale: bool,
}

/// The rows of `show auth certs`: the CRL files of every gateway of `config`, then the CRLs
/// fetched, at `now` (Unix seconds).
pub(crate) fn crl_rows(
    config: &ferrosec_config::Config,
    fetched: &[(String, ferrosec_crypto::crl::Crl)],
    now: i64,
) -> Vec<CrlRow> {
    use ferrosec_crypto::x509::fmt_utc;
    let row = |gateway: Option<String>,
               source: &str,
               location: String,
               c: &ferrosec_crypto::crl::Crl| CrlRow {
        gateway,
        source: source.to_owned(),
        location,
        issuer: c.issuer().to_owned(),
        this_update: fmt_utc(c.this_update()),
        next_update: c.next_update().map(fmt_utc),
        revoked: c.revoked_count(),
        stale: c.next_update().is_some_and(|n| n <= now),
    };
    let mut out = Vec::new();
    for (name, gw) in &config.ike_gateways {
        if let ferrosec_config::GatewayAuth::Certificate(a) = &gw.authentication
            && let Some(cr) = &a.credentials
        {
            for (path, c) in cr.crl_files() {
                out.push(row(
                    Some(name.clone()),
                    "file",
                    path.display().to_string(),
                    c,
                ));
            }
        }
    }
    for (url, c) in fetched {
        out.push(row(None, "fetched", url.clone(), c));
    }
    out
}

/// `show system info`: one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct SystemInfoRow {
    /// The ferrosec version.
    pub(crate) version: String,
    /// What this build serves (crate::buildinfo), in a fixed order.
    #[serde(default)]
    pub(crate) features: Vec<String>,
    /// `release` or `debug`.
    #[serde(default)]
    pub(crate) profile: String,
    /// The daemon's process ID.
    pub(crate) pid: u32,
    /// Seconds since the daemon started.
    pub(crate) uptime: u64,
    /// The configuration file it runs.
    pub(crate) config_file: String,
    /// IKE gateways and IPsec tunnels configured.
    pub(crate) gateways: usize,
    pub(crate) tunnels: usize,
    /// IKE SAs (every state) and IPsec SA pairs now.
    pub(crate) ike_sas: usize,
    pub(crate) ipsec_sa_pairs: usize,
    /// Where `/metrics` is served, or null.
    pub(crate) metrics: Option<String>,
    /// How raw ESP comes in and goes out on each address ("192.0.2.1: in packet ring, out
    /// packet socket").
    #[serde(default)]
    pub(crate) raw_esp: Vec<String>,
}
