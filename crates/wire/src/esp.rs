//! ESP header and trailer (RFC 4303 §2).
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |               Security Parameters Index (SPI)                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      Sequence Number                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Payload Data* (variable)                   |
//! ~               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |               |     Padding (0-255 bytes)                     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                               |  Pad Length   | Next Header   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Integrity Check Value-ICV   (variable)                |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! [`Packet`] views the header; the rest (IV, ciphertext, ICV) is [`Packet::payload`],
//! split by the data plane according to the SA's algorithms. After decryption,
//! [`Trailer::parse`] splits the plaintext into inner packet, padding and trailer.

use crate::error::{Error, Result};
use crate::registry::registry;
use crate::{Spi, codec::Writer};

/// Length of the ESP header (SPI and Sequence Number).
pub const HEADER_LEN: usize = 8;

registry! {
    /// IP protocol numbers as used in ESP/AH Next Header and traffic selectors.
    pub struct IpProtocol(u8) {
        ICMP = 1,
        IPV4 = 4,
        TCP = 6,
        UDP = 17,
        IPV6 = 41,
        ESP = 50,
        AH = 51,
        ICMPV6 = 58,
        /// No Next Header: a dummy packet for traffic flow confidentiality (RFC 4303 §2.6).
        NO_NEXT_HEADER = 59,
    }
}

/// A view of an ESP packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after checking that it holds the ESP header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds the 8-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated("ESP header"))
        } else {
            Ok(())
        }
    }

    fn word(&self, at: usize) -> u32 {
        self.buffer
            .as_ref()
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_be_bytes)
    }

    /// The SPI.
    pub fn spi(&self) -> Spi {
        Spi(self.word(0))
    }

    /// The (low 32 bits of the) sequence number.
    pub fn sequence_number(&self) -> u32 {
        self.word(4)
    }

    /// Everything after the header: IV, ciphertext and ICV.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// The ESP header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// SPI (zero is reserved and never sent).
    pub spi: Spi,
    /// Sequence Number (low 32 bits when ESN is in use).
    pub sequence_number: u32,
}

impl Repr {
    /// Reads a checked view.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self> {
        packet.check_len()?;
        Ok(Repr {
            spi: packet.spi(),
            sequence_number: packet.sequence_number(),
        })
    }

    /// Length of the header.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first 8 bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(buf);
        w.u32(self.spi.0);
        w.u32(self.sequence_number);
        w.finish()
    }
}

/// The ESP trailer inside the decrypted data: Pad Length and Next Header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Trailer {
    /// Pad Length.
    pub pad_len: u8,
    /// Next Header: the protocol of the inner packet (IPv4 = 4, IPv6 = 41, dummy = 59).
    pub next_header: IpProtocol,
}

/// Decrypted ESP content split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plaintext<'a> {
    /// The inner packet.
    pub payload: &'a [u8],
    /// The padding octets.
    pub padding: &'a [u8],
    /// The trailer.
    pub trailer: Trailer,
}

impl Plaintext<'_> {
    /// Whether the padding is the default 1, 2, 3, … sequence (RFC 4303 §2.4).
    #[inline]
    pub fn padding_is_default(&self) -> bool {
        self.padding
            .iter()
            .enumerate()
            .all(|(i, &b)| usize::from(b) == i + 1)
    }
}

impl Trailer {
    /// Length of the trailer (Pad Length and Next Header).
    pub const LEN: usize = 2;

