//! Panic-free reading and writing of big-endian fields.
//!
//! [`Reader`] is a cursor over untrusted bytes in the style of rustls' `Reader`: every read
//! checks the remaining length first and fails with [`Error::Truncated`]; nothing indexes
//! into the input. [`Writer`] writes into a caller-owned buffer and remembers an overflow
//! instead of panicking, so `emit` can report [`Error::BufferTooSmall`] at the end.

use crate::error::{Error, Result};

/// A cursor over untrusted input.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Takes the next `n` bytes; `what` names the structure for the error.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        match self.buf.split_at_checked(n) {
            Some((head, tail)) => {
                self.buf = tail;
                Ok(head)
            }
            None => Err(Error::Truncated(what)),
        }
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        match self.buf.split_first_chunk::<N>() {
            Some((head, tail)) => {
                self.buf = tail;
                Ok(*head)
            }
            None => Err(Error::Truncated(what)),
        }
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8> {
        self.array::<1>(what).map(|[b]| b)
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16> {
        self.array(what).map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32> {
        self.array(what).map(u32::from_be_bytes)
    }

    /// A sub-reader over the next `n` bytes.
    pub(crate) fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>> {
        self.take(n, what).map(Reader::new)
    }

    /// Everything that is left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Fails with [`Error::TrailingData`] unless everything was consumed.
    pub(crate) fn expect_empty(&self, what: &'static str) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingData(what))
        }
    }
}

/// A cursor writing into a caller-owned buffer. Writes past the end are dropped and
/// remembered; [`Writer::finish`] then fails with [`Error::BufferTooSmall`].
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
    overflow: bool,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Writer {
            buf,
            pos: 0,
            overflow: false,
        }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) {
        let end = self.pos.saturating_add(bytes.len());
        match self.buf.get_mut(self.pos..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.pos = end;
            }
            None => self.overflow = true,
        }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.put(&v.to_be_bytes());
    }

    /// Overwrites a big-endian u16 written earlier at `at` (a length field).
    pub(crate) fn patch_u16(&mut self, at: usize, v: u16) {
        match self.buf.get_mut(at..at.saturating_add(2)) {
            Some(dst) => dst.copy_from_slice(&v.to_be_bytes()),
            None => self.overflow = true,
        }
    }

    /// Writes a u16 length placeholder and returns its position, for [`Writer::end_len16`].
    pub(crate) fn begin_len16(&mut self) -> usize {
        let at = self.pos;
        self.u16(0);
        at
    }

    /// Fills the length field written at `at` with the number of bytes from `start` to
    /// the current position.
    pub(crate) fn end_len16(&mut self, at: usize, start: usize, what: &'static str) -> Result<()> {
        let len = self.pos.saturating_sub(start);
        let len = u16::try_from(len).map_err(|_| Error::TooLong(what))?;
        self.patch_u16(at, len);
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<usize> {
        if self.overflow {
            Err(Error::BufferTooSmall)
        } else {
            Ok(self.pos)
        }
    }
}

/// Converts a length to the u8 of a count or size field.
pub(crate) fn len_u8(n: usize, what: &'static str) -> Result<u8> {
    u8::try_from(n).map_err(|_| Error::TooLong(what))
}

/// Converts a length to the u16 of a count or length field.
pub(crate) fn len_u16(n: usize, what: &'static str) -> Result<u16> {
    u16::try_from(n).map_err(|_| Error::TooLong(what))
}

/// The value of a data attribute (RFC 2408 §3.3, RFC 7296 §3.3.5): the Attribute Format
/// bit selects a 2-byte value in the header (TV) or a length-prefixed value (TLV).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttrValue<'a> {
    /// AF = 1: the 16-bit value sits in the attribute header (type/value).
    Basic(u16),
    /// AF = 0: a length field and a variable value follow (type/length/value).
    Variable(&'a [u8]),
}

/// A data attribute as used by IKEv2 transforms, ISAKMP transforms and IKEv1 mode config.
///
/// `ty` is the 15-bit attribute type without the AF bit; its registry depends on the
/// context (IKEv2 [`crate::ikev2::TransformAttrType`], IKEv1
/// [`crate::isakmp::Phase1Attr`], [`crate::isakmp::IpsecAttr`],
/// [`crate::isakmp::ModeCfgAttr`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataAttribute<'a> {
    /// The attribute type (15 bits; the AF bit is carried by [`AttrValue`]).
    pub ty: u16,
    /// The value, in its wire format.
    pub value: AttrValue<'a>,
}

