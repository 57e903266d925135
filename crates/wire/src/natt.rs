//! Telling IKE from ESP on UDP port 4500 (RFC 3948 §2, RFC 7296 §2.23).
//!
//! - A single octet 0xFF is a NAT-keepalive (RFC 3948 §2.3).
//! - Four zero octets (the non-ESP marker, where an ESP SPI would be) precede an IKE
//!   message (RFC 3948 §2.2).
//! - Anything else of at least 8 bytes is ESP; its SPI is non-zero, because zero is
//!   reserved.

use crate::error::{Error, Result};

/// The non-ESP marker.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// The NAT-keepalive payload.
pub const KEEPALIVE: [u8; 1] = [0xff];

/// What a datagram received on port 4500 holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// A NAT-keepalive; ignore it.
    Keepalive,
    /// An IKE message (the marker removed).
    Ike(&'a [u8]),
    /// An ESP packet, starting with its non-zero SPI.
    Esp(&'a [u8]),
}

/// Classifies a UDP payload received on port 4500.
pub fn demux_4500(udp_payload: &[u8]) -> Result<Datagram<'_>> {
    if udp_payload == KEEPALIVE {
        return Ok(Datagram::Keepalive);
    }
    match udp_payload.split_first_chunk::<4>() {
        Some((&NON_ESP_MARKER, ike)) => Ok(Datagram::Ike(ike)),
        Some(_) if udp_payload.len() >= crate::esp::HEADER_LEN => Ok(Datagram::Esp(udp_payload)),
        _ => Err(Error::Truncated("UDP-encapsulated datagram")),
    }
}

/// Writes the non-ESP marker and `ike` into `out`; returns the length written.
pub fn encapsulate_ike(ike: &[u8], out: &mut [u8]) -> Result<usize> {
    let mut w = crate::codec::Writer::new(out);
    w.put(&NON_ESP_MARKER);
    w.put(ike);
    w.finish()
}

/// The major version of an IKE message (1 for ISAKMP/IKEv1, 2 for IKEv2), to pick a
/// decoder for a datagram on port 500 or after the non-ESP marker.
pub fn ike_major_version(ike: &[u8]) -> Option<u8> {
    ike.get(17).map(|v| v >> 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        assert_eq!(demux_4500(&[0xff]), Ok(Datagram::Keepalive));
        assert_eq!(demux_4500(&[0, 0, 0, 0, 1, 2]), Ok(Datagram::Ike(&[1, 2])));
        let esp = [0, 0, 1, 0, 0, 0, 0, 1];
        assert_eq!(demux_4500(&esp), Ok(Datagram::Esp(&esp)));
        assert!(demux_4500(&[]).is_err());
        assert!(demux_4500(&[0xfe]).is_err());
        assert!(demux_4500(&[0, 0, 0]).is_err());
        assert!(demux_4500(&[0, 0, 1, 0, 0, 0, 0]).is_err());
        // An empty IKE message after the marker is still classified as IKE; the IKE
        // decoder rejects it.
        assert_eq!(demux_4500(&[0, 0, 0, 0]), Ok(Datagram::Ike(&[])));
    }

    #[test]
    fn encapsulate_then_demux() {
        let ike = [7u8; 30];
        let mut out = [0u8; 34];
        assert_eq!(encapsulate_ike(&ike, &mut out), Ok(34));
        assert_eq!(demux_4500(&out), Ok(Datagram::Ike(&ike[..])));
        assert_eq!(
            encapsulate_ike(&ike, &mut [0u8; 33]),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn version() {
        let mut m = [0u8; 28];
        m[17] = 0x20;
        assert_eq!(ike_major_version(&m), Some(2));
        m[17] = 0x10;
        assert_eq!(ike_major_version(&m), Some(1));
        assert_eq!(ike_major_version(&m[..17]), None);
    }
}
