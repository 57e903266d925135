//! The configuration reference: every key of every object, as data.
//!
//! `docs/configuration.md` is generated from [`REFERENCE`].

/// One key of the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDoc {
    /// The section: `global`, `ike-gateway`, `ipsec-tunnel.proxy-id` …
    pub section: &'static str,
    /// The key.
    pub key: &'static str,
    /// Its type in words.
    pub ty: &'static str,
    /// Its default (`required` when there is none).
    pub default: &'static str,
    /// Allowed values or range.
    pub allowed: &'static str,
    /// What it does.
    pub doc: &'static str,
    /// A valid example value in TOML syntax.
    pub example: &'static str,
}

/// Every key.
pub const REFERENCE: &[KeyDoc] = &[];
