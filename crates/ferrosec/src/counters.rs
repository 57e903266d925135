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
    /// One packet decrypted, `bytes` of inner packet.
    pub(crate) fn inbound(&self, bytes: usize) {
        self.packets_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// One packet encrypted, `bytes` of inner packet.
    pub(crate) fn outbound(&self, bytes: usize) {
        self.packets_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up() {
        let c = SaCounters::default();
        c.inbound(100);
        c.inbound(50);
        c.outbound(10);
        c.drop_for("replay");
        c.drop_for("replay");
        let s = c.snapshot();
        assert_eq!((s.packets_in, s.bytes_in), (2, 150));
        assert_eq!((s.packets_out, s.bytes_out), (1, 10));
        assert_eq!(s.drops.get("replay"), Some(&2));
    }
}
