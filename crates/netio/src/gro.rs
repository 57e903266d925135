//! TCP segment coalescing for writes to a TUN device opened with `IFF_VNET_HDR` (what the
//! kernel's GRO does for a NIC).
//!
//! The receive workers write decrypted packets to the tunnel interface in batches. Consecutive
//! TCP segments of one connection in a batch are merged into one super-packet with a virtio
//! header that asks the kernel to treat it as a GSO packet (`VIRTIO_NET_HDR_GSO_TCPV4/6`,
//! checksum left to the kernel): the host's TCP stack then takes one packet of up to 64 KiB
//! instead of up to 44 of 1,448 bytes.
//!
//! It works in the batch's own buffers: a segment's payload is appended to the first segment of
//! its run, whose buffer keeps its capacity from one batch to the next, so once the buffers
//! have grown nothing is allocated per packet. (tun-rs's coalescing, used before, copied every
//! packet into a new vector first.)
//!
//! Segments merge when they continue one another exactly, as Linux's GRO requires (and no
//! more loosely): the same addresses, ports, acknowledgement number, flags word and window,
//! TCP options, TOS/TTL/DF (IPv4) or traffic class/flow label/hop limit (IPv6); the next
//! sequence number; a payload no longer than the first segment's (a shorter one ends the run);
//! only ACK, or ACK+PSH on the last segment. IPv4 with options, IPv6 with extension headers,
//! fragments, and anything not TCP go out as they came, in order: a segment that cannot join
//! its connection's run ends that run, so no connection's segments are ever reordered.

use ferrosec_wire::checksum::{checksum, fold, pseudo_header_sum};

/// Bytes of the virtio header in front of every packet written.
pub(crate) const VNET_HDR_LEN: usize = 10;
const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const PROTO_TCP: u8 = 6;
const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;
/// Most bytes of one super-packet (IP header included).
const MAX_SUPER: usize = 65535;

/// A connection's open run of merged segments.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// The buffer holding the run (its first segment's).
    buf: usize,
    /// The first segment (its header lengths, family and key).
    first: Segment,
    /// The sequence number the next segment must have.
    next_seq: u32,
    /// Bytes of the run so far, IP header included.
    len: usize,
    segments: u16,
    /// A shorter segment or PSH came: nothing more joins.
    closed: bool,
}

/// Reusable state for coalescing one batch after another.
#[derive(Debug, Default)]
pub(crate) struct Coalescer {
    /// Every run of the batch (closed ones too: they are finished at the end).
    runs: Vec<Run>,
    /// The buffers to write after [`Coalescer::coalesce`], in order.
    pub(crate) out: Vec<usize>,
}

/// What coalescing needs of one packet.
#[derive(Debug, Clone, Copy)]
struct Segment {
    v6: bool,
    ip_len: usize,
    tcp_len: usize,
    seq: u32,
    flags: u8,
    payload: usize,
    /// Addresses and ports: 2 × 16 + 4 bytes (IPv4 addresses in the first 8).
    key: [u8; 36],
}

/// The family and connection key (addresses and ports) of a TCP packet, with its IP header
/// length; `None` when it is not TCP or its ports cannot be read.
fn tcp_key(pkt: &[u8]) -> Option<(bool, usize, [u8; 36])> {
    let mut key = [0u8; 36];
    let (v6, ip_len) = match pkt.first()? >> 4 {
        6 if *pkt.get(6)? == PROTO_TCP => {
            key[..32].copy_from_slice(pkt.get(8..40)?);
            (true, 40)
        }
        4 if *pkt.get(9)? == PROTO_TCP => {
            key[..8].copy_from_slice(pkt.get(12..20)?);
            (false, usize::from(pkt[0] & 0x0f) * 4)
        }
        _ => return None,
    };
    key[32..36].copy_from_slice(pkt.get(ip_len..ip_len + 4)?);
    Some((v6, ip_len, key))
}

