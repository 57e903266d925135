//! ESP packets that arrived for an SPI the receive worker does not know yet, held for a
//! moment in case the SA is about to be installed.
//!
//! When ferrosec starts a Child SA rekey, its new inbound SA can only be installed once the
//! CREATE_CHILD_SA response (or the last quick-mode message) has been processed by the IKE
//! task. A peer that switches its outbound SA as soon as it has sent that response (strongSwan
//! 5.9 does) can have an ESP packet on the new SPI reach the receive worker before the IKE task
//! has installed the SA: both arrive back to back, often on the same socket, and the worker is
//! faster than the IKE task. Dropping it loses a packet on every such rekey. Instead the worker
//! parks it here, replays it when an SA with its SPI is installed, and counts it as an unknown
//! SPI only when nothing claimed it within [`PARK_FOR`].
//!
//! Memory is bounded: [`SLOTS`] packets of at most [`SLOT`] bytes, in one buffer allocated on
//! first use; when all slots are taken the oldest packet is dropped (a flood of unknown SPIs
//! costs one copy per packet, nothing more).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrosec_wire::Spi;

/// How long a packet waits for its SA.
pub(crate) const PARK_FOR: Duration = Duration::from_millis(250);
/// Packets held at most.
pub(crate) const SLOTS: usize = 32;
/// Largest packet held (an ESP packet of a 1500-byte path, or of a jumbo frame up to 4 KiB).
pub(crate) const SLOT: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Held {
    spi: Spi,
    from: IpAddr,
    at: Instant,
    len: usize,
}

/// The parked packets of one receive worker.
#[derive(Debug, Default)]
pub(crate) struct Parked {
    /// `SLOTS × SLOT` bytes once the first packet is parked.
    data: Vec<u8>,
    slots: [Option<Held>; SLOTS],
}

/// A packet given up on: count it as an unknown SPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GivenUp {
    pub(crate) spi: Spi,
    pub(crate) from: IpAddr,
}

