//! IANA transform identifiers this provider understands.
//!
//! Plain `u16` values so that this crate does not depend on the wire crate's newtypes; the IKE
//! engine converts. IKEv2 values are from the IANA "Internet Key Exchange Version 2 (IKEv2)
//! Parameters" registry (RFC 7296 §3.3.2 and later RFCs); IKEv1 values from RFC 2409 Appendix A
//! and RFC 2407 §4.5.

/// IKEv2 transform type 1: encryption algorithm (also the IKEv1 IPsec DOI ESP transform IDs,
/// which use the same numbers, RFC 2407 §4.4.4).
pub mod encr {
    /// DES-CBC (RFC 2405). Insecure; kept for old peers.
    pub const DES: u16 = 2;
    /// 3DES-CBC (RFC 2451).
    pub const TRIPLE_DES: u16 = 3;
    /// NULL encryption (RFC 2410), ESP only.
    pub const NULL: u16 = 11;
    /// AES-CBC (RFC 3602), key length attribute 128/192/256.
    pub const AES_CBC: u16 = 12;
    /// AES-CTR (RFC 3686 / RFC 5930).
    pub const AES_CTR: u16 = 13;
    /// AES-CCM with an 8-byte ICV (RFC 4309).
    pub const AES_CCM_8: u16 = 14;
    /// AES-CCM with a 12-byte ICV (RFC 4309).
    pub const AES_CCM_12: u16 = 15;
    /// AES-CCM with a 16-byte ICV (RFC 4309).
    pub const AES_CCM_16: u16 = 16;
    /// AES-GCM with an 8-byte ICV (RFC 4106, RFC 5282).
    pub const AES_GCM_8: u16 = 18;
    /// AES-GCM with a 12-byte ICV (RFC 4106, RFC 5282).
    pub const AES_GCM_12: u16 = 19;
    /// AES-GCM with a 16-byte ICV (RFC 4106, RFC 5282).
    pub const AES_GCM_16: u16 = 20;
    /// ChaCha20-Poly1305 (RFC 7634).
    pub const CHACHA20_POLY1305: u16 = 28;
}

/// IKEv2 transform type 2: pseudorandom function.
pub mod prf {
    /// PRF_HMAC_MD5 (RFC 2104).
    pub const HMAC_MD5: u16 = 1;
    /// PRF_HMAC_SHA1 (RFC 2104).
    pub const HMAC_SHA1: u16 = 2;
    /// PRF_AES128_XCBC (RFC 4434).
    pub const AES128_XCBC: u16 = 4;
    /// PRF_HMAC_SHA2_256 (RFC 4868).
    pub const HMAC_SHA2_256: u16 = 5;
    /// PRF_HMAC_SHA2_384 (RFC 4868).
    pub const HMAC_SHA2_384: u16 = 6;
    /// PRF_HMAC_SHA2_512 (RFC 4868).
    pub const HMAC_SHA2_512: u16 = 7;
    /// PRF_AES128_CMAC (RFC 4615).
    pub const AES128_CMAC: u16 = 8;
}

/// IKEv2 transform type 3: integrity algorithm.
pub mod integ {
    /// NONE (with an AEAD cipher).
    pub const NONE: u16 = 0;
    /// AUTH_HMAC_MD5_96 (RFC 2403).
    pub const HMAC_MD5_96: u16 = 1;
    /// AUTH_HMAC_SHA1_96 (RFC 2404).
    pub const HMAC_SHA1_96: u16 = 2;
    /// AUTH_AES_XCBC_96 (RFC 3566).
    pub const AES_XCBC_96: u16 = 5;
    /// AUTH_AES_CMAC_96 (RFC 4494).
    pub const AES_CMAC_96: u16 = 8;
    /// AUTH_HMAC_SHA2_256_128 (RFC 4868).
    pub const HMAC_SHA2_256_128: u16 = 12;
    /// AUTH_HMAC_SHA2_384_192 (RFC 4868).
    pub const HMAC_SHA2_384_192: u16 = 13;
    /// AUTH_HMAC_SHA2_512_256 (RFC 4868).
    pub const HMAC_SHA2_512_256: u16 = 14;
}

