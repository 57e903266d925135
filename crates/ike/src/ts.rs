//! Traffic selectors (RFC 7296 §2.9, §3.13).
//!
//! A [`TrafficSelector`] is an inclusive address range of one family, an IP protocol (0 =
//! any) and an inclusive port range. A Child SA carries two lists: TSi (the initiator's
//! side) and TSr (the responder's side); a packet matches when its source is in one list and
//! its destination in the other.
//!
//! # Narrowing
//!
//! The responder answers with the intersection of what the initiator offered and its own
//! policy ([`narrow`]); the result may be narrower than either side. When one of the two
//! lists has an empty intersection the answer is TS_UNACCEPTABLE. The initiator accepts a
//! response only if every returned selector lies inside what it offered
//! ([`TsSet::contains_set`]).
//!
//! A gateway has several policies (proxy IDs) for one peer; [`select_policy`] picks the first
//! whose intersection with the offer is non-empty on both sides, so each proxy ID gets its own
//! Child SA.
//!
//! # Ports
//!
//! `0..=65535` is any port. The OPAQUE range (start 65535, end 0, §3.13.1) says the ports are
//! not available (e.g. fragments); it intersects only with "any port" and with itself.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrosec_wire::ikev2::{self, TsRange};

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrRange {
    /// IPv4, `start <= end`.
    V4 {
        /// First address.
        start: Ipv4Addr,
        /// Last address.
        end: Ipv4Addr,
    },
    /// IPv6, `start <= end`.
    V6 {
        /// First address.
        start: Ipv6Addr,
        /// Last address.
        end: Ipv6Addr,
    },
}

/// Why an address range could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddrRangeError {
    /// Start and end are of different families.
    #[error("range {0} - {1} mixes IPv4 and IPv6")]
    MixedFamilies(IpAddr, IpAddr),
    /// Start is after end.
    #[error("range {0} - {1} starts after it ends")]
    Reversed(IpAddr, IpAddr),
    /// Prefix length too long for the family.
    #[error("prefix length /{1} is too long for {0}")]
    PrefixTooLong(IpAddr, u8),
}

impl AddrRange {
    /// Every IPv4 address.
    pub const V4_ANY: AddrRange = AddrRange::V4 {
        start: Ipv4Addr::UNSPECIFIED,
        end: Ipv4Addr::BROADCAST,
    };
    /// Every IPv6 address.
    pub const V6_ANY: AddrRange = AddrRange::V6 {
        start: Ipv6Addr::UNSPECIFIED,
        end: Ipv6Addr::from_bits(u128::MAX),
    };

