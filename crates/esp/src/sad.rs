//! SA databases: inbound by SPI, outbound by traffic selector. Both hold ESP SAs by default
//! and AH SAs ([`crate::AhInboundSa`], [`crate::AhOutboundSa`]) as `InboundSad<AhInboundSa>`
//! and `OutboundSad<AhOutboundSa>`: a data-plane worker keeps one of each kind.

use std::collections::HashMap;

use ferrosec_wire::Spi;
use ferrosec_wire::esp as wire_esp;

use crate::sa::{Decapsulated, InboundSa, OutboundSa, Received, Transmit};
use crate::selector::{Flow, Selectors};
use crate::stats::{DropCounters, DropReason};

/// What an [`InboundSad`] needs of the SAs it holds (ESP or AH).
pub trait InboundTransform {
    /// The SA's SPI.
    fn spi(&self) -> Spi;
    /// The SPI a received packet names, in the form the IO layer hands it over (ESP: SPI
    /// first; AH: the whole IP packet), or `None` when it is too short to name one.
    fn packet_spi(packet: &[u8]) -> Option<Spi>;
    /// Verifies (and decrypts) a packet in place.
    fn decapsulate_in_place(&mut self, packet: &mut [u8]) -> Result<Decapsulated, DropReason>;
}

/// What an [`OutboundSad`] needs of the SAs it holds (ESP or AH).
pub trait OutboundTransform {
    /// The SA's SPI.
    fn spi(&self) -> Spi;
    /// The SA's traffic selectors.
    fn selectors(&self) -> &Selectors;
    /// Whether the hard lifetime is reached.
    fn is_expired(&self) -> bool;
    /// Protects one inner packet into `out`.
    fn encapsulate<'a>(
        &mut self,
        inner: &[u8],
        out: &'a mut [u8],
    ) -> Result<Transmit<'a>, DropReason>;
}

impl InboundTransform for InboundSa {
    fn spi(&self) -> Spi {
        InboundSa::spi(self)
    }
    fn packet_spi(packet: &[u8]) -> Option<Spi> {
        wire_esp::Packet::new_checked(packet).ok().map(|h| h.spi())
    }
    fn decapsulate_in_place(&mut self, packet: &mut [u8]) -> Result<Decapsulated, DropReason> {
        InboundSa::decapsulate_in_place(self, packet)
    }
}

impl OutboundTransform for OutboundSa {
    fn spi(&self) -> Spi {
        OutboundSa::spi(self)
    }
    fn selectors(&self) -> &Selectors {
        OutboundSa::selectors(self)
    }
    fn is_expired(&self) -> bool {
        OutboundSa::is_expired(self)
    }
    fn encapsulate<'a>(
        &mut self,
        inner: &[u8],
        out: &'a mut [u8],
    ) -> Result<Transmit<'a>, DropReason> {
        OutboundSa::encapsulate(self, inner, out)
    }
}

/// Hashes SPIs for the inbound table: one multiplication (Fibonacci hashing), where the
/// standard library's SipHash took about 10 ns per packet (issue 16). SipHash's keyed hashing
/// defends a table against keys chosen to collide; here only this gateway's SPIs are
/// inserted (drawn at random by IKE, or configured for manual keys), and a lookup of any
/// SPI a peer sends probes only what those put there. The table indexes by the low bits and
/// tags by the high ones: the product's high half, which every bit of the SPI reaches, is
/// folded into the low half, so that SPIs differing only in their high bits (manual keys
/// such as 0x1000, 0x2000, …) do not share a bucket.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SpiHasher(u64);

