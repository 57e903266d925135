//! Anti-replay window (RFC 4303 §3.4.3) with extended sequence number inference (RFC 4303
//! Appendix A.2), kept as an RFC 6479 style bitmap of 64-bit blocks.
//!
//! The bitmap holds one block more than the window needs (RFC 6479 §2), so that sliding the
//! window forward only ever clears whole blocks: no bit shifting, and the cost of an advance
//! is bounded by the number of blocks, not by the size of the jump. The blocks form a ring;
//! the index of the block holding the highest sequence number is kept, so a position is found
//! by subtraction, without dividing by the (not power-of-two) number of blocks. The default
//! window of 1,024 packets takes 17 blocks (136 bytes per SA; rounded up to a power of two it
//! took 256).
//!
//! The caller runs [`ReplayWindow::check`] *before* the integrity check and
//! [`ReplayWindow::update`] only *after* it succeeded, so forged packets cannot move the window
//! (RFC 4303 §3.4.3).

use crate::stats::DropReason;

/// The largest configurable window (packets). Far above what any peer uses; keeps the bitmap
/// at about 8 KiB and the ESN inference window well below 2^31.
pub const MAX_WINDOW: u32 = 1 << 16;

/// The window used to infer the high ESN bits when anti-replay is switched off.
const INFER_WINDOW_WHEN_OFF: u64 = 1 << 30;

/// A sliding anti-replay window over 64-bit sequence numbers.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// Window size in packets; 0 means anti-replay is off.
    size: u32,
    /// Index in `bitmap` of the block holding `top`: `(top / 64) % blocks`.
    top_block: u32,
    /// Highest authenticated sequence number so far (0: none yet).
    top: u64,
    /// Bitmap of received sequence numbers: the ring of `size / 64 + 1` (rounded up) blocks
    /// ending at `top`'s block.
    bitmap: Box<[u64]>,
}

impl ReplayWindow {
    /// A window of `size` packets (0 switches anti-replay off). Sizes above [`MAX_WINDOW`] are
    /// clamped to it. The bitmap is allocated here, once per SA.
    pub fn new(size: u32) -> Self {
        let size = size.min(MAX_WINDOW);
        let blocks = if size == 0 {
            0
        } else {
            // One spare block so an advance clears whole blocks (RFC 6479 §2).
            size.div_ceil(64) as usize + 1
        };
        Self {
            size,
            top_block: 0,
            top: 0,
            bitmap: vec![0u64; blocks].into_boxed_slice(),
        }
    }

    /// The configured window size (0: off).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Whether anti-replay checking is on.
    pub fn enabled(&self) -> bool {
        self.size != 0
    }

    /// The highest sequence number accepted so far (0 before the first packet).
    pub fn highest(&self) -> u64 {
        self.top
    }

    /// The full 64-bit sequence number for the low 32 bits seen on the wire.
    ///
    /// Without ESN this is just `seq_lo`. With ESN the high half is guessed from the window
    /// position as in RFC 4303 Appendix A.2.2; a wrong guess fails the ICV check.
    pub fn infer(&self, seq_lo: u32, esn: bool) -> u64 {
        if !esn {
            return u64::from(seq_lo);
        }
        let w = if self.size == 0 {
            INFER_WINDOW_WHEN_OFF
        } else {
            u64::from(self.size)
        };
        let tl = self.top & 0xffff_ffff;
        let th = self.top >> 32;
        let seq = u64::from(seq_lo);
        let hi = if tl >= w - 1 {
            // Case A: the window lies within one 2^32 subspace.
            if seq >= tl + 1 - w {
                th
            } else {
                th.wrapping_add(1)
            }
        } else {
            // Case B: the window spans two subspaces.
            let bottom = (tl + (1 << 32) + 1 - w) & 0xffff_ffff;
            if seq >= bottom {
                th.saturating_sub(1)
            } else {
                th
            }
        };
        (hi << 32) | seq
    }

    /// Checks a (full) sequence number before the integrity check: zero, too old or already
    /// seen is a drop. With the window off only zero is refused.
    pub fn check(&self, seq: u64) -> Result<(), DropReason> {
        // The first packet of an SA carries 1 (RFC 4303 §2.2); 0 never appears.
        if seq == 0 {
            return Err(DropReason::TooOld);
        }
        if self.size == 0 || seq > self.top {
            return Ok(());
        }
        if self.top - seq >= u64::from(self.size) {
            return Err(DropReason::TooOld);
        }
        let (block, bit) = self.position(seq);
        if self.bitmap[block] & (1 << bit) != 0 {
            return Err(DropReason::Replayed);
        }
        Ok(())
    }