    /// The range `start..=end`; both of one family, `start <= end`.
    pub fn new(start: IpAddr, end: IpAddr) -> Result<Self, AddrRangeError> {
        match (start, end) {
            (IpAddr::V4(s), IpAddr::V4(e)) if s <= e => Ok(AddrRange::V4 { start: s, end: e }),
            (IpAddr::V6(s), IpAddr::V6(e)) if s <= e => Ok(AddrRange::V6 { start: s, end: e }),
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                Err(AddrRangeError::Reversed(start, end))
            }
            _ => Err(AddrRangeError::MixedFamilies(start, end)),
        }
    }

    /// The addresses of a prefix `addr/len` (host bits of `addr` are ignored).
    pub fn from_prefix(addr: IpAddr, len: u8) -> Result<Self, AddrRangeError> {
        match addr {
            IpAddr::V4(a) => {
                if len > 32 {
                    return Err(AddrRangeError::PrefixTooLong(addr, len));
                }
                let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                let bits = a.to_bits();
                Ok(AddrRange::V4 {
                    start: Ipv4Addr::from_bits(bits & !host),
                    end: Ipv4Addr::from_bits(bits | host),
                })
            }
            IpAddr::V6(a) => {
                if len > 128 {
                    return Err(AddrRangeError::PrefixTooLong(addr, len));
                }
                let host = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                let bits = a.to_bits();
                Ok(AddrRange::V6 {
                    start: Ipv6Addr::from_bits(bits & !host),
                    end: Ipv6Addr::from_bits(bits | host),
                })
            }
        }
    }

    /// A single address.
    pub fn host(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => AddrRange::V4 { start: a, end: a },
            IpAddr::V6(a) => AddrRange::V6 { start: a, end: a },
        }
    }

    /// True for IPv6.
    pub fn is_ipv6(&self) -> bool {
        matches!(self, AddrRange::V6 { .. })
    }

    /// First address.
    pub fn start(&self) -> IpAddr {
        match *self {
            AddrRange::V4 { start, .. } => start.into(),
            AddrRange::V6 { start, .. } => start.into(),
        }
    }

    /// Last address.
    pub fn end(&self) -> IpAddr {
        match *self {
            AddrRange::V4 { end, .. } => end.into(),
            AddrRange::V6 { end, .. } => end.into(),
        }
    }

    /// Whether `addr` lies in the range.
    pub fn contains_addr(&self, addr: IpAddr) -> bool {
        match (*self, addr) {
            (AddrRange::V4 { start, end }, IpAddr::V4(a)) => start <= a && a <= end,
            (AddrRange::V6 { start, end }, IpAddr::V6(a)) => start <= a && a <= end,
            _ => false,
        }
    }

    /// Whether every address of `other` is in `self`.
    pub fn contains(&self, other: &AddrRange) -> bool {
        match (*self, *other) {
            (AddrRange::V4 { start, end }, AddrRange::V4 { start: s, end: e }) => {
                start <= s && e <= end
            }
            (AddrRange::V6 { start, end }, AddrRange::V6 { start: s, end: e }) => {
                start <= s && e <= end
            }
            _ => false,
        }
    }

    /// The common addresses, if any.
    pub fn intersect(&self, other: &AddrRange) -> Option<AddrRange> {
        match (*self, *other) {
            (AddrRange::V4 { start: a, end: b }, AddrRange::V4 { start: c, end: d }) => {
                let (s, e) = (a.max(c), b.min(d));
                (s <= e).then_some(AddrRange::V4 { start: s, end: e })
            }
            (AddrRange::V6 { start: a, end: b }, AddrRange::V6 { start: c, end: d }) => {
                let (s, e) = (a.max(c), b.min(d));
                (s <= e).then_some(AddrRange::V6 { start: s, end: e })
            }
            _ => None,
        }
    }

    /// The prefix length, if the range is exactly one prefix.
    pub fn prefix_len(&self) -> Option<u8> {
        let (s, e, bits) = match *self {
            AddrRange::V4 { start, end } => (
                u128::from(start.to_bits()),
                u128::from(end.to_bits()),
                32u32,
            ),
            AddrRange::V6 { start, end } => (start.to_bits(), end.to_bits(), 128),
        };
        let host = s ^ e;
        // host must be of the form 0…01…1 and s must have those bits clear.
        if host & host.wrapping_add(1) != 0 || s & host != 0 {
            return None;
        }
        let host_bits = 128 - host.leading_zeros();
        u8::try_from(bits - host_bits).ok()
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix_len() {
            Some(len) => write!(f, "{}/{}", self.start(), len),
            None => write!(f, "{}-{}", self.start(), self.end()),
        }
    }
}

/// An inclusive port range, or the OPAQUE range of §3.13.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// Start Port.
    pub start: u16,
    /// End Port.
    pub end: u16,
}

impl PortRange {
    /// Every port.
    pub const ANY: PortRange = PortRange {
        start: 0,
        end: 65535,
    };
    /// OPAQUE: the ports are not available (§3.13.1: start 65535, end 0).
    pub const OPAQUE: PortRange = PortRange {
        start: 65535,
        end: 0,
    };

    /// One port.
    pub fn single(port: u16) -> Self {
        PortRange {
            start: port,
            end: port,
        }
    }

    /// True for the OPAQUE range (and any other start > end, which we read the same way).
    pub fn is_opaque(&self) -> bool {
        self.start > self.end
    }

    /// True for `0..=65535`.
    pub fn is_any(&self) -> bool {
        *self == Self::ANY
    }

    /// Whether every port of `other` is in `self`.
    pub fn contains(&self, other: &PortRange) -> bool {
        match (self.is_opaque(), other.is_opaque()) {
            (false, false) => self.start <= other.start && other.end <= self.end,
            (true, true) => true,
            (false, true) => self.is_any(),
            (true, false) => false,
        }
    }

    /// The common ports, if any.
    pub fn intersect(&self, other: &PortRange) -> Option<PortRange> {
        match (self.is_opaque(), other.is_opaque()) {
            (false, false) => {
                let (s, e) = (self.start.max(other.start), self.end.min(other.end));
                (s <= e).then_some(PortRange { start: s, end: e })
            }
            (true, true) => Some(Self::OPAQUE),
            (true, false) => other.is_any().then_some(Self::OPAQUE),
            (false, true) => self.is_any().then_some(Self::OPAQUE),
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            f.write_str("any")
        } else if self.is_opaque() {
            f.write_str("opaque")
        } else if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// One traffic selector: addresses, IP protocol (0 = any) and ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    /// The addresses.
    pub addrs: AddrRange,
    /// IP protocol number; 0 = any.
    pub protocol: u8,
    /// The ports (meaningful for TCP, UDP, SCTP; ICMP type/code per RFC 4301 §4.4.1.1).
    pub ports: PortRange,
}

impl TrafficSelector {
    /// Every address of the family, any protocol, any port.
    pub fn any(ipv6: bool) -> Self {
        TrafficSelector {
            addrs: if ipv6 {
                AddrRange::V6_ANY
            } else {
                AddrRange::V4_ANY
            },
            protocol: 0,
            ports: PortRange::ANY,
        }
    }

