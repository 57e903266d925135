//! AH (RFC 4302) in tunnel mode: authentication only, no confidentiality (SPEC R-DP-2).
//!
//! Unlike ESP, AH's ICV covers the outer IP header (its immutable fields), so AH builds the
//! outer header itself: [`AhOutboundSa::encapsulate`] produces a whole IPv4 or IPv6 packet
//! (outer header, AH header, inner packet) that the IO layer sends on a raw socket with
//! `IP_HDRINCL` (IPv6: `IPV6_HDRINCL`). Inbound, [`AhInboundSa::decapsulate_in_place`] takes the
//! whole received packet, outer header included.
//!
//! - Mutable fields are zeroed for the ICV (RFC 4302 §3.3.3.1.1): IPv4 TOS, flags and fragment
//!   offset, TTL, header checksum; IPv6 traffic class, flow label, hop limit.
//! - The IPv4 Identification is immutable and therefore never 0 here (Linux fills in a zero
//!   ID on `IP_HDRINCL` sockets, which would break the ICV).
//! - Not supported inbound (dropped as [`DropReason::BadOuter`]): IPv4 options, IPv6 extension
//!   headers between the IPv6 header and AH.
//! - AH cannot cross a NAT: an SA with UDP encapsulation is refused ([`SaError::AhWithNat`]).
//! - With ESN the high 32 bits of the sequence number are appended to the ICV input (RFC 4302
//!   §3.3.3.1), never sent.

use std::net::IpAddr;
use std::ops::Range;

use ferrosec_crypto::{Integrity, IntegrityKey, Secret};
use ferrosec_wire::Spi;
use ferrosec_wire::ah as wire_ah;
use ferrosec_wire::checksum::checksum;
use ferrosec_wire::esp::IpProtocol;

use crate::lifetime::{Direction, Lifetime, LifetimeLimits};
use crate::replay::ReplayWindow;
use crate::sa::{Decapsulated, Path, SaError, Transmit, account, outbound_checks};
use crate::selector::{Flow, Selectors};
use crate::stats::{DropReason, SaStats};

const IPV4_HDR: usize = 20;
const IPV6_HDR: usize = 40;
const TTL: u8 = 64;

/// Everything needed to install one AH SA (one direction).
#[derive(Debug, Clone)]
pub struct AhParams {
    /// The SPI (the receiver's choice).
    pub spi: Spi,
    /// The integrity algorithm.
    pub integrity: Integrity,
    /// The integrity key for this direction.
    pub key: Secret,
    /// Extended sequence numbers negotiated.
    pub esn: bool,
    /// Tunnel endpoints (`udp` must be `None`).
    pub path: Path,
    /// The Child SA's traffic selectors.
    pub selectors: Selectors,
    /// Byte and packet lifetime limits.
    pub lifetime: LifetimeLimits,
}

fn install(p: &AhParams) -> Result<IntegrityKey, SaError> {
    if p.spi.0 == 0 {
        return Err(SaError::ZeroSpi);
    }
    if p.path.udp.is_some() {
        return Err(SaError::AhWithNat);
    }
    if std::mem::discriminant(&p.path.local) != std::mem::discriminant(&p.path.remote) {
        return Err(SaError::MixedFamilies);
    }
    Ok(p.integrity.key(p.key.expose())?)
}

/// Length of the AH header (fixed part + ICV + padding) for an outer IP version: a multiple of
/// 4 bytes over IPv4 and of 8 over IPv6 (RFC 4302 §2.6).
fn ah_len(icv_len: usize, v6: bool) -> usize {
    let align = if v6 { 8 } else { 4 };
    (wire_ah::FIXED_LEN + icv_len).div_ceil(align) * align
}

/// The outer header with the mutable fields zeroed, as the ICV sees it.
fn zeroed_outer(outer: &[u8], buf: &mut [u8; IPV6_HDR]) -> usize {
    let n = outer.len().min(IPV6_HDR);
    buf[..n].copy_from_slice(&outer[..n]);
    if n == IPV4_HDR {
        buf[1] = 0; // TOS
        buf[6..8].fill(0); // flags, fragment offset
        buf[8] = 0; // TTL
        buf[10..12].fill(0); // checksum
    } else {
        buf[0] &= 0xf0; // traffic class (high nibble part)
        buf[1..4].fill(0); // traffic class, flow label
        buf[7] = 0; // hop limit
    }
    n
}

