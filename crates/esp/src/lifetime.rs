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

/// Lifetime state of one SA.
#[derive(Debug, Clone)]
pub(crate) struct Lifetime {
    limits: LifetimeLimits,
    soft_fired: bool,
    hard_fired: bool,
}

fn reached(limit: Option<u64>, value: u64) -> bool {
    limit.is_some_and(|l| value >= l)
}

impl Lifetime {
    pub(crate) fn new(limits: LifetimeLimits) -> Self {
        Self {
            limits,
            soft_fired: false,
            hard_fired: false,
        }
    }

    pub(crate) fn limits(&self) -> &LifetimeLimits {
        &self.limits
    }

    /// Whether the hard limit is reached: no more packets.
    pub(crate) fn expired(&self, stats: &SaStats) -> bool {
        reached(self.limits.hard_packets, stats.packets)
            || reached(self.limits.hard_bytes, stats.bytes)
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
            let trigger = if reached(self.limits.hard_bytes, stats.bytes) {
                Some(LifetimeTrigger::Bytes)
            } else if reached(self.limits.hard_packets, stats.packets) {
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
            let trigger = if reached(self.limits.soft_bytes, stats.bytes) {
                Some(LifetimeTrigger::Bytes)
            } else if reached(self.limits.soft_packets, stats.packets) {
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
