//! Tombstones: the last response of IKE SAs that are gone, for the peer's retransmissions.
//!
//! A responder that deletes an IKE SA right after it answered a request (a DELETE of the IKE
//! SA, the DELETE that ends a rekeyed-away SA, AUTHENTICATION_FAILED) cannot answer that
//! request again if the answer is lost: the peer retransmits, we no longer know the SPI, and
//! the peer gets an unprotected INVALID_IKE_SPI instead of its answer and keeps its end of
//! the SA until its own retransmissions run out (issue 20: strongSwan kept the old IKE SA in
//! DELETING until its own timeout). The same holds for the last response of an SA that
//! goes for any other reason soon after it answered (a collision's redundant SA, the stale
//! SAs of an INITIAL_CONTACT, a re-authentication's old SA).
//!
//! So when an established IKE SA is forgotten, its last response is kept for a while, keyed
//! by our SPI, with a digest of the request it answered. A request for an unknown SPI is
//! looked up here first: if it is byte for byte the request that was answered (same SPIs,
//! Message ID and protected contents, which a digest of the whole message covers), the
//! cached response is sent again, exactly as the live SA would have done; anything else gets
//! what it got before (INVALID_IKE_SPI, rate-limited). No keys are kept: the request was
//! authenticated when it first came, and an exact copy of it is the only thing answered.
//! What an attacker gains by replaying that copy is the same response sent once more to the
//! address the SA last used (never to the replayer's), a few times at most.
//!
//! # Bounds
//!
//! Only an authenticated peer's SAs make tombstones (half-open SAs, which anyone can make,
//! never do). The table holds at most [`EndpointConfig::max_tombstones`] entries (4,096 by
//! default, about 1.3 MB with the usual empty response) in at most [`MAX_TOMBSTONE_BYTES`]
//! (2 MiB); when it is full the oldest entry goes first. An entry answers at most
//! [`MAX_RESENDS`] retransmissions.
//!
//! # Lifetime
//!
//! A tombstone is useful as long as the peer may retransmit: until its last retransmission,
//! counted from when we answered. The peer's schedule is not known; we take our own
//! [`RetransmitPolicy`] (whose defaults are strongSwan's: 4 s, then 1.8 times longer, 5
//! retransmissions), [`RetransmitPolicy::last_retransmission`] (89.5 s by default) plus one
//! first timeout of margin for latency, and cap it at [`MAX_TOMBSTONE_LIFETIME`]. strongSwan
//! keeps a comparable grace for the same reason in the other places where an SA outlives
//! its use: a rekeyed IKE SA waits up to 90 s for the peer's DELETE (`ike_rekey.c`), and
//! the inbound half of a rekeyed Child SA stays 5 s after its DELETE (`child_delete.c`,
//! `DELETE_REKEYED_DELAY`); it does not keep one after answering a DELETE.
//!
//! Expired entries are removed in [`Endpoint::handle_timeout`]; the table asks for one
//! wakeup, for its oldest entry, [`EXPIRY_SLACK`] late so that entries that expire close
//! together go in one visit (a lookup checks the lifetime itself, so the slack only delays
//! freeing the memory).

use super::*;

/// The longest a tombstone is kept, whatever the retransmission policy says.
pub(super) const MAX_TOMBSTONE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(180);
/// The most bytes all tombstones take (responses and bookkeeping, see [`ENTRY_OVERHEAD`]).
pub(super) const MAX_TOMBSTONE_BYTES: usize = 2 << 20;
/// A response larger than this is not kept (an empty INFORMATIONAL response is about 60
/// bytes, an IKE_AUTH response without certificates a few hundred).
pub(super) const MAX_TOMBSTONE_RESPONSE: usize = 4096;
/// The most retransmissions one tombstone answers (the peer sends 5 by default).
pub(super) const MAX_RESENDS: u8 = 8;
/// How late the expiry wakeup may come.
pub(super) const EXPIRY_SLACK: std::time::Duration = std::time::Duration::from_secs(1);

/// The room an entry is charged besides its response bytes: the entry itself, its place in
/// the expiry queue, and some slack for the B-tree nodes and the response's vector headers,
/// so that the byte budget also bounds many tiny responses.
const ENTRY_OVERHEAD: usize =
    std::mem::size_of::<(IkeSpi, Tombstone)>() + std::mem::size_of::<(Instant, IkeSpi)>() + 64;