/// An outbound AH SA.
#[derive(Debug)]
pub struct AhOutboundSa {
    spi: Spi,
    alg: Integrity,
    key: IntegrityKey,
    esn: bool,
    seq: u64,
    path: Path,
    selectors: Selectors,
    lifetime: Lifetime,
    stats: SaStats,
}

impl AhOutboundSa {
    /// Keys and installs an outbound AH SA.
    pub fn new(params: AhParams) -> Result<Self, SaError> {
        Ok(Self {
            key: install(&params)?,
            spi: params.spi,
            alg: params.integrity,
            esn: params.esn,
            seq: 0,
            path: params.path,
            selectors: params.selectors,
            lifetime: Lifetime::new(params.lifetime),
            stats: SaStats::default(),
        })
    }

    /// The SPI.
    pub fn spi(&self) -> Spi {
        self.spi
    }

    /// The traffic selectors.
    pub fn selectors(&self) -> &Selectors {
        &self.selectors
    }

    /// Counters.
    pub fn stats(&self) -> &SaStats {
        &self.stats
    }

    /// The last sequence number sent.
    pub fn sequence(&self) -> u64 {
        self.seq
    }

    /// Whether the hard lifetime is reached.
    pub fn is_expired(&self) -> bool {
        self.lifetime.expired(&self.stats)
    }

    /// The tunnel endpoints.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the sequence counter (tests only; see [`crate::OutboundSa::danger_set_sequence`]).
    pub fn danger_set_sequence(&mut self, seq: u64) {
        self.seq = seq;
    }

    fn v6(&self) -> bool {
        self.path.remote.is_ipv6()
    }

    /// Length of the whole outer packet for an inner packet of `inner_len` bytes.
    pub fn packet_len(&self, inner_len: usize) -> usize {
        let ip = if self.v6() { IPV6_HDR } else { IPV4_HDR };
        ip + ah_len(self.alg.icv_len(), self.v6()) + inner_len
    }

    /// Builds outer IP header + AH + inner packet into `out`. The result is a whole IP packet
    /// for a raw socket with `IP_HDRINCL`.
    pub fn encapsulate<'a>(
        &mut self,
        inner: &[u8],
        out: &'a mut [u8],
    ) -> Result<Transmit<'a>, DropReason> {
        let built = self.build(inner, out);
        let (len, event) = account(
            &mut self.stats,
            &mut self.lifetime,
            self.spi,
            Direction::Outbound,
            built,
            |_| inner.len(),
        )?;
        Ok(Transmit {
            packet: &out[..len],
            spi: self.spi,
            path: self.path,
            event,
        })
    }

    fn build(&mut self, inner: &[u8], out: &mut [u8]) -> Result<usize, DropReason> {
        let (next_header, seq) =
            outbound_checks(&self.lifetime, &self.stats, self.esn, self.seq, inner)?;
        let total = self.packet_len(inner.len());
        let out = out.get_mut(..total).ok_or(DropReason::BufferTooSmall)?;
        let ip_len = match (self.path.local, self.path.remote) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let total16 = u16::try_from(total).map_err(|_| DropReason::BufferTooSmall)?;
                let h = &mut out[..IPV4_HDR];
                h.fill(0);
                h[0] = 0x45;
                h[2..4].copy_from_slice(&total16.to_be_bytes());
                // Identification: immutable, so never 0 (see the module docs).
                let id = (seq as u16).max(1);
                h[4..6].copy_from_slice(&id.to_be_bytes());
                h[8] = TTL;
                h[9] = IpProtocol::AH.0;
                h[12..16].copy_from_slice(&src.octets());
                h[16..20].copy_from_slice(&dst.octets());
                let c = checksum(h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                IPV4_HDR
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let plen =
                    u16::try_from(total - IPV6_HDR).map_err(|_| DropReason::BufferTooSmall)?;
                let h = &mut out[..IPV6_HDR];
                h.fill(0);
                h[0] = 0x60;
                h[4..6].copy_from_slice(&plen.to_be_bytes());
                h[6] = IpProtocol::AH.0;
                h[7] = TTL;
                h[8..24].copy_from_slice(&src.octets());
                h[24..40].copy_from_slice(&dst.octets());
                IPV6_HDR
            }
            _ => return Err(DropReason::Crypto),
        };
        let icv_len = self.alg.icv_len();
        let ah_total = ah_len(icv_len, self.v6());
        let zeros = [0u8; 64];
        let icv_field = zeros
            .get(..ah_total - wire_ah::FIXED_LEN)
            .ok_or(DropReason::Crypto)?;
        wire_ah::Repr {
            next_header,
            spi: self.spi,
            sequence_number: seq as u32,
            icv: icv_field,
        }
        .emit(&mut out[ip_len..ip_len + ah_total])
        .map_err(|_| DropReason::BufferTooSmall)?;
        out[ip_len + ah_total..].copy_from_slice(inner);

        let mut outer = [0u8; IPV6_HDR];
        let n = zeroed_outer(&out[..ip_len], &mut outer);
        let hi = ((seq >> 32) as u32).to_be_bytes();
        let mut icv = [0u8; 64];
        let icv = &mut icv[..icv_len];
        let rest = &out[ip_len..];
        let r = if self.esn {
            self.key.compute(&[&outer[..n], rest, &hi], icv)
        } else {
            self.key.compute(&[&outer[..n], rest], icv)
        };
        r.map_err(|_| DropReason::Crypto)?;
        let at = ip_len + wire_ah::FIXED_LEN;
        out[at..at + icv_len].copy_from_slice(icv);
        self.seq = seq;
        Ok(total)
    }
}

