//! Whole IKEv2 messages, payload chains and the layout of the Encrypted payload.

use core::ops::Range;

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::ikev2::consts::PayloadType;
use crate::ikev2::header::{HEADER_LEN, Header, Packet};
use crate::ikev2::payload::{GENERIC_HEADER_LEN, Payload, PayloadBody};

/// A decoded IKEv2 message: the header and the payloads outside any encryption.
///
/// For a protected message the last payload is [`PayloadBody::Encrypted`] (or
/// [`PayloadBody::EncryptedFragment`]); [`Message::sk_layout`] gives the byte ranges to
/// verify and decrypt, and [`parse_payloads`] decodes the decrypted content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The header; Next Payload and Length follow from `payloads`.
    pub header: Header,
    /// The payloads in order.
    pub payloads: Vec<Payload<'a>>,
}

impl<'a> Message<'a> {
    /// Decodes a whole datagram. The header's Length must equal `buf.len()`.
    pub fn parse(buf: &'a [u8]) -> Result<Self> {
        let packet = Packet::new_checked(buf)?;
        if packet.length() as usize != buf.len() {
            return Err(Error::TrailingData(
                "IKE message (Length field shorter than datagram)",
            ));
        }
        let header = Header::parse(&packet);
        let body = buf.get(HEADER_LEN..).unwrap_or(&[]);
        let payloads = parse_chain(packet.next_payload(), body, true)?;
        Ok(Message { header, payloads })
    }

    /// Length of the encoded message.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + payloads_len(&self.payloads)
    }

    /// Encodes the message into the first `buffer_len()` bytes of `buf` and returns that
    /// length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let mut w = Writer::new(buf);
        self.header
            .emit_with(&mut w, first_payload_type(&self.payloads), len)?;
        emit_chain(&self.payloads, &mut w)?;
        w.finish()
    }

    /// Encodes the message into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v)?;
        Ok(v)
    }

    /// The type of the first payload (the header's Next Payload).
    pub fn next_payload(&self) -> PayloadType {
        first_payload_type(&self.payloads)
    }

    /// Where the Encrypted (SK) or Encrypted Fragment (SKF) payload lies in the encoded
    /// message, if the message has one.
    pub fn sk_layout(&self) -> Option<SkLayout> {
        let mut offset = HEADER_LEN;
        for p in &self.payloads {
            match &p.body {
                PayloadBody::Encrypted(e) => {
                    let start = offset + GENERIC_HEADER_LEN;
                    return Some(SkLayout {
                        payload_start: offset,
                        data: start..start + e.data.len(),
                        next_payload: e.next_payload,
                        fragment: None,
                    });
                }
                PayloadBody::EncryptedFragment(f) => {
                    let start = offset + GENERIC_HEADER_LEN + 4;
                    return Some(SkLayout {
                        payload_start: offset,
                        data: start..start + f.data.len(),
                        next_payload: f.next_payload,
                        fragment: Some((f.fragment_number, f.total_fragments)),
                    });
                }
                _ => offset += p.buffer_len(),
            }
        }
        None
    }
}

/// The byte ranges of an Encrypted (SK) or Encrypted Fragment (SKF) payload within its
/// encoded message (RFC 7296 §3.14, RFC 7383 §2.5).
///
/// - The ICV of a non-AEAD transform covers `0..data.end - icv_len`: from the first byte
///   of the IKE header to the end of the encrypted data ([`SkLayout::split`] gives it as
///   `signed`).
/// - The AAD of an AEAD transform (RFC 5282 §5.1) is [`SkLayout::aad`]: the IKE header
///   and the SK generic payload header (for SKF also Fragment Number and Total
///   Fragments), i.e. everything before the IV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkLayout {
    /// Offset of the SK/SKF generic payload header.
    pub payload_start: usize,
    /// IV, ciphertext (with padding and pad length) and ICV.
    pub data: Range<usize>,
    /// Type of the first inner payload (zero in SKF fragments after the first).
    pub next_payload: PayloadType,
    /// For SKF: Fragment Number and Total Fragments.
    pub fragment: Option<(u16, u16)>,
}

/// The parts of an SK/SKF payload's data, as ranges into the whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkParts {
    /// The Initialization Vector.
    pub iv: Range<usize>,
    /// The encrypted payloads, padding and pad length.
    pub ciphertext: Range<usize>,
    /// The Integrity Checksum Data (or the AEAD tag).
    pub icv: Range<usize>,
    /// What a non-AEAD ICV is computed over: the header up to the end of the ciphertext.
    pub signed: Range<usize>,
}

impl SkLayout {
    /// The AEAD associated data: the message from the IKE header up to the IV.
    pub fn aad(&self) -> Range<usize> {
        0..self.data.start
    }