/// The digest of a request as received: the first 16 bytes of SHA-256 over the IKE message
/// (without the NAT-T non-ESP marker).
pub(super) fn request_digest(data: &[u8]) -> RequestDigest {
    let d = HashAlgorithm::Sha256.digest(&[data]);
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// How long tombstones are kept under a retransmission policy (see the module essay).
pub(super) fn lifetime(p: &RetransmitPolicy) -> std::time::Duration {
    p.last_retransmission()
        .saturating_add(p.timeout)
        .min(MAX_TOMBSTONE_LIFETIME)
}

/// What the tombstones hold and did, for the daemon's counters
/// ([`Endpoint::tombstone_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TombstoneStats {
    /// Tombstones kept now.
    pub count: usize,
    /// The most kept at once ([`EndpointConfig::max_tombstones`]).
    pub capacity: usize,
    /// How long one is kept after its response was sent.
    pub lifetime: std::time::Duration,
    /// Bytes charged for them now (responses and bookkeeping); at most 2 MiB.
    pub bytes: usize,
    /// Tombstones made so far.
    pub made: u64,
    /// Removed before their time to make room for newer ones.
    pub evicted: u64,
    /// Removed at the end of their lifetime.
    pub expired: u64,
    /// Retransmitted requests answered from a tombstone.
    pub answered: u64,
}

/// The last response of an IKE SA that is gone.
#[derive(Debug)]
pub(super) struct Tombstone {
    /// Where the SA last sent from and to (a live SA answers retransmissions there too).
    pub(super) local: SocketAddr,
    pub(super) remote: SocketAddr,
    /// The request answered, and the answer.
    pub(super) answered: Answered,
    expires: Instant,
    resent: u8,
}

impl Tombstone {
    /// The last response of an SA that used `local` and `remote`, kept until
    /// `answered.at + lifetime`.
    pub(super) fn new(
        local: SocketAddr,
        remote: SocketAddr,
        answered: Answered,
        lifetime: std::time::Duration,
    ) -> Self {
        Tombstone {
            local,
            remote,
            expires: answered.at + lifetime,
            answered,
            resent: 0,
        }
    }

    fn size(&self) -> usize {
        ENTRY_OVERHEAD + self.answered.datagrams.iter().map(Vec::len).sum::<usize>()
    }
}

/// What a request for an unknown SPI is, as far as the tombstones know.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Lookup {
    /// No tombstone's request: handle it as before.
    Unknown,
    /// A retransmission of the request a tombstone answered: send these again.
    Resend {
        local: SocketAddr,
        remote: SocketAddr,
        datagrams: Vec<Vec<u8>>,
    },
    /// A retransmission, but that tombstone answered enough of them: drop it.
    Spent,
}

/// The table of tombstones, keyed by our SPI.
#[derive(Debug, Default)]
pub(super) struct Tombstones {
    map: BTreeMap<IkeSpi, Tombstone>,
    /// (expiry, our SPI) of every entry, oldest first.
    order: BTreeSet<(Instant, IkeSpi)>,
    bytes: usize,
    made: u64,
    evicted: u64,
    expired: u64,
    answered: u64,
}

impl Tombstones {
    /// Keeps `t` for the SA with our SPI `spi` (unless its time is over, or it is too
    /// large); the oldest entries go if there is no room for it among `capacity`.
    pub(super) fn bury(&mut self, now: Instant, spi: IkeSpi, t: Tombstone, capacity: usize) {
        let expires = t.expires;
        let size = t.size();
        if expires <= now || capacity == 0 || size > MAX_TOMBSTONE_RESPONSE + ENTRY_OVERHEAD {
            return;
        }
        self.remove(&spi);
        while self.map.len() >= capacity || self.bytes + size > MAX_TOMBSTONE_BYTES {
            let Some((_, oldest)) = self.order.first().copied() else {
                break;
            };
            self.remove(&oldest);
            self.evicted += 1;
        }
        self.bytes += size;
        self.order.insert((expires, spi));
        self.map.insert(spi, t);
        self.made += 1;
    }

    fn remove(&mut self, spi: &IkeSpi) -> Option<Tombstone> {
        let t = self.map.remove(spi)?;
        self.order.remove(&(t.expires, *spi));
        self.bytes -= t.size();
        Some(t)
    }