/// An inbound AH SA.
#[derive(Debug)]
pub struct AhInboundSa {
    spi: Spi,
    path: Path,
    alg: Integrity,
    key: IntegrityKey,
    esn: bool,
    window: ReplayWindow,
    selectors: Selectors,
    lifetime: Lifetime,
    stats: SaStats,
}

impl AhInboundSa {
    /// Keys and installs an inbound AH SA (replay window as for ESP; 0 = off).
    pub fn new(params: AhParams, replay_window: u32) -> Result<Self, SaError> {
        Ok(Self {
            key: install(&params)?,
            spi: params.spi,
            alg: params.integrity,
            esn: params.esn,
            path: params.path,
            window: ReplayWindow::new(replay_window),
            selectors: params.selectors,
            lifetime: Lifetime::new(params.lifetime),
            stats: SaStats::default(),
        })
    }

    /// The SPI.
    pub fn spi(&self) -> Spi {
        self.spi
    }

    /// Counters.
    pub fn stats(&self) -> &SaStats {
        &self.stats
    }

    /// The anti-replay window.
    pub fn replay_window(&self) -> &ReplayWindow {
        &self.window
    }

    /// The tunnel endpoints (`local` is the address AH arrives at).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the hard lifetime is reached.
    pub fn is_expired(&self) -> bool {
        self.lifetime.expired(&self.stats)
    }

    /// Verifies a whole received IP packet (outer header, AH, inner packet). On success the
    /// inner packet is `packet[result.inner]`. The buffer is modified (the ICV field is zeroed
    /// for the check).
    pub fn decapsulate_in_place(&mut self, packet: &mut [u8]) -> Result<Decapsulated, DropReason> {
        let verified = self.verify(packet);
        let (inner, event) = account(
            &mut self.stats,
            &mut self.lifetime,
            self.spi,
            Direction::Inbound,
            verified,
            |r| r.len(),
        )?;
        Ok(Decapsulated {
            inner,
            spi: self.spi,
            event,
        })
    }

