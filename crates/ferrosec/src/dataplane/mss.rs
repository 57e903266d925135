//! TCP MSS clamping on the tunnel interfaces (R-DP-8, `tcp-mss-clamp`).
//!
//! A TCP SYN that crosses the tunnel, either way, has its MSS option lowered (never raised) to
//! what fits the tunnel interface: hosts then send segments the tunnel carries whole, without
//! relying on ICMP "fragmentation needed" reaching them (firewalls on the way often drop it).
//! The TCP checksum is updated incrementally (RFC 1624), in place, with no allocation.
//!
//! Only SYNs whose TCP header directly follows the IP header are clamped: IPv4 first fragments
//! (any options) and IPv6 without extension headers, which is every SYN a host sends in
//! practice. A packet that does not parse is left as it is.

use ferrosec_config::MssClamp;
use ferrosec_wire::checksum::fold;

/// The MSS to clamp SYNs to on a device whose MTU is now `mtu`: (IPv4, IPv6); `None` when
/// the interface does not clamp.
pub(super) fn limits(clamp: MssClamp, mtu: u16) -> Option<(u16, u16)> {
    match clamp {
        MssClamp::Off => None,
        MssClamp::Auto => Some((mtu.saturating_sub(40), mtu.saturating_sub(60))),
        MssClamp::Fixed(m) => Some((m, m.saturating_sub(20))),
    }
}

/// Lowers the MSS option of `packet` (an IPv4 or IPv6 packet) to `v4` / `v6` when it is a TCP
/// SYN announcing more; returns the MSS it announced before when it was lowered.
pub(super) fn clamp(packet: &mut [u8], v4: u16, v6: u16) -> Option<u16> {
    let (tcp, limit) = match packet.first()? >> 4 {
        4 => {
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            let fragment_offset = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]) & 0x1fff;
            if ihl < 20 || *packet.get(9)? != 6 || fragment_offset != 0 {
                return None;
            }
            (ihl, v4)
        }
        6 if *packet.get(6)? == 6 => (40, v6),
        _ => return None,
    };
    let header = packet.get_mut(tcp..)?;
    let flags = *header.get(13)?;
    const SYN: u8 = 0x02;
    if flags & SYN == 0 {
        return None;
    }
    let data_offset = usize::from(*header.get(12)? >> 4) * 4;
    if data_offset < 20 || header.len() < data_offset {
        return None;
    }
    // The options: kind 0 ends them, kind 1 is one byte of padding, the others carry a length.
    let mut at = 20;
    while at < data_offset {
        match header[at] {
            0 => return None,
            1 => at += 1,
            kind => {
                let len = usize::from(*header.get(at + 1)?);
                if len < 2 || at + len > data_offset {
                    return None;
                }
                if kind == 2 && len == 4 {
                    let old = u16::from_be_bytes([header[at + 2], header[at + 3]]);
                    if old <= limit {
                        return None;
                    }
                    header[at + 2..at + 4].copy_from_slice(&limit.to_be_bytes());
                    // The checksum sums 16-bit words from the start of the TCP header: a field
                    // at an odd offset straddles two of them and counts byte-swapped.
                    let (o, n) = if (at + 2) % 2 == 0 {
                        (old, limit)
                    } else {
                        (old.swap_bytes(), limit.swap_bytes())
                    };
                    let sum = u16::from_be_bytes([header[16], header[17]]);
                    header[16..18].copy_from_slice(&update_checksum(sum, o, n).to_be_bytes());
                    return Some(old);
                }
                at += len;
            }
        }
    }
    None
}

