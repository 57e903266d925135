//! The IPv4 header (RFC 791 §3.1): one reader and check for every place that looks at one.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |Type of Service|          Total Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Identification        |Flags|      Fragment Offset    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       Source Address                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Destination Address                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Options                    |    Padding    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! - [`Ipv4Header::parse`] is the full check, for packets nothing has checked yet (the
//!   packet ring, the reassembler): version 4, IHL at least 5, the header within the
//!   buffer, a Total Length that covers the header and fits the buffer, and the header
//!   checksum. Bytes after the Total Length (link-layer padding) are allowed and ignored.
//! - [`Ipv4Header::read`] checks only what it needs to read the fields safely (version,
//!   IHL, the header within the buffer), for packets the kernel's IP layer has already
//!   checked (a raw socket's receive); the caller decides what to make of the Total Length.
//!
//! Neither allocates or panics, whatever the input.

use std::net::Ipv4Addr;
use std::ops::Range;

use thiserror::Error;

use crate::checksum::checksum;

/// The length of an IPv4 header without options (IHL 5).
pub const MIN_HEADER_LEN: usize = 20;

/// The More Fragments flag in the flags/fragment offset field (bytes 6 and 7).
pub const MORE_FRAGMENTS: u16 = 0x2000;

/// The fragment offset (in units of 8 bytes) in the flags/fragment offset field.
pub const OFFSET_MASK: u16 = 0x1fff;

/// Why a buffer does not start with a usable IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The buffer ends before 20 bytes, or before the header length the IHL gives.
    #[error("IPv4 header truncated")]
    Truncated,
    /// The version field is not 4.
    #[error("not IPv4 (version field)")]
    Version,
    /// The IHL is below 5 (a header is at least 20 bytes).
    #[error("IPv4 header length below 20 bytes")]
    HeaderLength,
    /// The Total Length is shorter than the header or longer than the buffer.
    #[error("IPv4 total length shorter than the header or past the buffer")]
    TotalLength,
    /// The header checksum is wrong.
    #[error("bad IPv4 header checksum")]
    Checksum,
}

/// The fields of an IPv4 header that the data plane uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Header {
    /// The source address.
    pub src: Ipv4Addr,
    /// The destination address.
    pub dst: Ipv4Addr,
    /// The IP protocol of the payload (50 for ESP).
    pub protocol: u8,
    /// The Identification field (what fragments of one datagram share).
    pub id: u16,
    /// The header's length in bytes, options included (IHL × 4, at least 20).
    pub header_len: usize,
    /// The Total Length field: header and payload, in bytes. Checked against the header
    /// and the buffer by [`Ipv4Header::parse`], not by [`Ipv4Header::read`].
    pub total_len: usize,
    /// The More Fragments flag.
    pub more_fragments: bool,
    /// Where the payload lies in the original datagram, in bytes (the Fragment Offset × 8).
    pub fragment_offset: usize,
}

impl Ipv4Header {
    /// Reads and checks the header at the start of `packet`, which nothing has checked yet:
    /// version 4, IHL at least 5, the header within `packet`, Total Length at least the
    /// header length and at most `packet.len()`, and the header checksum. The checks are
    /// made in that order; the first that fails is the error.
    pub fn parse(packet: &[u8]) -> Result<Self, HeaderError> {
        let h = Self::read(packet)?;
        if h.total_len < h.header_len || h.total_len > packet.len() {
            return Err(HeaderError::TotalLength);
        }
        let header = packet.get(..h.header_len).ok_or(HeaderError::Truncated)?;
        if checksum(header) != 0 {
            return Err(HeaderError::Checksum);
        }
        Ok(h)
    }

    /// Reads the header at the start of `packet`, checking only that it is one: version 4,
    /// IHL at least 5, the whole header (options included) within `packet`. Neither the
    /// Total Length nor the checksum is checked: for packets the kernel has checked.
    pub fn read(packet: &[u8]) -> Result<Self, HeaderError> {
        let h = packet
            .first_chunk::<MIN_HEADER_LEN>()
            .ok_or(HeaderError::Truncated)?;
        if h[0] >> 4 != 4 {
            return Err(HeaderError::Version);
        }
        let header_len = usize::from(h[0] & 0x0f) * 4;
        if header_len < MIN_HEADER_LEN {
            return Err(HeaderError::HeaderLength);
        }
        if header_len > packet.len() {
            return Err(HeaderError::Truncated);
        }
        let flags_offset = u16::from_be_bytes([h[6], h[7]]);
        Ok(Ipv4Header {
            src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
            dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
            protocol: h[9],
            id: u16::from_be_bytes([h[4], h[5]]),
            header_len,
            total_len: usize::from(u16::from_be_bytes([h[2], h[3]])),
            more_fragments: flags_offset & MORE_FRAGMENTS != 0,
            fragment_offset: usize::from(flags_offset & OFFSET_MASK) * 8,
        })
    }

