//! Traffic selectors (RFC 7296 §3.13.1, RFC 4301 §4.4.1) and the 5-tuple of an inner packet.
//!
//! An SA carries the selector lists negotiated for it: `local` (our side's networks) and
//! `remote` (the peer's). IKEv2 semantics apply: the SA covers traffic between *any* local and
//! *any* remote selector. Outbound, a packet's source must match a local selector and its
//! destination a remote one; inbound (after decryption, SPEC R-DP-5) the other way round.
//!
//! Ports: a selector whose port range is the whole 0–65535 (or the OPAQUE range 65535–0) also
//! matches packets whose ports cannot be seen — non-initial fragments, protocols without ports,
//! transport headers cut short. A narrower range matches only packets with visible ports in it.
//! For ICMP and ICMPv6 the "port" is type × 256 + code (RFC 7296 §3.13.1), compared on both
//! sides.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::stats::DropReason;

/// One traffic selector: an address range, an IP protocol (0 = any) and a port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    /// IP protocol number, 0 for any.
    pub protocol: u8,
    /// First address of the range (same family as `end_addr`).
    pub start_addr: IpAddr,
    /// Last address of the range.
    pub end_addr: IpAddr,
    /// First port (or ICMP type/code) of the range.
    pub start_port: u16,
    /// Last port of the range.
    pub end_port: u16,
}

impl TrafficSelector {
    /// Any IPv4 address, any protocol, any port.
    pub const ANY_V4: Self = Self {
        protocol: 0,
        start_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        end_addr: IpAddr::V4(Ipv4Addr::BROADCAST),
        start_port: 0,
        end_port: u16::MAX,
    };

    /// Any IPv6 address, any protocol, any port.
    pub const ANY_V6: Self = Self {
        protocol: 0,
        start_addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        end_addr: IpAddr::V6(Ipv6Addr::new(
            0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
        )),
        start_port: 0,
        end_port: u16::MAX,
    };

    /// A prefix (`10.1.0.0/16`), any protocol and port. `None` if the length is too long for
    /// the family.
    pub fn from_prefix(addr: IpAddr, prefix_len: u8) -> Option<Self> {
        let (start_addr, end_addr) = match addr {
            IpAddr::V4(a) => {
                if prefix_len > 32 {
                    return None;
                }
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(prefix_len))
                    .unwrap_or(0);
                let start = u32::from(a) & mask;
                (IpAddr::V4(start.into()), IpAddr::V4((start | !mask).into()))
            }
            IpAddr::V6(a) => {
                if prefix_len > 128 {
                    return None;
                }
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(prefix_len))
                    .unwrap_or(0);
                let start = u128::from(a) & mask;
                (IpAddr::V6(start.into()), IpAddr::V6((start | !mask).into()))
            }
        };
        Some(Self {
            protocol: 0,
            start_addr,
            end_addr,
            start_port: 0,
            end_port: u16::MAX,
        })
    }

    /// The same selector restricted to one protocol and port range.
    pub fn with_protocol(self, protocol: u8, start_port: u16, end_port: u16) -> Self {
        Self {
            protocol,
            start_port,
            end_port,
            ..self
        }
    }

    fn any_port(&self) -> bool {
        (self.start_port == 0 && self.end_port == u16::MAX)
            || (self.start_port == u16::MAX && self.end_port == 0)
    }

    /// Whether an address, protocol and port (of one side of a packet) fall in this selector.
    pub fn matches(&self, addr: IpAddr, protocol: u8, port: Option<u16>) -> bool {
        if self.protocol != 0 && self.protocol != protocol {
            return false;
        }
        let addr_ok = match (addr, self.start_addr, self.end_addr) {
            (IpAddr::V4(a), IpAddr::V4(s), IpAddr::V4(e)) => {
                (u32::from(s)..=u32::from(e)).contains(&u32::from(a))
            }
            (IpAddr::V6(a), IpAddr::V6(s), IpAddr::V6(e)) => {
                (u128::from(s)..=u128::from(e)).contains(&u128::from(a))
            }
            _ => false,
        };
        addr_ok
            && (self.any_port()
                || port.is_some_and(|p| (self.start_port..=self.end_port).contains(&p)))
    }
}