    fn verify(&mut self, packet: &mut [u8]) -> Result<Range<usize>, DropReason> {
        let (ip_len, v6) = outer_len(packet)?;
        let icv_len = self.alg.icv_len();
        let ah_total = ah_len(icv_len, v6);
        let ah_bytes = packet.get(ip_len..).ok_or(DropReason::Truncated)?;
        let ah = wire_ah::Packet::new_checked(ah_bytes).map_err(|_| DropReason::Truncated)?;
        if ah.header_len() != ah_total {
            return Err(DropReason::BadOuter);
        }
        if ah.spi() != self.spi {
            return Err(DropReason::BadOuter);
        }
        let next_header = ah.next_header().0;
        if self.lifetime.expired(&self.stats) {
            return Err(DropReason::Expired);
        }
        let seq = self.window.infer(ah.sequence_number(), self.esn);
        self.window.check(seq)?;

        let mut received = [0u8; 64];
        let icv_at = ip_len + wire_ah::FIXED_LEN;
        let received = &mut received[..icv_len];
        received.copy_from_slice(
            packet
                .get(icv_at..icv_at + icv_len)
                .ok_or(DropReason::Truncated)?,
        );
        packet[icv_at..icv_at + icv_len].fill(0);
        let mut outer = [0u8; IPV6_HDR];
        let n = zeroed_outer(&packet[..ip_len], &mut outer);
        let hi = ((seq >> 32) as u32).to_be_bytes();
        let rest = &packet[ip_len..];
        let ok = if self.esn {
            self.key.verify(&[&outer[..n], rest, &hi], received)
        } else {
            self.key.verify(&[&outer[..n], rest], received)
        };
        ok.map_err(|_| DropReason::AuthFailed)?;
        self.window.update(seq);

        let start = ip_len + ah_total;
        let inner = packet.get(start..).ok_or(DropReason::Truncated)?;
        let version = match next_header {
            4 => 4,
            41 => 6,
            _ => return Err(DropReason::BadNextHeader),
        };
        if inner.first().map(|b| b >> 4) != Some(version) {
            return Err(DropReason::BadNextHeader);
        }
        let flow = Flow::parse(inner)?;
        if !self.selectors.matches_inbound(&flow) {
            return Err(DropReason::SelectorMismatch);
        }
        Ok(start..start + flow.len)
    }
}

/// The IPv6 header of a received AH packet, for an IO layer that gets the payload only (an
/// IPv6 raw socket delivers what follows the header): version 6, payload length, next header
/// AH, `src` and `dst`; traffic class, flow label and hop limit are mutable and left 0, as the
/// ICV sees them (RFC 4302 §3.3.3.1.2). `None` when the payload is too long for IPv6.
pub fn ipv6_outer_header(
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    payload_len: usize,
) -> Option<[u8; IPV6_HDR]> {
    let plen = u16::try_from(payload_len).ok()?;
    let mut h = [0u8; IPV6_HDR];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&plen.to_be_bytes());
    h[6] = IpProtocol::AH.0;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    Some(h)
}

impl crate::sad::InboundTransform for AhInboundSa {
    fn spi(&self) -> Spi {
        self.spi
    }
    fn packet_spi(packet: &[u8]) -> Option<Spi> {
        let at = match packet.first()? >> 4 {
            4 => usize::from(packet[0] & 0x0f) * 4,
            6 => IPV6_HDR,
            _ => return None,
        };
        let b: [u8; 4] = packet.get(at + 4..at + 8)?.try_into().ok()?;
        Some(Spi(u32::from_be_bytes(b)))
    }
    fn decapsulate_in_place(&mut self, packet: &mut [u8]) -> Result<Decapsulated, DropReason> {
        AhInboundSa::decapsulate_in_place(self, packet)
    }
}

impl crate::sad::OutboundTransform for AhOutboundSa {
    fn spi(&self) -> Spi {
        self.spi
    }
    fn selectors(&self) -> &Selectors {
        &self.selectors
    }
    fn is_expired(&self) -> bool {
        AhOutboundSa::is_expired(self)
    }
    fn encapsulate<'a>(
        &mut self,
        inner: &[u8],
        out: &'a mut [u8],
    ) -> Result<Transmit<'a>, DropReason> {
        AhOutboundSa::encapsulate(self, inner, out)
    }
}

