//! The RFC 9329 stream deframer: any bytes, in any split, with or without the "IKETCP"
//! prefix. No panic; the frames handed out, framed again, give back exactly the bytes
//! consumed; the buffer never grows; after an error nothing more comes out.
#![no_main]

use ferrosec_wire::tcpencap::{Deframer, Frame, STREAM_PREFIX, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Byte 0: prefix expected (bit 0), piece size (bits 1-7, 1..=128); byte 1: the maximum
    // frame (0 = 65535, else 2 + n * 16).
    let (Some(&mode), Some(&max)) = (data.first(), data.get(1)) else {
        return;
    };
    let bytes = &data[2..];
    let prefix = mode & 1 == 1;
    let step = usize::from(mode >> 1) + 1;
    let max_frame = if max == 0 {
        65535
    } else {
        2 + usize::from(max) * 16
    };
    let mut d = Deframer::with_max_frame(prefix, max_frame);
    let limit = d.max_frame();
    let mut again = Vec::new();
    let mut at = 0;
    let mut failed = false;
    'outer: while at < bytes.len() {
        let end = (at + step).min(bytes.len());
        let took = d.feed(&bytes[at..end]);
        at += took;
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    let body = match f {
                        Frame::Ike(b) => {
                            assert_eq!(&b[..4], [0, 0, 0, 0]);
                            b
                        }
                        Frame::Esp(b) => {
                            assert!(b.len() >= 8 && b[..4] != [0, 0, 0, 0]);
                            b
                        }
                        Frame::Keepalive => &[0xff][..],
                        Frame::Invalid(b) => b,
                    };
                    assert!(body.len() + 2 <= limit);
                    encode(body, &mut again).expect("a frame read fits a frame");
                }
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    assert_eq!(d.room(), 0);
                    assert!(d.next_frame().is_err());
                    break 'outer;
                }
            }
        }
        if took == 0 {
            // No room: a whole frame must have been waiting, and it was just taken.
            assert!(d.room() > 0, "no progress");
        }
    }
    if !failed {
        let skip = if prefix {
            STREAM_PREFIX.len().min(bytes.len())
        } else {
            0
        };
        if prefix && bytes.len() >= skip {
            assert!(d.prefix_seen() || bytes.len() < STREAM_PREFIX.len());
        }
        let consumed = bytes.len() - d.pending() - skip;
        if d.prefix_seen() {
            assert_eq!(again, bytes[skip..skip + consumed]);
        }
    }
});