impl<'a> DataAttribute<'a> {
    /// A TV attribute.
    pub fn basic(ty: impl Into<u16>, value: u16) -> Self {
        DataAttribute {
            ty: ty.into(),
            value: AttrValue::Basic(value),
        }
    }

    /// A TLV attribute.
    pub fn variable(ty: impl Into<u16>, value: &'a [u8]) -> Self {
        DataAttribute {
            ty: ty.into(),
            value: AttrValue::Variable(value),
        }
    }

    /// The value as an integer: the TV value, or a TLV value of at most 8 bytes read
    /// big-endian (IKEv1 life durations may be sent either way, RFC 2407 §4.5).
    pub fn as_u64(&self) -> Option<u64> {
        match self.value {
            AttrValue::Basic(v) => Some(u64::from(v)),
            AttrValue::Variable(b) if b.len() <= 8 => {
                Some(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
            }
            AttrValue::Variable(_) => None,
        }
    }

    pub(crate) fn parse(r: &mut Reader<'a>) -> Result<Self> {
        let raw = r.u16("data attribute")?;
        let ty = raw & 0x7fff;
        let value = if raw & 0x8000 != 0 {
            AttrValue::Basic(r.u16("data attribute")?)
        } else {
            let len = r.u16("data attribute")?;
            AttrValue::Variable(r.take(usize::from(len), "data attribute value")?)
        };
        Ok(DataAttribute { ty, value })
    }

    /// Parses attributes until `r` is empty.
    pub(crate) fn parse_all(r: &mut Reader<'a>) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        while !r.is_empty() {
            out.push(Self::parse(r)?);
        }
        Ok(out)
    }

    pub(crate) fn buffer_len(&self) -> usize {
        match self.value {
            AttrValue::Basic(_) => 4,
            AttrValue::Variable(b) => 4 + b.len(),
        }
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        if self.ty > 0x7fff {
            return Err(Error::Malformed("data attribute type above 15 bits"));
        }
        match self.value {
            AttrValue::Basic(v) => {
                w.u16(self.ty | 0x8000);
                w.u16(v);
            }
            AttrValue::Variable(b) => {
                w.u16(self.ty);
                w.u16(len_u16(b.len(), "data attribute value")?);
                w.put(b);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_never_reads_past_end() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16("x"), Ok(0x0102));
        assert_eq!(r.u16("x"), Err(Error::Truncated("x")));
        assert_eq!(r.u8("x"), Ok(3));
        assert_eq!(r.take(1, "y"), Err(Error::Truncated("y")));
        assert!(r.is_empty());
    }

    #[test]
    fn writer_reports_overflow() {
        let mut buf = [0u8; 3];
        let mut w = Writer::new(&mut buf);
        w.u16(0xabcd);
        w.u16(0x1234);
        assert_eq!(w.finish(), Err(Error::BufferTooSmall));
        assert_eq!(buf, [0xab, 0xcd, 0]);
    }

    #[test]
    fn attribute_tv_and_tlv_round_trip() {
        let bytes = [0x80, 0x0e, 0x01, 0x00, 0x00, 0x02, 0x00, 0x03, 1, 2, 3];
        let mut r = Reader::new(&bytes);
        let attrs = DataAttribute::parse_all(&mut r).unwrap();
        assert_eq!(
            attrs,
            vec![
                DataAttribute::basic(14u16, 256),
                DataAttribute::variable(2u16, &[1, 2, 3])
            ]
        );
        assert_eq!(attrs[1].as_u64(), Some(0x010203));
        let mut out = [0u8; 11];
        let mut w = Writer::new(&mut out);
        for a in &attrs {
            a.emit(&mut w).unwrap();
        }
        assert_eq!(w.finish(), Ok(11));
        assert_eq!(out, bytes);
    }

    #[test]
    fn attribute_tlv_overrun_is_an_error() {
        let mut r = Reader::new(&[0x00, 0x02, 0x00, 0x09, 1]);
        assert_eq!(
            DataAttribute::parse(&mut r),
            Err(Error::Truncated("data attribute value"))
        );
    }
}
