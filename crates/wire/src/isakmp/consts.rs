//! ISAKMP, IPsec DOI and IKEv1 registries (RFC 2408, 2407, 2409, 3947, and the IANA
//! "Internet Key Exchange (IKE) Attributes" and "ISAKMP Identifiers" registries).

use crate::registry::registry;

registry! {
    /// ISAKMP Exchange Types (RFC 2408 §3.1, RFC 2409).
    pub struct ExchangeType(u8) {
        NONE = 0,
        BASE = 1,
        /// Main Mode
        IDENTITY_PROTECTION = 2,
        AUTHENTICATION_ONLY = 3,
        /// Aggressive Mode
        AGGRESSIVE = 4,
        INFORMATIONAL = 5,
        /// Mode config / XAUTH (draft-dukes-ike-mode-cfg)
        TRANSACTION = 6,
        /// Quick Mode (RFC 2409 §5.5)
        QUICK = 32,
        /// New Group Mode (RFC 2409 §5.6)
        NEW_GROUP = 33,
    }
}

registry! {
    /// ISAKMP Next Payload Types (RFC 2408 §3.1, RFC 3947, draft-dukes-ike-mode-cfg).
    pub struct PayloadType(u8) {
        NONE = 0,
        /// Security Association
        SA = 1,
        /// Proposal (only inside SA)
        PROPOSAL = 2,
        /// Transform (only inside a Proposal)
        TRANSFORM = 3,
        /// Key Exchange
        KE = 4,
        /// Identification
        ID = 5,
        /// Certificate
        CERT = 6,
        /// Certificate Request
        CR = 7,
        HASH = 8,
        /// Signature
        SIG = 9,
        NONCE = 10,
        /// Notification
        NOTIFICATION = 11,
        DELETE = 12,
        VENDOR_ID = 13,
        /// Attribute (mode config)
        ATTRIBUTE = 14,
        /// SA KEK (GDOI)
        SAK = 15,
        /// SA TEK (GDOI)
        SAT = 16,
        /// Key Download (GDOI)
        KD = 17,
        /// Sequence Number (GDOI)
        SEQ = 18,
        /// Proof of Possession (GDOI)
        POP = 19,
        /// NAT Discovery (RFC 3947)
        NAT_D = 20,
        /// NAT Original Address (RFC 3947)
        NAT_OA = 21,
        /// Group Associated Policy (GDOI)
        GAP = 22,
        /// NAT-D of draft-ietf-ipsec-nat-t-ike-02/03 (kept opaque)
        NAT_D_DRAFT = 130,
        /// NAT-OA of the drafts (kept opaque)
        NAT_OA_DRAFT = 131,
        /// IKEv1 fragment (Cisco/strongSwan, kept opaque)
        FRAGMENT = 132,
    }
}

registry! {
    /// Domain of Interpretation.
    pub struct Doi(u32) {
        ISAKMP = 0,
        /// The IPsec DOI (RFC 2407)
        IPSEC = 1,
        /// GDOI (RFC 6407)
        GDOI = 2,
    }
}

registry! {
    /// IPsec DOI Situation bits (RFC 2407 §4.2).
    pub struct Situation(u32) {
        IDENTITY_ONLY = 1,
        SECRECY = 2,
        INTEGRITY = 4,
    }
}

registry! {
    /// IPsec DOI Security Protocol Identifiers (RFC 2407 §4.4.1).
    pub struct ProtocolId(u8) {
        NONE = 0,
        ISAKMP = 1,
        IPSEC_AH = 2,
        IPSEC_ESP = 3,
        IPCOMP = 4,
    }
}

registry! {
    /// ISAKMP Transform Identifiers (RFC 2407 §4.4.2).
    pub struct IsakmpTransformId(u8) {
        KEY_IKE = 1,
    }
}

registry! {
    /// IPsec DOI AH Transform Identifiers (RFC 2407 §4.4.3 and later).
    pub struct AhTransformId(u8) {
        MD5 = 2,
        SHA = 3,
        DES = 4,
        SHA2_256 = 5,
        SHA2_384 = 6,
        SHA2_512 = 7,
        RIPEMD = 8,
        AES_XCBC_MAC = 9,
        RSA = 10,
        AES_128_GMAC = 11,
        AES_192_GMAC = 12,
        AES_256_GMAC = 13,
    }
}