    /// Splits the data into IV, ciphertext and ICV for an IV of `iv_len` and an ICV of
    /// `icv_len` bytes. Fails if the data is too short to hold both.
    pub fn split(&self, iv_len: usize, icv_len: usize) -> Result<SkParts> {
        let need = iv_len.checked_add(icv_len).ok_or(Error::BadLength("SK"))?;
        if self.data.len() < need {
            return Err(Error::Truncated("SK IV and ICV"));
        }
        let iv_end = self.data.start + iv_len;
        let icv_start = self.data.end - icv_len;
        Ok(SkParts {
            iv: self.data.start..iv_end,
            ciphertext: iv_end..icv_start,
            icv: icv_start..self.data.end,
            signed: 0..icv_start,
        })
    }
}

/// Removes the padding and Pad Length octet from decrypted SK content (RFC 7296 §3.14):
/// returns the inner payload bytes.
pub fn strip_padding(plaintext: &[u8]) -> Result<&[u8]> {
    let (&pad_len, rest) = plaintext
        .split_last()
        .ok_or(Error::Truncated("SK Pad Length"))?;
    let keep = rest
        .len()
        .checked_sub(usize::from(pad_len))
        .ok_or(Error::BadLength("SK padding"))?;
    rest.get(..keep).ok_or(Error::BadLength("SK padding"))
}

/// Decodes a chain of payloads from decrypted SK content (padding already removed, see
/// [`strip_padding`]), starting with type `first` (the SK payload's Next Payload).
/// An Encrypted payload inside is an error.
pub fn parse_payloads(first: PayloadType, buf: &[u8]) -> Result<Vec<Payload<'_>>> {
    parse_chain(first, buf, false)
}

/// The type of the first payload of a chain, or NONE for an empty chain.
pub fn first_payload_type(payloads: &[Payload<'_>]) -> PayloadType {
    payloads
        .first()
        .map_or(PayloadType::NONE, Payload::payload_type)
}

/// Length of an encoded payload chain.
pub fn payloads_len(payloads: &[Payload<'_>]) -> usize {
    payloads.iter().map(Payload::buffer_len).sum()
}

/// Encodes a payload chain (e.g. the plaintext of an SK payload, before padding) into
/// `buf` and returns the length written. The chain's first type is
/// [`first_payload_type`].
pub fn emit_payloads(payloads: &[Payload<'_>], buf: &mut [u8]) -> Result<usize> {
    let mut w = Writer::new(buf);
    emit_chain(payloads, &mut w)?;
    w.finish()
}

fn parse_chain(first: PayloadType, buf: &[u8], allow_sk: bool) -> Result<Vec<Payload<'_>>> {
    let mut r = Reader::new(buf);
    let mut next = first;
    let mut out = Vec::new();
    // Each payload consumes at least its 4-byte header, so the loop and the vector are
    // bounded by buf.len() / 4.
    while next != PayloadType::NONE {
        let ty = next;
        next = PayloadType(r.u8("payload header")?);
        let critical = r.u8("payload header")? & 0x80 != 0;
        let len = usize::from(r.u16("payload header")?);
        let body_len = len
            .checked_sub(GENERIC_HEADER_LEN)
            .ok_or(Error::BadLength("payload"))?;
        let body = r.take(body_len, "payload")?;
        let body = PayloadBody::parse(ty, next, body)?;
        let encrypted = body.is_encrypted();
        out.push(Payload { critical, body });
        if encrypted {
            if !allow_sk {
                return Err(Error::NestedEncrypted);
            }
            // RFC 7296 §3.14: the Encrypted payload, if present, MUST be the last one; its
            // Next Payload names the first inner payload, so the outer chain ends here.
            if !r.is_empty() {
                return Err(Error::SkNotLast);
            }
            return Ok(out);
        }
    }
    r.expect_empty("last payload")?;
    Ok(out)
}

fn emit_chain(payloads: &[Payload<'_>], w: &mut Writer<'_>) -> Result<()> {
    let mut iter = payloads.iter().peekable();
    while let Some(p) = iter.next() {
        let next = match &p.body {
            PayloadBody::Encrypted(_) | PayloadBody::EncryptedFragment(_)
                if iter.peek().is_some() =>
            {
                return Err(Error::SkNotLast);
            }
            PayloadBody::Encrypted(e) => e.next_payload,
            PayloadBody::EncryptedFragment(f) => f.next_payload,
            _ => iter.peek().map_or(PayloadType::NONE, |n| n.payload_type()),
        };
        let start = w.position();
        w.u8(next.0);
        w.u8(if p.critical { 0x80 } else { 0 });
        let at = w.begin_len16();
        p.body.emit(w)?;
        w.end_len16(at, start, "payload")?;
    }
    Ok(())
}
