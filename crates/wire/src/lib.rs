//! IKEv2 (RFC 7296), ISAKMP/IKEv1 (RFC 2408/2409), ESP (RFC 4303) and AH (RFC 4302) wire formats.
//!
//! Checked views plus `Repr` types; see the crate README.