registry! {
    /// IPsec DOI ESP Transform Identifiers (RFC 2407 §4.4.4 and later).
    pub struct EspTransformId(u8) {
        DES_IV64 = 1,
        DES = 2,
        TRIPLE_DES = 3,
        RC5 = 4,
        IDEA = 5,
        CAST = 6,
        BLOWFISH = 7,
        TRIPLE_IDEA = 8,
        DES_IV32 = 9,
        RC4 = 10,
        NULL = 11,
        AES_CBC = 12,
        AES_CTR = 13,
        AES_CCM_8 = 14,
        AES_CCM_12 = 15,
        AES_CCM_16 = 16,
        AES_GCM_8 = 18,
        AES_GCM_12 = 19,
        AES_GCM_16 = 20,
        SEED_CBC = 21,
        CAMELLIA = 22,
        NULL_AUTH_AES_GMAC = 23,
    }
}

registry! {
    /// IPsec DOI IPCOMP Transform Identifiers (RFC 2407 §4.4.5).
    pub struct IpcompTransformId(u8) {
        OUI = 1,
        DEFLATE = 2,
        LZS = 3,
        LZJH = 4,
    }
}

registry! {
    /// IKEv1 Phase 1 attribute classes (RFC 2409 Appendix A).
    pub struct Phase1Attr(u16) {
        ENCRYPTION_ALGORITHM = 1,
        HASH_ALGORITHM = 2,
        AUTHENTICATION_METHOD = 3,
        GROUP_DESCRIPTION = 4,
        GROUP_TYPE = 5,
        GROUP_PRIME = 6,
        GROUP_GENERATOR_ONE = 7,
        GROUP_GENERATOR_TWO = 8,
        GROUP_CURVE_A = 9,
        GROUP_CURVE_B = 10,
        LIFE_TYPE = 11,
        LIFE_DURATION = 12,
        PRF = 13,
        KEY_LENGTH = 14,
        FIELD_SIZE = 15,
        GROUP_ORDER = 16,
    }
}

registry! {
    /// IKEv1 Encryption Algorithm values (class 1).
    pub struct Ike1Encr(u16) {
        DES_CBC = 1,
        IDEA_CBC = 2,
        BLOWFISH_CBC = 3,
        RC5_R16_B64_CBC = 4,
        TRIPLE_DES_CBC = 5,
        CAST_CBC = 6,
        AES_CBC = 7,
        CAMELLIA_CBC = 8,
    }
}

registry! {
    /// IKEv1 Hash Algorithm values (class 2).
    pub struct Ike1Hash(u16) {
        MD5 = 1,
        SHA = 2,
        TIGER = 3,
        SHA2_256 = 4,
        SHA2_384 = 5,
        SHA2_512 = 6,
    }
}

registry! {
    /// IKEv1 Authentication Method values (class 3), with the XAUTH and hybrid values of
    /// draft-beaulieu-ike-xauth / draft-ietf-ipsec-isakmp-hybrid-auth.
    pub struct Ike1AuthMethod(u16) {
        PRE_SHARED_KEY = 1,
        DSS_SIGNATURES = 2,
        RSA_SIGNATURES = 3,
        RSA_ENCRYPTION = 4,
        REVISED_RSA_ENCRYPTION = 5,
        ECDSA_SHA256_P256 = 9,
        ECDSA_SHA384_P384 = 10,
        ECDSA_SHA512_P521 = 11,
        HYBRID_INIT_RSA = 64221,
        HYBRID_RESP_RSA = 64222,
        HYBRID_INIT_DSS = 64223,
        HYBRID_RESP_DSS = 64224,
        XAUTH_INIT_PSK = 65001,
        XAUTH_RESP_PSK = 65002,
        XAUTH_INIT_DSS = 65003,
        XAUTH_RESP_DSS = 65004,
        XAUTH_INIT_RSA = 65005,
        XAUTH_RESP_RSA = 65006,
        XAUTH_INIT_RSA_ENCRYPTION = 65007,
        XAUTH_RESP_RSA_ENCRYPTION = 65008,
        XAUTH_INIT_RSA_REVISED_ENCRYPTION = 65009,
        XAUTH_RESP_RSA_REVISED_ENCRYPTION = 65010,
    }
}