/// RFC 1624 eqn. 3: the checksum `sum` after one 16-bit word of the data changed from `old` to
/// `new`: HC' = ~(~HC + ~m + m').
fn update_checksum(sum: u16, old: u16, new: u16) -> u16 {
    !fold(u32::from(!sum) + u32::from(!old) + u32::from(new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosec_wire::checksum::{pseudo_header_sum, sum16};

    /// Whether the TCP checksum of IPv4 `packet` verifies.
    fn tcp4_ok(packet: &[u8]) -> bool {
        let ihl = usize::from(packet[0] & 0x0f) * 4;
        let tcp = &packet[ihl..];
        let pseudo = pseudo_header_sum(&packet[12..20], 6, tcp.len() as u32);
        fold(pseudo + sum16(tcp)) == 0xffff
    }

    fn tcp6_ok(packet: &[u8]) -> bool {
        let tcp = &packet[40..];
        let pseudo = pseudo_header_sum(&packet[8..40], 6, tcp.len() as u32);
        fold(pseudo + sum16(tcp)) == 0xffff
    }

    /// Sets a correct TCP checksum on `packet` (IPv4 or IPv6).
    fn fill_checksum(packet: &mut [u8]) {
        let (tcp_at, ok): (usize, fn(&[u8]) -> bool) = if packet[0] >> 4 == 4 {
            (usize::from(packet[0] & 0x0f) * 4, tcp4_ok)
        } else {
            (40, tcp6_ok)
        };
        packet[tcp_at + 16] = 0;
        packet[tcp_at + 17] = 0;
        // Find the checksum by trying: the complement of the sum with a zero field.
        for c in 0..=u16::MAX {
            packet[tcp_at + 16..tcp_at + 18].copy_from_slice(&c.to_be_bytes());
            if ok(packet) {
                return;
            }
        }
        panic!("no checksum verifies");
    }

    /// An IPv4 TCP packet with `flags` and TCP `options` (padded by the caller to 4 bytes).
    fn tcp4(flags: u8, options: &[u8]) -> Vec<u8> {
        let tcp_len = 20 + options.len();
        let mut p = vec![0u8; 20 + tcp_len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
        p[6] = 0x40; // DF
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 1, 0, 10]);
        p[16..20].copy_from_slice(&[10, 2, 0, 10]);
        let t = &mut p[20..];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&5201u16.to_be_bytes());
        t[12] = ((tcp_len / 4) as u8) << 4;
        t[13] = flags;
        t[14..16].copy_from_slice(&64240u16.to_be_bytes());
        t[20..].copy_from_slice(options);
        fill_checksum(&mut p);
        p
    }

    fn tcp6(flags: u8, options: &[u8]) -> Vec<u8> {
        let tcp_len = 20 + options.len();
        let mut p = vec![0u8; 40 + tcp_len];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
        p[6] = 6;
        p[7] = 64;
        p[8] = 0xfd;
        p[23] = 1;
        p[24] = 0xfd;
        p[39] = 2;
        let t = &mut p[40..];
        t[12] = ((tcp_len / 4) as u8) << 4;
        t[13] = flags;
        t[20..].copy_from_slice(options);
        fill_checksum(&mut p);
        p
    }

    fn mss_of(packet: &[u8], tcp_at: usize, at: usize) -> u16 {
        u16::from_be_bytes([packet[tcp_at + at], packet[tcp_at + at + 1]])
    }

    const SYN: u8 = 0x02;
    const SYN_ACK: u8 = 0x12;

    #[test]
    fn a_syn_is_lowered_and_its_checksum_still_verifies() {
        // Linux's SYN options: MSS, SACK permitted, timestamps, NOP, window scale.
        let opts = [
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        for flags in [SYN, SYN_ACK] {
            let mut p = tcp4(flags, &opts);
            assert!(tcp4_ok(&p));
            assert_eq!(clamp(&mut p, 1360, 1340), Some(1460));
            assert_eq!(mss_of(&p, 20, 22), 1360);
            assert!(tcp4_ok(&p), "checksum after the rewrite");
            // Already low enough: untouched.
            let before = p.clone();
            assert_eq!(clamp(&mut p, 1400, 1380), None);
            assert_eq!(p, before);
        }
        let mut p = tcp6(SYN, &opts);
        assert_eq!(clamp(&mut p, 1360, 1340), Some(1460));
        assert_eq!(mss_of(&p, 40, 22), 1340);
        assert!(tcp6_ok(&p));
    }

    #[test]
    fn an_mss_option_at_an_odd_offset_keeps_the_checksum_right() {
        // One NOP first: the MSS value sits at an odd offset in the TCP header.
        let opts = [1, 2, 4, 0x23, 0x45, 1, 1, 1];
        for limit in [1000u16, 1001, 0x2344] {
            let mut p = tcp4(SYN, &opts);
            assert_eq!(clamp(&mut p, limit, limit), Some(0x2345));
            assert_eq!(mss_of(&p, 20, 23), limit);
            assert!(tcp4_ok(&p), "limit {limit}");
        }
    }

    #[test]
    fn other_packets_are_left_alone() {
        let opts = [2, 4, 0x05, 0xb4];
        // Not a SYN.
        let mut p = tcp4(0x10, &opts);
        let before = p.clone();
        assert_eq!(clamp(&mut p, 1000, 1000), None);
        assert_eq!(p, before);
        // Not TCP.
        let mut u = tcp4(SYN, &opts);
        u[9] = 17;
        assert_eq!(clamp(&mut u, 1000, 1000), None);
        // A later fragment.
        let mut f = tcp4(SYN, &opts);
        f[7] = 1;
        assert_eq!(clamp(&mut f, 1000, 1000), None);
        // No MSS option; options ended by kind 0 before it.
        let mut n = tcp4(SYN, &[0, 0, 2, 4, 0x05, 0xb4, 0, 0]);
        assert_eq!(clamp(&mut n, 1000, 1000), None);
    }

    #[test]
    fn malformed_packets_neither_panic_nor_change() {
        let good = tcp4(SYN, &[2, 4, 0x05, 0xb4]);
        for cut in 0..good.len() {
            let mut p = good[..cut].to_vec();
            let before = p.clone();
            assert_eq!(clamp(&mut p, 1000, 1000), None, "truncated at {cut}");
            assert_eq!(p, before, "truncated at {cut}");
        }
        // An option length running past the header, and a zero length.
        for opts in [[3, 9, 0, 0], [3, 0, 0, 0]] {
            let mut p = tcp4(SYN, &opts);
            let before = p.clone();
            assert_eq!(clamp(&mut p, 1000, 1000), None);
            assert_eq!(p, before);
        }
        // Every byte value in every position of a short SYN: no panic.
        for i in 0..good.len() {
            for b in [0u8, 1, 2, 4, 0x0f, 0x45, 0x60, 0xf0, 0xff] {
                let mut p = good.clone();
                p[i] = b;
                let _ = clamp(&mut p, 1000, 1000);
            }
        }
    }

    #[test]
    fn the_update_is_rfc_1624_eqn_3() {
        // RFC 1624 §4's example: HC 0xdd2f, m 0x5555 changed to 0x3285; eqn. 3 gives 0x0000
        // where eqn. 2 would give 0xffff.
        assert_eq!(update_checksum(0xdd2f, 0x5555, 0x3285), 0x0000);
        // An MSS of 1460 lowered to 1360: the sum of the data falls by 100, so its
        // complement, the checksum, rises by 100.
        assert_eq!(update_checksum(0x1234, 1460, 1360), 0x1234 + 100);
        // The reverse, and a carry round the end: 0xffff + 0xffff + 1 folds to 1.
        assert_eq!(update_checksum(0x1298, 1360, 1460), 0x1234);
        assert_eq!(update_checksum(0, 0, 1), 0xfffe);
    }

    #[test]
    fn limits_follow_the_setting_and_the_mtu() {
        assert_eq!(limits(MssClamp::Off, 1400), None);
        assert_eq!(limits(MssClamp::Auto, 1400), Some((1360, 1340)));
        assert_eq!(limits(MssClamp::Fixed(1300), 1400), Some((1300, 1280)));
    }
}
