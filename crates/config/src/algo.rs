//! Algorithms, groups and the small keyword enums of the configuration.
//!
//! Every enum here is spelled in the file exactly as PAN-OS spells it (`aes-256-cbc`, `group14`,
//! `ikev2-preferred` …). Each algorithm carries its IANA identifiers so the engines can map a
//! configured value to the transform they put on the wire:
//!
//! * `iana_id()` is the IKEv2 transform ID (RFC 7296 §3.3.2, IANA "IKEv2 Transform Type N").
//! * `ikev1_id()` where it exists is the IKEv1 value (RFC 2409 Appendix A for phase 1 attributes,
//!   RFC 2407 §4.4 for IPsec transform IDs and the "Authentication Algorithm" attribute).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// The error of parsing a keyword: the value is unknown; `allowed` lists the accepted spellings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKeyword {
    /// The value that was given.
    pub given: String,
    /// Every accepted spelling, in documentation order.
    pub allowed: &'static [&'static str],
}

impl fmt::Display for UnknownKeyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown value \"{}\"; allowed: {}",
            self.given,
            self.allowed.join(", ")
        )
    }
}

impl std::error::Error for UnknownKeyword {}

macro_rules! keyword_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in documentation order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant ),+ ];
            /// Every spelling accepted in the file, in documentation order.
            pub const NAMES: &'static [&'static str] = &[ $( $text ),+ ];

            /// The spelling used in the configuration file.
            pub fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownKeyword;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(UnknownKeyword { given: s.to_owned(), allowed: Self::NAMES }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }
    };
}

keyword_enum! {
    /// A Diffie-Hellman group (R-CFG-1). The IANA number is the group number.
    DhGroup {
        /// 768-bit MODP (RFC 2409). Weak: warns.
        Group1 = "group1",
        /// 1024-bit MODP (RFC 2409). Weak: warns.
        Group2 = "group2",
        /// 1536-bit MODP (RFC 3526). Weak: warns.
        Group5 = "group5",
        /// 2048-bit MODP (RFC 3526).
        Group14 = "group14",
        /// 3072-bit MODP (RFC 3526).
        Group15 = "group15",
        /// 4096-bit MODP (RFC 3526).
        Group16 = "group16",
        /// 256-bit random ECP, P-256 (RFC 5903).
        Group19 = "group19",
        /// 384-bit random ECP, P-384 (RFC 5903).
        Group20 = "group20",
        /// 521-bit random ECP, P-521 (RFC 5903).
        Group21 = "group21",
        /// Curve25519 (RFC 8031). IKEv2 only.
        Group31 = "group31",
    }
}

impl DhGroup {
    /// The IANA number (IKEv2 Transform Type 4 ID and IKEv1 group description).
    pub fn iana_id(self) -> u16 {
        match self {
            DhGroup::Group1 => 1,
            DhGroup::Group2 => 2,
            DhGroup::Group5 => 5,
            DhGroup::Group14 => 14,
            DhGroup::Group15 => 15,
            DhGroup::Group16 => 16,
            DhGroup::Group19 => 19,
            DhGroup::Group20 => 20,
            DhGroup::Group21 => 21,
            DhGroup::Group31 => 31,
        }
    }

    /// Groups below 2048-bit MODP strength: loading them warns (R-CFG-3).
    pub fn is_weak(self) -> bool {
        matches!(self, DhGroup::Group1 | DhGroup::Group2 | DhGroup::Group5)
    }

    /// Whether the group is defined for IKEv2 only (Curve25519 has no IKEv1 registration).
    pub fn ikev2_only(self) -> bool {
        matches!(self, DhGroup::Group31)
    }
}

keyword_enum! {
    /// An additional key exchange of an IKEv2 SA (RFC 9370), post-quantum ML-KEM (FIPS 203;
    /// IANA key exchange method IDs 35-37), run in IKE_INTERMEDIATE after the Diffie-Hellman
    /// of IKE_SA_INIT, and in IKE_FOLLOWUP_KE after a CREATE_CHILD_SA (rekeys, Child SAs).
    /// `none` in the list makes it optional.
    AdditionalKeyExchange {
        /// No additional key exchange (with another value: optional).
        None = "none",
        /// ML-KEM-512.
        MlKem512 = "ml-kem-512",
        /// ML-KEM-768.
        MlKem768 = "ml-kem-768",
        /// ML-KEM-1024.
        MlKem1024 = "ml-kem-1024",
    }
}