/// IKEv2 transform type 4: key exchange method (also the IKEv1 Group Description values).
pub mod ke {
    /// 768-bit MODP group (RFC 2409 §6.1).
    pub const MODP_768: u16 = 1;
    /// 1024-bit MODP group (RFC 2409 §6.2).
    pub const MODP_1024: u16 = 2;
    /// 1536-bit MODP group (RFC 3526 §2).
    pub const MODP_1536: u16 = 5;
    /// 2048-bit MODP group (RFC 3526 §3).
    pub const MODP_2048: u16 = 14;
    /// 3072-bit MODP group (RFC 3526 §4).
    pub const MODP_3072: u16 = 15;
    /// 4096-bit MODP group (RFC 3526 §5).
    pub const MODP_4096: u16 = 16;
    /// 6144-bit MODP group (RFC 3526 §6).
    pub const MODP_6144: u16 = 17;
    /// 8192-bit MODP group (RFC 3526 §7).
    pub const MODP_8192: u16 = 18;
    /// 256-bit random ECP group, NIST P-256 (RFC 5903).
    pub const ECP_256: u16 = 19;
    /// 384-bit random ECP group, NIST P-384 (RFC 5903).
    pub const ECP_384: u16 = 20;
    /// 521-bit random ECP group, NIST P-521 (RFC 5903).
    pub const ECP_521: u16 = 21;
    /// Curve25519 (RFC 8031).
    pub const CURVE25519: u16 = 31;
    /// ML-KEM-512 (FIPS 203; IANA, draft-ietf-ipsecme-ikev2-mlkem).
    pub const ML_KEM_512: u16 = 35;
    /// ML-KEM-768.
    pub const ML_KEM_768: u16 = 36;
    /// ML-KEM-1024.
    pub const ML_KEM_1024: u16 = 37;
}

/// IKEv1 (RFC 2409 Appendix A) phase-1 attribute values.
pub mod ikev1 {
    /// Encryption algorithm attribute (class 1) values.
    pub mod encr {
        /// DES-CBC.
        pub const DES_CBC: u16 = 1;
        /// 3DES-CBC.
        pub const TRIPLE_DES_CBC: u16 = 5;
        /// AES-CBC (RFC 3602 §5.1), with a key length attribute.
        pub const AES_CBC: u16 = 7;
    }
    /// Hash algorithm attribute (class 2) values.
    pub mod hash {
        /// MD5.
        pub const MD5: u16 = 1;
        /// SHA-1.
        pub const SHA1: u16 = 2;
        /// SHA2-256 (RFC 4868 §4).
        pub const SHA2_256: u16 = 4;
        /// SHA2-384.
        pub const SHA2_384: u16 = 5;
        /// SHA2-512.
        pub const SHA2_512: u16 = 6;
    }
    /// IPsec DOI "Authentication Algorithm" attribute (RFC 2407 §4.5, class 5) values used in
    /// quick mode for ESP/AH integrity.
    pub mod auth {
        /// HMAC-MD5.
        pub const HMAC_MD5: u16 = 1;
        /// HMAC-SHA-1.
        pub const HMAC_SHA1: u16 = 2;
        /// HMAC-SHA2-256 (RFC 4868).
        pub const HMAC_SHA2_256: u16 = 5;
        /// HMAC-SHA2-384.
        pub const HMAC_SHA2_384: u16 = 6;
        /// HMAC-SHA2-512.
        pub const HMAC_SHA2_512: u16 = 7;
        /// AES-XCBC-MAC (RFC 3566).
        pub const AES_XCBC_MAC: u16 = 9;
    }

    /// Maps an IKEv1 phase-1 encryption attribute to the IKEv2 encryption transform ID that
    /// [`crate::Provider::ike_cipher`] takes.
    pub fn ike_encr_to_v2(v1: u16) -> Option<u16> {
        match v1 {
            encr::DES_CBC => Some(super::encr::DES),
            encr::TRIPLE_DES_CBC => Some(super::encr::TRIPLE_DES),
            encr::AES_CBC => Some(super::encr::AES_CBC),
            _ => None,
        }
    }

    /// Maps an IPsec DOI authentication algorithm to the IKEv2 integrity transform ID that
    /// [`crate::Provider::integrity`] and [`crate::Provider::esp`] take.
    pub fn auth_to_v2_integ(v1: u16) -> Option<u16> {
        use super::integ as i;
        match v1 {
            auth::HMAC_MD5 => Some(i::HMAC_MD5_96),
            auth::HMAC_SHA1 => Some(i::HMAC_SHA1_96),
            auth::HMAC_SHA2_256 => Some(i::HMAC_SHA2_256_128),
            auth::HMAC_SHA2_384 => Some(i::HMAC_SHA2_384_192),
            auth::HMAC_SHA2_512 => Some(i::HMAC_SHA2_512_256),
            auth::AES_XCBC_MAC => Some(i::AES_XCBC_96),
            _ => None,
        }
    }

    /// Maps an IKEv1 hash attribute to the IKEv2 HMAC PRF ID (IKEv1 uses the HMAC of the
    /// negotiated hash as its PRF, RFC 2409 §4).
    pub fn hash_to_v2_prf(v1: u16) -> Option<u16> {
        use super::prf as p;
        match v1 {
            hash::MD5 => Some(p::HMAC_MD5),
            hash::SHA1 => Some(p::HMAC_SHA1),
            hash::SHA2_256 => Some(p::HMAC_SHA2_256),
            hash::SHA2_384 => Some(p::HMAC_SHA2_384),
            hash::SHA2_512 => Some(p::HMAC_SHA2_512),
            _ => None,
        }
    }
}