impl Parked {
    /// Holds `packet` (SPI first). Returns the packet given up to make room: `packet` itself
    /// when it is larger than [`SLOT`], else the oldest held packet when every slot is taken.
    pub(crate) fn park(
        &mut self,
        spi: Spi,
        from: IpAddr,
        packet: &[u8],
        now: Instant,
    ) -> Option<GivenUp> {
        if packet.len() > SLOT {
            return Some(GivenUp { spi, from });
        }
        if self.data.is_empty() {
            self.data = vec![0u8; SLOTS * SLOT];
        }
        let (i, given_up) = match self.slots.iter().position(Option::is_none) {
            Some(i) => (i, None),
            None => {
                let (i, oldest) = self
                    .slots
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| s.map(|h| (i, h)))
                    .min_by_key(|(_, h)| h.at)?;
                (
                    i,
                    Some(GivenUp {
                        spi: oldest.spi,
                        from: oldest.from,
                    }),
                )
            }
        };
        self.data[i * SLOT..][..packet.len()].copy_from_slice(packet);
        self.slots[i] = Some(Held {
            spi,
            from,
            at: now,
            len: packet.len(),
        });
        given_up
    }

    /// Whether any packet waits for `spi`.
    pub(crate) fn holds(&self, spi: Spi) -> bool {
        self.slots.iter().flatten().any(|h| h.spi == spi)
    }

    /// Takes the oldest packet held for `spi`: copies it into `into` (which must have room for
    /// [`SLOT`] bytes) and returns its length and sender.
    pub(crate) fn take(&mut self, spi: Spi, into: &mut [u8]) -> Option<(usize, IpAddr)> {
        let (i, h) = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.filter(|h| h.spi == spi).map(|h| (i, h)))
            .min_by_key(|(_, h)| h.at)?;
        self.slots[i] = None;
        into.get_mut(..h.len)?
            .copy_from_slice(&self.data[i * SLOT..][..h.len]);
        Some((h.len, h.from))
    }

    /// Gives up on every packet held for [`PARK_FOR`] or longer, calling `gone` for each.
    pub(crate) fn expire(&mut self, now: Instant, mut gone: impl FnMut(GivenUp)) {
        for slot in &mut self.slots {
            if let Some(h) = slot.filter(|h| now.duration_since(h.at) >= PARK_FOR) {
                *slot = None;
                gone(GivenUp {
                    spi: h.spi,
                    from: h.from,
                });
            }
        }
    }

    /// When the oldest held packet is given up on, if any is held.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.slots.iter().flatten().map(|h| h.at + PARK_FOR).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    #[test]
    fn a_parked_packet_is_given_back_whole_to_its_spi_only() {
        let t0 = Instant::now();
        let mut p = Parked::default();
        assert_eq!(p.park(Spi(7), addr(1), b"seven", t0), None);
        assert_eq!(p.park(Spi(8), addr(2), b"eight!", t0), None);
        assert!(p.holds(Spi(7)) && p.holds(Spi(8)) && !p.holds(Spi(9)));
        let mut buf = [0u8; SLOT];
        assert_eq!(p.take(Spi(9), &mut buf), None);
        assert_eq!(p.take(Spi(8), &mut buf), Some((6, addr(2))));
        assert_eq!(&buf[..6], b"eight!");
        assert_eq!(p.take(Spi(8), &mut buf), None, "taken once");
        assert_eq!(p.take(Spi(7), &mut buf), Some((5, addr(1))));
        assert_eq!(&buf[..5], b"seven");
        assert_eq!(p.next_expiry(), None);
    }

    #[test]
    fn packets_of_one_spi_come_back_in_arrival_order() {
        let t0 = Instant::now();
        let mut p = Parked::default();
        for (i, payload) in [b"first", b"secnd", b"third"].iter().enumerate() {
            p.park(
                Spi(1),
                addr(1),
                *payload,
                t0 + Duration::from_millis(i as u64),
            );
        }
        let mut buf = [0u8; SLOT];
        for want in [b"first", b"secnd", b"third"] {
            let (n, _) = p.take(Spi(1), &mut buf).unwrap();
            assert_eq!(&buf[..n], want);
        }
    }

    #[test]
    fn held_packets_expire_after_the_park_time_and_are_reported() {
        let t0 = Instant::now();
        let mut p = Parked::default();
        p.park(Spi(1), addr(1), b"a", t0);
        p.park(Spi(2), addr(2), b"b", t0 + Duration::from_millis(100));
        assert_eq!(p.next_expiry(), Some(t0 + PARK_FOR));
        let mut gone = Vec::new();
        p.expire(t0 + PARK_FOR - Duration::from_millis(1), |g| gone.push(g));
        assert!(gone.is_empty());
        p.expire(t0 + PARK_FOR, |g| gone.push(g));
        assert_eq!(
            gone,
            [GivenUp {
                spi: Spi(1),
                from: addr(1)
            }]
        );
        assert_eq!(
            p.next_expiry(),
            Some(t0 + Duration::from_millis(100) + PARK_FOR)
        );
        assert!(!p.holds(Spi(1)) && p.holds(Spi(2)));
    }

    #[test]
    fn memory_is_bounded_the_oldest_packet_makes_room_and_oversized_ones_are_refused() {
        let t0 = Instant::now();
        let mut p = Parked::default();
        for i in 0..SLOTS as u32 {
            let at = t0 + Duration::from_micros(u64::from(i));
            assert_eq!(p.park(Spi(100 + i), addr(1), b"x", at), None);
        }
        let later = t0 + Duration::from_millis(1);
        assert_eq!(
            p.park(Spi(999), addr(3), b"y", later),
            Some(GivenUp {
                spi: Spi(100),
                from: addr(1)
            })
        );
        assert!(!p.holds(Spi(100)) && p.holds(Spi(101)) && p.holds(Spi(999)));
        let big = vec![0u8; SLOT + 1];
        assert_eq!(
            p.park(Spi(5), addr(4), &big, later),
            Some(GivenUp {
                spi: Spi(5),
                from: addr(4)
            })
        );
        assert!(!p.holds(Spi(5)));
        assert_eq!(p.data.len(), SLOTS * SLOT, "one buffer, allocated once");
    }
}