registry! {
    /// IKEv1 Group Type values (class 5).
    pub struct GroupType(u16) {
        MODP = 1,
        ECP = 2,
        EC2N = 3,
    }
}

registry! {
    /// Life Type values (phase 1 class 11, IPsec DOI SA Life Type).
    pub struct LifeType(u16) {
        SECONDS = 1,
        KILOBYTES = 2,
    }
}

registry! {
    /// IPsec DOI SA attributes (RFC 2407 §4.5 and later).
    pub struct IpsecAttr(u16) {
        SA_LIFE_TYPE = 1,
        SA_LIFE_DURATION = 2,
        GROUP_DESCRIPTION = 3,
        ENCAPSULATION_MODE = 4,
        AUTHENTICATION_ALGORITHM = 5,
        KEY_LENGTH = 6,
        KEY_ROUNDS = 7,
        COMPRESS_DICTIONARY_SIZE = 8,
        COMPRESS_PRIVATE_ALGORITHM = 9,
        ECN_TUNNEL = 10,
        EXTENDED_SEQUENCE_NUMBER = 11,
        AUTH_KEY_LENGTH = 12,
        SIG_ENC_ALGORITHM = 13,
        ADDRESS_PRESERVATION = 14,
        SA_DIRECTION = 15,
    }
}

registry! {
    /// IPsec DOI Encapsulation Mode values (RFC 2407 §4.5, RFC 3947 §5).
    pub struct EncapsulationMode(u16) {
        TUNNEL = 1,
        TRANSPORT = 2,
        UDP_ENCAPSULATED_TUNNEL = 3,
        UDP_ENCAPSULATED_TRANSPORT = 4,
        /// draft-ietf-ipsec-nat-t-ike value
        UDP_ENCAPSULATED_TUNNEL_DRAFT = 61443,
        /// draft-ietf-ipsec-nat-t-ike value
        UDP_ENCAPSULATED_TRANSPORT_DRAFT = 61444,
    }
}

registry! {
    /// IPsec DOI Authentication Algorithm values (RFC 2407 §4.5 and later).
    pub struct IpsecAuthAlg(u16) {
        HMAC_MD5 = 1,
        HMAC_SHA = 2,
        DES_MAC = 3,
        KPDK = 4,
        HMAC_SHA2_256 = 5,
        HMAC_SHA2_384 = 6,
        HMAC_SHA2_512 = 7,
        HMAC_RIPEMD = 8,
        AES_XCBC_MAC = 9,
        SIG_RSA = 10,
        AES_128_GMAC = 11,
        AES_192_GMAC = 12,
        AES_256_GMAC = 13,
    }
}

registry! {
    /// IPsec DOI Identification Type values (RFC 2407 §4.6.2.1).
    pub struct IdType(u8) {
        IPV4_ADDR = 1,
        FQDN = 2,
        USER_FQDN = 3,
        IPV4_ADDR_SUBNET = 4,
        IPV6_ADDR = 5,
        IPV6_ADDR_SUBNET = 6,
        IPV4_ADDR_RANGE = 7,
        IPV6_ADDR_RANGE = 8,
        DER_ASN1_DN = 9,
        DER_ASN1_GN = 10,
        KEY_ID = 11,
        LIST = 12,
    }
}

registry! {
    /// ISAKMP Certificate Encoding (RFC 2408 §3.9).
    pub struct CertEncoding(u8) {
        NONE = 0,
        PKCS7_X509 = 1,
        PGP = 2,
        DNS_SIGNED_KEY = 3,
        X509_SIGNATURE = 4,
        X509_KEY_EXCHANGE = 5,
        KERBEROS_TOKENS = 6,
        CRL = 7,
        ARL = 8,
        SPKI = 9,
        X509_ATTRIBUTE = 10,
    }
}