impl Segment {
    /// The packet as a TCP segment that may be merged, or `None`.
    fn parse(pkt: &[u8]) -> Option<Segment> {
        let (v6, ip_len, key) = tcp_key(pkt)?;
        if v6 {
            // No extension headers (checked by `tcp_key`); the payload length must match.
            let payload_len = usize::from(u16::from_be_bytes([pkt[4], pkt[5]]));
            if payload_len + 40 != pkt.len() {
                return None;
            }
        } else {
            // No options, not a fragment, the total length must match.
            let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
            let frag = u16::from_be_bytes([pkt[6], pkt[7]]);
            if ip_len != 20 || total != pkt.len() || frag & 0x3fff != 0 {
                return None;
            }
        }
        let tcp = pkt.get(ip_len..)?;
        let tcp_len = usize::from(*tcp.get(12)? >> 4) * 4;
        if !(20..=60).contains(&tcp_len) || tcp.len() < tcp_len {
            return None;
        }
        let flags = tcp[13];
        if flags != TCP_ACK && flags != TCP_ACK | TCP_PSH {
            return None;
        }
        let payload = tcp.len() - tcp_len;
        if payload == 0 {
            return None;
        }
        Some(Segment {
            v6,
            ip_len,
            tcp_len,
            seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
            flags,
            payload,
            key,
        })
    }
}

/// Whether segment `seg` (packet `pkt`) continues `run`, whose first packet is `first`.
fn continues(run: &Run, first: &[u8], pkt: &[u8], seg: &Segment) -> bool {
    let f = &run.first;
    if run.closed
        || seg.seq != run.next_seq
        || seg.payload > f.payload
        || f.ip_len != seg.ip_len
        || f.tcp_len != seg.tcp_len
        || run.len + seg.payload > MAX_SUPER
        || first.len() < f.ip_len + f.tcp_len
    {
        return false;
    }
    let ip_same = if seg.v6 {
        // Version, traffic class, flow label; hop limit.
        first[..4] == pkt[..4] && first[7] == pkt[7]
    } else {
        // TOS; the flags (DF); TTL.
        first[1] == pkt[1] && first[6] & 0xe0 == pkt[6] & 0xe0 && first[8] == pkt[8]
    };
    let (ip, hl) = (seg.ip_len, seg.tcp_len);
    let (a, b) = (&first[ip..ip + hl], &pkt[ip..ip + hl]);
    // Acknowledgement number; data offset, flags (but PSH) and window; the options.
    ip_same
        && a[8..12] == b[8..12]
        && a[12] == b[12]
        && a[13] & !TCP_PSH == b[13] & !TCP_PSH
        && a[14..16] == b[14..16]
        && a[20..] == b[20..]
}

/// Writes the virtio header into `hdr` (10 bytes, native byte order as the TUN driver reads it
/// without TUNSETVNETLE).
fn vnet_header(hdr: &mut [u8], flags: u8, gso_type: u8, fields: [u16; 4]) {
    hdr[0] = flags;
    hdr[1] = gso_type;
    for (i, v) in fields.into_iter().enumerate() {
        hdr[2 + 2 * i..4 + 2 * i].copy_from_slice(&v.to_ne_bytes());
    }
}

