//! The file as serde sees it: one struct per table of SPEC Appendix A, keys in kebab-case,
//! unknown keys refused. Every value is kept with its byte span so that validation errors can
//! point at a line and column. Required keys are `Option` here and checked in `validate`, so
//! that every missing key is reported, not only the first.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use toml::Spanned;
use zeroize::Zeroizing;

/// A value with its span in the source text.
pub(crate) type Sp<T> = Spanned<T>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawRoot {
    pub(crate) global: Option<RawGlobal>,
    pub(crate) ike_crypto_profile: Option<BTreeMap<String, RawIkeProfile>>,
    pub(crate) ipsec_crypto_profile: Option<BTreeMap<String, RawIpsecProfile>>,
    pub(crate) ike_gateway: Option<BTreeMap<String, RawGateway>>,
    pub(crate) tunnel_interface: Option<BTreeMap<String, RawTunnelInterface>>,
    pub(crate) ipsec_tunnel: Option<BTreeMap<String, RawIpsecTunnel>>,
    pub(crate) monitor_profile: Option<BTreeMap<String, RawMonitorProfile>>,
    pub(crate) virtual_router: Option<BTreeMap<String, RawVirtualRouter>>,
    pub(crate) zone: Option<BTreeMap<String, RawZone>>,
    pub(crate) security_rule: Option<Vec<Sp<RawSecurityRule>>>,
}

/// `[global]` (R-CFG-10).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawGlobal {
    pub(crate) control_socket: Option<Sp<String>>,
    pub(crate) log_file: Option<Sp<String>>,
    pub(crate) cookie_activation_threshold: Option<Sp<i64>>,
    pub(crate) max_half_opened_sa: Option<Sp<i64>>,
    pub(crate) max_half_opened_sa_per_address: Option<Sp<i64>>,
    pub(crate) nat_keepalive_interval: Option<Sp<StrOrInt>>,
    pub(crate) fqdn_refresh: Option<Sp<StrOrInt>>,
    pub(crate) metrics_listen: Option<Sp<String>>,
    pub(crate) allow_key_export: Option<Sp<bool>>,
    pub(crate) esp_packet_ring: Option<Sp<bool>>,
    pub(crate) esp_packet_socket: Option<Sp<bool>>,
    pub(crate) esp_early_drop: Option<Sp<bool>>,
}

/// `[ike-crypto-profile.NAME]` (R-CFG-1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawIkeProfile {
    pub(crate) dh_group: Option<Sp<StrList>>,
    pub(crate) authentication: Option<Sp<StrList>>,
    pub(crate) encryption: Option<Sp<StrList>>,
    pub(crate) lifetime: Option<Sp<StrOrInt>>,
    pub(crate) authentication_multiple: Option<Sp<i64>>,
    pub(crate) additional_key_exchange: Option<Sp<StrList>>,
}

/// `[ipsec-crypto-profile.NAME]` (R-CFG-2).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawIpsecProfile {
    pub(crate) protocol: Option<Sp<String>>,
    pub(crate) encryption: Option<Sp<StrList>>,
    pub(crate) authentication: Option<Sp<StrList>>,
    pub(crate) dh_group: Option<Sp<String>>,
    pub(crate) lifetime: Option<Sp<StrOrInt>>,
    pub(crate) lifesize: Option<Sp<String>>,
    pub(crate) esn: Option<Sp<BoolOrStr>>,
    pub(crate) additional_key_exchange: Option<Sp<StrList>>,
}

/// `[ike-gateway.NAME]` (R-CFG-4).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawGateway {
    pub(crate) version: Option<Sp<String>>,
    pub(crate) address_family: Option<Sp<String>>,
    pub(crate) interface: Option<Sp<String>>,
    pub(crate) local_address: Option<Sp<String>>,
    pub(crate) peer_address: Option<Sp<String>>,
    pub(crate) pre_shared_key: Option<Sp<RawSecret>>,
    pub(crate) certificate: Option<Sp<RawCertificate>>,
    pub(crate) local_id: Option<Sp<RawId>>,
    pub(crate) peer_id: Option<Sp<RawId>>,
    pub(crate) ike_crypto_profile: Option<Sp<String>>,
    pub(crate) exchange_mode: Option<Sp<String>>,
    pub(crate) dpd: Option<Sp<RawDpd>>,
    pub(crate) liveness_interval: Option<Sp<StrOrInt>>,
    pub(crate) strict_cookie_validation: Option<Sp<bool>>,
    pub(crate) nat_traversal: Option<Sp<bool>>,
    pub(crate) passive_mode: Option<Sp<bool>>,
    pub(crate) fragmentation: Option<Sp<bool>>,
    pub(crate) config_payload: Option<Sp<RawConfigPayload>>,
    pub(crate) tcp_encapsulation: Option<Sp<String>>,
    pub(crate) tcp_port: Option<Sp<i64>>,
}

