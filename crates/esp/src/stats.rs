//! Why packets are dropped, and the counters `show vpn flow` prints.

/// Why a packet was dropped. Every drop in the data plane has exactly one reason and is
/// counted under it ([`DropCounters`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum DropReason {
    /// Inbound: shorter than ESP header + IV + ICV, or a length the cipher cannot have.
    #[error("truncated packet")]
    Truncated,
    /// Inbound: no SA with this SPI.
    #[error("unknown SPI")]
    UnknownSpi,
    /// Inbound: the sequence number was already received.
    #[error("replayed sequence number")]
    Replayed,
    /// Inbound: the sequence number is left of the anti-replay window (or zero).
    #[error("sequence number too old")]
    TooOld,
    /// Inbound: the ICV (or AEAD tag) did not verify.
    #[error("authentication failed")]
    AuthFailed,
    /// Inbound: Pad Length larger than the payload, or padding not 1, 2, 3, … (RFC 4303 §2.4).
    #[error("bad padding")]
    BadPadding,
    /// Inbound: Next Header is neither IPv4 (4) nor IPv6 (41) in tunnel mode, or disagrees with
    /// the inner packet's version.
    #[error("bad next header")]
    BadNextHeader,
    /// Inbound: a traffic flow confidentiality dummy packet (Next Header 59, RFC 4303 §2.6),
    /// discarded as the RFC requires.
    #[error("dummy packet")]
    Dummy,
    /// The inner packet is not a well-formed IPv4/IPv6 packet.
    #[error("malformed inner packet")]
    MalformedInner,
    /// Inbound: the decrypted packet does not match the SA's traffic selectors (SPEC R-DP-5).
    #[error("traffic selector mismatch")]
    SelectorMismatch,
    /// The SA reached its hard byte or packet lifetime.
    #[error("SA lifetime expired")]
    Expired,
    /// Outbound: the sequence number space is used up (2^32 − 1 without ESN); the SA must be
    /// replaced (RFC 4303 §3.3.3).
    #[error("sequence number space exhausted")]
    SequenceExhausted,
    /// Outbound: no Child SA's selectors match the packet (the daemon may start negotiation,
    /// SPEC R-DP-6).
    #[error("no SA for this flow")]
    NoSa,
    /// Outbound: the caller's output buffer is too small.
    #[error("output buffer too small")]
    BufferTooSmall,
    /// The crypto backend refused the operation (should not happen with a valid SA).
    #[error("cryptographic failure")]
    Crypto,
    /// Inbound AH: the outer IP header is malformed or not supported (IPv4 options, IPv6
    /// extension headers before AH, an AH length that does not fit the SA's ICV).
    #[error("bad outer header")]
    BadOuter,
}

impl DropReason {
    /// Every reason, in the order [`DropCounters::iter`] reports them.
    pub const ALL: [DropReason; 16] = [
        Self::Truncated,
        Self::UnknownSpi,
        Self::Replayed,
        Self::TooOld,
        Self::AuthFailed,
        Self::BadPadding,
        Self::BadNextHeader,
        Self::Dummy,
        Self::MalformedInner,
        Self::SelectorMismatch,
        Self::Expired,
        Self::SequenceExhausted,
        Self::NoSa,
        Self::BufferTooSmall,
        Self::Crypto,
        Self::BadOuter,
    ];

    /// A stable kebab-case name for tables and JSON ("unknown-spi").
    pub fn name(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::UnknownSpi => "unknown-spi",
            Self::Replayed => "replay",
            Self::TooOld => "too-old",
            Self::AuthFailed => "auth-failed",
            Self::BadPadding => "bad-padding",
            Self::BadNextHeader => "bad-next-header",
            Self::Dummy => "dummy",
            Self::MalformedInner => "malformed-inner",
            Self::SelectorMismatch => "selector-mismatch",
            Self::Expired => "expired",
            Self::SequenceExhausted => "sequence-exhausted",
            Self::NoSa => "no-sa",
            Self::BufferTooSmall => "buffer-too-small",
            Self::Crypto => "crypto",
            Self::BadOuter => "bad-outer",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Truncated => 0,
            Self::UnknownSpi => 1,
            Self::Replayed => 2,
            Self::TooOld => 3,
            Self::AuthFailed => 4,
            Self::BadPadding => 5,
            Self::BadNextHeader => 6,
            Self::Dummy => 7,
            Self::MalformedInner => 8,
            Self::SelectorMismatch => 9,
            Self::Expired => 10,
            Self::SequenceExhausted => 11,
            Self::NoSa => 12,
            Self::BufferTooSmall => 13,
            Self::Crypto => 14,
            Self::BadOuter => 15,
        }
    }
}

/// One counter per [`DropReason`] (the SA databases' drops before an SA is known; the
/// daemon's totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounters([u64; DropReason::ALL.len()]);

impl DropCounters {
    /// Counts one drop.
    pub fn record(&mut self, reason: DropReason) {
        let c = &mut self.0[reason.index()];
        *c = c.saturating_add(1);
    }

    /// The count for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |a, &b| a.saturating_add(b))
    }

    /// Every reason with its count (zeros included, so tables have fixed columns).
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r, self.get(r)))
    }

    /// Adds another set of counters (for totals over several SAs).
    pub fn add(&mut self, other: &DropCounters) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.saturating_add(*b);
        }
    }
}

/// Traffic counters of one SA (one direction): what its lifetimes count.
///
/// A packet the SA refuses is not counted here: the call returns its [`DropReason`] and the
/// caller counts it where its users look (the daemon per Child SA pair, beside its other
/// drops). 128 bytes of counters per SA were most of an SA's memory beside its keys, with a
/// responder holding tens of thousands of SAs (issue 16).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaStats {
    /// Packets protected (outbound) or accepted (inbound).
    pub packets: u64,
    /// Inner packet bytes protected or accepted (what lifetimes in bytes count).
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter_and_name() {
        let mut c = DropCounters::default();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            for _ in 0..=i {
                c.record(*r);
            }
        }
        for (i, (r, n)) in c.iter().enumerate() {
            assert_eq!(n, i as u64 + 1, "{}", r.name());
        }
        let names: std::collections::HashSet<_> =
            DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::ALL.len());
        let n = DropReason::ALL.len() as u64;
        assert_eq!(c.total(), n * (n + 1) / 2);
        let mut sum = DropCounters::default();
        sum.add(&c);
        sum.add(&c);
        assert_eq!(sum.get(DropReason::Crypto), 2 * c.get(DropReason::Crypto));
    }
}