    /// Addresses only, any protocol and port.
    pub fn from_addrs(addrs: AddrRange) -> Self {
        TrafficSelector {
            addrs,
            protocol: 0,
            ports: PortRange::ANY,
        }
    }

    /// Whether every packet that `other` matches is matched by `self`.
    pub fn contains(&self, other: &TrafficSelector) -> bool {
        self.addrs.contains(&other.addrs)
            && (self.protocol == 0 || self.protocol == other.protocol)
            && self.ports.contains(&other.ports)
    }

    /// The selector matching exactly the packets both match, if any.
    pub fn intersect(&self, other: &TrafficSelector) -> Option<TrafficSelector> {
        let addrs = self.addrs.intersect(&other.addrs)?;
        let protocol = match (self.protocol, other.protocol) {
            (0, p) | (p, 0) => p,
            (a, b) if a == b => a,
            _ => return None,
        };
        let ports = self.ports.intersect(&other.ports)?;
        Some(TrafficSelector {
            addrs,
            protocol,
            ports,
        })
    }

    /// Whether a packet with this address, protocol and port matches.
    pub fn matches(&self, addr: IpAddr, protocol: u8, port: u16) -> bool {
        self.addrs.contains_addr(addr)
            && (self.protocol == 0 || self.protocol == protocol)
            && (self.ports.is_any()
                || (!self.ports.is_opaque() && self.ports.start <= port && port <= self.ports.end))
    }

    /// The wire form.
    pub fn to_wire(&self) -> ikev2::TrafficSelector<'static> {
        match self.addrs {
            AddrRange::V4 { start, end } => ikev2::TrafficSelector::Ipv4(TsRange {
                ip_protocol: self.protocol,
                start_port: self.ports.start,
                end_port: self.ports.end,
                start,
                end,
            }),
            AddrRange::V6 { start, end } => ikev2::TrafficSelector::Ipv6(TsRange {
                ip_protocol: self.protocol,
                start_port: self.ports.start,
                end_port: self.ports.end,
                start,
                end,
            }),
        }
    }

    /// From the wire form. `None` for TS types we do not implement and for ranges whose start
    /// address is after the end (they match nothing).
    pub fn from_wire(ts: &ikev2::TrafficSelector<'_>) -> Option<Self> {
        let (addrs, protocol, sp, ep) = match ts {
            ikev2::TrafficSelector::Ipv4(r) => (
                AddrRange::new(r.start.into(), r.end.into()).ok()?,
                r.ip_protocol,
                r.start_port,
                r.end_port,
            ),
            ikev2::TrafficSelector::Ipv6(r) => (
                AddrRange::new(r.start.into(), r.end.into()).ok()?,
                r.ip_protocol,
                r.start_port,
                r.end_port,
            ),
            ikev2::TrafficSelector::Other { .. } => return None,
        };
        Some(TrafficSelector {
            addrs,
            protocol,
            ports: PortRange { start: sp, end: ep },
        })
    }
}

/// A protocol number in words.
pub(crate) fn protocol_name(p: u8) -> String {
    match p {
        0 => "any".into(),
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        n => format!("proto {n}"),
    }
}

impl fmt::Display for TrafficSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addrs)?;
        if self.protocol != 0 || !self.ports.is_any() {
            write!(f, " {}", protocol_name(self.protocol))?;
        }
        if !self.ports.is_any() {
            write!(f, " port {}", self.ports)?;
        }
        Ok(())
    }
}

/// An ordered list of traffic selectors (the content of one TSi or TSr payload).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TsSet(pub Vec<TrafficSelector>);

/// The most selectors one TS payload may carry (the count field is one octet).
pub const MAX_SELECTORS: usize = 255;

impl TsSet {
    /// A set of one selector.
    pub fn single(ts: TrafficSelector) -> Self {
        TsSet(vec![ts])
    }

    /// True if there are no selectors.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The selectors.
    pub fn iter(&self) -> impl Iterator<Item = &TrafficSelector> {
        self.0.iter()
    }

    /// Whether each selector of `other` lies inside one selector of `self`.
    ///
    /// (A selector covered only by the union of several of ours is not accepted: that is the
    /// strict reading strongSwan also applies.)
    pub fn contains_set(&self, other: &TsSet) -> bool {
        other.0.iter().all(|o| self.0.iter().any(|s| s.contains(o)))
    }