/// `config-payload = { … }` of an IKE gateway (IKEv2 configuration payload, R-V2-12).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawConfigPayload {
    pub(crate) request: Option<Sp<bool>>,
    pub(crate) pool: Option<Sp<StrList>>,
    pub(crate) dns: Option<Sp<StrList>>,
    pub(crate) subnets: Option<Sp<StrList>>,
    pub(crate) required: Option<Sp<bool>>,
}

/// `certificate = { … }` of an IKE gateway.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawCertificate {
    pub(crate) local: Option<Sp<String>>,
    pub(crate) key: Option<Sp<String>>,
    pub(crate) ca: Option<Sp<StrList>>,
    pub(crate) hash_and_url: Option<Sp<String>>,
    pub(crate) hash_and_url_fetch: Option<Sp<bool>>,
    pub(crate) crl: Option<Sp<StrList>>,
    pub(crate) crl_fetch: Option<Sp<bool>>,
}

/// `local-id` / `peer-id = { type = …, value = … }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawId {
    #[serde(rename = "type")]
    pub(crate) id_type: Option<Sp<String>>,
    pub(crate) value: Option<Sp<String>>,
}

/// `dpd = { … }` (IKEv1 dead peer detection, RFC 3706).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawDpd {
    pub(crate) enable: Option<Sp<bool>>,
    pub(crate) interval: Option<Sp<StrOrInt>>,
    pub(crate) retry: Option<Sp<i64>>,
}

/// `[tunnel-interface."tunnel.N"]` (R-CFG-5).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawTunnelInterface {
    pub(crate) zone: Option<Sp<String>>,
    pub(crate) virtual_router: Option<Sp<String>>,
    pub(crate) address: Option<Sp<StrList>>,
    pub(crate) mtu: Option<Sp<i64>>,
    pub(crate) tcp_mss_clamp: Option<Sp<StrOrInt>>,
}

/// `[ipsec-tunnel.NAME]` (R-CFG-6).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawIpsecTunnel {
    pub(crate) tunnel_interface: Option<Sp<String>>,
    #[serde(rename = "type")]
    pub(crate) tunnel_type: Option<Sp<String>>,
    pub(crate) ike_gateway: Option<Sp<String>>,
    pub(crate) ipsec_crypto_profile: Option<Sp<String>>,
    pub(crate) anti_replay: Option<Sp<bool>>,
    pub(crate) replay_window: Option<Sp<i64>>,
    pub(crate) proxy_id: Option<Vec<Sp<RawProxyId>>>,
    pub(crate) tunnel_monitor: Option<Sp<RawTunnelMonitor>>,
    pub(crate) manual_key: Option<Sp<RawManualKey>>,
    pub(crate) establish: Option<Sp<String>>,
}

/// One `proxy-id` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawProxyId {
    pub(crate) name: Option<Sp<String>>,
    pub(crate) local: Option<Sp<String>>,
    pub(crate) remote: Option<Sp<String>>,
    pub(crate) protocol: Option<Sp<StrOrInt>>,
    pub(crate) local_port: Option<Sp<StrOrInt>>,
    pub(crate) remote_port: Option<Sp<StrOrInt>>,
}

/// `tunnel-monitor = { … }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawTunnelMonitor {
    pub(crate) destination: Option<Sp<String>>,
    pub(crate) source: Option<Sp<String>>,
    pub(crate) profile: Option<Sp<String>>,
}

/// `manual-key = { … }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawManualKey {
    pub(crate) local_spi: Option<Sp<StrOrInt>>,
    pub(crate) remote_spi: Option<Sp<StrOrInt>>,
    pub(crate) protocol: Option<Sp<String>>,
    pub(crate) encryption: Option<Sp<String>>,
    pub(crate) encryption_key: Option<Sp<RawSecret>>,
    pub(crate) authentication: Option<Sp<String>>,
    pub(crate) authentication_key: Option<Sp<RawSecret>>,
    pub(crate) local_address: Option<Sp<String>>,
    pub(crate) peer_address: Option<Sp<String>>,
}