    /// Records an authenticated sequence number, sliding the window forward if it is new. A
    /// number left of the window (which [`Self::check`] refuses) is not recorded.
    pub fn update(&mut self, seq: u64) {
        if self.size == 0 {
            self.top = self.top.max(seq);
            return;
        }
        if seq > self.top {
            let blocks = self.bitmap.len() as u64;
            let diff = (seq >> 6) - (self.top >> 6);
            if diff >= blocks {
                self.bitmap.fill(0);
                // A jump past the whole bitmap: rare, so a division is fine here.
                self.top_block = ((seq >> 6) % blocks) as u32;
            } else {
                for _ in 0..diff {
                    self.top_block += 1;
                    if self.top_block as usize == self.bitmap.len() {
                        self.top_block = 0;
                    }
                    self.bitmap[self.top_block as usize] = 0;
                }
            }
            self.top = seq;
        } else if self.top - seq >= u64::from(self.size) {
            return;
        }
        let (block, bit) = self.position(seq);
        self.bitmap[block] |= 1 << bit;
    }

    /// Block and bit of `seq`, which must lie in the window (`top - size < seq <= top`): its
    /// block is at most `blocks - 1` behind `top`'s, so one subtraction (and one addition on
    /// wrapping) finds it in the ring.
    fn position(&self, seq: u64) -> (usize, u32) {
        let back = ((self.top >> 6) - (seq >> 6)) as usize;
        let top = self.top_block as usize;
        let block = if back <= top {
            top - back
        } else {
            top + self.bitmap.len() - back
        };
        (block, (seq & 63) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(w: &mut ReplayWindow, seq: u64) -> Result<(), DropReason> {
        w.check(seq)?;
        w.update(seq);
        Ok(())
    }

    #[test]
    fn in_order_and_duplicates() {
        let mut w = ReplayWindow::new(64);
        for s in 1..=200 {
            assert_eq!(accept(&mut w, s), Ok(()));
            assert_eq!(w.check(s), Err(DropReason::Replayed));
        }
        assert_eq!(w.highest(), 200);
        assert_eq!(w.check(0), Err(DropReason::TooOld));
    }

    #[test]
    fn reordered_within_window_accepted_once() {
        let mut w = ReplayWindow::new(64);
        accept(&mut w, 100).unwrap();
        // 37..=100 is the window for top 100, size 64.
        for s in (37..100).rev() {
            assert_eq!(accept(&mut w, s), Ok(()), "seq {s}");
        }
        assert_eq!(w.check(36), Err(DropReason::TooOld));
        for s in 37..=100 {
            assert_eq!(w.check(s), Err(DropReason::Replayed));
        }
    }

    #[test]
    fn window_4096_wide_reordering() {
        let mut w = ReplayWindow::new(4096);
        accept(&mut w, 10_000).unwrap();
        assert_eq!(accept(&mut w, 10_000 - 4095), Ok(()));
        assert_eq!(w.check(10_000 - 4095), Err(DropReason::Replayed));
        assert_eq!(w.check(10_000 - 4096), Err(DropReason::TooOld));
        assert_eq!(accept(&mut w, 7_000), Ok(()));
        // A jump further than the whole bitmap must clear stale bits.
        accept(&mut w, 10_000 + 5_000).unwrap();
        assert_eq!(w.check(10_000), Err(DropReason::TooOld));
        assert_eq!(accept(&mut w, 10_000 + 4_000), Ok(()));
        // The lower edge of the new window: accepted once, then replayed.
        assert_eq!(accept(&mut w, 15_000 - 4095), Ok(()));
        assert_eq!(w.check(15_000 - 4095), Err(DropReason::Replayed));
    }

    #[test]
    fn small_advances_clear_reused_blocks() {
        let mut w = ReplayWindow::new(128);
        let bits = w.bitmap.len() as u64 * 64;
        // Fill every position, then walk forward one bitmap length: each new seq reuses a
        // position set earlier and must still be accepted.
        for s in 1..=bits {
            accept(&mut w, s).unwrap();
        }
        for s in bits + 1..=2 * bits {
            assert_eq!(accept(&mut w, s), Ok(()), "seq {s}");
        }
    }

    #[test]
    fn window_off_accepts_everything_but_zero() {
        let mut w = ReplayWindow::new(0);
        assert!(!w.enabled());
        for s in [5, 5, 1, 1000, 3, 3] {
            assert_eq!(accept(&mut w, s), Ok(()));
        }
        assert_eq!(w.highest(), 1000);
        assert_eq!(w.check(0), Err(DropReason::TooOld));
    }

    #[test]
    fn esn_inference_follows_rfc4303_appendix_a() {
        let mut w = ReplayWindow::new(64);
        // Fresh window: small numbers are in subspace 0.
        assert_eq!(w.infer(5, true), 5);
        assert_eq!(w.infer(5, false), 5);
        // Case A: top well inside a subspace.
        w.update(0x3_0000_1000);
        assert_eq!(w.infer(0x1000 - 10, true), 0x3_0000_1000 - 10);
        assert_eq!(w.infer(0x2000, true), 0x3_0000_2000);
        // Below the window: taken as the next subspace (the sender wrapped).
        assert_eq!(w.infer(0x10, true), 0x4_0000_0010);
        // Case B: top just after a wrap; late packets from before the wrap belong to Th-1.
        let mut w = ReplayWindow::new(64);
        w.update(0x4_0000_0005);
        assert_eq!(w.infer(0xffff_fff0, true), 0x3_ffff_fff0);
        assert_eq!(w.infer(0x6, true), 0x4_0000_0006);
        // Just before a wrap (case A near the top), the next packets wrap into Th+1.
        let mut w = ReplayWindow::new(64);
        w.update(0x0_ffff_fffe);
        assert_eq!(w.infer(0xffff_ffff, true), 0x0_ffff_ffff);
        assert_eq!(w.infer(0x1, true), 0x1_0000_0001);
    }

    #[test]
    fn sizes_are_clamped_and_the_bitmap_is_one_block_more_than_the_window() {
        assert_eq!(ReplayWindow::new(u32::MAX).size(), MAX_WINDOW);
        assert_eq!(ReplayWindow::new(MAX_WINDOW).bitmap.len(), 1025);
        assert_eq!(ReplayWindow::new(4096).bitmap.len(), 65);
        assert_eq!(ReplayWindow::new(1024).bitmap.len(), 17);
        assert_eq!(ReplayWindow::new(100).bitmap.len(), 3);
        assert_eq!(ReplayWindow::new(64).bitmap.len(), 2);
        assert_eq!(ReplayWindow::new(1).bitmap.len(), 2);
        assert_eq!(ReplayWindow::new(0).bitmap.len(), 0);
    }

    /// The window against a plain model (every accepted number kept in a set) on long runs
    /// of in-order, reordered, duplicated, old and far-ahead numbers, for window sizes that
    /// are and are not multiples of 64, across many wraps of the ring.
    #[test]
    fn matches_a_model_on_random_traffic() {
        use std::collections::HashSet;
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            // xorshift64*: a fixed, seeded sequence.
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        for size in [1u32, 32, 64, 65, 100, 128, 1000, 1024, 4096] {
            let mut w = ReplayWindow::new(size);
            let mut seen = HashSet::new();
            let mut top = 0u64;
            let span = u64::from(size) * 2 + 130;
            for _ in 0..20_000 {
                let r = next();
                let seq = match r % 16 {
                    // Mostly the next few numbers, as a sender's stream arrives.
                    0..=7 => top + 1 + (r >> 8) % 3,
                    // Late ones: inside the window, at its edge, just outside it.
                    8..=10 => top.saturating_sub((r >> 8) % span),
                    11 => top.saturating_sub(u64::from(size) - 1),
                    12 => top.saturating_sub(u64::from(size)),
                    // Repeats of the newest.
                    13 => top,
                    // Jumps ahead: within the ring, and past all of it.
                    14 => top + (r >> 8) % span,
                    _ => top + (r >> 8) % (span * 40),
                };
                let want = if seq == 0 {
                    Err(DropReason::TooOld)
                } else if seq > top {
                    Ok(())
                } else if top - seq >= u64::from(size) {
                    Err(DropReason::TooOld)
                } else if seen.contains(&seq) {
                    Err(DropReason::Replayed)
                } else {
                    Ok(())
                };
                assert_eq!(w.check(seq), want, "size {size} top {top} seq {seq}");
                if want.is_ok() {
                    w.update(seq);
                    seen.insert(seq);
                    top = top.max(seq);
                    assert_eq!(w.highest(), top);
                }
            }
        }
    }

    /// `update` of a number left of the window (never checked) changes nothing.
    #[test]
    fn update_ignores_numbers_left_of_the_window() {
        let mut w = ReplayWindow::new(64);
        accept(&mut w, 1000).unwrap();
        let before = w.bitmap.clone();
        w.update(1000 - 64);
        w.update(1);
        assert_eq!(w.bitmap, before);
        assert_eq!(w.check(1000 - 63), Ok(()));
    }
}
