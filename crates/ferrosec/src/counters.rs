//! Per-SA traffic counters: written by the data-plane worker that owns the SA (relaxed atomic
//! adds, no lock per packet), read by `show vpn ipsec-sa` and `show vpn flow`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one Child SA pair.
#[derive(Debug, Default)]
pub(crate) struct SaCounters {
    packets_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// `packets_in` when the IKE task last looked (once a second, for liveness).
    seen_in: AtomicU64,
    /// Drops are rare; a lock there costs nothing on the fast path.
    drops: Mutex<BTreeMap<&'static str, u64>>,
}

/// A copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CounterSnapshot {
    pub(crate) packets_in: u64,
    pub(crate) packets_out: u64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) drops: BTreeMap<String, u64>,
}

impl SaCounters {
    /// Whether packets arrived since the last call: ESP or AH from the peer proves it alive,
    /// so liveness checks and DPD wait (the IKE task asks once a second).
    pub(crate) fn arrived_since_last_look(&self) -> bool {
        let n = self.packets_in.load(Ordering::Relaxed);
        self.seen_in.swap(n, Ordering::Relaxed) != n
    }

    /// One packet decrypted, `bytes` of inner packet.
    pub(crate) fn inbound(&self, bytes: usize) {
        self.packets_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// `packets` packets encrypted, `bytes` of inner packets together.
    pub(crate) fn outbound_many(&self, packets: usize, bytes: usize) {
        self.packets_out
            .fetch_add(packets as u64, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// `n` packets dropped for `reason`.
    pub(crate) fn drops_for(&self, reason: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        let mut d = self.drops.lock().unwrap_or_else(|p| p.into_inner());
        *d.entry(reason).or_default() += n;
    }

    /// One packet dropped for `reason`.
    pub(crate) fn drop_for(&self, reason: &'static str) {
        let mut d = self.drops.lock().unwrap_or_else(|p| p.into_inner());
        *d.entry(reason).or_default() += 1;
    }

    /// The current values.
    pub(crate) fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            packets_in: self.packets_in.load(Ordering::Relaxed),
            packets_out: self.packets_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            drops: self
                .drops
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
        }
    }
}

/// Drops that belong to no SA: ESP with an unknown SPI, datagrams on 500/4500 that are not
/// IKE, ESP or a keepalive. One relaxed atomic add per drop; shown as the `(no SA)` row of
/// `show vpn flow` and reported in the system log by [`report_drops`].
#[derive(Debug, Default)]
pub(crate) struct GlobalDrops {
    esp: [AtomicU64; ferrosec_esp::DropReason::ALL.len()],
    /// Datagrams on a NAT-T port too short to be anything (RFC 3948 §2).
    natt_malformed: AtomicU64,
    /// Datagrams for IKE shorter than an IKE header or whose length field disagrees.
    ike_malformed: AtomicU64,
    /// IKE datagrams dropped because the IKE task's queue was full (a flood it cannot keep
    /// up with).
    ike_queue_full: AtomicU64,
    /// TCP encapsulation (crate::tcpencap): streams refused or closed, frames dropped, by
    /// [`TCP_REASONS`].
    tcp: [AtomicU64; TCP_REASONS.len()],
    /// The WAN sockets, whose kernel drop counts (receive buffer full: the daemon did not read
    /// fast enough) are read at each snapshot.
    sockets: Mutex<Vec<SocketWatch>>,
}

/// One socket's kernel drop count, reported under `reason` (one of [`SOCKET_REASONS`]).
pub(crate) struct SocketWatch {
    pub(crate) reason: &'static str,
    pub(crate) drops: Box<dyn Fn() -> Option<u64> + Send + Sync>,
}

impl std::fmt::Debug for SocketWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketWatch")
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

/// Packets the kernel dropped before the daemon read them because a socket's receive buffer
/// was full, by socket: UDP 500, UDP 4500 (IKE and ESP in UDP), raw ESP, raw AH.
pub(crate) const SOCKET_REASONS: [&str; 4] = [
    "socket-full-udp500",
    "socket-full-udp4500",
    "socket-full-esp",
    "socket-full-ah",
];

/// What an ESP packet ring (ferrosec_netio::EspRing) turned away before any SA lookup: a
/// broken IPv4 header (the kernel's IP layer dropped these before the raw socket), and
/// fragments its reassembly refused or datagrams it gave up.
pub(crate) const RING_REASONS: [&str; 2] = ["esp-bad-ip-header", "esp-fragments-dropped"];

/// Why TCP encapsulation refused a stream, closed one or dropped a frame (crate::tcpencap).
pub(crate) const TCP_REASONS: [&str; 8] = [
    "tcp-refused-full",
    "tcp-not-a-peer",
    "tcp-bad-prefix",
    "tcp-bad-length",
    "tcp-bad-frame",
    "tcp-stalled",
    "tcp-send-full",
    "tcp-esp-queue-full",
];

/// Reason name of [`GlobalDrops::natt_malformed`].
pub(crate) const NATT_MALFORMED: &str = "natt-malformed";
/// Reason name of [`GlobalDrops::ike_malformed`].
pub(crate) const IKE_MALFORMED: &str = "ike-malformed";
/// Reason name of [`GlobalDrops::ike_queue_full`].
pub(crate) const IKE_QUEUE_FULL: &str = "ike-queue-full";

impl GlobalDrops {
    /// An ESP packet dropped before an SA was found.
    pub(crate) fn esp(&self, reason: ferrosec_esp::DropReason) {
        if let Some(i) = ferrosec_esp::DropReason::ALL
            .iter()
            .position(|r| *r == reason)
        {
            self.esp[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A malformed datagram on a NAT-T port.
    pub(crate) fn natt_malformed(&self) {
        self.natt_malformed.fetch_add(1, Ordering::Relaxed);
    }

    /// A malformed IKE datagram.
    pub(crate) fn ike_malformed(&self) {
        self.ike_malformed.fetch_add(1, Ordering::Relaxed);
    }

    /// An IKE datagram dropped at the IKE task's full queue.
    pub(crate) fn ike_queue_full(&self) {
        self.ike_queue_full.fetch_add(1, Ordering::Relaxed);
    }

    /// A TCP encapsulation event of [`TCP_REASONS`] (an unknown name counts nothing).
    pub(crate) fn tcp(&self, reason: &str) {
        if let Some(i) = TCP_REASONS.iter().position(|r| *r == reason) {
            self.tcp[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reads the kernel drop counts of these sockets from now on (in place of any before).
    pub(crate) fn watch_sockets(&self, sockets: Vec<SocketWatch>) {
        *self.sockets.lock().unwrap_or_else(|p| p.into_inner()) = sockets;
    }

    /// The non-zero counters by reason.
    pub(crate) fn snapshot(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for s in self
            .sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            if let Some(n) = (s.drops)().filter(|n| *n > 0) {
                *m.entry(s.reason.to_owned()).or_default() += n;
            }
        }
        for (r, c) in ferrosec_esp::DropReason::ALL.iter().zip(&self.esp) {
            let n = c.load(Ordering::Relaxed);
            if n > 0 {
                m.insert(r.name().to_owned(), n);
            }
        }
        for (name, c) in [
            (NATT_MALFORMED, &self.natt_malformed),
            (IKE_MALFORMED, &self.ike_malformed),
            (IKE_QUEUE_FULL, &self.ike_queue_full),
        ]
        .into_iter()
        .chain(TCP_REASONS.into_iter().zip(&self.tcp))
        {
            let n = c.load(Ordering::Relaxed);
            if n > 0 {
                m.insert(name.to_owned(), n);
            }
        }
        m
    }
}

/// What grew between two snapshots of drop counters, as `reason=n` words; empty if nothing.
pub(crate) fn grown(before: &BTreeMap<String, u64>, now: &BTreeMap<String, u64>) -> String {
    now.iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| format!("{k}={d}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up() {
        let c = SaCounters::default();
        c.inbound(100);
        c.inbound(50);
        c.outbound_many(1, 10);
        c.drop_for("replay");
        c.drop_for("replay");
        let s = c.snapshot();
        assert_eq!((s.packets_in, s.bytes_in), (2, 150));
        assert_eq!((s.packets_out, s.bytes_out), (1, 10));
        assert_eq!(s.drops.get("replay"), Some(&2));
    }

    #[test]
    fn global_drops_by_reason_and_growth() {
        let g = GlobalDrops::default();
        g.esp(ferrosec_esp::DropReason::UnknownSpi);
        g.natt_malformed();
        let a = g.snapshot();
        assert_eq!(a.get("unknown-spi"), Some(&1));
        assert_eq!(a.get(NATT_MALFORMED), Some(&1));
        assert_eq!(a.get(IKE_MALFORMED), None);
        g.esp(ferrosec_esp::DropReason::UnknownSpi);
        g.ike_malformed();
        let b = g.snapshot();
        assert_eq!(grown(&a, &b), "ike-malformed=1, unknown-spi=1");
        assert_eq!(grown(&b, &b), "");
    }

    /// Kernel drops of the watched sockets are read at each snapshot and summed by reason;
    /// a socket that cannot say, or dropped nothing, adds no row.
    #[test]
    fn socket_drops_are_read_at_each_snapshot() {
        use std::sync::Arc;
        let g = GlobalDrops::default();
        let n = Arc::new(AtomicU64::new(0));
        let watch = |reason, n: &Arc<AtomicU64>| {
            let n = Arc::clone(n);
            SocketWatch {
                reason,
                drops: Box::new(move || Some(n.load(Ordering::Relaxed))),
            }
        };
        g.watch_sockets(vec![
            watch(SOCKET_REASONS[1], &n),
            watch(SOCKET_REASONS[1], &n),
            SocketWatch {
                reason: SOCKET_REASONS[2],
                drops: Box::new(|| None),
            },
        ]);
        assert!(g.snapshot().is_empty());
        n.store(5, Ordering::Relaxed);
        let s = g.snapshot();
        assert_eq!(
            s.get("socket-full-udp4500"),
            Some(&10),
            "two sockets, summed"
        );
        assert_eq!(s.len(), 1);
    }
}