impl Coalescer {
    /// Coalesces the packets of `bufs` (each `offset` bytes into its buffer, with at least
    /// [`VNET_HDR_LEN`] bytes of room in front) and fills in every virtio header. Afterwards
    /// `self.out` lists the buffers to write, each from `offset - VNET_HDR_LEN` on, in order.
    pub(crate) fn coalesce(&mut self, bufs: &mut [Vec<u8>], offset: usize) {
        self.runs.clear();
        self.out.clear();
        for i in 0..bufs.len() {
            let pkt = bufs[i].get(offset..).unwrap_or_default();
            let Some(seg) = Segment::parse(pkt) else {
                // Not mergeable: it goes out alone, after what came before it, and ends its
                // connection's run so that no later segment is put in front of it.
                if let Some((v6, _, key)) = tcp_key(pkt) {
                    for r in &mut self.runs {
                        if r.first.key == key && r.first.v6 == v6 {
                            r.closed = true;
                        }
                    }
                }
                self.out.push(i);
                continue;
            };
            let open = self
                .runs
                .iter()
                .position(|r| !r.closed && r.first.key == seg.key && r.first.v6 == seg.v6);
            if let Some(r) = open {
                let run = self.runs[r];
                let (before, rest) = bufs.split_at_mut(i);
                let (first, pkt) = (&mut before[run.buf], &rest[0]);
                if continues(&run, &first[offset..], &pkt[offset..], &seg) {
                    let start = offset + seg.ip_len + seg.tcp_len;
                    first.extend_from_slice(&pkt[start..]);
                    let run = &mut self.runs[r];
                    run.next_seq = seg.seq.wrapping_add(seg.payload as u32);
                    run.len += seg.payload;
                    run.segments += 1;
                    if seg.flags & TCP_PSH != 0 {
                        // The run ends here, with PSH on the super-packet.
                        first[offset + seg.ip_len + 13] |= TCP_PSH;
                        run.closed = true;
                    }
                    if seg.payload < run.first.payload {
                        run.closed = true;
                    }
                    continue;
                }
                // This segment starts a new run for the connection.
                self.runs[r].closed = true;
            }
            self.out.push(i);
            self.runs.push(Run {
                buf: i,
                first: seg,
                next_seq: seg.seq.wrapping_add(seg.payload as u32),
                len: seg.ip_len + seg.tcp_len + seg.payload,
                segments: 1,
                closed: seg.flags & TCP_PSH != 0,
            });
        }
        // Headers: a plain one for single packets, a GSO one for every run of two or more.
        for &i in &self.out {
            vnet_header(
                &mut bufs[i][offset - VNET_HDR_LEN..offset],
                0,
                GSO_NONE,
                [0; 4],
            );
        }
        for run in &self.runs {
            if run.segments > 1 {
                finish(&mut bufs[run.buf], offset, run);
            }
        }
    }
}

