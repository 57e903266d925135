//! What this build is: its version, its profile and the features it serves, for `show system
//! info` and the metrics' `ferrosec_build_info` (R-OPS-5). One list, so the two agree.
//!
//! ferrosec has no optional Cargo features: every build serves the same protocols, so the
//! list names them (as `crate::served` documents the limits of what is served) and the
//! cryptographic backend; the profile says whether it was built with debug assertions.

/// The ferrosec version (the workspace's).
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What this build serves, in a fixed order.
pub(crate) const FEATURES: &[&str] = &[
    "ikev2",
    "ikev1",
    "esp",
    "ah",
    "nat-t",
    "esn",
    "ike-fragmentation",
    "certificates",
    "hash-and-url",
    "manual-key",
    "tunnel-monitor",
    "metrics",
    "key-export",
    "crypto-aws-lc-rs",
];

/// `release` or `debug` (built with debug assertions).
pub(crate) fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// The features as one label value: `ikev2,ikev1,…`.
pub(crate) fn features_label() -> String {
    FEATURES.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Label-safe names, none twice, none empty.
    #[test]
    fn features_are_distinct_plain_words() {
        let mut seen = std::collections::BTreeSet::new();
        for f in FEATURES {
            assert!(!f.is_empty());
            assert!(
                f.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{f}"
            );
            assert!(seen.insert(*f), "{f} twice");
        }
        assert_eq!(features_label().split(',').count(), FEATURES.len());
    }
}
