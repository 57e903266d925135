//! Key derivation for IKEv2 (RFC 7296 §2.13–§2.18) and IKEv1 (RFC 2409 §5, Appendix B).

pub mod ikev1;
pub mod ikev2;