impl AdditionalKeyExchange {
    /// The IANA Transform Type 4 (Key Exchange Method) ID, also used in transform types 6-12
    /// (0 = NONE).
    pub fn iana_id(self) -> u16 {
        match self {
            AdditionalKeyExchange::None => 0,
            AdditionalKeyExchange::MlKem512 => 35,
            AdditionalKeyExchange::MlKem768 => 36,
            AdditionalKeyExchange::MlKem1024 => 37,
        }
    }
}

keyword_enum! {
    /// A hash used for IKE integrity and PRF (R-CFG-1) and for ESP/AH authentication (R-CFG-2).
    HashAlgorithm {
        /// HMAC-MD5. Weak: warns.
        Md5 = "md5",
        /// HMAC-SHA1.
        Sha1 = "sha1",
        /// HMAC-SHA2-256.
        Sha256 = "sha256",
        /// HMAC-SHA2-384.
        Sha384 = "sha384",
        /// HMAC-SHA2-512.
        Sha512 = "sha512",
    }
}

impl HashAlgorithm {
    /// The IKEv2 integrity transform ID (Transform Type 3): the truncated HMACs of RFC 2404/4868.
    pub fn iana_id(self) -> u16 {
        match self {
            HashAlgorithm::Md5 => 1,     // AUTH_HMAC_MD5_96
            HashAlgorithm::Sha1 => 2,    // AUTH_HMAC_SHA1_96
            HashAlgorithm::Sha256 => 12, // AUTH_HMAC_SHA2_256_128
            HashAlgorithm::Sha384 => 13, // AUTH_HMAC_SHA2_384_192
            HashAlgorithm::Sha512 => 14, // AUTH_HMAC_SHA2_512_256
        }
    }

    /// The IKEv2 PRF transform ID (Transform Type 2).
    pub fn prf_id(self) -> u16 {
        match self {
            HashAlgorithm::Md5 => 1,    // PRF_HMAC_MD5
            HashAlgorithm::Sha1 => 2,   // PRF_HMAC_SHA1
            HashAlgorithm::Sha256 => 5, // PRF_HMAC_SHA2_256
            HashAlgorithm::Sha384 => 6, // PRF_HMAC_SHA2_384
            HashAlgorithm::Sha512 => 7, // PRF_HMAC_SHA2_512
        }
    }

    /// The IKEv1 phase 1 "Hash Algorithm" attribute value (RFC 2409 Appendix A, RFC 4868).
    pub fn ikev1_id(self) -> u16 {
        match self {
            HashAlgorithm::Md5 => 1,
            HashAlgorithm::Sha1 => 2,
            HashAlgorithm::Sha256 => 4,
            HashAlgorithm::Sha384 => 5,
            HashAlgorithm::Sha512 => 6,
        }
    }

    /// The IKEv1 IPsec "Authentication Algorithm" attribute value (RFC 2407 §4.5, RFC 4868).
    pub fn ikev1_ipsec_auth_id(self) -> u16 {
        match self {
            HashAlgorithm::Md5 => 1,
            HashAlgorithm::Sha1 => 2,
            HashAlgorithm::Sha256 => 5,
            HashAlgorithm::Sha384 => 6,
            HashAlgorithm::Sha512 => 7,
        }
    }

    /// The key length of the HMAC in bytes (also the manual-key length).
    pub fn key_len(self) -> usize {
        match self {
            HashAlgorithm::Md5 => 16,
            HashAlgorithm::Sha1 => 20,
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha384 => 48,
            HashAlgorithm::Sha512 => 64,
        }
    }

    /// MD5 warns when loaded (R-CFG-3).
    pub fn is_weak(self) -> bool {
        matches!(self, HashAlgorithm::Md5)
    }
}

keyword_enum! {
    /// An ESP/AH authentication choice (R-CFG-2): a hash, or `none` (only with an AEAD cipher).
    IpsecAuthentication {
        /// No separate integrity algorithm: allowed only with AES-GCM/CCM.
        None = "none",
        /// HMAC-MD5-96. Weak: warns.
        Md5 = "md5",
        /// HMAC-SHA1-96.
        Sha1 = "sha1",
        /// HMAC-SHA2-256-128.
        Sha256 = "sha256",
        /// HMAC-SHA2-384-192.
        Sha384 = "sha384",
        /// HMAC-SHA2-512-256.
        Sha512 = "sha512",
    }
}

