//! AH header (RFC 4302 §2).
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Header   |  Payload Len  |          RESERVED             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Security Parameters Index (SPI)               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Sequence Number Field                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                Integrity Check Value-ICV (variable)           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Payload Len is the AH length in 32-bit words minus 2.

use crate::Spi;
use crate::codec::{Reader, Writer, len_u8};
use crate::error::{Error, Result};
use crate::esp::IpProtocol;

/// Length of the fixed part of the AH header.
pub const FIXED_LEN: usize = 12;

/// A view of an AH header followed by the protected payload.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds the fixed header and the whole AH header that Payload
    /// Len claims, and that this is at least the fixed part.
    pub fn check_len(&self) -> Result<()> {
        let buf = self.buffer.as_ref();
        if buf.len() < FIXED_LEN {
            return Err(Error::Truncated("AH header"));
        }
        let len = self.header_len();
        if len < FIXED_LEN {
            return Err(Error::BadLength("AH Payload Len"));
        }
        if len > buf.len() {
            return Err(Error::Truncated("AH ICV"));
        }
        Ok(())
    }

    fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    fn word(&self, at: usize) -> u32 {
        self.buffer
            .as_ref()
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_be_bytes)
    }

    /// Next Header.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.byte(0))
    }

    /// The raw Payload Len field.
    pub fn payload_len(&self) -> u8 {
        self.byte(1)
    }

    /// The AH header length in bytes: (Payload Len + 2) * 4.
    pub fn header_len(&self) -> usize {
        (usize::from(self.payload_len()) + 2) * 4
    }

    /// The SPI.
    pub fn spi(&self) -> Spi {
        Spi(self.word(4))
    }

    /// The Sequence Number.
    pub fn sequence_number(&self) -> u32 {
        self.word(8)
    }

    /// The ICV.
    pub fn icv(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(FIXED_LEN..self.header_len())
            .unwrap_or(&[])
    }

    /// The protected payload after the AH header.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }
}

/// The AH header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr<'a> {
    /// Next Header.
    pub next_header: IpProtocol,
    /// SPI.
    pub spi: Spi,
    /// Sequence Number.
    pub sequence_number: u32,
    /// The ICV (zeroes while the ICV is being computed, RFC 4302 §3.3.3.1).
    pub icv: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Reads a view.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &'a Packet<&'a T>) -> Result<Self> {
        packet.check_len()?;
        let buf: &'a [u8] = packet.buffer.as_ref();
        let mut r = Reader::new(buf);
        let next_header = IpProtocol(r.u8("AH header")?);
        let payload_len = r.u8("AH header")?;
        let _reserved = r.u16("AH header")?;
        let spi = Spi(r.u32("AH header")?);
        let sequence_number = r.u32("AH header")?;
        let icv_len = ((usize::from(payload_len) + 2) * 4).saturating_sub(FIXED_LEN);
        let icv = r.take(icv_len, "AH ICV")?;
        Ok(Repr {
            next_header,
            spi,
            sequence_number,
            icv,
        })
    }

    /// Length of the AH header.
    pub fn buffer_len(&self) -> usize {
        FIXED_LEN + self.icv.len()
    }

    /// Writes the AH header. The length must be a multiple of 4 bytes (the ICV is padded
    /// by the caller for IPv6's 8-byte alignment).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        if !len.is_multiple_of(4) {
            return Err(Error::Malformed("AH length not a multiple of 4"));
        }
        let payload_len = len_u8(len / 4 - 2, "AH ICV")?;
        let mut w = Writer::new(buf);
        w.u8(self.next_header.0);
        w.u8(payload_len);
        w.u16(0);
        w.u32(self.spi.0);
        w.u32(self.sequence_number);
        w.put(self.icv);
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_icv() {
        // HMAC-SHA1-96: 12-byte ICV, Payload Len = (24 / 4) - 2 = 4.
        let mut bytes = vec![4, 4, 0, 0, 0, 0, 0x10, 0x01, 0, 0, 0, 9];
        bytes.extend_from_slice(&[0xee; 12]);
        bytes.extend_from_slice(&[0x45, 0]);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.payload(), &[0x45, 0]);
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.spi, Spi(0x1001));
        assert_eq!(r.sequence_number, 9);
        assert_eq!(r.next_header, IpProtocol::IPV4);
        assert_eq!(r.icv, &[0xee; 12]);
        let mut out = vec![0; r.buffer_len()];
        assert_eq!(r.emit(&mut out), Ok(24));
        assert_eq!(out, bytes[..24]);
    }

    #[test]
    fn bad_lengths_are_errors() {
        assert_eq!(
            Packet::new_checked(&[0u8; 11][..]).err(),
            Some(Error::Truncated("AH header"))
        );
        // Payload Len 0 => 8 bytes, below the fixed 12.
        assert_eq!(
            Packet::new_checked(&[0u8; 12][..]).err(),
            Some(Error::BadLength("AH Payload Len"))
        );
        // Payload Len 255 claims 1028 bytes.
        let mut b = [0u8; 12];
        b[1] = 255;
        assert_eq!(
            Packet::new_checked(&b[..]).err(),
            Some(Error::Truncated("AH ICV"))
        );
        let r = Repr {
            next_header: IpProtocol::IPV6,
            spi: Spi(1),
            sequence_number: 1,
            icv: &[0; 3],
        };
        assert!(r.emit(&mut [0u8; 15]).is_err());
    }
}