    /// Whether the request `data` (Message ID `id`) to our SPI `spi` is a retransmission of
    /// a request a tombstone answered. The digest is computed only when a live tombstone has
    /// that SPI and Message ID.
    pub(super) fn lookup(
        &mut self,
        now: Instant,
        spi: IkeSpi,
        id: MessageId,
        data: &[u8],
    ) -> Lookup {
        let Some(t) = self.map.get_mut(&spi) else {
            return Lookup::Unknown;
        };
        if now >= t.expires || t.answered.id != id || request_digest(data) != t.answered.request {
            return Lookup::Unknown;
        }
        if t.resent >= MAX_RESENDS {
            return Lookup::Spent;
        }
        t.resent += 1;
        self.answered += 1;
        Lookup::Resend {
            local: t.local,
            remote: t.remote,
            datagrams: t.answered.datagrams.clone(),
        }
    }

    /// Removes the entries whose lifetime is over at `now`.
    pub(super) fn expire(&mut self, now: Instant) {
        while let Some((at, spi)) = self.order.first().copied() {
            if at > now {
                break;
            }
            self.remove(&spi);
            self.expired += 1;
        }
    }

    /// When [`Tombstones::expire`] has something to do (a little late, see the module
    /// essay).
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.order.first().map(|(at, _)| *at + EXPIRY_SLACK)
    }

    pub(super) fn contains(&self, spi: &IkeSpi) -> bool {
        self.map.contains_key(spi)
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn stats(&self, capacity: usize, lifetime: std::time::Duration) -> TombstoneStats {
        TombstoneStats {
            count: self.map.len(),
            capacity,
            lifetime,
            bytes: self.bytes,
            made: self.made,
            evicted: self.evicted,
            expired: self.expired,
            answered: self.answered,
        }
    }
}

impl Core {
    /// An SA goes: keep its last response if it was established (authenticated) and its
    /// last response answers a request we noted.
    pub(super) fn bury(&mut self, now: Instant, sa: &mut IkeSa) {
        if !sa.established() {
            return;
        }
        let Some(answered) = sa.responses.take_answered() else {
            return;
        };
        let t = Tombstone::new(
            sa.local,
            sa.remote,
            answered,
            lifetime(&self.config.retransmit),
        );
        self.tombstones
            .bury(now, sa.our_spi(), t, self.config.max_tombstones);
    }
}

impl Endpoint {
    /// The number of tombstones: deleted IKE SAs whose last response is kept for the peer's
    /// retransmissions (at most [`EndpointConfig::max_tombstones`]).
    pub fn tombstone_count(&self) -> usize {
        self.tombstones.len()
    }