    /// Splits decrypted ESP content (without IV and ICV) into payload, padding and trailer.
    #[inline]
    pub fn parse(plaintext: &[u8]) -> Result<Plaintext<'_>> {
        let Some((rest, [pad_len, next_header])) = plaintext.split_last_chunk::<2>() else {
            return Err(Error::Truncated("ESP trailer"));
        };
        let keep = rest
            .len()
            .checked_sub(usize::from(*pad_len))
            .ok_or(Error::BadLength("ESP Pad Length"))?;
        let (payload, padding) = rest
            .split_at_checked(keep)
            .ok_or(Error::BadLength("ESP Pad Length"))?;
        Ok(Plaintext {
            payload,
            padding,
            trailer: Trailer {
                pad_len: *pad_len,
                next_header: IpProtocol(*next_header),
            },
        })
    }

    /// The padding length that aligns `payload_len` plus the trailer to `block` bytes
    /// (at least 4, RFC 4303 §2.4). `block` of 0 or 1 is treated as 4.
    #[inline]
    pub fn padding_for(payload_len: usize, block: usize) -> u8 {
        let block = block.max(4);
        let len = payload_len + Self::LEN;
        // Every ESP cipher's block is a power of two: a mask, not a division, per packet.
        let rem = if block.is_power_of_two() {
            len & (block - 1)
        } else {
            len % block
        };
        let pad = if rem == 0 { 0 } else { block - rem };
        u8::try_from(pad).unwrap_or(0)
    }

    /// Writes default padding (`pad_len` bytes 1, 2, 3, …) and the trailer into `buf`,
    /// which must be at least `pad_len + 2` bytes long; returns the bytes written.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        // Once per packet: one length check and plain stores (a checked write per byte was
        // 78 instructions for a 2-byte pad, issue 16).
        let pad = usize::from(self.pad_len);
        let out = buf
            .get_mut(..pad + Self::LEN)
            .ok_or(Error::BufferTooSmall)?;
        let (padding, trailer) = out.split_at_mut(pad);
        for (i, b) in padding.iter_mut().enumerate() {
            // i < pad_len ≤ 255.
            *b = (i + 1) as u8;
        }
        trailer.copy_from_slice(&[self.pad_len, self.next_header.0]);
        Ok(pad + Self::LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let bytes = [0xc0, 0x01, 0x02, 0x03, 0, 0, 0, 7, 0xaa, 0xbb];
        let p = Packet::new_checked(&bytes[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr {
                spi: Spi(0xc001_0203),
                sequence_number: 7
            }
        );
        assert_eq!(p.payload(), &[0xaa, 0xbb]);
        let mut out = [0u8; 8];
        assert_eq!(r.emit(&mut out), Ok(8));
        assert_eq!(out, bytes[..8]);
    }

    #[test]
    fn short_header_is_an_error() {
        assert_eq!(
            Packet::new_checked(&[0u8; 7][..]).err(),
            Some(Error::Truncated("ESP header"))
        );
        assert_eq!(
            Repr {
                spi: Spi(1),
                sequence_number: 1
            }
            .emit(&mut [0u8; 7]),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn trailer_split_and_emit() {
        let payload = [0x45u8, 0, 0, 20, 1, 2, 3];
        let pad = Trailer::padding_for(payload.len(), 16);
        assert_eq!((payload.len() + usize::from(pad) + 2) % 16, 0);
        let t = Trailer {
            pad_len: pad,
            next_header: IpProtocol::IPV4,
        };
        let mut buf = payload.to_vec();
        buf.resize(payload.len() + usize::from(pad) + 2, 0);
        assert_eq!(t.emit(&mut buf[payload.len()..]), Ok(usize::from(pad) + 2));
        let pt = Trailer::parse(&buf).unwrap();
        assert_eq!(pt.payload, &payload);
        assert_eq!(pt.trailer, t);
        assert!(pt.padding_is_default());
    }

    /// The padding agrees with the plain remainder for power-of-two blocks (the mask) and for
    /// others (the division); the longest padding is written and read back as the default
    /// sequence; a buffer without room for padding and trailer is refused.
    #[test]
    fn padding_for_every_block_and_the_longest_pad() {
        for block in [0usize, 1, 3, 4, 8, 12, 16, 64, 255] {
            for len in 0..300 {
                let b = block.max(4);
                let want = (b - (len + 2) % b) % b;
                assert_eq!(
                    usize::from(Trailer::padding_for(len, block)),
                    want,
                    "{len}/{block}"
                );
            }
        }
        let t = Trailer {
            pad_len: 255,
            next_header: IpProtocol::IPV6,
        };
        let mut buf = vec![0u8; 1 + 255 + 2];
        assert_eq!(t.emit(&mut buf[1..]), Ok(257));
        let pt = Trailer::parse(&buf).unwrap();
        assert_eq!((pt.payload.len(), pt.padding.len()), (1, 255));
        assert!(pt.padding_is_default());
        assert_eq!(pt.padding[254], 255);
        assert_eq!(t.emit(&mut [0u8; 256]), Err(Error::BufferTooSmall));
        buf[100] ^= 1;
        assert!(!Trailer::parse(&buf).unwrap().padding_is_default());
    }

    #[test]
    fn trailer_with_oversized_pad_length_is_an_error() {
        assert_eq!(
            Trailer::parse(&[1, 2, 5, 4]).err(),
            Some(Error::BadLength("ESP Pad Length"))
        );
        assert_eq!(
            Trailer::parse(&[4]).err(),
            Some(Error::Truncated("ESP trailer"))
        );
        let pt = Trailer::parse(&[9, 1, 2, 2, 59]).unwrap();
        assert_eq!(pt.payload, &[9]);
        assert_eq!(pt.trailer.next_header, IpProtocol::NO_NEXT_HEADER);
    }
}
