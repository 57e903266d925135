//! The data plane's overhead over the bare AEAD, measured so that a noisy machine moves it
//! little: tunnel-mode encapsulate + decapsulate of a 1,400-byte inner packet and the crypto
//! crate's ESP seal + open of a packet of the same size, in alternating rounds of 2,000
//! packets each (about a millisecond), 300 pairs of rounds. Each pair's ratio compares the two
//! under the same conditions (a virtual machine's neighbours and clock change over seconds,
//! not within a pair); the median of the ratios is reported, with each side's fastest round.
//! Issue 16's target: at most 1.1× for the AEADs.
//!
//! Run: `cargo bench -p ferrosec-esp --bench overhead` (`OVERHEAD_ROUNDS` to change the 300).

mod common;

use std::hint::black_box;
use std::time::Instant;

use ferrosec_crypto::Secret;
use ferrosec_esp::{InboundSa, OutboundSa};

use common::{inner_packet, params, suites};

const SIZE: usize = 1400;
const PER_ROUND: u32 = 2000;

// A benchmark measures wall-clock time; the crate's code never reads the clock.
#[allow(clippy::disallowed_methods)]
fn main() {
    let rounds: u32 = std::env::var("OVERHEAD_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    println!(
        "{SIZE}-byte inner packets, {rounds} pairs of alternating rounds of {PER_ROUND}: \
         fastest round of each, median of the pairs' ratios"
    );
    println!("suite                 encap+decap   ESP seal+open   ratio (median)");
    for (name, suite, _) in suites() {
        let inner = inner_packet(SIZE);
        let mut out = OutboundSa::new(params(suite, [10, 0, 0, 0], [10, 1, 0, 0])).unwrap();
        let mut inb = InboundSa::new(params(suite, [10, 1, 0, 0], [10, 0, 0, 0]), 4096).unwrap();
        let mut buf = vec![0u8; out.packet_len(SIZE)];
        let sa = suite
            .key(
                &Secret::new(vec![7; suite.encr_keymat_len()]),
                &Secret::new(vec![9; suite.integ_key_len()]),
            )
            .unwrap();
        let body = (SIZE + 2).div_ceil(suite.pad_align()) * suite.pad_align();
        let mut pkt = vec![0u8; 8 + suite.iv_len() + body + suite.icv_len()];
        let mut seq = 0u64;
        let mut best = [f64::MAX; 2];
        let mut ratios = Vec::with_capacity(rounds as usize);
        for _ in 0..rounds {
            let t = Instant::now();
            for _ in 0..PER_ROUND {
                let n = out
                    .encapsulate(black_box(&inner), &mut buf)
                    .unwrap()
                    .packet
                    .len();
                black_box(inb.decapsulate_in_place(&mut buf[..n]).unwrap().inner.len());
            }
            let esp = t.elapsed().as_nanos() as f64 / f64::from(PER_ROUND);
            best[0] = best[0].min(esp);
            let t = Instant::now();
            for _ in 0..PER_ROUND {
                seq += 1;
                sa.seal(&mut pkt, seq, true).unwrap();
                black_box(sa.open(&mut pkt, seq, true).unwrap());
            }
            let bare = t.elapsed().as_nanos() as f64 / f64::from(PER_ROUND);
            best[1] = best[1].min(bare);
            ratios.push(esp / bare);
        }
        ratios.sort_by(f64::total_cmp);
        let median = ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN);
        println!(
            "{name:<20} {:>9.1} ns   {:>10.1} ns   {median:.3}",
            best[0], best[1]
        );
    }
}