    /// The tombstones' counters.
    pub fn tombstone_stats(&self) -> TombstoneStats {
        self.tombstones.stats(
            self.config.max_tombstones,
            lifetime(&self.config.retransmit),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::epoch;
    use std::time::Duration;

    fn answered(id: u32, at: Instant, request: &[u8], len: usize) -> Answered {
        Answered {
            id: MessageId(id),
            request: request_digest(request),
            at,
            datagrams: vec![vec![0xab; len]],
        }
    }

    fn addrs() -> (SocketAddr, SocketAddr) {
        (
            "192.0.2.2:500".parse().unwrap(),
            "192.0.2.1:500".parse().unwrap(),
        )
    }

    #[test]
    fn answers_only_the_exact_request_and_only_a_few_times() {
        let (l, r) = addrs();
        let t0 = epoch();
        let life = Duration::from_secs(30);
        let mut t = Tombstones::default();
        t.bury(
            t0,
            IkeSpi(7),
            Tombstone::new(l, r, answered(3, t0, b"req", 60), life),
            16,
        );
        let now = t0 + Duration::from_secs(4);
        assert_eq!(
            t.lookup(now, IkeSpi(8), MessageId(3), b"req"),
            Lookup::Unknown
        );
        assert_eq!(
            t.lookup(now, IkeSpi(7), MessageId(4), b"req"),
            Lookup::Unknown
        );
        assert_eq!(
            t.lookup(now, IkeSpi(7), MessageId(3), b"reQ"),
            Lookup::Unknown
        );
        for _ in 0..MAX_RESENDS {
            assert_eq!(
                t.lookup(now, IkeSpi(7), MessageId(3), b"req"),
                Lookup::Resend {
                    local: l,
                    remote: r,
                    datagrams: vec![vec![0xab; 60]]
                }
            );
        }
        assert_eq!(
            t.lookup(now, IkeSpi(7), MessageId(3), b"req"),
            Lookup::Spent
        );
        // After the lifetime (even before the expiry wakeup) it answers nothing.
        let mut t = Tombstones::default();
        t.bury(
            t0,
            IkeSpi(7),
            Tombstone::new(l, r, answered(3, t0, b"req", 60), life),
            16,
        );
        assert_eq!(
            t.lookup(t0 + life, IkeSpi(7), MessageId(3), b"req"),
            Lookup::Unknown
        );
        // A response answered longer ago than the lifetime is not kept at all.
        t.bury(
            t0 + life,
            IkeSpi(9),
            Tombstone::new(l, r, answered(1, t0, b"x", 60), life),
            16,
        );
        assert!(!t.contains(&IkeSpi(9)));
    }

    #[test]
    fn the_default_cap_fits_the_byte_budget() {
        // An empty INFORMATIONAL response (AES-GCM: header, SK header, IV, tag) is ~60 B.
        let usual = ENTRY_OVERHEAD + 60;
        let cap = EndpointConfig::default().max_tombstones;
        assert!(cap * usual <= MAX_TOMBSTONE_BYTES, "{ENTRY_OVERHEAD}");
    }

    #[test]
    fn ten_thousand_deletes_stay_within_the_cap_and_expire() {
        let (l, r) = addrs();
        let t0 = epoch();
        let life = lifetime(&RetransmitPolicy::default());
        // 4 + 7.2 + 12.96 + 23.328 + 41.9904 s to the last retransmission, 4 s of margin.
        assert!((life.as_secs_f64() - 93.4784).abs() < 1e-6, "{life:?}");
        let cap = EndpointConfig::default().max_tombstones;
        assert_eq!(cap, 4096);
        let mut t = Tombstones::default();
        let mut now = t0;
        for i in 0..10_000u64 {
            now = t0 + Duration::from_millis(i);
            let a = answered(5, now, &i.to_be_bytes(), 80);
            t.bury(now, IkeSpi(i + 1), Tombstone::new(l, r, a, life), cap);
            assert!(t.len() <= cap);
            assert!(t.bytes <= MAX_TOMBSTONE_BYTES);
        }
        let s = t.stats(cap, life);
        assert_eq!(s.count, cap);
        assert_eq!(
            (s.made, s.evicted, s.expired),
            (10_000, 10_000 - cap as u64, 0)
        );
        // The newest survive.
        assert!(t.contains(&IkeSpi(10_000)) && !t.contains(&IkeSpi(10_000 - cap as u64)));
        // One wakeup, for the oldest, a little late; nothing goes before its lifetime.
        let first = t0 + Duration::from_millis(10_000 - cap as u64) + life;
        assert_eq!(t.poll_timeout(), Some(first + EXPIRY_SLACK));
        t.expire(first - Duration::from_millis(1));
        assert_eq!(t.len(), cap);
        t.expire(first + EXPIRY_SLACK);
        assert_eq!(t.len(), cap - 1001, "the oldest and those within the slack");
        t.expire(now + life);
        assert_eq!(t.len(), 0);
        assert_eq!(t.bytes, 0);
        assert_eq!(t.poll_timeout(), None);
        assert_eq!(t.stats(cap, life).expired, cap as u64);
    }

    #[test]
    fn the_byte_budget_evicts_the_oldest() {
        let (l, r) = addrs();
        let t0 = epoch();
        let life = Duration::from_secs(60);
        let mut t = Tombstones::default();
        let big = MAX_TOMBSTONE_RESPONSE;
        let fit = MAX_TOMBSTONE_BYTES / (big + ENTRY_OVERHEAD);
        for i in 0..1000u64 {
            t.bury(
                t0,
                IkeSpi(i + 1),
                Tombstone::new(l, r, answered(1, t0, b"r", big), life),
                4096,
            );
            assert!(t.bytes <= MAX_TOMBSTONE_BYTES);
        }
        assert_eq!(t.len(), fit);
        assert!(t.contains(&IkeSpi(1000)));
        // Larger than a response may be: not kept.
        t.bury(
            t0,
            IkeSpi(5000),
            Tombstone::new(l, r, answered(1, t0, b"r", big + 1), life),
            4096,
        );
        assert!(!t.contains(&IkeSpi(5000)));
        // A tombstone for an SPI that has one replaces it.
        t.bury(
            t0,
            IkeSpi(1000),
            Tombstone::new(l, r, answered(2, t0, b"s", 10), life),
            4096,
        );
        assert_eq!(t.len(), fit);
        assert_eq!(
            t.lookup(t0, IkeSpi(1000), MessageId(2), b"s"),
            Lookup::Resend {
                local: l,
                remote: r,
                datagrams: vec![vec![0xab; 10]]
            }
        );
    }
}