/// The selector lists of one Child SA.
///
/// Both lists live in one shared, immutable allocation: a clone is a reference count, so the
/// two SAs of a pair (and their parameters) hold one copy (issue 16: a responder keeps
/// thousands of pairs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selectors {
    /// The local selectors, then the remote ones.
    all: Arc<[TrafficSelector]>,
    /// How many of `all` are local.
    local_len: usize,
}

impl Default for Selectors {
    /// No selectors: matches nothing.
    fn default() -> Self {
        Self::from_lists(&[], &[])
    }
}

impl Selectors {
    /// Selectors covering one local and one remote selector.
    pub fn new(local: TrafficSelector, remote: TrafficSelector) -> Self {
        Self::from_lists(&[local], &[remote])
    }

    /// Selectors covering any of `local` (our side: TSi for the initiator, TSr for the
    /// responder) with any of `remote` (the peer's side).
    pub fn from_lists(local: &[TrafficSelector], remote: &[TrafficSelector]) -> Self {
        Self {
            all: local.iter().chain(remote).copied().collect(),
            local_len: local.len(),
        }
    }

    /// Our side (TSi for the initiator, TSr for the responder).
    pub fn local(&self) -> &[TrafficSelector] {
        &self.all[..self.local_len]
    }

    /// The peer's side.
    pub fn remote(&self) -> &[TrafficSelector] {
        &self.all[self.local_len..]
    }

    /// Whether a packet we are about to send (source local, destination remote) belongs here.
    pub fn matches_outbound(&self, flow: &Flow) -> bool {
        any_match(self.local(), flow.src, flow.protocol, flow.src_port)
            && any_match(self.remote(), flow.dst, flow.protocol, flow.dst_port)
    }

    /// Whether a decrypted packet (source remote, destination local) belongs here.
    pub fn matches_inbound(&self, flow: &Flow) -> bool {
        any_match(self.remote(), flow.src, flow.protocol, flow.src_port)
            && any_match(self.local(), flow.dst, flow.protocol, flow.dst_port)
    }
}

fn any_match(list: &[TrafficSelector], addr: IpAddr, protocol: u8, port: Option<u16>) -> bool {
    list.iter().any(|ts| ts.matches(addr, protocol, port))
}

/// The selector-relevant fields of an IPv4 or IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Upper-layer protocol (after IPv6 extension headers).
    pub protocol: u8,
    /// Source port (ICMP: type × 256 + code); `None` when not visible.
    pub src_port: Option<u16>,
    /// Destination port (ICMP: type × 256 + code); `None` when not visible.
    pub dst_port: Option<u16>,
    /// The packet's own length (IPv4 Total Length, IPv6 40 + Payload Length); anything after
    /// it in the buffer is padding (e.g. TFC padding, RFC 4303 §2.7).
    pub len: usize,
}

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_DCCP: u8 = 33;
const PROTO_ICMPV6: u8 = 58;
const PROTO_SCTP: u8 = 132;
const PROTO_UDPLITE: u8 = 136;

impl Flow {
    /// Reads the 5-tuple of an IPv4 or IPv6 packet. Never panics; anything that is not a
    /// well-formed IP header (bad version, header or length fields beyond the buffer) is
    /// [`DropReason::MalformedInner`].
    #[inline]
    pub fn parse(packet: &[u8]) -> Result<Flow, DropReason> {
        match packet.first().map(|b| b >> 4) {
            Some(4) => Self::parse_v4(packet),
            Some(6) => Self::parse_v6(packet),
            _ => Err(DropReason::MalformedInner),
        }
    }

