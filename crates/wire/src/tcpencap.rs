//! TCP encapsulation of IKE and ESP (RFC 9329): the stream prefix and the length-prefixed
//! frames of one TCP stream, as a pure codec (no IO; the caller reads and writes the socket).
//!
//! ```text
//!   initiator → responder, once:  "IKETCP"
//!   then, both ways, frames:      | Length (2) | 0x00000000 | IKE message |   (IKE)
//!                                 | Length (2) | ESP packet (SPI ≠ 0)     |   (ESP)
//! ```
//!
//! The Length counts itself (RFC 9329 §3.1/§3.2), so the smallest possible value is 2 and a
//! frame carries at most 65,533 bytes. A frame is what a UDP 4500 datagram would be: IKE with
//! the non-ESP marker, ESP as it is. A single 0xFF byte (a NAT keepalive) is tolerated and
//! ignored: RFC 9329 §6.6 has no NAT keepalives on TCP, but a sender translating UDP 4500 may pass
//! one on.
//!
//! [`Deframer`] takes bytes in any split (one byte at a time, many frames at once), holds at
//! most one frame's worth plus what the caller may feed ([`Deframer::room`]), and never
//! allocates after it is made. Errors that desynchronize the stream (a wrong prefix, a Length
//! below 2 or above the configured maximum) are fatal: the stream must be closed. A frame too
//! short to be IKE or ESP is reported as [`Frame::Invalid`] and the stream goes on.

use core::fmt;

use crate::natt::{KEEPALIVE, NON_ESP_MARKER};

/// The stream prefix the TCP initiator sends first (RFC 9329 §4).
pub const STREAM_PREFIX: [u8; 6] = *b"IKETCP";

/// Bytes of the Length field.
pub const LENGTH_LEN: usize = 2;

/// The largest frame (Length field included) the 16-bit Length can describe.
pub const MAX_FRAME: usize = 65535;

/// The largest body (what follows the Length field).
pub const MAX_BODY: usize = MAX_FRAME - LENGTH_LEN;

/// The smallest IKE body: the marker and an IKE header (RFC 7296 §3.1, 28 bytes).
const MIN_IKE_BODY: usize = NON_ESP_MARKER.len() + 28;

/// The smallest ESP body: SPI and sequence number.
const MIN_ESP_BODY: usize = 8;

/// What stops a stream: its bytes can no longer be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    /// The first bytes from the TCP initiator are not "IKETCP".
    BadPrefix,
    /// A Length field below 2 (it counts itself).
    LengthTooShort(u16),
    /// A Length field above the maximum this stream accepts.
    LengthTooLong {
        /// The Length field.
        length: u16,
        /// The maximum.
        max: usize,
    },
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::BadPrefix => {
                f.write_str("the stream does not begin with the \"IKETCP\" prefix")
            }
            StreamError::LengthTooShort(l) => {
                write!(f, "a frame length of {l} (it counts its own 2 bytes)")
            }
            StreamError::LengthTooLong { length, max } => {
                write!(f, "a frame length of {length}, above the {max} accepted")
            }
        }
    }
}

impl std::error::Error for StreamError {}