/// `[monitor-profile.NAME]` (R-CFG-7).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawMonitorProfile {
    pub(crate) interval: Option<Sp<StrOrInt>>,
    pub(crate) threshold: Option<Sp<i64>>,
    pub(crate) action: Option<Sp<String>>,
}

/// `[virtual-router.NAME]` (R-CFG-8).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawVirtualRouter {
    pub(crate) interfaces: Option<Sp<StrList>>,
    pub(crate) routing_table: Option<Sp<i64>>,
    pub(crate) static_route: Option<Vec<Sp<RawStaticRoute>>>,
}

/// One `static-route` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawStaticRoute {
    pub(crate) name: Option<Sp<String>>,
    pub(crate) destination: Option<Sp<String>>,
    pub(crate) interface: Option<Sp<String>>,
    pub(crate) next_hop: Option<Sp<String>>,
    pub(crate) metric: Option<Sp<i64>>,
}

/// `[zone.NAME]` (R-CFG-9).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawZone {
    pub(crate) interfaces: Option<Sp<StrList>>,
}

/// `[[security-rule]]` (R-CFG-9).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawSecurityRule {
    pub(crate) name: Option<Sp<String>>,
    pub(crate) description: Option<Sp<String>>,
    pub(crate) disabled: Option<Sp<bool>>,
    pub(crate) from: Option<Sp<StrList>>,
    pub(crate) to: Option<Sp<StrList>>,
    pub(crate) source: Option<Sp<StrList>>,
    pub(crate) destination: Option<Sp<StrList>>,
    pub(crate) service: Option<Sp<StrList>>,
    pub(crate) action: Option<Sp<String>>,
}

// ---------------------------------------------------------------------------------------------
// Value shapes

/// A string or a whole number (durations, protocols, ports, SPIs accept both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StrOrInt {
    Str(String),
    Int(i64),
}

impl StrOrInt {
    pub(crate) fn as_text(&self) -> String {
        match self {
            StrOrInt::Str(s) => s.clone(),
            StrOrInt::Int(i) => i.to_string(),
        }
    }
}

impl<'de> Deserialize<'de> for StrOrInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StrOrInt;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a whole number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrOrInt, E> {
                Ok(StrOrInt::Str(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrOrInt, E> {
                Ok(StrOrInt::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrOrInt, E> {
                i64::try_from(v)
                    .map(StrOrInt::Int)
                    .map_err(|_| E::custom("number too large"))
            }
        }
        d.deserialize_any(V)
    }
}

/// A boolean or a string (`esn = true | false | "either"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BoolOrStr {
    Bool(bool),
    Str(String),
}

impl<'de> Deserialize<'de> for BoolOrStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = BoolOrStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or a string")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<BoolOrStr, E> {
                Ok(BoolOrStr::Bool(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BoolOrStr, E> {
                Ok(BoolOrStr::Str(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// One string or a list of strings (`"group19"` or `["group19", "group14"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StrList(pub(crate) Vec<String>);

impl<'de> Deserialize<'de> for StrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrList, E> {
                Ok(StrList(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrList, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(StrList(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Key material as written. Type errors never echo the value, and the text is zeroed on drop.
pub(crate) struct RawSecret(pub(crate) Zeroizing<String>);

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSecret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quoted string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSecret, E> {
                Ok(RawSecret(Zeroizing::new(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<RawSecret, E> {
                Ok(RawSecret(Zeroizing::new(v)))
            }
            // Every other type: say what is expected without echoing the value.
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawSecret, E> {
                Err(E::custom("key material must be a quoted string"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawSecret, E> {
                Err(E::custom("key material must be a quoted string"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawSecret, E> {
                Err(E::custom("key material must be a quoted string"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawSecret, E> {
                Err(E::custom("key material must be a quoted string"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<RawSecret, A::Error> {
                Err(de::Error::custom("key material must be a quoted string"))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<RawSecret, A::Error> {
                Err(de::Error::custom("key material must be a quoted string"))
            }
        }
        d.deserialize_any(V)
    }
}
