//! SA databases: inbound by SPI, outbound by traffic selector.

use std::collections::HashMap;

use ferrosec_wire::Spi;
use ferrosec_wire::esp as wire_esp;

use crate::sa::{Decapsulated, InboundSa, OutboundSa, Received, Transmit};
use crate::selector::Flow;
use crate::stats::{DropCounters, DropReason};

/// Inbound SAs keyed by SPI. Built when Child SAs are installed; a lookup does not allocate.
/// During a rekey the old and the new SA are both present until IKE deletes the old one.
#[derive(Debug, Default)]
pub struct InboundSad {
    sas: HashMap<Spi, InboundSa>,
    /// Drops before an SA is known (truncated header, unknown SPI).
    drops: DropCounters,
}

impl InboundSad {
    /// An empty database.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs an SA; returns the one it replaced (same SPI), if any.
    pub fn insert(&mut self, sa: InboundSa) -> Option<InboundSa> {
        self.sas.insert(sa.spi(), sa)
    }

    /// Removes an SA.
    pub fn remove(&mut self, spi: Spi) -> Option<InboundSa> {
        self.sas.remove(&spi)
    }

    /// One SA.
    pub fn get(&self, spi: Spi) -> Option<&InboundSa> {
        self.sas.get(&spi)
    }

    /// One SA, mutable.
    pub fn get_mut(&mut self, spi: Spi) -> Option<&mut InboundSa> {
        self.sas.get_mut(&spi)
    }

    /// All SAs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &InboundSa> {
        self.sas.values()
    }

    /// Number of SAs.
    pub fn len(&self) -> usize {
        self.sas.len()
    }

    /// True if there are no SAs.
    pub fn is_empty(&self) -> bool {
        self.sas.is_empty()
    }

    /// Drops not attributable to an SA (truncated, unknown SPI).
    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// Finds the SA by SPI and decapsulates in place (see
    /// [`InboundSa::decapsulate_in_place`]).
    pub fn decapsulate_in_place(&mut self, packet: &mut [u8]) -> Result<Decapsulated, DropReason> {
        let sa = self.lookup(packet)?;
        sa.decapsulate_in_place(packet)
    }

    /// Finds the SA by SPI and decapsulates into `dst` (see [`InboundSa::decapsulate`]).
    pub fn decapsulate<'a>(
        &mut self,
        src: &[u8],
        dst: &'a mut [u8],
    ) -> Result<Received<'a>, DropReason> {
        let sa = self.lookup(src)?;
        sa.decapsulate(src, dst)
    }

    fn lookup(&mut self, packet: &[u8]) -> Result<&mut InboundSa, DropReason> {
        let Ok(header) = wire_esp::Packet::new_checked(packet) else {
            self.drops.record(DropReason::Truncated);
            return Err(DropReason::Truncated);
        };
        match self.sas.get_mut(&header.spi()) {
            Some(sa) => Ok(sa),
            None => {
                self.drops.record(DropReason::UnknownSpi);
                Err(DropReason::UnknownSpi)
            }
        }
    }
}

/// Outbound SAs, selected by the traffic selectors of the inner packet (SPEC R-DP-5).
///
/// The lookup is a linear scan from the newest SA to the oldest, so after a rekey the new SA
/// wins while the old one is still installed. That is right for the handful of Child SAs of
/// one tunnel interface; many proxy IDs per tunnel would want a prefix trie or a flow cache.
#[derive(Debug, Default)]
pub struct OutboundSad {
    sas: Vec<OutboundSa>,
    /// Drops before an SA is chosen (no SA, malformed inner packet).
    drops: DropCounters,
}

impl OutboundSad {
    /// An empty database.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs an SA (preferred over older ones with overlapping selectors); returns the one
    /// with the same SPI it replaced, if any.
    pub fn insert(&mut self, sa: OutboundSa) -> Option<OutboundSa> {
        let old = self.remove(sa.spi());
        self.sas.push(sa);
        old
    }

    /// Removes an SA.
    pub fn remove(&mut self, spi: Spi) -> Option<OutboundSa> {
        let i = self.sas.iter().position(|sa| sa.spi() == spi)?;
        Some(self.sas.remove(i))
    }

    /// One SA.
    pub fn get(&self, spi: Spi) -> Option<&OutboundSa> {
        self.sas.iter().find(|sa| sa.spi() == spi)
    }

    /// One SA, mutable.
    pub fn get_mut(&mut self, spi: Spi) -> Option<&mut OutboundSa> {
        self.sas.iter_mut().find(|sa| sa.spi() == spi)
    }

    /// All SAs, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &OutboundSa> {
        self.sas.iter()
    }

    /// Number of SAs.
    pub fn len(&self) -> usize {
        self.sas.len()
    }

    /// True if there are no SAs.
    pub fn is_empty(&self) -> bool {
        self.sas.is_empty()
    }

    /// Drops not attributable to an SA (no SA for the flow, malformed inner packet).
    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// The SPI of the newest usable SA whose selectors cover the flow.
    pub fn lookup(&self, flow: &Flow) -> Option<Spi> {
        self.find(flow).map(|i| self.sas[i].spi())
    }

    fn find(&self, flow: &Flow) -> Option<usize> {
        self.sas
            .iter()
            .rposition(|sa| !sa.is_expired() && sa.selectors().matches_outbound(flow))
    }

    /// Selects the SA for an inner packet and encapsulates it (see
    /// [`OutboundSa::encapsulate`]). [`DropReason::NoSa`] means no Child SA covers the packet:
    /// the daemon may start a negotiation for [`Flow::parse`] of it (SPEC R-DP-6).
    pub fn encapsulate<'a>(
        &mut self,
        inner: &[u8],
        out: &'a mut [u8],
    ) -> Result<Transmit<'a>, DropReason> {
        let found = Flow::parse(inner).and_then(|f| self.find(&f).ok_or(DropReason::NoSa));
        match found {
            Ok(i) => self.sas[i].encapsulate(inner, out),
            Err(e) => {
                self.drops.record(e);
                Err(e)
            }
        }
    }
}
