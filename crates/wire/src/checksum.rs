//! The Internet checksum (RFC 1071): IPv4 header checksums, and the sums the data plane
//! builds TCP and UDP checksums from.
//!
//! [`sum16`] and [`fold`] are the two halves of [`checksum`], for callers that add a
//! pseudo-header ([`pseudo_header_sum`]) or other words to the sum before folding it.

/// The one's-complement sum of `bytes` as big-endian 16-bit words (an odd last byte padded
/// with zero), not yet folded. Exact (no overflow) for up to 65,537 words: any IPv4 or
/// non-jumbo IPv6 packet.
#[inline]
pub fn sum16(bytes: &[u8]) -> u32 {
    let mut sum: u32 = 0;
    let mut words = bytes.chunks_exact(2);
    for w in words.by_ref() {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// Folds a sum to 16 bits (end-around carry).
#[inline]
pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The sum of the pseudo-header that TCP and UDP checksums cover (RFC 768, RFC 9293; IPv6:
/// RFC 8200 §8.1), not yet folded: add the [`sum16`] of the segment, then [`fold`].
/// `addresses` is the source then the destination address as the IP header holds them
/// (bytes 12..20 of an IPv4 header, 8..40 of an IPv6 one); `length` is the TCP or UDP length,
/// header included.
#[inline]
pub fn pseudo_header_sum(addresses: &[u8], protocol: u8, length: u32) -> u32 {
    sum16(addresses) + u32::from(protocol) + (length >> 16) + (length & 0xffff)
}

/// The Internet checksum of `bytes`: to be written into a checksum field that was zero when
/// summed; 0 over bytes whose checksum field is already right.
#[inline]
pub fn checksum(bytes: &[u8]) -> u16 {
    !fold(sum16(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_is_the_internet_checksum() {
        // RFC 1071's example words sum to 0xddf2; the checksum is its complement.
        assert_eq!(
            sum16(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x2ddf0
        );
        assert_eq!(fold(0x2ddf0), 0xddf2);
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn a_real_ipv4_header() {
        // A captured IPv4 header (UDP, 192.168.0.1 -> 192.168.0.199) whose checksum field
        // holds 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0, "a right checksum field sums to zero");
        h[10..12].fill(0);
        assert_eq!(checksum(&h), 0xb861);
    }

    #[test]
    fn udp_over_ipv4_and_ipv6_with_the_pseudo_header() {
        // UDP 1234 -> 53, length 11, payload "abc", checksum field zero. The checksums were
        // worked out by hand: 0x4a32 from 192.0.2.1 to 198.51.100.7, 0xdaf9 from
        // 2001:db8::1 to 2001:db8::2.
        let mut udp = [0x04, 0xd2, 0x00, 0x35, 0x00, 0x0b, 0, 0, b'a', b'b', b'c'];
        let v4 = [192, 0, 2, 1, 198, 51, 100, 7];
        let mut v6 = [0u8; 32];
        v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v6[15] = 1;
        v6[16..20].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v6[31] = 2;
        for (addresses, want) in [(&v4[..], 0x4a32), (&v6[..], 0xdaf9)] {
            let pseudo = pseudo_header_sum(addresses, 17, 11);
            udp[6..8].fill(0);
            assert_eq!(!fold(pseudo + sum16(&udp)), want);
            udp[6..8].copy_from_slice(&want.to_be_bytes());
            assert_eq!(
                fold(pseudo + sum16(&udp)),
                0xffff,
                "a right field sums to 0xffff"
            );
        }
        // An IPv6 jumbogram's length has a high half, which counts too.
        assert_eq!(fold(pseudo_header_sum(&v6, 6, 0x1_2345)), 0x7ec1);
    }

    #[test]
    fn the_carry_goes_round_more_than_once() {
        // 0x1fffe folds to 0xffff; 0xffff_ffff folds twice.
        assert_eq!(fold(0x1fffe), 0xffff);
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(sum16(&[0xff; 4]), 0x1fffe);
        assert_eq!(checksum(&[0xff; 4]), 0);
    }
}