    /// Whether a packet with this address, protocol and port matches one of the selectors.
    pub fn matches(&self, addr: IpAddr, protocol: u8, port: u16) -> bool {
        self.0.iter().any(|s| s.matches(addr, protocol, port))
    }

    /// The pairwise intersections of the two sets, in the order of `self` (then of `other`),
    /// without duplicates and without selectors contained in an earlier one.
    pub fn intersect(&self, other: &TsSet) -> TsSet {
        let mut out: Vec<TrafficSelector> = Vec::new();
        for a in &self.0 {
            for b in &other.0 {
                if let Some(c) = a.intersect(b)
                    && !out.iter().any(|o| o.contains(&c))
                {
                    out.retain(|o| !c.contains(o));
                    out.push(c);
                }
            }
        }
        out.truncate(MAX_SELECTORS);
        TsSet(out)
    }

    /// The wire form.
    pub fn to_wire(&self) -> ikev2::TrafficSelectors<'static> {
        ikev2::TrafficSelectors {
            selectors: self.0.iter().map(TrafficSelector::to_wire).collect(),
        }
    }

    /// From the wire form; selectors of unknown types are skipped (§3.13.1: a responder
    /// ignores what it does not understand and narrows over the rest).
    pub fn from_wire(ts: &ikev2::TrafficSelectors<'_>) -> Self {
        TsSet(
            ts.selectors
                .iter()
                .filter_map(TrafficSelector::from_wire)
                .collect(),
        )
    }
}

impl fmt::Display for TsSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(none)");
        }
        for (i, ts) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{ts}")?;
        }
        Ok(())
    }
}

/// An address side of a proxy ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrSpec {
    /// Every address of both families: gives one IPv4 and one IPv6 selector.
    Any,
    /// One range (a prefix or host converts with [`AddrRange::from_prefix`] / `host`).
    Range(AddrRange),
}

impl AddrSpec {
    fn ranges(&self) -> Vec<AddrRange> {
        match self {
            AddrSpec::Any => vec![AddrRange::V4_ANY, AddrRange::V6_ANY],
            AddrSpec::Range(r) => vec![*r],
        }
    }
}

/// A proxy ID (R-CFG-6): the local and remote side of one tunnel policy, with protocol and
/// ports. It gives the local selectors (TSi when we initiate) and the remote ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyId {
    /// A name for logs ("lan").
    pub name: String,
    /// Local addresses.
    pub local: AddrSpec,
    /// Remote addresses.
    pub remote: AddrSpec,
    /// IP protocol, 0 = any.
    pub protocol: u8,
    /// Local ports.
    pub local_ports: PortRange,
    /// Remote ports.
    pub remote_ports: PortRange,
}

impl ProxyId {
    /// The proxy ID used when none is configured: any address of both families, both ways.
    pub fn any(name: &str) -> Self {
        ProxyId {
            name: name.to_owned(),
            local: AddrSpec::Any,
            remote: AddrSpec::Any,
            protocol: 0,
            local_ports: PortRange::ANY,
            remote_ports: PortRange::ANY,
        }
    }

    /// This policy as traffic selectors.
    ///
    /// When one side is a single family and the other is `any`, the `any` side keeps only
    /// that family (an IPv4 local prefix with an `any` remote is an IPv4 tunnel).
    pub fn to_policy(&self) -> TsPolicy {
        let local = self.local.ranges();
        let remote = self.remote.ranges();
        let families = |v: &[AddrRange]| {
            (
                v.iter().any(|r| !r.is_ipv6()),
                v.iter().any(AddrRange::is_ipv6),
            )
        };
        let (l4, l6) = families(&local);
        let (r4, r6) = families(&remote);
        let keep = |r: &AddrRange| {
            if r.is_ipv6() { l6 && r6 } else { l4 && r4 }
        };
        let side = |v: Vec<AddrRange>, ports: PortRange| {
            TsSet(
                v.into_iter()
                    .filter(keep)
                    .map(|addrs| TrafficSelector {
                        addrs,
                        protocol: self.protocol,
                        ports,
                    })
                    .collect(),
            )
        };
        TsPolicy {
            name: self.name.clone(),
            local: side(local, self.local_ports),
            remote: side(remote, self.remote_ports),
        }
    }
}

/// A policy in selector form: what we allow on our side and on the peer's side.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TsPolicy {
    /// The proxy ID's name.
    pub name: String,
    /// Our side.
    pub local: TsSet,
    /// The peer's side.
    pub remote: TsSet,
}

impl TsPolicy {
    /// The (TSi, TSr) to offer when we initiate.
    pub fn initiator_offer(&self) -> (TsSet, TsSet) {
        (self.local.clone(), self.remote.clone())
    }
}