impl std::hash::Hasher for SpiHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.0 = (self.0 ^ u64::from(v)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type SpiMap<V> = HashMap<Spi, V, std::hash::BuildHasherDefault<SpiHasher>>;

/// Inbound SAs keyed by SPI. Built when Child SAs are installed; a lookup does not allocate.
/// During a rekey the old and the new SA are both present until IKE deletes the old one.
/// SAs are boxed: the table keeps spare capacity, and a slot is then a pointer, not an SA.
#[derive(Debug)]
pub struct InboundSad<S = InboundSa> {
    sas: SpiMap<Box<S>>,
    /// Drops before an SA is known (truncated header, unknown SPI).
    drops: DropCounters,
}

impl<S> Default for InboundSad<S> {
    fn default() -> Self {
        Self {
            sas: SpiMap::default(),
            drops: DropCounters::default(),
        }
    }
}

impl<S: InboundTransform> InboundSad<S> {
    /// An empty database.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs an SA; returns the one it replaced (same SPI), if any.
    pub fn insert(&mut self, sa: S) -> Option<S> {
        self.insert_boxed(Box::new(sa)).map(|b| *b)
    }

    /// Installs an SA that is already on the heap (as it arrives over a channel).
    pub fn insert_boxed(&mut self, sa: Box<S>) -> Option<Box<S>> {
        self.sas.insert(sa.spi(), sa)
    }

    /// Removes an SA.
    pub fn remove(&mut self, spi: Spi) -> Option<S> {
        self.sas.remove(&spi).map(|b| *b)
    }

    /// One SA.
    pub fn get(&self, spi: Spi) -> Option<&S> {
        self.sas.get(&spi).map(|b| &**b)
    }

    /// One SA, mutable.
    pub fn get_mut(&mut self, spi: Spi) -> Option<&mut S> {
        self.sas.get_mut(&spi).map(|b| &mut **b)
    }

    /// All SAs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &S> {
        self.sas.values().map(|b| &**b)
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

    /// Finds the SA by SPI and verifies (ESP: decrypts) in place (see
    /// [`InboundSa::decapsulate_in_place`], [`crate::AhInboundSa::decapsulate_in_place`]).
    pub fn decapsulate_in_place(&mut self, packet: &mut [u8]) -> Result<Decapsulated, DropReason> {
        let sa = self.lookup(packet)?;
        sa.decapsulate_in_place(packet)
    }

    fn lookup(&mut self, packet: &[u8]) -> Result<&mut S, DropReason> {
        let Some(spi) = S::packet_spi(packet) else {
            self.drops.record(DropReason::Truncated);
            return Err(DropReason::Truncated);
        };
        match self.sas.get_mut(&spi) {
            Some(sa) => Ok(sa),
            None => {
                self.drops.record(DropReason::UnknownSpi);
                Err(DropReason::UnknownSpi)
            }
        }
    }
}

impl InboundSad<InboundSa> {
    /// Finds the SA by SPI and decapsulates into `dst` (see [`InboundSa::decapsulate`]).
    pub fn decapsulate<'a>(
        &mut self,
        src: &[u8],
        dst: &'a mut [u8],
    ) -> Result<Received<'a>, DropReason> {
        let sa = self.lookup(src)?;
        sa.decapsulate(src, dst)
    }
}

/// Outbound SAs, selected by the traffic selectors of the inner packet (SPEC R-DP-5).
///
/// The lookup is a linear scan from the newest SA to the oldest, so after a rekey the new SA
/// wins while the old one is still installed. That is right for the handful of Child SAs of
/// one tunnel interface; many proxy IDs per tunnel would want a prefix trie or a flow cache.
///
/// SAs are boxed, as inbound: the vector's spare capacity is pointers, not SAs. Each SPI is
/// kept beside its box, so installing and removing by SPI scan one small array (a worker
/// holds thousands of SAs on a `dynamic` gateway).
#[derive(Debug)]
pub struct OutboundSad<S = OutboundSa> {
    sas: Vec<(Spi, Box<S>)>,
    /// The SPIs in `sas`: installing a new SA needs no scan of the others (10,000 SAs on one
    /// tunnel interface made the installs quadratic).
    spis: std::collections::HashSet<Spi>,
    /// Drops before an SA is chosen (no SA, malformed inner packet).
    drops: DropCounters,
    /// With many SAs (a gateway with `dynamic` peers puts one pair per peer on its tunnel
    /// interface): the SA last chosen for a flow, by a hash of the flow. Emptied whenever an SA
    /// comes or goes, so an entry is always what the scan would return, unless its SA expired,
    /// which the lookup checks. Allocated once, when the database first reaches
    /// [`CACHE_FROM`] SAs; fixed size.
    cache: Option<Box<FlowCache>>,
}

/// Per slot: a flow and the index of the SA chosen for it.
type FlowCache = [Option<(FlowKey, usize)>; FLOW_CACHE];

/// Slots of the outbound flow cache.
const FLOW_CACHE: usize = 256;
/// Below this many SAs the scan costs no more than the cache.
const CACHE_FROM: usize = 8;

/// What an outbound selector looks at in a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    protocol: u8,
    src_port: Option<u16>,
    dst_port: Option<u16>,
}

impl FlowKey {
    fn of(f: &Flow) -> Self {
        FlowKey {
            src: f.src,
            dst: f.dst,
            protocol: f.protocol,
            src_port: f.src_port,
            dst_port: f.dst_port,
        }
    }

    fn slot(&self) -> usize {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        self.hash(&mut h);
        (h.finish() as usize) % FLOW_CACHE
    }
}

impl<S> Default for OutboundSad<S> {
    fn default() -> Self {
        Self {
            sas: Vec::new(),
            spis: std::collections::HashSet::new(),
            drops: DropCounters::default(),
            cache: None,
        }
    }
}

impl<S: OutboundTransform> OutboundSad<S> {
    /// An empty database.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs an SA (preferred over older ones with overlapping selectors); returns the one
    /// with the same SPI it replaced, if any.
    pub fn insert(&mut self, sa: S) -> Option<S> {
        self.insert_boxed(Box::new(sa)).map(|b| *b)
    }

    /// Installs an SA that is already on the heap (as it arrives over a channel).
    pub fn insert_boxed(&mut self, sa: Box<S>) -> Option<Box<S>> {
        let spi = sa.spi();
        let old = self.remove_boxed(spi);
        self.sas.push((spi, sa));
        self.spis.insert(spi);
        self.invalidate();
        old
    }