    /// Whether the packet is a fragment: More Fragments set or a non-zero offset (Don't
    /// Fragment alone is not).
    pub fn is_fragment(&self) -> bool {
        self.more_fragments || self.fragment_offset != 0
    }

    /// Where the payload lies in the packet: from the end of the header to the Total
    /// Length (empty if the Total Length, unchecked by [`Ipv4Header::read`], is shorter
    /// than the header).
    pub fn payload_range(&self) -> Range<usize> {
        self.header_len..self.total_len.max(self.header_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet with a 20-byte header plus `options` (a multiple of 4 bytes) and
    /// `payload_len` bytes of 0xaa, flags/offset as given, the checksum right.
    fn packet(options: &[u8], payload_len: usize, flags_offset: u16) -> Vec<u8> {
        assert_eq!(options.len() % 4, 0);
        let header_len = MIN_HEADER_LEN + options.len();
        let total = (header_len + payload_len) as u16;
        let mut p = vec![0x40 | (header_len / 4) as u8, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0x12, 0x34]);
        p.extend_from_slice(&flags_offset.to_be_bytes());
        p.extend_from_slice(&[64, 50, 0, 0]);
        p.extend_from_slice(&[192, 0, 2, 1]);
        p.extend_from_slice(&[198, 51, 100, 7]);
        p.extend_from_slice(options);
        let c = checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.resize(header_len + payload_len, 0xaa);
        p
    }

    /// `p` with `edit` applied and the checksum made right again.
    fn edited(p: &[u8], edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
        let mut p = p.to_vec();
        edit(&mut p);
        let header_len = (usize::from(p[0] & 0x0f) * 4).clamp(MIN_HEADER_LEN, p.len());
        p[10..12].fill(0);
        let c = checksum(&p[..header_len]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn a_sound_header_is_read_and_padding_ignored() {
        let mut p = packet(&[], 8, 0x4000);
        p.extend_from_slice(&[0; 6]); // Ethernet padding
        let h = Ipv4Header::parse(&p).expect("sound");
        assert_eq!(
            h,
            Ipv4Header {
                src: Ipv4Addr::new(192, 0, 2, 1),
                dst: Ipv4Addr::new(198, 51, 100, 7),
                protocol: 50,
                id: 0x1234,
                header_len: 20,
                total_len: 28,
                more_fragments: false,
                fragment_offset: 0,
            }
        );
        assert!(!h.is_fragment(), "DF alone is not a fragment");
        assert_eq!(h.payload_range(), 20..28);
        assert_eq!(Ipv4Header::read(&p), Ok(h));
    }

    #[test]
    fn options_count_in_the_header() {
        // A Router Alert option (4 bytes): IHL 6.
        let p = packet(&[0x94, 0x04, 0, 0], 8, 0);
        let h = Ipv4Header::parse(&p).expect("sound");
        assert_eq!((h.header_len, h.total_len), (24, 32));
        assert_eq!(&p[h.payload_range()], &[0xaa; 8]);
        // The largest header, IHL 15: 40 bytes of options (No Operation).
        let p = packet(&[1; 40], 0, 0);
        let h = Ipv4Header::parse(&p).expect("sound");
        assert_eq!((h.header_len, h.total_len), (60, 60));
        assert!(h.payload_range().is_empty());
        // The checksum covers the options too.
        let mut bad = p.clone();
        bad[59] = 0;
        assert_eq!(Ipv4Header::parse(&bad), Err(HeaderError::Checksum));
    }

    #[test]
    fn fragments() {
        for (flags_offset, more, offset) in [
            (0x2000, true, 0),
            (0x0001, false, 8),
            (0x2001, true, 8),
            (0x3fff, true, 8191 * 8),
            (0x1fff, false, 8191 * 8),
            (0x6001, true, 8), // DF and MF together: read as they are
        ] {
            let h = Ipv4Header::parse(&packet(&[], 8, flags_offset)).unwrap();
            assert!(h.is_fragment(), "{flags_offset:#x}");
            assert_eq!((h.more_fragments, h.fragment_offset), (more, offset));
        }
        // The reserved bit is neither.
        let h = Ipv4Header::parse(&packet(&[], 8, 0x8000)).unwrap();
        assert!(!h.is_fragment());
    }

    #[test]
    fn broken_headers_are_refused() {
        let good = packet(&[], 16, 0);
        assert!(Ipv4Header::parse(&good).is_ok());
        let mut cases: Vec<(&str, Vec<u8>, HeaderError)> = vec![
            ("empty", Vec::new(), HeaderError::Truncated),
            (
                "version 6",
                edited(&good, |p| p[0] = 0x65),
                HeaderError::Version,
            ),
            (
                "version 0",
                edited(&good, |p| p[0] = 0x05),
                HeaderError::Version,
            ),
            (
                "IHL 4",
                edited(&good, |p| p[0] = 0x44),
                HeaderError::HeaderLength,
            ),
            (
                "IHL 0",
                edited(&good, |p| p[0] = 0x40),
                HeaderError::HeaderLength,
            ),
            // IHL 15 is 60 bytes: past the 36-byte buffer.
            (
                "IHL past the buffer",
                edited(&good, |p| p[0] = 0x4f),
                HeaderError::Truncated,
            ),
            (
                "total length below the header",
                edited(&good, |p| p[2..4].copy_from_slice(&[0, 19])),
                HeaderError::TotalLength,
            ),
            (
                "total length past the buffer",
                edited(&good, |p| p[2..4].copy_from_slice(&[0, 37])),
                HeaderError::TotalLength,
            ),
            (
                "the data cut short",
                good[..30].to_vec(),
                HeaderError::TotalLength,
            ),
        ];
        for n in 1..20 {
            cases.push((
                "cut in the header",
                good[..n].to_vec(),
                HeaderError::Truncated,
            ));
        }
        // A flipped bit anywhere in the header: the checksum catches it, unless a check
        // made before it does (version in byte 0, the total length in bytes 2 and 3).
        for byte in 0..20 {
            let mut p = good.clone();
            p[byte] ^= 0x10;
            let expect = match byte {
                0 => HeaderError::Version,
                2 | 3 => HeaderError::TotalLength,
                _ => HeaderError::Checksum,
            };
            cases.push(("a flipped bit", p, expect));
        }
        for (what, p, expect) in &cases {
            assert_eq!(Ipv4Header::parse(p), Err(*expect), "{what}: {p:02x?}");
        }
        // The edits themselves were right: with the field put back, the header is sound.
        assert_eq!(
            Ipv4Header::parse(&edited(&good, |p| p[2..4].copy_from_slice(&[0, 36]))),
            Ok(Ipv4Header::parse(&good).unwrap())
        );
    }

    #[test]
    fn read_checks_neither_total_length_nor_checksum() {
        let good = packet(&[], 16, 0);
        let mut p = good.clone();
        p[2..4].copy_from_slice(&[0, 200]); // past the buffer, checksum now wrong
        let h = Ipv4Header::read(&p).expect("readable");
        assert_eq!((h.header_len, h.total_len), (20, 200));
        p[2..4].copy_from_slice(&[0, 4]); // below the header
        let h = Ipv4Header::read(&p).expect("readable");
        assert_eq!(h.payload_range(), 20..20, "never a reversed range");
        // What it does check, it checks as parse does.
        assert_eq!(Ipv4Header::read(&good[..19]), Err(HeaderError::Truncated));
        assert_eq!(Ipv4Header::read(&[0x65; 40]), Err(HeaderError::Version));
        assert_eq!(
            Ipv4Header::read(&[0x44; 40]),
            Err(HeaderError::HeaderLength)
        );
        assert_eq!(Ipv4Header::read(&[0x4f; 40]), Err(HeaderError::Truncated));
    }

    #[test]
    fn any_bytes_are_safe() {
        // Every prefix of random buffers: nothing panics, and what parse accepts, read reads
        // the same way, with its ranges inside the buffer.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut accepted = 0;
        for n in 0..20_000 {
            let len = (next() % 80) as usize;
            let mut p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if n % 2 == 0 && len >= 20 {
                // Mostly plausible headers, so that the checks past the first are reached.
                p[0] = 0x45 + (next() % 3) as u8;
                p[2..4].copy_from_slice(&((next() % 90) as u16).to_be_bytes());
                p = edited(&p, |_| {});
            }
            if let Ok(h) = Ipv4Header::parse(&p) {
                accepted += 1;
                assert_eq!(Ipv4Header::read(&p), Ok(h));
                assert!(h.payload_range().end <= p.len());
            }
            if let Ok(h) = Ipv4Header::read(&p) {
                assert!(h.header_len >= MIN_HEADER_LEN && h.header_len <= p.len());
            }
        }
        assert!(accepted > 100, "sound headers were among them: {accepted}");
    }
}
