//! The Internet checksum (RFC 1071), for the IPv4 headers and TCP checksums the data plane
//! checks or writes itself (modules `ring` and `gro`).

/// The one's-complement sum of `bytes` as big-endian 16-bit words (an odd last byte padded
/// with zero), not yet folded.
pub(crate) fn sum16(bytes: &[u8]) -> u32 {
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
pub(crate) fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The Internet checksum of `bytes`: 0 over a header whose checksum field is right.
pub(crate) fn checksum(bytes: &[u8]) -> u16 {
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
}