impl IpsecAuthentication {
    /// The hash, or `None` for `none`.
    pub fn hash(self) -> Option<HashAlgorithm> {
        match self {
            IpsecAuthentication::None => None,
            IpsecAuthentication::Md5 => Some(HashAlgorithm::Md5),
            IpsecAuthentication::Sha1 => Some(HashAlgorithm::Sha1),
            IpsecAuthentication::Sha256 => Some(HashAlgorithm::Sha256),
            IpsecAuthentication::Sha384 => Some(HashAlgorithm::Sha384),
            IpsecAuthentication::Sha512 => Some(HashAlgorithm::Sha512),
        }
    }

    /// The IKEv2 integrity transform ID (0 = NONE).
    pub fn iana_id(self) -> u16 {
        self.hash().map_or(0, HashAlgorithm::iana_id)
    }
}

keyword_enum! {
    /// An IKE SA encryption algorithm (R-CFG-1).
    IkeEncryption {
        /// DES-CBC. Weak: warns.
        Des = "des",
        /// 3DES-CBC. Weak: warns.
        TripleDes = "3des",
        /// AES-CBC with a 128-bit key.
        Aes128Cbc = "aes-128-cbc",
        /// AES-CBC with a 192-bit key.
        Aes192Cbc = "aes-192-cbc",
        /// AES-CBC with a 256-bit key.
        Aes256Cbc = "aes-256-cbc",
        /// AES-GCM, 16-octet ICV, 128-bit key (RFC 5282). IKEv2 only.
        Aes128Gcm = "aes-128-gcm",
        /// AES-GCM, 16-octet ICV, 256-bit key (RFC 5282). IKEv2 only.
        Aes256Gcm = "aes-256-gcm",
    }
}

impl IkeEncryption {
    /// The IKEv2 encryption transform ID (Transform Type 1).
    pub fn iana_id(self) -> u16 {
        match self {
            IkeEncryption::Des => 2,
            IkeEncryption::TripleDes => 3,
            IkeEncryption::Aes128Cbc | IkeEncryption::Aes192Cbc | IkeEncryption::Aes256Cbc => 12,
            IkeEncryption::Aes128Gcm | IkeEncryption::Aes256Gcm => 20, // ENCR_AES_GCM_16
        }
    }

    /// The IKEv1 phase 1 "Encryption Algorithm" attribute value; `None` for AEAD (no IKEv1 use).
    pub fn ikev1_id(self) -> Option<u16> {
        match self {
            IkeEncryption::Des => Some(1),
            IkeEncryption::TripleDes => Some(5),
            IkeEncryption::Aes128Cbc | IkeEncryption::Aes192Cbc | IkeEncryption::Aes256Cbc => {
                Some(7)
            }
            IkeEncryption::Aes128Gcm | IkeEncryption::Aes256Gcm => None,
        }
    }

    /// The Key Length attribute in bits, for the variable-length ciphers.
    pub fn key_bits(self) -> Option<u16> {
        match self {
            IkeEncryption::Des | IkeEncryption::TripleDes => None,
            IkeEncryption::Aes128Cbc | IkeEncryption::Aes128Gcm => Some(128),
            IkeEncryption::Aes192Cbc => Some(192),
            IkeEncryption::Aes256Cbc | IkeEncryption::Aes256Gcm => Some(256),
        }
    }

    /// AEAD ciphers carry their own integrity.
    pub fn is_aead(self) -> bool {
        matches!(self, IkeEncryption::Aes128Gcm | IkeEncryption::Aes256Gcm)
    }

    /// des and 3des warn (R-CFG-3).
    pub fn is_weak(self) -> bool {
        matches!(self, IkeEncryption::Des | IkeEncryption::TripleDes)
    }
}

keyword_enum! {
    /// An ESP encryption algorithm (R-CFG-2).
    EspEncryption {
        /// DES-CBC. Weak: warns.
        Des = "des",
        /// 3DES-CBC. Weak: warns.
        TripleDes = "3des",
        /// AES-CBC with a 128-bit key.
        Aes128Cbc = "aes-128-cbc",
        /// AES-CBC with a 192-bit key.
        Aes192Cbc = "aes-192-cbc",
        /// AES-CBC with a 256-bit key.
        Aes256Cbc = "aes-256-cbc",
        /// AES-CCM, 16-octet ICV, 128-bit key (RFC 4309).
        Aes128Ccm = "aes-128-ccm",
        /// AES-GCM, 16-octet ICV, 128-bit key (RFC 4106).
        Aes128Gcm = "aes-128-gcm",
        /// AES-GCM, 16-octet ICV, 256-bit key (RFC 4106).
        Aes256Gcm = "aes-256-gcm",
        /// No encryption (RFC 2410): authentication only.
        Null = "null",
    }
}