/// One frame of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// An IKE message, with the non-ESP marker in front (as on UDP 4500).
    Ike(&'a [u8]),
    /// An ESP packet, SPI first.
    Esp(&'a [u8]),
    /// A NAT keepalive (one 0xFF byte): ignore it.
    Keepalive,
    /// A body too short for IKE or ESP; dropped, the stream goes on.
    Invalid(&'a [u8]),
}

impl<'a> Frame<'a> {
    /// Classifies a frame's body.
    pub fn classify(body: &'a [u8]) -> Frame<'a> {
        if body == KEEPALIVE {
            return Frame::Keepalive;
        }
        match body.split_first_chunk::<4>() {
            Some((&NON_ESP_MARKER, _)) if body.len() >= MIN_IKE_BODY => Frame::Ike(body),
            Some((&NON_ESP_MARKER, _)) => Frame::Invalid(body),
            Some(_) if body.len() >= MIN_ESP_BODY => Frame::Esp(body),
            _ => Frame::Invalid(body),
        }
    }
}

/// Reads frames out of the bytes of one stream, in whatever pieces they arrive.
#[derive(Debug)]
pub struct Deframer {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out as frames (or prefix).
    start: usize,
    /// Bytes of `buf` filled.
    end: usize,
    /// Prefix bytes still to check (the responder's side of a stream).
    prefix_left: usize,
    max_frame: usize,
    failed: Option<StreamError>,
}

impl Deframer {
    /// A deframer for frames of up to [`MAX_FRAME`] bytes; `expect_prefix` on the side that
    /// accepted the connection (the TCP responder), which first reads "IKETCP".
    pub fn new(expect_prefix: bool) -> Self {
        Self::with_max_frame(expect_prefix, MAX_FRAME)
    }

    /// As [`Deframer::new`], refusing frames (Length included) above `max_frame` bytes
    /// (clamped to 2..=65535).
    pub fn with_max_frame(expect_prefix: bool, max_frame: usize) -> Self {
        let max_frame = max_frame.clamp(LENGTH_LEN, MAX_FRAME);
        Deframer {
            // One whole frame of the largest size, and as much again to read into.
            buf: vec![0; 2 * max_frame.max(STREAM_PREFIX.len())],
            start: 0,
            end: 0,
            prefix_left: if expect_prefix {
                STREAM_PREFIX.len()
            } else {
                0
            },
            max_frame,
            failed: None,
        }
    }

    /// The largest frame accepted, Length included.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// How many bytes [`Deframer::feed`] takes now (0 when the stream failed or a whole
    /// frame is waiting to be taken with [`Deframer::next_frame`]).
    pub fn room(&mut self) -> usize {
        if self.failed.is_some() {
            return 0;
        }
        self.compact();
        self.buf.len() - self.end
    }

    /// The part of the buffer to read into directly, [`Deframer::room`] bytes long; then
    /// call [`Deframer::filled`] with how many were read.
    pub fn unfilled(&mut self) -> &mut [u8] {
        let room = self.room();
        &mut self.buf[self.end..self.end + room]
    }

    /// Accounts `n` bytes read into [`Deframer::unfilled`] (at most its length).
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Copies as much of `data` as fits ([`Deframer::room`]); returns how many bytes it took.
    pub fn feed(&mut self, data: &[u8]) -> usize {
        let dst = self.unfilled();
        let n = dst.len().min(data.len());
        dst[..n].copy_from_slice(&data[..n]);
        self.filled(n);
        n
    }

    /// Bytes received and not yet part of a frame handed out: a partial prefix or frame
    /// (a peer that stops here is stalling).
    pub fn pending(&self) -> usize {
        self.end - self.start
    }

    /// Whether the prefix has been read (always, on the initiator's side).
    pub fn prefix_seen(&self) -> bool {
        self.prefix_left == 0
    }

    /// The next whole frame, `None` until more bytes come; an error once the stream cannot
    /// be framed any more (and from then on).
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, StreamError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.prefix_left > 0 {
            let have = self.pending().min(self.prefix_left);
            let done = STREAM_PREFIX.len() - self.prefix_left;
            if self.buf[self.start..self.start + have] != STREAM_PREFIX[done..done + have] {
                return Err(self.fail(StreamError::BadPrefix));
            }
            self.start += have;
            self.prefix_left -= have;
            if self.prefix_left > 0 {
                return Ok(None);
            }
        }
        let Some(len) = self.buf.get(self.start..self.start + LENGTH_LEN) else {
            return Ok(None);
        };
        if self.pending() < LENGTH_LEN {
            return Ok(None);
        }
        let length = u16::from_be_bytes([len[0], len[1]]);
        let frame = usize::from(length);
        if frame < LENGTH_LEN {
            return Err(self.fail(StreamError::LengthTooShort(length)));
        }
        if frame > self.max_frame {
            return Err(self.fail(StreamError::LengthTooLong {
                length,
                max: self.max_frame,
            }));
        }
        if self.pending() < frame {
            return Ok(None);
        }
        let body = self.start + LENGTH_LEN..self.start + frame;
        self.start += frame;
        Ok(Some(Frame::classify(&self.buf[body])))
    }

    fn fail(&mut self, e: StreamError) -> StreamError {
        self.failed = Some(e);
        e
    }

    /// Moves the unread bytes to the front when that makes room.
    fn compact(&mut self) {
        if self.start == 0 {
            return;
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }
}

/// Why a body cannot be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong(pub usize);

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a {}-byte message does not fit a TCP frame (at most {MAX_BODY} bytes)",
            self.0
        )
    }
}