/// The outcome of narrowing: the TSi and TSr of the Child SA.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Narrowed {
    /// The initiator's side.
    pub tsi: TsSet,
    /// The responder's side.
    pub tsr: TsSet,
}

/// TS_UNACCEPTABLE, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("traffic selectors unacceptable: peer offered TSi [{offered_tsi}] TSr [{offered_tsr}]; {}", self.ours())]
pub struct TsUnacceptable {
    /// What the initiator offered as its side.
    pub offered_tsi: TsSet,
    /// What the initiator offered as the responder's side.
    pub offered_tsr: TsSet,
    /// Our policies, as (name, local, remote).
    pub policies: Vec<(String, TsSet, TsSet)>,
}

impl TsUnacceptable {
    fn ours(&self) -> String {
        if self.policies.is_empty() {
            return "we have no proxy ID for this peer".into();
        }
        let list: Vec<String> = self
            .policies
            .iter()
            .map(|(n, l, r)| format!("{n}: local [{l}] remote [{r}]"))
            .collect();
        format!("our proxy IDs are {}", list.join("; "))
    }
}

/// Responder narrowing (§2.9) against one policy: TSi ∩ remote and TSr ∩ local. `None` if
/// either side has no intersection.
//= https://www.rfc-editor.org/rfc/rfc7296#section-2.9
//# To enable the responder to choose the appropriate range in this case, if the
//# initiator has requested the SA due to a data packet, the initiator SHOULD include
//# as the first Traffic Selector in each of TSi and TSr a very specific Traffic
//# Selector including the addresses in the packet triggering the request.
pub fn narrow(tsi: &TsSet, tsr: &TsSet, policy: &TsPolicy) -> Option<Narrowed> {
    // Intersect in the order of the offer so that the initiator's preference (e.g. a
    // packet-specific first selector) comes first.
    let ni = tsi.intersect(&policy.remote);
    let nr = tsr.intersect(&policy.local);
    (!ni.is_empty() && !nr.is_empty()).then_some(Narrowed { tsi: ni, tsr: nr })
}

/// Responder: the first policy (in configuration order) that the offer intersects on both
/// sides, with the narrowed selectors; TS_UNACCEPTABLE otherwise.
pub fn select_policy<'a>(
    tsi: &TsSet,
    tsr: &TsSet,
    policies: impl IntoIterator<Item = &'a TsPolicy> + Clone,
) -> Result<(usize, Narrowed), TsUnacceptable> {
    matching_policies(tsi, tsr, policies).map(|mut v| v.swap_remove(0))
}

/// Responder: every policy (in configuration order) that the offer intersects on both sides,
/// with the narrowed selectors (never empty); TS_UNACCEPTABLE when there is none. The caller
/// takes the first whose other settings (e.g. its Child SA proposals) also accept the offer.
pub fn matching_policies<'a>(
    tsi: &TsSet,
    tsr: &TsSet,
    policies: impl IntoIterator<Item = &'a TsPolicy> + Clone,
) -> Result<Vec<(usize, Narrowed)>, TsUnacceptable> {
    let found: Vec<(usize, Narrowed)> = policies
        .clone()
        .into_iter()
        .enumerate()
        .filter_map(|(i, p)| narrow(tsi, tsr, p).map(|n| (i, n)))
        .collect();
    if !found.is_empty() {
        return Ok(found);
    }
    Err(TsUnacceptable {
        offered_tsi: tsi.clone(),
        offered_tsr: tsr.clone(),
        policies: policies
            .into_iter()
            .map(|p| (p.name.clone(), p.local.clone(), p.remote.clone()))
            .collect(),
    })
}