impl EspEncryption {
    /// The IKEv2 encryption transform ID (Transform Type 1); also the IKEv1 ESP transform ID.
    pub fn iana_id(self) -> u16 {
        match self {
            EspEncryption::Des => 2,
            EspEncryption::TripleDes => 3,
            EspEncryption::Null => 11,
            EspEncryption::Aes128Cbc | EspEncryption::Aes192Cbc | EspEncryption::Aes256Cbc => 12,
            EspEncryption::Aes128Ccm => 16, // ENCR_AES_CCM_16
            EspEncryption::Aes128Gcm | EspEncryption::Aes256Gcm => 20, // ENCR_AES_GCM_16
        }
    }

    /// The Key Length attribute in bits, for the variable-length ciphers.
    pub fn key_bits(self) -> Option<u16> {
        match self {
            EspEncryption::Des | EspEncryption::TripleDes | EspEncryption::Null => None,
            EspEncryption::Aes128Cbc | EspEncryption::Aes128Ccm | EspEncryption::Aes128Gcm => {
                Some(128)
            }
            EspEncryption::Aes192Cbc => Some(192),
            EspEncryption::Aes256Cbc | EspEncryption::Aes256Gcm => Some(256),
        }
    }

    /// The keying material for a manual-key SA, in bytes: the cipher key plus the salt of the
    /// AEAD modes (4 bytes for GCM, RFC 4106 §8.1; 3 bytes for CCM, RFC 4309 §7.1).
    pub fn manual_key_len(self) -> usize {
        match self {
            EspEncryption::Des => 8,
            EspEncryption::TripleDes => 24,
            EspEncryption::Aes128Cbc => 16,
            EspEncryption::Aes192Cbc => 24,
            EspEncryption::Aes256Cbc => 32,
            EspEncryption::Aes128Ccm => 16 + 3,
            EspEncryption::Aes128Gcm => 16 + 4,
            EspEncryption::Aes256Gcm => 32 + 4,
            EspEncryption::Null => 0,
        }
    }

    /// AEAD ciphers (GCM, CCM) carry their own integrity: authentication `none` goes with them.
    pub fn is_aead(self) -> bool {
        matches!(
            self,
            EspEncryption::Aes128Ccm | EspEncryption::Aes128Gcm | EspEncryption::Aes256Gcm
        )
    }

    /// des and 3des warn (R-CFG-3).
    pub fn is_weak(self) -> bool {
        matches!(self, EspEncryption::Des | EspEncryption::TripleDes)
    }
}

keyword_enum! {
    /// The IPsec protocol of a crypto profile or manual-key SA.
    IpsecProtocol {
        /// Encapsulating Security Payload (RFC 4303), IP protocol 50.
        Esp = "esp",
        /// Authentication Header (RFC 4302), IP protocol 51. Cannot cross NAT.
        Ah = "ah",
    }
}

impl IpsecProtocol {
    /// The IKEv2 Protocol ID (RFC 7296 §3.3.1): AH = 2, ESP = 3.
    pub fn iana_id(self) -> u16 {
        match self {
            IpsecProtocol::Ah => 2,
            IpsecProtocol::Esp => 3,
        }
    }
}

keyword_enum! {
    /// The IKE version of a gateway (R-CFG-4).
    IkeVersion {
        /// IKEv1 only (RFC 2409).
        Ikev1 = "ikev1",
        /// IKEv2 only (RFC 7296).
        Ikev2 = "ikev2",
        /// Try IKEv2, fall back to IKEv1.
        Ikev2Preferred = "ikev2-preferred",
    }
}

impl IkeVersion {
    /// Whether IKEv1 may be spoken.
    pub fn allows_v1(self) -> bool {
        matches!(self, IkeVersion::Ikev1 | IkeVersion::Ikev2Preferred)
    }

    /// Whether IKEv2 may be spoken.
    pub fn allows_v2(self) -> bool {
        matches!(self, IkeVersion::Ikev2 | IkeVersion::Ikev2Preferred)
    }
}

keyword_enum! {
    /// The address family of a gateway's outer addresses.
    AddressFamily {
        /// IPv4 outer addresses.
        Ipv4 = "ipv4",
        /// IPv6 outer addresses.
        Ipv6 = "ipv6",
    }
}