impl std::error::Error for TooLong {}

/// Appends the frame of `body` (a UDP 4500 payload: IKE with its marker, or ESP) to `out`.
pub fn encode(body: &[u8], out: &mut Vec<u8>) -> Result<(), TooLong> {
    encode_parts(&[], body, out)
}

/// Appends the frame of an IKE message without its marker (as sent on UDP 500): the
/// marker is added.
pub fn encode_ike(message: &[u8], out: &mut Vec<u8>) -> Result<(), TooLong> {
    encode_parts(&NON_ESP_MARKER, message, out)
}

fn encode_parts(head: &[u8], body: &[u8], out: &mut Vec<u8>) -> Result<(), TooLong> {
    let n = head.len() + body.len();
    let length = u16::try_from(n + LENGTH_LEN).map_err(|_| TooLong(n))?;
    out.reserve(n + LENGTH_LEN);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(head);
    out.extend_from_slice(body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ike_body() -> Vec<u8> {
        let mut b = vec![0u8; 4];
        b.extend((0..28u8).map(|i| i + 1));
        b
    }

    fn esp_body(n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        b[..4].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        b
    }

    fn stream(prefix: bool, bodies: &[Vec<u8>]) -> Vec<u8> {
        let mut s = Vec::new();
        if prefix {
            s.extend_from_slice(&STREAM_PREFIX);
        }
        for b in bodies {
            encode(b, &mut s).unwrap();
        }
        s
    }

    /// Feeds `bytes` in pieces of `step` and collects the frames as (kind, body).
    fn frames(
        d: &mut Deframer,
        bytes: &[u8],
        step: usize,
    ) -> Result<Vec<(char, Vec<u8>)>, StreamError> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let end = (at + step).min(bytes.len());
            let took = d.feed(&bytes[at..end]);
            at += took;
            while let Some(f) = d.next_frame()? {
                out.push(match f {
                    Frame::Ike(b) => ('i', b.to_vec()),
                    Frame::Esp(b) => ('e', b.to_vec()),
                    Frame::Keepalive => ('k', Vec::new()),
                    Frame::Invalid(b) => ('x', b.to_vec()),
                });
            }
            assert!(took > 0 || d.room() > 0, "no progress");
        }
        Ok(out)
    }

    #[test]
    fn frames_come_out_whole_whatever_the_split() {
        let bodies = vec![
            ike_body(),
            esp_body(1400),
            vec![0xff],
            esp_body(8),
            ike_body(),
        ];
        let bytes = stream(true, &bodies);
        for step in [1, 2, 3, 7, 100, 1401, bytes.len()] {
            let mut d = Deframer::new(true);
            let got = frames(&mut d, &bytes, step).unwrap();
            let kinds: String = got.iter().map(|(k, _)| *k).collect();
            assert_eq!(kinds, "iekei", "step {step}");
            assert_eq!(got[0].1, bodies[0]);
            assert_eq!(got[1].1, bodies[1]);
            assert_eq!(d.pending(), 0, "step {step}");
        }
    }

    #[test]
    fn a_partial_frame_waits_and_counts_as_pending() {
        let bytes = stream(false, &[esp_body(100)]);
        let mut d = Deframer::new(false);
        d.feed(&bytes[..50]);
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.pending(), 50);
        d.feed(&bytes[50..]);
        assert!(matches!(d.next_frame(), Ok(Some(Frame::Esp(b))) if b.len() == 100));
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn a_wrong_prefix_is_fatal_even_in_its_first_bytes() {
        let mut d = Deframer::new(true);
        d.feed(b"IKX");
        assert_eq!(d.next_frame(), Err(StreamError::BadPrefix));
        assert_eq!(d.room(), 0, "a failed stream takes nothing more");
        assert_eq!(d.next_frame(), Err(StreamError::BadPrefix));
        // A stream without the prefix at all: an IKE frame where "IKETCP" should be.
        let mut d = Deframer::new(true);
        d.feed(&stream(false, &[ike_body()]));
        assert_eq!(d.next_frame(), Err(StreamError::BadPrefix));
        // The initiator's side expects none: "IK" is read as a length (0x494b) and waits.
        let mut d = Deframer::new(false);
        d.feed(&STREAM_PREFIX);
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.pending(), STREAM_PREFIX.len());
    }

    #[test]
    fn lengths_below_two_and_above_the_maximum_are_fatal() {
        for l in [0u16, 1] {
            let mut d = Deframer::new(false);
            d.feed(&l.to_be_bytes());
            assert_eq!(d.next_frame(), Err(StreamError::LengthTooShort(l)));
        }
        let mut d = Deframer::with_max_frame(false, 1500);
        d.feed(&1501u16.to_be_bytes());
        assert_eq!(
            d.next_frame(),
            Err(StreamError::LengthTooLong {
                length: 1501,
                max: 1500
            })
        );
        // Exactly the maximum passes.
        let mut d = Deframer::with_max_frame(false, 1500);
        let bytes = stream(false, &[esp_body(1498)]);
        assert_eq!(bytes.len(), 1500);
        assert_eq!(frames(&mut d, &bytes, 700).unwrap().len(), 1);
    }

    #[test]
    fn the_largest_frame_fits_and_the_buffer_stays_bounded() {
        let bytes = stream(true, &[esp_body(MAX_BODY), esp_body(MAX_BODY), ike_body()]);
        let mut d = Deframer::new(true);
        let cap = d.buf.len();
        let got = frames(&mut d, &bytes, 4096).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].1.len(), MAX_BODY);
        assert_eq!(d.buf.len(), cap, "no growth");
        assert!(cap <= 2 * MAX_FRAME);
    }

    #[test]
    fn short_bodies_are_invalid_frames_not_stream_errors() {
        let bodies = vec![
            vec![],
            vec![0, 0, 0, 0],
            vec![0; 10],
            vec![1, 2, 3],
            vec![0xff, 0xff],
        ];
        let bytes = stream(false, &bodies);
        let mut d = Deframer::new(false);
        let got = frames(&mut d, &bytes, 5).unwrap();
        assert!(got.iter().all(|(k, _)| *k == 'x'), "{got:?}");
        assert_eq!(got.len(), bodies.len());
    }

    #[test]
    fn encoding_adds_the_length_and_the_marker() {
        let mut out = Vec::new();
        encode_ike(&[9; 28], &mut out).unwrap();
        assert_eq!(&out[..6], &[0, 34, 0, 0, 0, 0]);
        assert_eq!(out.len(), 34);
        let mut out = Vec::new();
        encode(&esp_body(8), &mut out).unwrap();
        assert_eq!(&out[..2], &[0, 10]);
        assert_eq!(
            encode(&vec![1; MAX_BODY + 1], &mut out),
            Err(TooLong(MAX_BODY + 1))
        );
        assert_eq!(
            encode_ike(&vec![1; MAX_BODY - 3], &mut Vec::new()),
            Err(TooLong(MAX_BODY + 1))
        );
        assert!(encode(&vec![1; MAX_BODY], &mut Vec::new()).is_ok());
    }
}
