//! Two SAs over a simulated lossy channel: seeded reordering, duplication and loss. Every
//! packet that arrives within the window is delivered exactly once; every duplicate is
//! counted as a replay.

mod common;

use std::collections::HashSet;

use common::*;
use ferrosec_esp::DropReason;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn reordering_duplication_and_loss_within_the_window() {
    for (seed, esn, window) in [(1u64, false, 128u32), (7, true, 1024), (42, true, 4096)] {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let (mut out, mut inb) = pair(gcm256(), esn, window);
        if esn {
            // Start just below a 2^32 boundary so the run crosses it.
            out.danger_set_sequence(0xffff_ff00);
        }
        let n = 3000usize;
        let mut wire: Vec<(usize, Vec<u8>)> = Vec::new();
        for i in 0..n {
            let mut inner = outbound_packet(16);
            inner[28..36].copy_from_slice(&(i as u64).to_be_bytes());
            let mut buf = vec![0u8; out.packet_len(inner.len())];
            out.encapsulate(&inner, &mut buf).unwrap();
            match rng.below(20) {
                0 => {}                                         // lost
                1 => wire.extend([(i, buf.clone()), (i, buf)]), // duplicated
                _ => wire.push((i, buf)),
            }
        }
        // Reorder: each copy is delayed by up to a quarter of the window (sort by index plus a
        // random delay), so no packet is overtaken by more than that.
        let max_shift = u64::from(window / 4);
        let mut keyed: Vec<(u64, (usize, Vec<u8>))> = wire
            .into_iter()
            .map(|w| (w.0 as u64 + rng.below(max_shift + 1), w))
            .collect();
        keyed.sort_by_key(|k| k.0);
        let wire: Vec<(usize, Vec<u8>)> = keyed.into_iter().map(|k| k.1).collect();
        let inversions = wire.windows(2).filter(|w| w[0].0 > w[1].0).count();
        assert!(inversions > n / 10, "the channel reorders");
        let mut delivered = HashSet::new();
        let mut replays = 0u64;
        for (i, mut pkt) in wire.iter().cloned() {
            match inb.decapsulate_in_place(&mut pkt) {
                Ok(d) => {
                    let id = u64::from_be_bytes(pkt[d.inner][28..36].try_into().unwrap());
                    assert_eq!(id, i as u64);
                    assert!(delivered.insert(i), "packet {i} delivered twice");
                }
                Err(DropReason::Replayed) => {
                    assert!(delivered.contains(&i));
                    replays += 1;
                }
                Err(e) => panic!("seed {seed}: packet {i} dropped: {e}"),
            }
        }
        let sent: HashSet<usize> = wire.iter().map(|(i, _)| *i).collect();
        assert_eq!(delivered, sent);
        assert!(
            replays > 0 && sent.len() < n,
            "the channel duplicates and loses"
        );
        assert_eq!(replays as usize, wire.len() - sent.len());
        assert_eq!(inb.stats().packets as usize, sent.len());
    }
}
