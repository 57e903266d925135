//! The keys of the IKE SAs up now, for Wireshark's decryption tables (R-OPS-5).
//!
//! Only the daemon asks for them, and only when the operator allowed it (`[global]
//! allow-key-export`); the keys stay [`Secret`]s (zeroed on drop) until they are written.

use ferrosec_crypto::{Encryption, Integrity, Secret};
use ferrosec_wire::IkeSpi;

/// The keys of one IKE SA.
#[derive(Debug)]
pub enum IkeKeyExport {
    /// An IKEv2 SA: its SPIs and the SK_e/SK_a keys of both directions (RFC 7296 §2.14; for
    /// AEADs SK_e includes the salt, as Wireshark expects it).
    V2 {
        /// The initiator's SPI.
        spi_i: IkeSpi,
        /// The responder's SPI.
        spi_r: IkeSpi,
        /// The encryption algorithm.
        encr: Encryption,
        /// The integrity algorithm (`None` with an AEAD).
        integ: Option<Integrity>,
        /// SK_ei.
        sk_ei: Secret,
        /// SK_er.
        sk_er: Secret,
        /// SK_ai (empty with an AEAD).
        sk_ai: Secret,
        /// SK_ar (empty with an AEAD).
        sk_ar: Secret,
    },
    /// An IKEv1 phase-1 SA: the initiator's cookie and the encryption key (RFC 2409
    /// Appendix B; Wireshark computes the IVs from the exchange it captured).
    V1 {
        /// The initiator's cookie.
        cookie_i: IkeSpi,
        /// The phase-1 encryption key.
        enc_key: Secret,
    },
}
