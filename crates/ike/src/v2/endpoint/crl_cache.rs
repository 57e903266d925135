//! CRLs fetched from the CRL distribution points of peer certificates
//! (`certificate.crl-fetch`, RFC 5280 §4.2.1.13): kept until their nextUpdate, bounded in
//! count (each CRL is bounded in size by [`ferrosec_crypto::crl::MAX_CRL_SIZE`]); a failed
//! fetch is remembered for [`RETRY_AFTER`] seconds, so that a dead distribution point does not
//! hold up every IKE_AUTH.

use ferrosec_crypto::crl::Crl;

/// The most distribution points remembered (fetched CRLs and failures), endpoint-wide.
pub(super) const MAX_CACHED_CRLS: usize = 16;
/// How long a failed fetch is not tried again, in seconds.
pub(super) const RETRY_AFTER: u64 = 300;

#[derive(Debug, Clone)]
enum State {
    Have(Crl),
    /// Not before this (Unix seconds).
    Failed(u64),
}

/// What is known of a distribution point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Lookup {
    /// A CRL not past its nextUpdate.
    Fresh,
    /// A recent failure: not tried again yet.
    Failing,
    /// Nothing, a stale CRL, or a failure long enough ago: fetch.
    Fetch,
}

/// The fetched CRLs, by URL, oldest first.
#[derive(Debug, Default)]
pub(super) struct CrlCache {
    entries: Vec<(String, State)>,
}

impl CrlCache {
    pub(super) fn lookup(&self, url: &str, now: u64) -> Lookup {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        match self.entries.iter().find(|(u, _)| u == url).map(|(_, s)| s) {
            Some(State::Have(c)) if c.next_update().is_some_and(|n| n > now) => Lookup::Fresh,
            Some(State::Failed(until)) if i64::try_from(*until).unwrap_or(i64::MAX) > now => {
                Lookup::Failing
            }
            _ => Lookup::Fetch,
        }
    }

    /// Remembers what a fetch of `url` gave at `now`.
    pub(super) fn put(&mut self, url: &str, got: Option<Crl>, now: u64) {
        self.entries.retain(|(u, _)| u != url);
        let state = match got {
            Some(c) => State::Have(c),
            None => State::Failed(now.saturating_add(RETRY_AFTER)),
        };
        if self.entries.len() >= MAX_CACHED_CRLS {
            // Stale first, else the oldest.
            let now_i = i64::try_from(now).unwrap_or(i64::MAX);
            let stale = self.entries.iter().position(|(_, s)| match s {
                State::Have(c) => c.next_update().is_none_or(|n| n <= now_i),
                State::Failed(until) => *until <= now,
            });
            self.entries.remove(stale.unwrap_or(0));
        }
        self.entries.push((url.to_owned(), state));
    }

    /// The CRLs held (stale ones too: a CRL past its nextUpdate still says what it revoked,
    /// as strongSwan uses it; it is fetched again at the next chance).
    pub(super) fn crls(&self) -> impl Iterator<Item = &Crl> {
        self.entries.iter().filter_map(|(_, s)| match s {
            State::Have(c) => Some(c),
            State::Failed(_) => None,
        })
    }

    /// The CRLs held with their URLs.
    pub(super) fn list(&self) -> Vec<(String, Crl)> {
        self.entries
            .iter()
            .filter_map(|(u, s)| match s {
                State::Have(c) => Some((u.clone(), c.clone())),
                State::Failed(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_767_225_600;

    #[test]
    fn the_cache_is_bounded_and_failures_expire() {
        let mut c = CrlCache::default();
        assert_eq!(c.lookup("http://a/", NOW), Lookup::Fetch);
        c.put("http://a/", None, NOW);
        assert_eq!(c.lookup("http://a/", NOW + 10), Lookup::Failing);
        assert_eq!(c.lookup("http://a/", NOW + RETRY_AFTER), Lookup::Fetch);
        // Many distribution points: never more than the bound; a failure that has expired
        // goes before the newer entries.
        for i in 0..3 * MAX_CACHED_CRLS {
            c.put(&format!("http://{i}/"), None, NOW + RETRY_AFTER);
            assert!(c.entries.len() <= MAX_CACHED_CRLS);
        }
        assert_eq!(c.lookup("http://a/", NOW + RETRY_AFTER), Lookup::Fetch);
        let last = format!("http://{}/", 3 * MAX_CACHED_CRLS - 1);
        assert_eq!(c.lookup(&last, NOW + RETRY_AFTER), Lookup::Failing);
        assert!(c.list().is_empty() && c.crls().next().is_none());
    }
}