registry! {
    /// ISAKMP Notify Message Types (RFC 2408 §3.14.1, RFC 2407 §4.6.3, RFC 3706).
    pub struct NotifyType(u16) {
        INVALID_PAYLOAD_TYPE = 1,
        DOI_NOT_SUPPORTED = 2,
        SITUATION_NOT_SUPPORTED = 3,
        INVALID_COOKIE = 4,
        INVALID_MAJOR_VERSION = 5,
        INVALID_MINOR_VERSION = 6,
        INVALID_EXCHANGE_TYPE = 7,
        INVALID_FLAGS = 8,
        INVALID_MESSAGE_ID = 9,
        INVALID_PROTOCOL_ID = 10,
        INVALID_SPI = 11,
        INVALID_TRANSFORM_ID = 12,
        ATTRIBUTES_NOT_SUPPORTED = 13,
        NO_PROPOSAL_CHOSEN = 14,
        BAD_PROPOSAL_SYNTAX = 15,
        PAYLOAD_MALFORMED = 16,
        INVALID_KEY_INFORMATION = 17,
        INVALID_ID_INFORMATION = 18,
        INVALID_CERT_ENCODING = 19,
        INVALID_CERTIFICATE = 20,
        CERT_TYPE_UNSUPPORTED = 21,
        INVALID_CERT_AUTHORITY = 22,
        INVALID_HASH_INFORMATION = 23,
        AUTHENTICATION_FAILED = 24,
        INVALID_SIGNATURE = 25,
        ADDRESS_NOTIFICATION = 26,
        NOTIFY_SA_LIFETIME = 27,
        CERTIFICATE_UNAVAILABLE = 28,
        UNSUPPORTED_EXCHANGE_TYPE = 29,
        UNEQUAL_PAYLOAD_LENGTHS = 30,
        CONNECTED = 16384,
        /// IPsec DOI (RFC 2407 §4.6.3.1)
        RESPONDER_LIFETIME = 24576,
        /// IPsec DOI (RFC 2407 §4.6.3.2)
        REPLAY_STATUS = 24577,
        /// IPsec DOI (RFC 2407 §4.6.3.3)
        INITIAL_CONTACT = 24578,
        /// Dead peer detection (RFC 3706)
        R_U_THERE = 36136,
        /// Dead peer detection (RFC 3706)
        R_U_THERE_ACK = 36137,
    }
}

registry! {
    /// Mode config Attribute payload types (draft-dukes-ike-mode-cfg §3.2).
    pub struct ModeCfgType(u8) {
        REQUEST = 1,
        REPLY = 2,
        SET = 3,
        ACK = 4,
    }
}

registry! {
    /// Mode config and XAUTH attribute types (draft-dukes-ike-mode-cfg,
    /// draft-beaulieu-ike-xauth).
    pub struct ModeCfgAttr(u16) {
        INTERNAL_IP4_ADDRESS = 1,
        INTERNAL_IP4_NETMASK = 2,
        INTERNAL_IP4_DNS = 3,
        INTERNAL_IP4_NBNS = 4,
        INTERNAL_ADDRESS_EXPIRY = 5,
        INTERNAL_IP4_DHCP = 6,
        APPLICATION_VERSION = 7,
        INTERNAL_IP6_ADDRESS = 8,
        INTERNAL_IP6_NETMASK = 9,
        INTERNAL_IP6_DNS = 10,
        INTERNAL_IP6_NBNS = 11,
        INTERNAL_IP6_DHCP = 12,
        INTERNAL_IP4_SUBNET = 13,
        SUPPORTED_ATTRIBUTES = 14,
        INTERNAL_IP6_SUBNET = 15,
        XAUTH_TYPE = 16520,
        XAUTH_USER_NAME = 16521,
        XAUTH_USER_PASSWORD = 16522,
        XAUTH_PASSCODE = 16523,
        XAUTH_MESSAGE = 16524,
        XAUTH_CHALLENGE = 16525,
        XAUTH_DOMAIN = 16526,
        XAUTH_STATUS = 16527,
        XAUTH_NEXT_PIN = 16528,
        XAUTH_ANSWER = 16529,
    }
}
