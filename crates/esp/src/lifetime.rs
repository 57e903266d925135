//! Byte and packet lifetimes of an SA (RFC 4301 §4.4.2.1, SPEC R-DP-7).
//!
//! Time lifetimes need a clock and belong to the IKE engine, which owns the rekey timers; the
//! data plane counts what only it can see: bytes and packets. Crossing the soft limit raises
//! one [`LifetimeEvent`] (start a rekey); reaching the hard limit raises another and from then
//! on the SA refuses packets ([`crate::DropReason::Expired`]).

use ferrosec_wire::Spi;

use crate::stats::SaStats;

/// Soft and hard limits in bytes (of inner packets) and packets; `None` means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifetimeLimits {
    /// Soft limit in bytes: rekey.
    pub soft_bytes: Option<u64>,
    /// Hard limit in bytes: the SA is dead.
    pub hard_bytes: Option<u64>,
    /// Soft limit in packets.
    pub soft_packets: Option<u64>,
    /// Hard limit in packets.
    pub hard_packets: Option<u64>,
}

/// Which limit was crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifetimeKind {
    /// The soft limit: negotiate a replacement.
    Soft,
    /// The hard limit: the SA no longer carries traffic.
    Hard,
}

/// Which counter crossed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifetimeTrigger {
    /// The byte counter.
    Bytes,
    /// The packet counter.
    Packets,
}

/// The direction of an SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Packets we receive and decrypt.
    Inbound,
    /// Packets we encrypt and send.
    Outbound,
}

/// Raised once per SA and kind, with the packet that crossed the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LifetimeEvent {
    /// The SA's SPI.
    pub spi: Spi,
    /// The SA's direction.
    pub direction: Direction,
    /// Soft or hard.
    pub kind: LifetimeKind,
    /// Bytes or packets.
    pub trigger: LifetimeTrigger,
}

/// Lifetime state of one SA. The limits are kept as plain counts, [`NO_LIMIT`] for none:
/// 32 bytes instead of the 64 of four `Option<u64>` (a responder holds thousands of SAs).
#[derive(Debug, Clone)]
pub(crate) struct Lifetime {
    soft_bytes: u64,
    hard_bytes: u64,
    soft_packets: u64,
    hard_packets: u64,
    soft_fired: bool,
    hard_fired: bool,
}

/// A limit that is never reached: `None`, and also `Some(u64::MAX)` (2^64 − 1 bytes or
/// packets, which no counter gets to).
const NO_LIMIT: u64 = u64::MAX;

/// Whether a counter reached a limit. Asked four times per packet, so the comparison that
/// fails below the limit comes first and the check for [`NO_LIMIT`] is asked only at it (no
/// counter gets to 2^64 − 1: bytes would take 46 years at 100 Gbit/s).
fn reached(limit: u64, value: u64) -> bool {
    value >= limit && value != NO_LIMIT
}

impl Lifetime {
    pub(crate) fn new(limits: LifetimeLimits) -> Self {
        let l = |v: Option<u64>| v.unwrap_or(NO_LIMIT);
        Self {
            soft_bytes: l(limits.soft_bytes),
            hard_bytes: l(limits.hard_bytes),
            soft_packets: l(limits.soft_packets),
            hard_packets: l(limits.hard_packets),
            soft_fired: false,
            hard_fired: false,
        }
    }

    /// The limits as given (`Some(u64::MAX)` reads back as `None`).
    pub(crate) fn limits(&self) -> LifetimeLimits {
        let l = |v: u64| (v != NO_LIMIT).then_some(v);
        LifetimeLimits {
            soft_bytes: l(self.soft_bytes),
            hard_bytes: l(self.hard_bytes),
            soft_packets: l(self.soft_packets),
            hard_packets: l(self.hard_packets),
        }
    }

    /// Whether the hard limit is reached: no more packets.
    pub(crate) fn expired(&self, stats: &SaStats) -> bool {
        reached(self.hard_packets, stats.packets) || reached(self.hard_bytes, stats.bytes)
    }

    /// After counting a packet: the event it raised, if any (hard takes precedence).
    pub(crate) fn after(
        &mut self,
        stats: &SaStats,
        spi: Spi,
        direction: Direction,
    ) -> Option<LifetimeEvent> {
        let event = |kind, trigger| LifetimeEvent {
            spi,
            direction,
            kind,
            trigger,
        };
        if !self.hard_fired {
            let trigger = if reached(self.hard_bytes, stats.bytes) {
                Some(LifetimeTrigger::Bytes)
            } else if reached(self.hard_packets, stats.packets) {
                Some(LifetimeTrigger::Packets)
            } else {
                None
            };
            if let Some(t) = trigger {
                self.hard_fired = true;
                self.soft_fired = true;
                return Some(event(LifetimeKind::Hard, t));
            }
        }
        if !self.soft_fired {
            let trigger = if reached(self.soft_bytes, stats.bytes) {
                Some(LifetimeTrigger::Bytes)
            } else if reached(self.soft_packets, stats.packets) {
                Some(LifetimeTrigger::Packets)
            } else {
                None
            };
            if let Some(t) = trigger {
                self.soft_fired = true;
                return Some(event(LifetimeKind::Soft, t));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_back_and_no_limit_is_never_reached() {
        let limits = LifetimeLimits {
            soft_bytes: Some(900),
            hard_bytes: Some(1000),
            soft_packets: None,
            hard_packets: Some(0),
        };
        let mut l = Lifetime::new(limits);
        assert_eq!(l.limits(), limits);
        let stats = |packets, bytes| SaStats { packets, bytes };
        // A hard packet limit of 0 is reached at once; the byte limits later.
        assert!(l.expired(&stats(0, 0)));
        let unlimited = Lifetime::new(LifetimeLimits::default());
        assert_eq!(unlimited.limits(), LifetimeLimits::default());
        assert!(!unlimited.expired(&stats(u64::MAX - 1, u64::MAX - 1)));
        l = Lifetime::new(LifetimeLimits {
            hard_packets: None,
            ..limits
        });
        let e = l.after(&stats(1, 899), Spi(1), Direction::Inbound);
        assert_eq!(e, None);
        let e = l.after(&stats(2, 900), Spi(1), Direction::Inbound).unwrap();
        assert_eq!(
            (e.kind, e.trigger),
            (LifetimeKind::Soft, LifetimeTrigger::Bytes)
        );
        assert!(!l.expired(&stats(3, 999)));
        let e = l
            .after(&stats(3, 1000), Spi(1), Direction::Inbound)
            .unwrap();
        assert_eq!(
            (e.kind, e.trigger),
            (LifetimeKind::Hard, LifetimeTrigger::Bytes)
        );
        assert!(l.expired(&stats(3, 1000)));
    }
}
