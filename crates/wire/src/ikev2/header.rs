//! The IKE header (RFC 7296 §3.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Initiator's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Responder's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          Message ID                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                            Length                             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The ISAKMP header (RFC 2408 §3.1) has the same layout, so [`Packet`] also serves
//! [`crate::isakmp`] and the port-4500 demultiplexer.

use crate::error::{Error, Result};
use crate::ikev2::consts::{ExchangeType, PayloadType};
use crate::{IkeSpi, MAX_MESSAGE_LEN, MessageId};

/// Length of the IKE header.
pub const HEADER_LEN: usize = 28;

mod field {
    use core::ops::Range;
    pub(super) const ISPI: Range<usize> = 0..8;
    pub(super) const RSPI: Range<usize> = 8..16;
    pub(super) const NEXT_PAYLOAD: usize = 16;
    pub(super) const VERSION: usize = 17;
    pub(super) const EXCHANGE: usize = 18;
    pub(super) const FLAGS: usize = 19;
    pub(super) const MESSAGE_ID: Range<usize> = 20..24;
    pub(super) const LENGTH: Range<usize> = 24..28;
}

/// The version octet: major version in the high nibble, minor in the low one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Version(pub u8);

impl Version {
    /// IKEv2.0 (`0x20`).
    pub const IKEV2: Version = Version(0x20);
    /// ISAKMP/IKEv1 1.0 (`0x10`).
    pub const IKEV1: Version = Version(0x10);

    /// The major version.
    pub fn major(self) -> u8 {
        self.0 >> 4
    }

    /// The minor version.
    pub fn minor(self) -> u8 {
        self.0 & 0x0f
    }
}

impl core::fmt::Debug for Version {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.major(), self.minor())
    }
}

/// IKEv2 header flags (RFC 7296 §3.1). Bits other than I, V and R are reserved; they are
/// kept as received.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// I: the sender is the original initiator of the IKE SA.
    pub const INITIATOR: u8 = 0x08;
    /// V: the sender can speak a higher major version.
    pub const VERSION: u8 = 0x10;
    /// R: this message is a response.
    pub const RESPONSE: u8 = 0x20;

    /// The I flag.
    pub fn initiator(self) -> bool {
        self.0 & Self::INITIATOR != 0
    }

    /// The V flag.
    pub fn higher_version(self) -> bool {
        self.0 & Self::VERSION != 0
    }

    /// The R flag.
    pub fn response(self) -> bool {
        self.0 & Self::RESPONSE != 0
    }

    /// Flags for a message from the original initiator (`initiator`) that is or is not a
    /// response.
    pub fn new(initiator: bool, response: bool) -> Self {
        let mut v = 0;
        if initiator {
            v |= Self::INITIATOR;
        }
        if response {
            v |= Self::RESPONSE;
        }
        Flags(v)
    }
}

impl core::fmt::Debug for Flags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Flags({:#04x}", self.0)?;
        for (bit, name) in [
            (Self::INITIATOR, " I"),
            (Self::VERSION, " V"),
            (Self::RESPONSE, " R"),
        ] {
            if self.0 & bit != 0 {
                f.write_str(name)?;
            }
        }
        f.write_str(")")
    }
}