/// Turns a run's buffer into a GSO super-packet: IP lengths (and IPv4 checksum), the TCP
/// checksum field set to the pseudo-header sum for the kernel to complete, the virtio header.
fn finish(buf: &mut [u8], offset: usize, run: &Run) {
    let f = &run.first;
    let pkt = &mut buf[offset..];
    let tcp_total = pkt.len() - f.ip_len;
    let pseudo = if f.v6 {
        pkt[4..6].copy_from_slice(&(tcp_total as u16).to_be_bytes());
        pseudo_header_sum(&pkt[8..40], PROTO_TCP, tcp_total as u32)
    } else {
        let total = pkt.len() as u16;
        pkt[2..4].copy_from_slice(&total.to_be_bytes());
        pkt[10..12].fill(0);
        let c = checksum(&pkt[..20]);
        pkt[10..12].copy_from_slice(&c.to_be_bytes());
        pseudo_header_sum(&pkt[12..20], PROTO_TCP, tcp_total as u32)
    };
    let csum_at = f.ip_len + 16;
    pkt[csum_at..csum_at + 2].copy_from_slice(&fold(pseudo).to_be_bytes());
    let hdr_len = (f.ip_len + f.tcp_len) as u16;
    vnet_header(
        &mut buf[offset - VNET_HDR_LEN..offset],
        F_NEEDS_CSUM,
        if f.v6 { GSO_TCPV6 } else { GSO_TCPV4 },
        [hdr_len, f.payload as u16, f.ip_len as u16, 16],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    // The tests add up their pseudo-headers word by word, apart from the code under test.
    use ferrosec_wire::checksum::sum16;

    const OFF: usize = VNET_HDR_LEN;

    /// A TCP segment over IPv4 (valid checksums) in a buffer with room for the virtio header.
    fn v4(sport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        v4_with(sport, seq, flags, payload, |_| {})
    }

    fn v4_with(
        sport: u16,
        seq: u32,
        flags: u8,
        payload: &[u8],
        edit: impl Fn(&mut [u8]),
    ) -> Vec<u8> {
        let total = 40 + payload.len();
        let mut p = vec![0u8; OFF];
        p.extend_from_slice(&[0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, PROTO_TCP, 0, 0]);
        p[OFF + 2..OFF + 4].copy_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&[10, 2, 0, 10, 10, 1, 0, 10]);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&5201u16.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&77u32.to_be_bytes()); // ack
        p.extend_from_slice(&[0x50, flags, 0x01, 0xf5, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        edit(&mut p[OFF..]);
        let c = !fold(sum16(&p[OFF..OFF + 20]));
        p[OFF + 10..OFF + 12].copy_from_slice(&c.to_be_bytes());
        let tcp_len = (total - 20) as u32;
        let c = !fold(sum16(&p[OFF + 12..OFF + 20]) + 6 + tcp_len + sum16(&p[OFF + 20..]));
        p[OFF + 36..OFF + 38].copy_from_slice(&c.to_be_bytes());
        p
    }

    /// The same over IPv6.
    fn v6(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; OFF];
        p.extend_from_slice(&[0x60, 0, 0, 0]);
        p.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[PROTO_TCP, 64]);
        p.extend_from_slice(&[0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]);
        p.extend_from_slice(&[0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]);
        p.extend_from_slice(&40000u16.to_be_bytes());
        p.extend_from_slice(&5201u16.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&77u32.to_be_bytes());
        p.extend_from_slice(&[0x50, flags, 0x01, 0xf5, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    fn hdr(buf: &[u8]) -> (u8, u8, [u16; 4]) {
        let f = |i: usize| u16::from_ne_bytes([buf[i], buf[i + 1]]);
        (buf[0], buf[1], [f(2), f(4), f(6), f(8)])
    }

    fn run(bufs: &mut [Vec<u8>]) -> Vec<usize> {
        let mut c = Coalescer::default();
        c.coalesce(bufs, OFF);
        c.out.clone()
    }

    /// What the kernel will do with a NEEDS_CSUM packet: sum from csum_start on (the field
    /// holding the pseudo-header sum) and store the complement; the result must be the
    /// checksum a segment of that content would have.
    fn completed_checksum_is_right(pkt: &[u8], ip_len: usize, v6: bool) {
        let tcp = &pkt[ip_len..];
        let mut zeroed = tcp.to_vec();
        zeroed[16..18].fill(0);
        let pseudo = if v6 {
            sum16(&pkt[8..40]) + 6 + tcp.len() as u32
        } else {
            sum16(&pkt[12..20]) + 6 + tcp.len() as u32
        };
        assert_eq!(
            u16::from_be_bytes([tcp[16], tcp[17]]),
            fold(pseudo),
            "the field holds the pseudo-header sum"
        );
        let kernel = !fold(sum16(tcp));
        let want = !fold(pseudo + sum16(&zeroed));
        assert_eq!(kernel, want);
    }

    #[test]
    fn consecutive_segments_become_one_gso_packet() {
        let (a, b, c) = ([1u8; 1000], [2u8; 1000], [3u8; 400]);
        let mut bufs = vec![
            v4(40000, 100, TCP_ACK, &a),
            v4(40000, 1100, TCP_ACK, &b),
            v4(40000, 2100, TCP_ACK | TCP_PSH, &c),
        ];
        bufs[0].reserve(4096); // as a TunWriteBatch buffer has room
        let cap = (bufs[0].as_ptr(), bufs[0].capacity());
        assert_eq!(run(&mut bufs), vec![0]);
        assert_eq!(
            (bufs[0].as_ptr(), bufs[0].capacity()),
            cap,
            "appended in place"
        );
        let pkt = &bufs[0][OFF..];
        assert_eq!(pkt.len(), 40 + 2400);
        assert_eq!(u16::from_be_bytes([pkt[2], pkt[3]]) as usize, pkt.len());
        assert_eq!(
            fold(sum16(&pkt[..20])),
            0xffff,
            "IPv4 header checksum right"
        );
        assert_eq!(pkt[33] & TCP_PSH, TCP_PSH, "the last segment's PSH is kept");
        assert_eq!(&pkt[40..1040], &a[..]);
        assert_eq!(&pkt[1040..2040], &b[..]);
        assert_eq!(&pkt[2040..], &c[..]);
        assert_eq!(hdr(&bufs[0]), (F_NEEDS_CSUM, GSO_TCPV4, [40, 1000, 20, 16]));
        completed_checksum_is_right(&bufs[0][OFF..], 20, false);
    }

    #[test]
    fn ipv6_segments_merge_too() {
        let mut bufs = vec![v6(1, TCP_ACK, &[5; 1200]), v6(1201, TCP_ACK, &[6; 1200])];
        assert_eq!(run(&mut bufs), vec![0]);
        let pkt = &bufs[0][OFF..];
        assert_eq!(usize::from(u16::from_be_bytes([pkt[4], pkt[5]])), 20 + 2400);
        assert_eq!(hdr(&bufs[0]), (F_NEEDS_CSUM, GSO_TCPV6, [60, 1200, 40, 16]));
        completed_checksum_is_right(pkt, 40, true);
    }

    #[test]
    fn a_single_packet_goes_out_unchanged_with_a_plain_header() {
        let orig = v4(40000, 100, TCP_ACK, &[1; 100]);
        let mut bufs = vec![
            orig.clone(),
            vec![0u8; OFF]
                .into_iter()
                .chain([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17])
                .chain([0; 18])
                .collect(),
        ];
        bufs[0][..OFF].fill(0xee);
        assert_eq!(run(&mut bufs), vec![0, 1]);
        assert_eq!(hdr(&bufs[0]), (0, GSO_NONE, [0; 4]));
        assert_eq!(hdr(&bufs[1]), (0, GSO_NONE, [0; 4]));
        assert_eq!(&bufs[0][OFF..], &orig[OFF..]);
    }

    #[test]
    fn only_exact_continuations_merge() {
        let p = [7u8; 500];
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("a gap in the sequence", v4(40000, 700, TCP_ACK, &p)),
            ("another port", v4(40001, 600, TCP_ACK, &p)),
            ("a longer segment", v4(40000, 600, TCP_ACK, &[7; 501])),
            (
                "another ACK number",
                v4_with(40000, 600, TCP_ACK, &p, |b| b[31] = 78),
            ),
            (
                "another window",
                v4_with(40000, 600, TCP_ACK, &p, |b| b[35] = 0),
            ),
            (
                "another TTL",
                v4_with(40000, 600, TCP_ACK, &p, |b| b[8] = 63),
            ),
            (
                "another TOS",
                v4_with(40000, 600, TCP_ACK, &p, |b| b[1] = 4),
            ),
            ("FIN", v4(40000, 600, TCP_ACK | 0x01, &p)),
            ("no payload", v4(40000, 600, TCP_ACK, &[])),
        ];
        for (what, second) in cases {
            let mut bufs = vec![v4(40000, 100, TCP_ACK, &p), second];
            assert_eq!(run(&mut bufs), vec![0, 1], "{what}");
            assert_eq!(hdr(&bufs[0]).1, GSO_NONE, "{what}");
            assert_eq!(bufs[0].len(), OFF + 540, "{what}: nothing appended");
        }
    }

    #[test]
    fn runs_end_at_psh_at_a_short_segment_and_at_the_size_limit() {
        let p = [1u8; 1000];
        // PSH ends the run; the next segment starts another.
        let mut bufs = vec![
            v4(40000, 0, TCP_ACK, &p),
            v4(40000, 1000, TCP_ACK | TCP_PSH, &p),
            v4(40000, 2000, TCP_ACK, &p),
            v4(40000, 3000, TCP_ACK, &p),
        ];
        assert_eq!(run(&mut bufs), vec![0, 2]);
        assert_eq!(bufs[0].len() - OFF, 40 + 2000);
        assert_eq!(bufs[2].len() - OFF, 40 + 2000);
        // A short segment is the last of its run.
        let mut bufs = vec![
            v4(40000, 0, TCP_ACK, &p),
            v4(40000, 1000, TCP_ACK, &p[..300]),
            v4(40000, 1300, TCP_ACK, &p),
        ];
        assert_eq!(run(&mut bufs), vec![0, 2]);
        // No super-packet over 65,535 bytes: 50 segments of 1,400 make two.
        let big = [9u8; 1400];
        let mut bufs: Vec<_> = (0..50u32)
            .map(|i| v4(40000, i * 1400, TCP_ACK, &big))
            .collect();
        let out = run(&mut bufs);
        assert_eq!(out.len(), 2);
        let sizes: Vec<usize> = out.iter().map(|&i| bufs[i].len() - OFF).collect();
        assert!(sizes.iter().all(|&s| s <= MAX_SUPER), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 40 * 2 + 50 * 1400);
        for &i in &out {
            completed_checksum_is_right(&bufs[i][OFF..], 20, false);
        }
    }

    #[test]
    fn connections_interleaved_each_merge_and_no_segment_passes_another_of_its_own() {
        let p = [3u8; 800];
        let mut bufs = vec![
            v4(1, 0, TCP_ACK, &p),
            v4(2, 0, TCP_ACK, &p),
            v4(1, 800, TCP_ACK, &p),
            v4(2, 800, TCP_ACK, &p),
        ];
        assert_eq!(run(&mut bufs), vec![0, 1]);
        assert_eq!(bufs[0].len() - OFF, 40 + 1600);
        assert_eq!(bufs[1].len() - OFF, 40 + 1600);
        // A segment of connection 1 that cannot merge (FIN) comes between: what follows it
        // may not be put in front of it.
        let mut bufs = vec![
            v4(1, 0, TCP_ACK, &p),
            v4(1, 800, TCP_ACK | 0x01, &p),
            v4(1, 1600, TCP_ACK, &p),
            v4(1, 2400, TCP_ACK, &p),
        ];
        assert_eq!(run(&mut bufs), vec![0, 1, 2]);
        assert_eq!(bufs[0].len() - OFF, 40 + 800);
        assert_eq!(bufs[2].len() - OFF, 40 + 1600);
    }

    #[test]
    fn garbage_never_panics() {
        let mut c = Coalescer::default();
        let mut x: u32 = 0x1234_5678;
        for n in 0..2000usize {
            let mut bufs: Vec<Vec<u8>> = (0..8)
                .map(|k| {
                    let len = OFF + (n * 7 + k * 13) % 90;
                    let mut b = v4(40000, (k as u32) * 10, TCP_ACK, &[0; 10]);
                    b.resize(len.max(OFF), 0);
                    for byte in b.iter_mut().skip(OFF) {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        if x.is_multiple_of(7) {
                            *byte = x as u8;
                        }
                    }
                    b
                })
                .collect();
            c.coalesce(&mut bufs, OFF);
            assert!(c.out.len() <= 8);
        }
    }

    /// The kernel takes the super-packet: written to a TUN device in a fresh network namespace,
    /// three segments arrive as TCP for the device's address with all their bytes in order
    /// (seen by a raw TCP socket, which gets each TCP packet delivered there).
    #[test]
    fn the_kernel_takes_the_super_packet_as_root() {
        if !crate::testutil::is_root() {
            eprintln!("network namespaces and TUN devices need root; skipped");
            return;
        }
        crate::testutil::in_fresh_netns(|| {
            let local: std::net::IpAddr = "10.1.0.10".parse().unwrap();
            let tun = crate::Tun::create("fsgro0", 1500, &[(local, 24)]).expect("a TUN device");
            let raw = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::RAW,
                Some(socket2::Protocol::TCP),
            )
            .unwrap();
            raw.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            let payload: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
            let mut batch = crate::TunWriteBatch::new();
            for (k, chunk) in payload.chunks(1000).enumerate() {
                let seg = v4(40000, 100 + 1000 * k as u32, TCP_ACK, chunk);
                assert!(batch.push(&seg[OFF..]));
            }
            tun.send_batch(&mut batch)
                .expect("the kernel accepts the virtio header");
            let mut got = Vec::new();
            let mut buf = vec![0u8; 70000];
            while got.len() < payload.len() {
                let n = std::io::Read::read(&mut &raw, &mut buf)
                    .expect("TCP from the device within 2 s");
                let pkt = &buf[..n];
                let ihl = usize::from(pkt[0] & 0x0f) * 4;
                let thl = usize::from(pkt[ihl + 12] >> 4) * 4;
                if pkt[ihl..ihl + 2] == 40000u16.to_be_bytes() {
                    got.extend_from_slice(&pkt[ihl + thl..]);
                }
            }
            assert_eq!(got, payload);
        });
    }
}