/// Initiator: checks the responder's answer against our offer. Each returned selector must lie
/// inside one we offered (the responder may only narrow), and neither list may be empty.
pub fn check_response(offer: &Narrowed, answer: &Narrowed) -> bool {
    !answer.tsi.is_empty()
        && !answer.tsr.is_empty()
        && offer.tsi.contains_set(&answer.tsi)
        && offer.tsr.contains_set(&answer.tsr)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn v4(s: &str) -> AddrRange {
        let (a, l) = s.split_once('/').unwrap();
        AddrRange::from_prefix(a.parse().unwrap(), l.parse().unwrap()).unwrap()
    }

    fn ts(s: &str) -> TrafficSelector {
        TrafficSelector::from_addrs(v4(s))
    }

    fn policy(name: &str, local: &str, remote: &str) -> TsPolicy {
        TsPolicy {
            name: name.into(),
            local: TsSet::single(ts(local)),
            remote: TsSet::single(ts(remote)),
        }
    }

    #[test]
    fn prefix_ranges() {
        let r = v4("10.1.2.3/24");
        assert_eq!(r.start(), "10.1.2.0".parse::<IpAddr>().unwrap());
        assert_eq!(r.end(), "10.1.2.255".parse::<IpAddr>().unwrap());
        assert_eq!(r.prefix_len(), Some(24));
        assert_eq!(r.to_string(), "10.1.2.0/24");
        assert_eq!(v4("0.0.0.0/0"), AddrRange::V4_ANY);
        assert_eq!(v4("1.2.3.4/32").to_string(), "1.2.3.4/32");
        let odd = AddrRange::new("10.0.0.1".parse().unwrap(), "10.0.0.9".parse().unwrap()).unwrap();
        assert_eq!(odd.prefix_len(), None);
        assert_eq!(odd.to_string(), "10.0.0.1-10.0.0.9");
        let v6 = AddrRange::from_prefix("2001:db8::1".parse().unwrap(), 32).unwrap();
        assert_eq!(v6.to_string(), "2001:db8::/32");
        assert_eq!(AddrRange::V6_ANY.prefix_len(), Some(0));
        assert!(AddrRange::from_prefix("1.2.3.4".parse().unwrap(), 33).is_err());
        assert!(AddrRange::new("1.2.3.4".parse().unwrap(), "::1".parse().unwrap()).is_err());
        assert!(AddrRange::new("1.2.3.4".parse().unwrap(), "1.2.3.3".parse().unwrap()).is_err());
    }

    #[test]
    fn protocol_and_ports() {
        let any = ts("10.0.0.0/8");
        let tcp80 = TrafficSelector {
            protocol: 6,
            ports: PortRange::single(80),
            ..ts("10.1.0.0/16")
        };
        let udp = TrafficSelector {
            protocol: 17,
            ..ts("10.0.0.0/8")
        };
        assert_eq!(any.intersect(&tcp80), Some(tcp80));
        assert_eq!(tcp80.intersect(&udp), None);
        assert!(any.contains(&tcp80));
        assert!(!tcp80.contains(&any));
        let tcp_hi = TrafficSelector {
            ports: PortRange {
                start: 1024,
                end: 65535,
            },
            ..tcp80
        };
        assert_eq!(tcp80.intersect(&tcp_hi), None);
        assert!(tcp80.matches("10.1.9.9".parse().unwrap(), 6, 80));
        assert!(!tcp80.matches("10.1.9.9".parse().unwrap(), 6, 81));
        assert!(!tcp80.matches("10.1.9.9".parse().unwrap(), 17, 80));
        // OPAQUE meets only "any port".
        let opaque = TrafficSelector {
            ports: PortRange::OPAQUE,
            ..any
        };
        assert_eq!(
            opaque.intersect(&any).map(|t| t.ports),
            Some(PortRange::OPAQUE)
        );
        assert_eq!(opaque.intersect(&tcp80), None);
        assert_eq!(tcp80.to_string(), "10.1.0.0/16 tcp port 80");
    }

    #[test]
    fn responder_narrows_to_its_policy() {
        // Peer offers 10.2.0.0/16 <-> 10.1.0.0/16; we allow only a /24 on each side.
        let p = policy("lan", "10.1.0.0/24", "10.2.0.0/24");
        let n = narrow(
            &TsSet::single(ts("10.2.0.0/16")),
            &TsSet::single(ts("10.1.0.0/16")),
            &p,
        )
        .unwrap();
        assert_eq!(n.tsi, TsSet::single(ts("10.2.0.0/24")));
        assert_eq!(n.tsr, TsSet::single(ts("10.1.0.0/24")));
        // And the initiator accepts it: it lies inside the offer.
        let offer = Narrowed {
            tsi: TsSet::single(ts("10.2.0.0/16")),
            tsr: TsSet::single(ts("10.1.0.0/16")),
        };
        assert!(check_response(&offer, &n));
    }

    #[test]
    fn initiator_may_be_the_narrower() {
        let p = policy("wide", "10.0.0.0/8", "192.168.0.0/16");
        let n = narrow(
            &TsSet::single(ts("192.168.5.0/24")),
            &TsSet::single(ts("10.9.0.0/16")),
            &p,
        )
        .unwrap();
        assert_eq!(n.tsi, TsSet::single(ts("192.168.5.0/24")));
        assert_eq!(n.tsr, TsSet::single(ts("10.9.0.0/16")));
    }

    #[test]
    fn initiator_rejects_a_widened_answer() {
        let offer = Narrowed {
            tsi: TsSet::single(ts("10.2.0.0/24")),
            tsr: TsSet::single(ts("10.1.0.0/24")),
        };
        let wider = Narrowed {
            tsi: TsSet::single(ts("10.2.0.0/16")),
            tsr: TsSet::single(ts("10.1.0.0/24")),
        };
        assert!(!check_response(&offer, &wider));
        let empty = Narrowed {
            tsi: TsSet::default(),
            tsr: TsSet::single(ts("10.1.0.0/24")),
        };
        assert!(!check_response(&offer, &empty));
    }

    #[test]
    fn unacceptable_names_both_sides() {
        let pols = [
            policy("lan", "10.1.0.0/24", "10.2.0.0/24"),
            policy("dmz", "172.16.0.0/24", "10.2.0.0/24"),
        ];
        let err = select_policy(
            &TsSet::single(ts("10.3.0.0/24")),
            &TsSet::single(ts("10.1.0.0/24")),
            &pols,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("peer offered TSi [10.3.0.0/24] TSr [10.1.0.0/24]"),
            "{msg}"
        );
        assert!(
            msg.contains("lan: local [10.1.0.0/24] remote [10.2.0.0/24]"),
            "{msg}"
        );
        assert!(msg.contains("dmz: local [172.16.0.0/24]"), "{msg}");
    }

    #[test]
    fn select_policy_picks_the_matching_proxy_id() {
        let pols = [
            policy("lan", "10.1.0.0/24", "10.2.0.0/24"),
            policy("dmz", "172.16.0.0/24", "10.2.0.0/24"),
        ];
        let (i, n) = select_policy(
            &TsSet::single(ts("10.2.0.0/24")),
            &TsSet::single(ts("172.16.0.0/16")),
            &pols,
        )
        .unwrap();
        assert_eq!(i, 1);
        assert_eq!(n.tsr, TsSet::single(ts("172.16.0.0/24")));
    }

    #[test]
    fn family_mismatch_is_unacceptable() {
        let p = ProxyId {
            name: "v6".into(),
            local: AddrSpec::Range(
                AddrRange::from_prefix("2001:db8:1::".parse().unwrap(), 48).unwrap(),
            ),
            remote: AddrSpec::Any,
            protocol: 0,
            local_ports: PortRange::ANY,
            remote_ports: PortRange::ANY,
        }
        .to_policy();
        // `any` on the remote side keeps only IPv6.
        assert_eq!(p.remote, TsSet::single(TrafficSelector::any(true)));
        assert!(narrow(&TsSet::single(ts("10.2.0.0/24")), &p.local, &p).is_none());
    }

    #[test]
    fn proxy_id_any_gives_both_families() {
        let p = ProxyId::any("default").to_policy();
        assert_eq!(
            p.local,
            TsSet(vec![
                TrafficSelector::any(false),
                TrafficSelector::any(true)
            ])
        );
        let (tsi, tsr) = p.initiator_offer();
        assert_eq!(tsi, p.local);
        assert_eq!(tsr, p.remote);
    }

    #[test]
    fn proxy_id_with_protocol_and_port() {
        let p = ProxyId {
            name: "dns".into(),
            local: AddrSpec::Range(AddrRange::host("10.1.0.53".parse().unwrap())),
            remote: AddrSpec::Range(v4("10.3.0.0/24")),
            protocol: 17,
            local_ports: PortRange::single(53),
            remote_ports: PortRange::ANY,
        }
        .to_policy();
        assert_eq!(p.local.0[0].protocol, 17);
        assert_eq!(p.local.0[0].ports, PortRange::single(53));
        assert_eq!(p.remote.0[0].protocol, 17);
        assert_eq!(p.to_owned().local.to_string(), "10.1.0.53/32 udp port 53");
        // An offer of "any protocol" narrows to UDP/53.
        let n = narrow(
            &TsSet::single(ts("10.3.0.0/16")),
            &TsSet::single(ts("10.1.0.0/24")),
            &p,
        )
        .unwrap();
        assert_eq!(n.tsr, p.local);
    }

    #[test]
    fn intersect_drops_contained_and_duplicates() {
        let a = TsSet(vec![ts("10.0.0.0/8"), ts("10.1.0.0/16")]);
        let b = TsSet(vec![ts("10.1.0.0/24"), ts("10.1.0.0/16")]);
        // 10/8∩10.1/24 = 10.1/24, 10/8∩10.1/16 = 10.1/16 (swallows the /24),
        // 10.1/16∩… = duplicates.
        assert_eq!(a.intersect(&b), TsSet(vec![ts("10.1.0.0/16")]));
    }

    #[test]
    fn wire_round_trip() {
        let set = TsSet(vec![
            TrafficSelector {
                protocol: 6,
                ports: PortRange::single(443),
                ..ts("10.1.0.0/24")
            },
            TrafficSelector::any(true),
        ]);
        let w = set.to_wire();
        assert_eq!(TsSet::from_wire(&w), set);
        // A reversed range from the wire is dropped, not a panic.
        let bad = ikev2::TrafficSelectors {
            selectors: vec![ikev2::TrafficSelector::Ipv4(TsRange {
                ip_protocol: 0,
                start_port: 0,
                end_port: 65535,
                start: "10.0.0.9".parse().unwrap(),
                end: "10.0.0.1".parse().unwrap(),
            })],
        };
        assert!(TsSet::from_wire(&bad).is_empty());
    }

    fn arb_v4_range() -> impl Strategy<Value = AddrRange> {
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| AddrRange::V4 {
            start: Ipv4Addr::from_bits(a.min(b)),
            end: Ipv4Addr::from_bits(a.max(b)),
        })
    }

    fn arb_v6_range() -> impl Strategy<Value = AddrRange> {
        (any::<u128>(), any::<u128>()).prop_map(|(a, b)| AddrRange::V6 {
            start: Ipv6Addr::from_bits(a.min(b)),
            end: Ipv6Addr::from_bits(a.max(b)),
        })
    }

    fn arb_ports() -> impl Strategy<Value = PortRange> {
        prop_oneof![
            Just(PortRange::ANY),
            Just(PortRange::OPAQUE),
            (any::<u16>(), any::<u16>()).prop_map(|(a, b)| PortRange {
                start: a.min(b),
                end: a.max(b)
            }),
        ]
    }

    fn arb_ts() -> impl Strategy<Value = TrafficSelector> {
        (
            prop_oneof![3 => arb_v4_range(), 1 => arb_v6_range()],
            prop_oneof![Just(0u8), Just(6u8), Just(17u8)],
            arb_ports(),
        )
            .prop_map(|(addrs, protocol, ports)| TrafficSelector {
                addrs,
                protocol,
                ports,
            })
    }

    fn arb_set() -> impl Strategy<Value = TsSet> {
        proptest::collection::vec(arb_ts(), 0..4).prop_map(TsSet)
    }

    proptest! {
        #[test]
        fn intersection_is_commutative(a in arb_ts(), b in arb_ts()) {
            prop_assert_eq!(a.intersect(&b), b.intersect(&a));
        }

        #[test]
        fn intersection_is_contained_in_both(a in arb_ts(), b in arb_ts()) {
            if let Some(c) = a.intersect(&b) {
                prop_assert!(a.contains(&c));
                prop_assert!(b.contains(&c));
            }
        }

        #[test]
        fn intersection_with_self_is_identity(a in arb_ts()) {
            prop_assert_eq!(a.intersect(&a), Some(a));
            prop_assert!(a.contains(&a));
        }

        #[test]
        fn intersection_keeps_every_common_packet(
            a in arb_ts(), b in arb_ts(), addr in any::<u32>(), proto in 0u8..20, port in any::<u16>()
        ) {
            let addr = IpAddr::V4(Ipv4Addr::from_bits(addr));
            let both = a.matches(addr, proto, port) && b.matches(addr, proto, port);
            let c = a.intersect(&b).is_some_and(|c| c.matches(addr, proto, port));
            prop_assert_eq!(both, c);
        }

        #[test]
        fn contained_means_intersection_is_the_smaller(a in arb_ts(), b in arb_ts()) {
            if a.contains(&b) {
                prop_assert_eq!(a.intersect(&b), Some(b));
            }
        }

        #[test]
        fn set_intersection_is_contained_in_both(a in arb_set(), b in arb_set()) {
            let c = a.intersect(&b);
            prop_assert!(a.contains_set(&c));
            prop_assert!(b.contains_set(&c));
            // Commutative as a set of packets: each side's result lies in the other's.
            let d = b.intersect(&a);
            prop_assert!(c.contains_set(&d));
            prop_assert!(d.contains_set(&c));
        }

        #[test]
        fn narrowing_is_accepted_by_the_initiator(
            tsi in arb_set(), tsr in arb_set(), local in arb_set(), remote in arb_set()
        ) {
            let p = TsPolicy { name: "p".into(), local, remote };
            if let Some(n) = narrow(&tsi, &tsr, &p) {
                let offer = Narrowed { tsi: tsi.clone(), tsr: tsr.clone() };
                prop_assert!(check_response(&offer, &n));
                prop_assert!(p.remote.contains_set(&n.tsi));
                prop_assert!(p.local.contains_set(&n.tsr));
            } else {
                prop_assert!(tsi.intersect(&p.remote).is_empty() || tsr.intersect(&p.local).is_empty());
            }
        }

        #[test]
        fn wire_round_trip_any(set in arb_set()) {
            prop_assert_eq!(TsSet::from_wire(&set.to_wire()), set);
        }
    }
}