/// A read-only or read-write view of an IKE (or ISAKMP) message starting with its header.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may then panic on a short buffer.
    /// Use [`Packet::new_checked`] for untrusted input.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer and checks it with [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds a header and that the Length field is at least the
    /// header length, at most 64 KiB and within the buffer. After this succeeds, no
    /// accessor panics.
    pub fn check_len(&self) -> Result<()> {
        let buf = self.buffer.as_ref();
        let Some(len) = buf
            .get(field::LENGTH)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
        else {
            return Err(Error::Truncated("IKE header"));
        };
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_MESSAGE_LEN {
            return Err(Error::TooLong("IKE message length"));
        }
        if len < HEADER_LEN {
            return Err(Error::BadLength("IKE header"));
        }
        if len > buf.len() {
            return Err(Error::Truncated("IKE message"));
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes<const N: usize>(&self, at: core::ops::Range<usize>) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.buffer.as_ref().get(at)
            && src.len() == N
        {
            out.copy_from_slice(src);
        }
        out
    }

    fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    /// The initiator's SPI (IKEv1: initiator cookie).
    pub fn initiator_spi(&self) -> IkeSpi {
        IkeSpi(u64::from_be_bytes(self.bytes(field::ISPI)))
    }

    /// The responder's SPI (IKEv1: responder cookie).
    pub fn responder_spi(&self) -> IkeSpi {
        IkeSpi(u64::from_be_bytes(self.bytes(field::RSPI)))
    }

    /// The Next Payload field: the type of the first payload.
    pub fn next_payload(&self) -> PayloadType {
        PayloadType(self.byte(field::NEXT_PAYLOAD))
    }

    /// The version octet.
    pub fn version(&self) -> Version {
        Version(self.byte(field::VERSION))
    }

    /// The exchange type.
    pub fn exchange_type(&self) -> ExchangeType {
        ExchangeType(self.byte(field::EXCHANGE))
    }

    /// The raw flags octet.
    pub fn flags(&self) -> Flags {
        Flags(self.byte(field::FLAGS))
    }

    /// The message ID.
    pub fn message_id(&self) -> MessageId {
        MessageId(u32::from_be_bytes(self.bytes(field::MESSAGE_ID)))
    }

    /// The Length field: the length of the whole message including the header.
    pub fn length(&self) -> u32 {
        u32::from_be_bytes(self.bytes(field::LENGTH))
    }

    /// The payload bytes: from the end of the header to `length()`.
    pub fn payload(&self) -> &[u8] {
        let end = self.length() as usize;
        self.buffer.as_ref().get(HEADER_LEN..end).unwrap_or(&[])
    }

    /// The whole message as the Length field delimits it.
    pub fn message(&self) -> &[u8] {
        let end = self.length() as usize;
        self.buffer.as_ref().get(..end).unwrap_or(&[])
    }
}

/// The IKEv2 header fields that a message carries besides its payloads. Next Payload and
/// Length are derived from the payloads when emitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// IKE SA Initiator's SPI.
    pub initiator_spi: IkeSpi,
    /// IKE SA Responder's SPI (zero in the first IKE_SA_INIT request).
    pub responder_spi: IkeSpi,
    /// Major and minor version.
    pub version: Version,
    /// Exchange type.
    pub exchange_type: ExchangeType,
    /// Flags, reserved bits included.
    pub flags: Flags,
    /// Message ID.
    pub message_id: MessageId,
}

impl Header {
    /// Reads the header fields of a checked view.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Self {
        Header {
            initiator_spi: packet.initiator_spi(),
            responder_spi: packet.responder_spi(),
            version: packet.version(),
            exchange_type: packet.exchange_type(),
            flags: packet.flags(),
            message_id: packet.message_id(),
        }
    }

    /// Writes this header with the given Next Payload and Length fields.
    pub(crate) fn emit_with(
        &self,
        w: &mut crate::codec::Writer<'_>,
        next_payload: PayloadType,
        length: usize,
    ) -> Result<()> {
        RawHeader {
            initiator_spi: self.initiator_spi,
            responder_spi: self.responder_spi,
            next_payload: next_payload.0,
            version: self.version.0,
            exchange_type: self.exchange_type.0,
            flags: self.flags.0,
            message_id: self.message_id,
        }
        .emit(w, length)
    }
}

/// The header as raw octets, shared by IKEv2 and ISAKMP emitters.
pub(crate) struct RawHeader {
    pub(crate) initiator_spi: IkeSpi,
    pub(crate) responder_spi: IkeSpi,
    pub(crate) next_payload: u8,
    pub(crate) version: u8,
    pub(crate) exchange_type: u8,
    pub(crate) flags: u8,
    pub(crate) message_id: MessageId,
}

impl RawHeader {
    pub(crate) fn emit(&self, w: &mut crate::codec::Writer<'_>, length: usize) -> Result<()> {
        let length = u32::try_from(length)
            .ok()
            .filter(|&l| l as usize <= MAX_MESSAGE_LEN)
            .ok_or(Error::TooLong("IKE message length"))?;
        w.u64(self.initiator_spi.0);
        w.u64(self.responder_spi.0);
        w.u8(self.next_payload);
        w.u8(self.version);
        w.u8(self.exchange_type);
        w.u8(self.flags);
        w.u32(self.message_id.0);
        w.u32(length);
        Ok(())
    }
}