    /// Forgets the cached choices (the SAs changed); allocates the cache once when the
    /// database has grown to [`CACHE_FROM`] SAs.
    fn invalidate(&mut self) {
        match &mut self.cache {
            Some(c) => c.fill(None),
            None if self.sas.len() >= CACHE_FROM => self.cache = Some(Box::new([None; FLOW_CACHE])),
            None => {}
        }
    }

    /// Removes an SA.
    pub fn remove(&mut self, spi: Spi) -> Option<S> {
        self.remove_boxed(spi).map(|b| *b)
    }

    fn remove_boxed(&mut self, spi: Spi) -> Option<Box<S>> {
        let i = self.position(spi)?;
        self.spis.remove(&spi);
        let sa = self.sas.remove(i).1;
        self.invalidate();
        Some(sa)
    }

    fn position(&self, spi: Spi) -> Option<usize> {
        if !self.spis.contains(&spi) {
            return None;
        }
        self.sas.iter().position(|(s, _)| *s == spi)
    }

    /// One SA.
    pub fn get(&self, spi: Spi) -> Option<&S> {
        self.position(spi).map(|i| &*self.sas[i].1)
    }

    /// One SA, mutable.
    pub fn get_mut(&mut self, spi: Spi) -> Option<&mut S> {
        self.position(spi).map(|i| &mut *self.sas[i].1)
    }

    /// All SAs, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &S> {
        self.sas.iter().map(|(_, sa)| &**sa)
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
        self.find(flow).map(|i| self.sas[i].0)
    }

    fn find(&self, flow: &Flow) -> Option<usize> {
        self.sas
            .iter()
            .rposition(|(_, sa)| !sa.is_expired() && sa.selectors().matches_outbound(flow))
    }

    /// [`Self::find`] through the flow cache when there is one.
    fn find_cached(&mut self, flow: &Flow) -> Option<usize> {
        if self.cache.is_none() {
            return self.find(flow);
        }
        let key = FlowKey::of(flow);
        let slot = key.slot();
        let hit =
            self.cache.as_ref().and_then(|c| c[slot]).filter(|(k, i)| {
                *k == key && self.sas.get(*i).is_some_and(|(_, sa)| !sa.is_expired())
            });
        if let Some((_, i)) = hit {
            return Some(i);
        }
        let found = self.find(flow);
        if let (Some(i), Some(c)) = (found, self.cache.as_deref_mut()) {
            c[slot] = Some((key, i));
        }
        found
    }

    /// Selects the SA for an inner packet and encapsulates it (see
    /// [`OutboundSa::encapsulate`]). [`DropReason::NoSa`] means no Child SA covers the packet:
    /// the daemon may start a negotiation for [`Flow::parse`] of it (SPEC R-DP-6).
    pub fn encapsulate<'a>(
        &mut self,
        inner: &[u8],
        out: &'a mut [u8],
    ) -> Result<Transmit<'a>, DropReason> {
        let found = Flow::parse(inner).and_then(|f| self.find_cached(&f).ok_or(DropReason::NoSa));
        match found {
            Ok(i) => self.sas[i].1.encapsulate(inner, out),
            Err(e) => {
                self.drops.record(e);
                Err(e)
            }
        }
    }

    /// Encapsulates with the SA that covers `flow` (already parsed from `inner` by the caller,
    /// which holds several databases); `None`, with nothing counted, when no SA covers it.
    pub fn encapsulate_flow<'a>(
        &mut self,
        flow: &Flow,
        inner: &[u8],
        out: &'a mut [u8],
    ) -> Option<Result<Transmit<'a>, DropReason>> {
        let i = self.find_cached(flow)?;
        Some(self.sas[i].1.encapsulate(inner, out))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::*;

    fn hash(spi: u32) -> u64 {
        BuildHasherDefault::<SpiHasher>::default().hash_one(Spi(spi))
    }

    /// The table indexes by the low bits of the hash and tags by the top 7: SPIs that differ
    /// only in their high bits, only in their low bits, or at random all spread over both.
    #[test]
    fn spi_hashes_spread_over_the_bits_the_table_uses() {
        type Kind = (&'static str, fn(u32) -> u32);
        let kinds: [Kind; 3] = [
            ("high bits", |k| k << 22),
            ("sequential", |k| 0x1000 + k),
            ("random", |k| k.wrapping_mul(0x2545_f491).rotate_left(13)),
        ];
        for (kind, spi) in kinds {
            let low: HashSet<u64> = (0..1024).map(|k| hash(spi(k)) & 1023).collect();
            assert!(
                low.len() > 600,
                "{kind}: {} of 1024 low-bit buckets",
                low.len()
            );
            let tags: HashSet<u64> = (0..1024).map(|k| hash(spi(k)) >> 57).collect();
            assert!(tags.len() > 100, "{kind}: {} of 128 tags", tags.len());
        }
        assert_ne!(hash(1), hash(2));
    }
}