/// Length of the outer header before AH, and whether it is IPv6. The packet must be exactly as
/// long as the header says.
fn outer_len(p: &[u8]) -> Result<(usize, bool), DropReason> {
    match p.first().map(|b| b >> 4) {
        Some(4) => {
            let h: &[u8; IPV4_HDR] = p.first_chunk().ok_or(DropReason::Truncated)?;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            if h[0] != 0x45 || h[9] != IpProtocol::AH.0 || total != p.len() {
                return Err(DropReason::BadOuter);
            }
            // A fragment cannot be verified; the IO layer reassembles.
            if u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
                return Err(DropReason::BadOuter);
            }
            Ok((IPV4_HDR, false))
        }
        Some(6) => {
            let h: &[u8; IPV6_HDR] = p.first_chunk().ok_or(DropReason::Truncated)?;
            let total = IPV6_HDR + usize::from(u16::from_be_bytes([h[4], h[5]]));
            if h[6] != IpProtocol::AH.0 || total != p.len() {
                return Err(DropReason::BadOuter);
            }
            Ok((IPV6_HDR, true))
        }
        _ => Err(DropReason::BadOuter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::TrafficSelector;

    fn params(v6: bool, integrity: Integrity, esn: bool) -> AhParams {
        let (local, remote): (IpAddr, IpAddr) = if v6 {
            (
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            )
        } else {
            ([192, 0, 2, 1].into(), [192, 0, 2, 2].into())
        };
        AhParams {
            spi: Spi(0x51),
            integrity,
            key: Secret::new(vec![0x42; integrity.key_len()]),
            esn,
            path: Path {
                local,
                remote,
                udp: None,
            },
            selectors: Selectors::new(TrafficSelector::ANY_V4, TrafficSelector::ANY_V4),
            lifetime: LifetimeLimits::default(),
        }
    }

    fn inner() -> Vec<u8> {
        let mut p = vec![0u8; 48];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&48u16.to_be_bytes());
        p[9] = 17;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 1, 0, 1]);
        p
    }

    #[test]
    fn the_outer_ipv4_header_is_pinned() {
        // The first packet of an HMAC-SHA2-256 SA (ICV 16 bytes, so 28 bytes of AH) around
        // the 48-byte inner packet: total length 96, ID 1 (the sequence number), TTL 64,
        // protocol 51, 192.0.2.1 -> 192.0.2.2. The header checksum 0xf666 was worked out
        // by hand from those ten words.
        let mut out = AhOutboundSa::new(params(false, Integrity::HmacSha256_128, false)).unwrap();
        let ip = inner();
        let mut buf = vec![0u8; out.packet_len(ip.len())];
        let t = out.encapsulate(&ip, &mut buf).unwrap();
        assert_eq!(
            t.packet[..20],
            [
                0x45, 0x00, 0x00, 0x60, 0x00, 0x01, 0x00, 0x00, 0x40, 0x33, 0xf6, 0x66, 0xc0, 0x00,
                0x02, 0x01, 0xc0, 0x00, 0x02, 0x02,
            ]
        );
    }

    #[test]
    fn round_trip_every_integrity_ipv4_and_ipv6_outer() {
        for integ in Integrity::ALL {
            for v6 in [false, true] {
                for esn in [false, true] {
                    let mut out = AhOutboundSa::new(params(v6, integ, esn)).unwrap();
                    let mut inb = AhInboundSa::new(params(v6, integ, esn), 64).unwrap();
                    let ip = inner();
                    let mut buf = vec![0u8; out.packet_len(ip.len())];
                    let t = out.encapsulate(&ip, &mut buf).unwrap();
                    let mut pkt = t.packet.to_vec();
                    let ah_len = pkt.len() - ip.len() - if v6 { 40 } else { 20 };
                    assert_eq!(ah_len % if v6 { 8 } else { 4 }, 0);
                    if !v6 {
                        assert_eq!(checksum(&pkt[..20]), 0, "valid IPv4 header checksum");
                        assert_ne!(&pkt[4..6], &[0, 0], "non-zero ID");
                    }
                    // A router changes mutable fields: TTL/hop limit, TOS/traffic class.
                    let mut routed = pkt.clone();
                    if v6 {
                        routed[7] -= 1;
                        routed[1] |= 0x0f;
                    } else {
                        routed[8] -= 1;
                        routed[1] = 0x10;
                        routed[10] ^= 0xff;
                    }
                    let d = inb.decapsulate_in_place(&mut routed).unwrap();
                    assert_eq!(&routed[d.inner], &ip[..]);
                    // Replay of the same packet.
                    assert_eq!(
                        inb.decapsulate_in_place(&mut pkt.clone()).err(),
                        Some(DropReason::Replayed)
                    );
                    // Immutable fields are covered: source address, payload.
                    let last = pkt.len() - 1;
                    for i in [if v6 { 9 } else { 13 }, last] {
                        let mut bad = pkt.clone();
                        bad[i] ^= 1;
                        // A fresh receiver, so the replay check is not what drops it.
                        let mut fresh = AhInboundSa::new(params(v6, integ, esn), 64).unwrap();
                        assert_eq!(
                            fresh.decapsulate_in_place(&mut bad).err(),
                            Some(DropReason::AuthFailed),
                            "{integ:?} v6 {v6} byte {i}"
                        );
                    }
                    pkt.truncate(pkt.len() - 1);
                    assert!(inb.decapsulate_in_place(&mut pkt).is_err());
                }
            }
        }
    }

    #[test]
    fn refused_with_nat_and_malformed_outer() {
        let mut p = params(false, Integrity::HmacSha256_128, false);
        p.path.udp = Some(crate::sa::UdpEncap {
            local_port: 4500,
            remote_port: 4500,
        });
        assert_eq!(AhOutboundSa::new(p).err(), Some(SaError::AhWithNat));
        let mut inb =
            AhInboundSa::new(params(false, Integrity::HmacSha256_128, false), 64).unwrap();
        for bad in [&[][..], &[0x45; 10][..], &[0x46; 60][..], &[0x10; 60][..]] {
            assert!(inb.decapsulate_in_place(&mut bad.to_vec()).is_err());
        }
    }

    #[test]
    fn through_the_sa_databases_and_an_ipv6_payload_only_receive() {
        use crate::sad::{InboundSad, OutboundSad};
        for v6 in [false, true] {
            let integ = Integrity::HmacSha256_128;
            let mut osad: OutboundSad<AhOutboundSa> = OutboundSad::new();
            let mut isad: InboundSad<AhInboundSa> = InboundSad::new();
            osad.insert(AhOutboundSa::new(params(v6, integ, false)).unwrap());
            // The receiver's view of the path: local and remote swapped.
            let mut rx = params(v6, integ, false);
            std::mem::swap(&mut rx.path.local, &mut rx.path.remote);
            isad.insert(AhInboundSa::new(rx, 64).unwrap());
            let ip = inner();
            let mut buf = vec![0u8; 256];
            // By a flow parsed once by the caller: found, or `None` with nothing counted.
            let flow = Flow::parse(&ip).unwrap();
            // An IPv6 packet (no next header): no IPv4-only SA covers it.
            let mut other = vec![0u8; 40];
            other[0] = 0x60;
            other[6] = 59;
            let other_flow = Flow::parse(&other).unwrap();
            assert!(
                osad.encapsulate_flow(&other_flow, &other, &mut buf)
                    .is_none()
            );
            assert_eq!(osad.drops().get(DropReason::NoSa), 0);
            let by_flow = osad
                .encapsulate_flow(&flow, &ip, &mut buf)
                .unwrap()
                .unwrap();
            assert_eq!(
                (by_flow.spi, by_flow.packet.len()),
                (Spi(0x51), osad.get(Spi(0x51)).unwrap().packet_len(ip.len()))
            );
            let t = osad.encapsulate(&ip, &mut buf).unwrap();
            assert_eq!(t.spi, Spi(0x51));
            let mut pkt = t.packet.to_vec();
            if v6 {
                // What an IPv6 raw socket hands over: the payload; the header is rebuilt from
                // the sender's address and the SA's local address.
                let payload = pkt[40..].to_vec();
                let sa = isad.get(Spi(0x51)).unwrap();
                let (IpAddr::V6(src), IpAddr::V6(dst)) = (sa.path().remote, sa.path().local) else {
                    panic!("v6 path")
                };
                let h = ipv6_outer_header(src, dst, payload.len()).unwrap();
                pkt = [&h[..], &payload].concat();
            }
            let d = isad.decapsulate_in_place(&mut pkt).unwrap();
            assert_eq!(&pkt[d.inner], &ip[..]);
            // An unknown SPI is counted by the database.
            let mut other = t_with_spi(&buf, v6);
            assert_eq!(
                isad.decapsulate_in_place(&mut other).err(),
                Some(DropReason::UnknownSpi)
            );
            assert_eq!(isad.drops().get(DropReason::UnknownSpi), 1);
        }
    }

    /// A copy of the packet at the start of `buf` with another SPI.
    fn t_with_spi(buf: &[u8], v6: bool) -> Vec<u8> {
        let at = if v6 { 40 } else { 20 };
        let mut p = buf[..at + 40].to_vec();
        p[at + 4..at + 8].copy_from_slice(&[0, 0, 0, 0x77]);
        p
    }
}