impl AddressFamily {
    /// The family of an address.
    pub fn of(addr: std::net::IpAddr) -> AddressFamily {
        if addr.is_ipv4() {
            AddressFamily::Ipv4
        } else {
            AddressFamily::Ipv6
        }
    }
}

keyword_enum! {
    /// TCP encapsulation of IKE and ESP (RFC 9329) on an IKEv2 gateway.
    TcpEncapsulation {
        /// Off: UDP only (the default).
        No = "no",
        /// UDP first; TCP when IKE_SA_INIT goes unanswered over UDP.
        Fallback = "fallback",
        /// TCP only.
        Always = "always",
    }
}

keyword_enum! {
    /// IKEv1 phase 1 exchange mode (R-CFG-4).
    ExchangeMode {
        /// Main mode: 6 messages, identities protected.
        Main = "main",
        /// Aggressive mode: 3 messages, identities in the clear, one DH group.
        Aggressive = "aggressive",
        /// Auto: initiate in main mode, answer either.
        Auto = "auto",
    }
}

keyword_enum! {
    /// The type of an IKE identity (R-CFG-4).
    IdType {
        /// An IP address (ID_IPV4_ADDR / ID_IPV6_ADDR).
        Ipaddr = "ipaddr",
        /// A fully qualified domain name (ID_FQDN).
        Fqdn = "fqdn",
        /// A user FQDN, an e-mail address (ID_RFC822_ADDR).
        Ufqdn = "ufqdn",
        /// An opaque key ID (ID_KEY_ID).
        Keyid = "keyid",
        /// An X.500 distinguished name (ID_DER_ASN1_DN).
        Dn = "dn",
    }
}

impl IdType {
    /// The IKEv2 ID Type (RFC 7296 §3.5), given the address family for `ipaddr`.
    pub fn iana_id(self, family: AddressFamily) -> u8 {
        match (self, family) {
            (IdType::Ipaddr, AddressFamily::Ipv4) => 1,
            (IdType::Ipaddr, AddressFamily::Ipv6) => 5,
            (IdType::Fqdn, _) => 2,
            (IdType::Ufqdn, _) => 3,
            (IdType::Dn, _) => 9,
            (IdType::Keyid, _) => 11,
        }
    }
}

keyword_enum! {
    /// The keying of an IPSec tunnel (R-CFG-6).
    TunnelType {
        /// Keys negotiated by IKE.
        AutoKey = "auto-key",
        /// Static SPIs and keys.
        ManualKey = "manual-key",
    }
}

keyword_enum! {
    /// What a tunnel monitor does when its destination stops answering (R-CFG-7).
    MonitorAction {
        /// Renegotiate the keys and keep waiting for the tunnel to recover.
        WaitRecover = "wait-recover",
        /// Move traffic to the backup route (next-higher metric) until the primary recovers.
        FailOver = "fail-over",
    }
}

keyword_enum! {
    /// The action of a security rule (R-CFG-9).
    RuleAction {
        /// Let matching traffic pass.
        Allow = "allow",
        /// Drop matching traffic.
        Deny = "deny",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_lists_allowed() {
        for g in DhGroup::ALL {
            assert_eq!(g.name().parse::<DhGroup>().unwrap(), *g);
        }
        for e in EspEncryption::ALL {
            assert_eq!(e.name().parse::<EspEncryption>().unwrap(), *e);
        }
        let err = "aes256".parse::<IkeEncryption>().unwrap_err();
        assert!(err.to_string().contains("aes-256-cbc"), "{err}");
    }

    #[test]
    fn iana_ids() {
        assert_eq!(DhGroup::Group31.iana_id(), 31);
        assert_eq!(IkeEncryption::Aes256Cbc.iana_id(), 12);
        assert_eq!(IkeEncryption::Aes256Cbc.key_bits(), Some(256));
        assert_eq!(EspEncryption::Aes128Gcm.iana_id(), 20);
        assert_eq!(EspEncryption::Aes128Ccm.iana_id(), 16);
        assert_eq!(HashAlgorithm::Sha256.iana_id(), 12);
        assert_eq!(HashAlgorithm::Sha384.prf_id(), 6);
        assert_eq!(IpsecAuthentication::None.iana_id(), 0);
        assert_eq!(IpsecProtocol::Esp.iana_id(), 3);
        assert_eq!(IdType::Ipaddr.iana_id(AddressFamily::Ipv6), 5);
    }
}