    /// [`Self::parse`] of a packet known to be IPv4 (its version checked). Always inlined:
    /// decapsulation calls it per packet, and a `Flow` handed back through memory was read
    /// back wider than it was written (a store-forwarding stall).
    #[inline(always)]
    pub(crate) fn parse_v4(p: &[u8]) -> Result<Flow, DropReason> {
        let bad = DropReason::MalformedInner;
        let hdr: &[u8; 20] = p.first_chunk().ok_or(bad)?;
        let ihl = usize::from(hdr[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
        if ihl < 20 || total < ihl || total > p.len() {
            return Err(bad);
        }
        let frag_offset = u16::from_be_bytes([hdr[6], hdr[7]]) & 0x1fff;
        let protocol = hdr[9];
        let src = IpAddr::V4(Ipv4Addr::new(hdr[12], hdr[13], hdr[14], hdr[15]));
        let dst = IpAddr::V4(Ipv4Addr::new(hdr[16], hdr[17], hdr[18], hdr[19]));
        let (src_port, dst_port) = if frag_offset == 0 {
            ports(protocol, p.get(ihl..total).unwrap_or(&[]))
        } else {
            (None, None)
        };
        Ok(Flow {
            src,
            dst,
            protocol,
            src_port,
            dst_port,
            len: total,
        })
    }

    /// [`Self::parse`] of a packet known to be IPv6 (its version checked).
    pub(crate) fn parse_v6(p: &[u8]) -> Result<Flow, DropReason> {
        let bad = DropReason::MalformedInner;
        let hdr: &[u8; 40] = p.first_chunk().ok_or(bad)?;
        let total = 40 + usize::from(u16::from_be_bytes([hdr[4], hdr[5]]));
        if total > p.len() {
            return Err(bad);
        }
        let mut src = [0u8; 16];
        src.copy_from_slice(&hdr[8..24]);
        let mut dst = [0u8; 16];
        dst.copy_from_slice(&hdr[24..40]);
        let body = p.get(..total).ok_or(bad)?;
        let mut next = hdr[6];
        let mut off = 40usize;
        let mut first_fragment = true;
        // Walk a bounded number of extension headers (hop-by-hop, routing, fragment,
        // destination options, AH).
        for _ in 0..8 {
            let ext_len = match next {
                0 | 43 | 60 => {
                    let l = body.get(off + 1).ok_or(bad)?;
                    (usize::from(*l) + 1) * 8
                }
                44 => {
                    let f = body.get(off + 2..off + 4).ok_or(bad)?;
                    if u16::from_be_bytes([f[0], f[1]]) >> 3 != 0 {
                        first_fragment = false;
                    }
                    8
                }
                51 => {
                    let l = body.get(off + 1).ok_or(bad)?;
                    (usize::from(*l) + 2) * 4
                }
                _ => break,
            };
            next = *body.get(off).ok_or(bad)?;
            off += ext_len;
            if off > total {
                return Err(bad);
            }
        }
        let (src_port, dst_port) = if first_fragment {
            ports(next, body.get(off..).unwrap_or(&[]))
        } else {
            (None, None)
        };
        Ok(Flow {
            src: IpAddr::V6(src.into()),
            dst: IpAddr::V6(dst.into()),
            protocol: next,
            src_port,
            dst_port,
            len: total,
        })
    }
}

fn ports(protocol: u8, l4: &[u8]) -> (Option<u16>, Option<u16>) {
    match protocol {
        PROTO_TCP | PROTO_UDP | PROTO_SCTP | PROTO_UDPLITE | PROTO_DCCP => match l4 {
            [a, b, c, d, ..] => (
                Some(u16::from_be_bytes([*a, *b])),
                Some(u16::from_be_bytes([*c, *d])),
            ),
            _ => (None, None),
        },
        PROTO_ICMP | PROTO_ICMPV6 => match l4 {
            [t, c, ..] => {
                let v = u16::from_be_bytes([*t, *c]);
                (Some(v), Some(v))
            }
            _ => (None, None),
        },
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&28u16.to_be_bytes());
        p[9] = PROTO_UDP;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p
    }

    #[test]
    fn parses_ipv4_udp_and_fragments() {
        let mut p = v4_udp([10, 0, 0, 1], [10, 1, 0, 2], 1234, 53);
        p.extend_from_slice(&[0xee; 5]); // trailing padding is not part of the packet
        let f = Flow::parse(&p).unwrap();
        assert_eq!(f.src, IpAddr::from([10, 0, 0, 1]));
        assert_eq!(f.dst, IpAddr::from([10, 1, 0, 2]));
        assert_eq!(
            (f.protocol, f.src_port, f.dst_port),
            (17, Some(1234), Some(53))
        );
        assert_eq!(f.len, 28);
        // Non-initial fragment: no ports.
        p[6..8].copy_from_slice(&100u16.to_be_bytes());
        let f = Flow::parse(&p).unwrap();
        assert_eq!((f.src_port, f.dst_port), (None, None));
    }

    #[test]
    fn parses_ipv6_with_extension_headers() {
        let mut p = vec![0u8; 40 + 8 + 8 + 4];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&20u16.to_be_bytes());
        p[6] = 0; // hop-by-hop
        p[8] = 0x20;
        p[24] = 0xfd;
        p[40] = 44; // next: fragment
        p[41] = 0; // 8 bytes
        p[48] = PROTO_TCP; // fragment header, offset 0
        p[56..58].copy_from_slice(&443u16.to_be_bytes());
        p[58..60].copy_from_slice(&40000u16.to_be_bytes());
        let f = Flow::parse(&p).unwrap();
        assert_eq!(
            (f.protocol, f.src_port, f.dst_port),
            (6, Some(443), Some(40000))
        );
        assert_eq!(f.len, 60);
        // Non-first fragment.
        p[50..52].copy_from_slice(&(10u16 << 3).to_be_bytes());
        let f = Flow::parse(&p).unwrap();
        assert_eq!((f.protocol, f.src_port), (6, None));
        // Extension header running past the payload.
        p[41] = 200;
        p[40] = 0;
        assert_eq!(Flow::parse(&p), Err(DropReason::MalformedInner));
    }

