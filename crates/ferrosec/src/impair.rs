//! Test impairments: environment variables that make a race or a limit happen on purpose in
//! the interop tests. Read once when the data plane starts; the daemon warns in its system log
//! for each one set. Never set outside tests.

use std::time::Duration;

/// Milliseconds: every inbound SA reaches the receive workers that much after the IKE task
/// installs it, as on a host where the IKE task lags, so that the peer's first packets on a new
/// SA arrive before the SA (interop 11: every rekey hits that race).
pub(crate) const INBOUND_DELAY: &str = "FERROSEC_IMPAIR_INBOUND_DELAY_MS";

/// A sequence number (decimal or 0x-hex): every new outbound ESP SA continues after it instead
/// of 0, so that a test crosses 2^32 (extended sequence numbers, RFC 4304) in a few packets
/// (interop 36).
pub(crate) const SEQ_START: &str = "FERROSEC_IMPAIR_ESP_SEQ_START";

/// The impairments in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Impairments {
    pub(crate) inbound_delay: Option<Duration>,
    pub(crate) seq_start: Option<u64>,
}

fn number(v: &str) -> Option<u64> {
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

impl Impairments {
    /// From the environment.
    pub(crate) fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        Impairments {
            inbound_delay: var(INBOUND_DELAY)
                .and_then(|v| number(&v))
                .map(Duration::from_millis),
            seq_start: var(SEQ_START).and_then(|v| number(&v)),
        }
    }

    /// One system-log warning per impairment set.
    pub(crate) fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(d) = self.inbound_delay {
            w.push(format!(
                "test impairment {INBOUND_DELAY}: every inbound SA is installed {} ms late; \
                 never set this outside tests",
                d.as_millis()
            ));
        }
        if let Some(s) = self.seq_start {
            w.push(format!(
                "test impairment {SEQ_START}: new outbound ESP SAs continue after sequence \
                 number {s:#x}; never set this outside tests"
            ));
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_and_named_in_the_warnings() {
        let none = Impairments::from_vars(|_| None);
        assert_eq!(none, Impairments::default());
        assert!(none.warnings().is_empty());
        let set = Impairments::from_vars(|n| {
            Some(
                if n == INBOUND_DELAY {
                    "100"
                } else {
                    "0xffffffd8"
                }
                .to_owned(),
            )
        });
        assert_eq!(set.inbound_delay, Some(Duration::from_millis(100)));
        assert_eq!(set.seq_start, Some(0xffff_ffd8));
        let w = set.warnings();
        assert!(w[0].contains(
            "FERROSEC_IMPAIR_INBOUND_DELAY_MS: every inbound SA is installed 100 ms late"
        ));
        assert!(w[1].contains("FERROSEC_IMPAIR_ESP_SEQ_START: new outbound ESP SAs continue after sequence number 0xffffffd8"));
        assert_eq!(
            Impairments::from_vars(|_| Some("junk".into())),
            Impairments::default()
        );
    }
}