    #[test]
    fn malformed_headers_are_errors() {
        let good = v4_udp([1, 1, 1, 1], [2, 2, 2, 2], 1, 2);
        for cut in 0..20 {
            assert_eq!(Flow::parse(&good[..cut]), Err(DropReason::MalformedInner));
        }
        let mut bad = good.clone();
        bad[2..4].copy_from_slice(&29u16.to_be_bytes()); // longer than the buffer
        assert_eq!(Flow::parse(&bad), Err(DropReason::MalformedInner));
        let mut bad = good.clone();
        bad[0] = 0x44; // IHL 16 bytes
        assert_eq!(Flow::parse(&bad), Err(DropReason::MalformedInner));
        let mut bad = good;
        bad[0] = 0x55;
        assert_eq!(Flow::parse(&bad), Err(DropReason::MalformedInner));
    }

    #[test]
    fn selector_matching() {
        let local = TrafficSelector::from_prefix([10, 0, 0, 0].into(), 24).unwrap();
        let remote = TrafficSelector::from_prefix([10, 1, 0, 0].into(), 16)
            .unwrap()
            .with_protocol(PROTO_UDP, 53, 53);
        let s = Selectors::new(local, remote);
        let out = Flow::parse(&v4_udp([10, 0, 0, 9], [10, 1, 7, 7], 5555, 53)).unwrap();
        assert!(s.matches_outbound(&out));
        assert!(!s.matches_inbound(&out));
        let back = Flow::parse(&v4_udp([10, 1, 7, 7], [10, 0, 0, 9], 53, 5555)).unwrap();
        assert!(s.matches_inbound(&back));
        for bad in [
            v4_udp([10, 0, 1, 9], [10, 1, 7, 7], 5555, 53), // source outside /24
            v4_udp([10, 0, 0, 9], [10, 2, 7, 7], 5555, 53), // destination outside /16
            v4_udp([10, 0, 0, 9], [10, 1, 7, 7], 5555, 54), // wrong port
        ] {
            assert!(!s.matches_outbound(&Flow::parse(&bad).unwrap()));
        }
        let mut tcp = v4_udp([10, 0, 0, 9], [10, 1, 7, 7], 5555, 53);
        tcp[9] = PROTO_TCP;
        assert!(!s.matches_outbound(&Flow::parse(&tcp).unwrap()));
        // Families never match each other.
        assert!(!TrafficSelector::ANY_V6.matches([1, 2, 3, 4].into(), 0, None));
        assert!(TrafficSelector::ANY_V4.matches([1, 2, 3, 4].into(), 0, None));
        // Narrow port ranges need visible ports; OPAQUE behaves like any.
        assert!(!remote.matches([10, 1, 0, 1].into(), PROTO_UDP, None));
        let opaque = remote.with_protocol(PROTO_UDP, u16::MAX, 0);
        assert!(opaque.matches([10, 1, 0, 1].into(), PROTO_UDP, None));
        assert_eq!(TrafficSelector::from_prefix([1, 2, 3, 4].into(), 33), None);
        let host = TrafficSelector::from_prefix(IpAddr::V6(Ipv6Addr::LOCALHOST), 128).unwrap();
        assert!(host.matches(IpAddr::V6(Ipv6Addr::LOCALHOST), 6, Some(1)));
        let all = TrafficSelector::from_prefix([9, 9, 9, 9].into(), 0).unwrap();
        assert_eq!(all, TrafficSelector::ANY_V4);
    }
}
