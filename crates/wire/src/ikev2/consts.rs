//! IKEv2 IANA registries ("Internet Key Exchange Version 2 (IKEv2) Parameters").

use crate::registry::registry;

registry! {
    /// IKEv2 Exchange Types (RFC 7296 §3.1 and later RFCs).
    pub struct ExchangeType(u8) {
        IKE_SA_INIT = 34,
        IKE_AUTH = 35,
        CREATE_CHILD_SA = 36,
        INFORMATIONAL = 37,
        /// RFC 5723
        IKE_SESSION_RESUME = 38,
        /// RFC 9838 (G-IKEv2)
        GSA_AUTH = 39,
        /// RFC 9838
        GSA_REGISTRATION = 40,
        /// RFC 9838
        GSA_REKEY = 41,
        /// RFC 9838
        GSA_INBAND_REKEY = 42,
        /// RFC 9242
        IKE_INTERMEDIATE = 43,
        /// RFC 9370
        IKE_FOLLOWUP_KE = 44,
    }
}

registry! {
    /// IKEv2 Payload Types (RFC 7296 §3.2 and later RFCs).
    pub struct PayloadType(u8) {
        /// No Next Payload
        NONE = 0,
        /// Security Association
        SA = 33,
        /// Key Exchange
        KE = 34,
        /// Identification - Initiator
        IDI = 35,
        /// Identification - Responder
        IDR = 36,
        /// Certificate
        CERT = 37,
        /// Certificate Request
        CERTREQ = 38,
        /// Authentication
        AUTH = 39,
        /// Nonce
        NONCE = 40,
        /// Notify
        NOTIFY = 41,
        /// Delete
        DELETE = 42,
        /// Vendor ID
        VENDOR_ID = 43,
        /// Traffic Selector - Initiator
        TSI = 44,
        /// Traffic Selector - Responder
        TSR = 45,
        /// Encrypted and Authenticated
        SK = 46,
        /// Configuration
        CP = 47,
        /// Extensible Authentication
        EAP = 48,
        /// Generic Secure Password Methods (RFC 6467)
        GSPM = 49,
        /// Group Identification (RFC 9838)
        IDG = 50,
        /// Group Security Association (RFC 9838)
        GSA = 51,
        /// Key Download (RFC 9838)
        KD = 52,
        /// Encrypted and Authenticated Fragment (RFC 7383)
        SKF = 53,
        /// Puzzle Solution (RFC 8019)
        PS = 54,
    }
}

registry! {
    /// Security Protocol Identifiers (RFC 7296 §3.3.1).
    pub struct ProtocolId(u8) {
        /// No protocol (an empty SPI in Notify/Delete)
        NONE = 0,
        IKE = 1,
        AH = 2,
        ESP = 3,
        FC_ESP_HEADER = 4,
        FC_CT_AUTHENTICATION = 5,
        GIKE_UPDATE = 6,
    }
}

registry! {
    /// Transform Types (RFC 7296 §3.3.2, RFC 9370).
    pub struct TransformType(u8) {
        /// Encryption Algorithm
        ENCR = 1,
        /// Pseudorandom Function
        PRF = 2,
        /// Integrity Algorithm
        INTEG = 3,
        /// Key Exchange Method (formerly Diffie-Hellman Group)
        KE = 4,
        /// Sequence Numbers (formerly Extended Sequence Numbers)
        ESN = 5,
        /// Additional Key Exchange 1 (RFC 9370)
        ADDKE1 = 6,
        /// Additional Key Exchange 2
        ADDKE2 = 7,
        /// Additional Key Exchange 3
        ADDKE3 = 8,
        /// Additional Key Exchange 4
        ADDKE4 = 9,
        /// Additional Key Exchange 5
        ADDKE5 = 10,
        /// Additional Key Exchange 6
        ADDKE6 = 11,
        /// Additional Key Exchange 7
        ADDKE7 = 12,
        /// Key Wrap Algorithm (RFC 9838)
        KWA = 13,
        /// Group Controller Authentication Method (RFC 9838)
        GCAUTH = 14,
    }
}

registry! {
    /// Transform Type 1 - Encryption Algorithm Transform IDs.
    pub struct EncrId(u16) {
        DES_IV64 = 1,
        DES = 2,
        TRIPLE_DES = 3,
        RC5 = 4,
        IDEA = 5,
        CAST = 6,
        BLOWFISH = 7,
        TRIPLE_IDEA = 8,
        DES_IV32 = 9,
        NULL = 11,
        AES_CBC = 12,
        AES_CTR = 13,
        AES_CCM_8 = 14,
        AES_CCM_12 = 15,
        AES_CCM_16 = 16,
        AES_GCM_8 = 18,
        AES_GCM_12 = 19,
        AES_GCM_16 = 20,
        NULL_AUTH_AES_GMAC = 21,
        CAMELLIA_CBC = 23,
        CAMELLIA_CTR = 24,
        CAMELLIA_CCM_8 = 25,
        CAMELLIA_CCM_12 = 26,
        CAMELLIA_CCM_16 = 27,
        CHACHA20_POLY1305 = 28,
        AES_CCM_8_IIV = 29,
        AES_GCM_16_IIV = 30,
        CHACHA20_POLY1305_IIV = 31,
        KUZNYECHIK_MGM_KTREE = 32,
        MAGMA_MGM_KTREE = 33,
        KUZNYECHIK_MGM_MAC_KTREE = 34,
        MAGMA_MGM_MAC_KTREE = 35,
    }
}

registry! {
    /// Transform Type 2 - Pseudorandom Function Transform IDs.
    pub struct PrfId(u16) {
        HMAC_MD5 = 1,
        HMAC_SHA1 = 2,
        HMAC_TIGER = 3,
        AES128_XCBC = 4,
        HMAC_SHA2_256 = 5,
        HMAC_SHA2_384 = 6,
        HMAC_SHA2_512 = 7,
        AES128_CMAC = 8,
        HMAC_STREEBOG_512 = 9,
    }
}

registry! {
    /// Transform Type 3 - Integrity Algorithm Transform IDs.
    pub struct IntegId(u16) {
        NONE = 0,
        HMAC_MD5_96 = 1,
        HMAC_SHA1_96 = 2,
        DES_MAC = 3,
        KPDK_MD5 = 4,
        AES_XCBC_96 = 5,
        HMAC_MD5_128 = 6,
        HMAC_SHA1_160 = 7,
        AES_CMAC_96 = 8,
        AES_128_GMAC = 9,
        AES_192_GMAC = 10,
        AES_256_GMAC = 11,
        HMAC_SHA2_256_128 = 12,
        HMAC_SHA2_384_192 = 13,
        HMAC_SHA2_512_256 = 14,
    }
}

registry! {
    /// Transform Type 4 - Key Exchange Method Transform IDs (Diffie-Hellman groups).
    pub struct DhGroup(u16) {
        NONE = 0,
        MODP_768 = 1,
        MODP_1024 = 2,
        MODP_1536 = 5,
        MODP_2048 = 14,
        MODP_3072 = 15,
        MODP_4096 = 16,
        MODP_6144 = 17,
        MODP_8192 = 18,
        ECP_256 = 19,
        ECP_384 = 20,
        ECP_521 = 21,
        MODP_1024_160 = 22,
        MODP_2048_224 = 23,
        MODP_2048_256 = 24,
        ECP_192 = 25,
        ECP_224 = 26,
        BRAINPOOL_P224 = 27,
        BRAINPOOL_P256 = 28,
        BRAINPOOL_P384 = 29,
        BRAINPOOL_P512 = 30,
        CURVE25519 = 31,
        CURVE448 = 32,
        GOST3410_2012_256 = 33,
        GOST3410_2012_512 = 34,
        ML_KEM_512 = 35,
        ML_KEM_768 = 36,
        ML_KEM_1024 = 37,
    }
}

registry! {
    /// Transform Type 5 - Sequence Numbers Transform IDs.
    pub struct EsnId(u16) {
        /// 32-bit sequential numbers
        NO_ESN = 0,
        /// Extended (64-bit) sequential numbers
        ESN = 1,
    }
}

registry! {
    /// IKEv2 Transform Attribute Types (RFC 7296 §3.3.5).
    pub struct TransformAttrType(u16) {
        KEY_LENGTH = 14,
    }
}

registry! {
    /// IKEv2 Identification Payload ID Types (RFC 7296 §3.5).
    pub struct IdType(u8) {
        IPV4_ADDR = 1,
        FQDN = 2,
        RFC822_ADDR = 3,
        IPV6_ADDR = 5,
        DER_ASN1_DN = 9,
        DER_ASN1_GN = 10,
        KEY_ID = 11,
        /// RFC 4595
        FC_NAME = 12,
        /// RFC 7619
        NULL = 13,
    }
}

registry! {
    /// IKEv2 Certificate Encodings (RFC 7296 §3.6, RFC 7670).
    pub struct CertEncoding(u8) {
        PKCS7_X509 = 1,
        PGP = 2,
        DNS_SIGNED_KEY = 3,
        X509_SIGNATURE = 4,
        KERBEROS_TOKEN = 6,
        CRL = 7,
        ARL = 8,
        SPKI = 9,
        X509_ATTRIBUTE = 10,
        RAW_RSA_KEY = 11,
        HASH_URL_X509_CERT = 12,
        HASH_URL_X509_BUNDLE = 13,
        /// RFC 4806
        OCSP_CONTENT = 14,
        /// RFC 7670
        RAW_PUBLIC_KEY = 15,
    }
}

registry! {
    /// IKEv2 Authentication Method (RFC 7296 §3.8, RFC 4754, RFC 7427, RFC 7619).
    pub struct AuthMethod(u8) {
        RSA_SIG = 1,
        SHARED_KEY_MIC = 2,
        DSS_SIG = 3,
        ECDSA_SHA256_P256 = 9,
        ECDSA_SHA384_P384 = 10,
        ECDSA_SHA512_P521 = 11,
        /// RFC 6467
        GSPAM = 12,
        /// RFC 7619
        NULL_AUTH = 13,
        /// RFC 7427
        DIGITAL_SIGNATURE = 14,
    }
}

registry! {
    /// IKEv2 Notify Message Types: error types (0..16383) and status types (16384..).
    pub struct NotifyType(u16) {
        // Error types
        UNSUPPORTED_CRITICAL_PAYLOAD = 1,
        INVALID_IKE_SPI = 4,
        INVALID_MAJOR_VERSION = 5,
        INVALID_SYNTAX = 7,
        INVALID_MESSAGE_ID = 9,
        INVALID_SPI = 11,
        NO_PROPOSAL_CHOSEN = 14,
        INVALID_KE_PAYLOAD = 17,
        AUTHENTICATION_FAILED = 24,
        SINGLE_PAIR_REQUIRED = 34,
        NO_ADDITIONAL_SAS = 35,
        INTERNAL_ADDRESS_FAILURE = 36,
        FAILED_CP_REQUIRED = 37,
        TS_UNACCEPTABLE = 38,
        INVALID_SELECTORS = 39,
        /// RFC 4555
        UNACCEPTABLE_ADDRESSES = 40,
        /// RFC 4555
        UNEXPECTED_NAT_DETECTED = 41,
        /// RFC 5026
        USE_ASSIGNED_HOA = 42,
        TEMPORARY_FAILURE = 43,
        CHILD_SA_NOT_FOUND = 44,
        /// RFC 9838
        INVALID_GROUP_ID = 45,
        /// RFC 9838
        AUTHORIZATION_FAILED = 46,
        /// RFC 9838
        STATE_NOT_FOUND = 47,
        /// RFC 9838
        TS_MAX_QUEUE = 48,
        /// RFC 9838
        REGISTRATION_FAILED = 49,
        // Status types
        INITIAL_CONTACT = 16384,
        SET_WINDOW_SIZE = 16385,
        ADDITIONAL_TS_POSSIBLE = 16386,
        IPCOMP_SUPPORTED = 16387,
        NAT_DETECTION_SOURCE_IP = 16388,
        NAT_DETECTION_DESTINATION_IP = 16389,
        COOKIE = 16390,
        USE_TRANSPORT_MODE = 16391,
        HTTP_CERT_LOOKUP_SUPPORTED = 16392,
        REKEY_SA = 16393,
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
        NON_FIRST_FRAGMENTS_ALSO = 16395,
        MOBIKE_SUPPORTED = 16396,
        ADDITIONAL_IP4_ADDRESS = 16397,
        ADDITIONAL_IP6_ADDRESS = 16398,
        NO_ADDITIONAL_ADDRESSES = 16399,
        UPDATE_SA_ADDRESSES = 16400,
        COOKIE2 = 16401,
        NO_NATS_ALLOWED = 16402,
        AUTH_LIFETIME = 16403,
        MULTIPLE_AUTH_SUPPORTED = 16404,
        ANOTHER_AUTH_FOLLOWS = 16405,
        REDIRECT_SUPPORTED = 16406,
        REDIRECT = 16407,
        REDIRECTED_FROM = 16408,
        TICKET_LT_OPAQUE = 16409,
        TICKET_REQUEST = 16410,
        TICKET_ACK = 16411,
        TICKET_NACK = 16412,
        TICKET_OPAQUE = 16413,
        LINK_ID = 16414,
        USE_WESP_MODE = 16415,
        ROHC_SUPPORTED = 16416,
        EAP_ONLY_AUTHENTICATION = 16417,
        CHILDLESS_IKEV2_SUPPORTED = 16418,
        QUICK_CRASH_DETECTION = 16419,
        IKEV2_MESSAGE_ID_SYNC_SUPPORTED = 16420,
        IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED = 16421,
        IKEV2_MESSAGE_ID_SYNC = 16422,
        IPSEC_REPLAY_COUNTER_SYNC = 16423,
        SECURE_PASSWORD_METHODS = 16424,
        PSK_PERSIST = 16425,
        PSK_CONFIRM = 16426,
        ERX_SUPPORTED = 16427,
        IFOM_CAPABILITY = 16428,
        GROUP_SENDER = 16429,
        /// RFC 7383
        IKEV2_FRAGMENTATION_SUPPORTED = 16430,
        /// RFC 7427
        SIGNATURE_HASH_ALGORITHMS = 16431,
        CLONE_IKE_SA_SUPPORTED = 16432,
        CLONE_IKE_SA = 16433,
        PUZZLE = 16434,
        USE_PPK = 16435,
        PPK_IDENTITY = 16436,
        NO_PPK_AUTH = 16437,
        /// RFC 9242
        INTERMEDIATE_EXCHANGE_SUPPORTED = 16438,
        /// RFC 8983
        IP4_ALLOWED = 16439,
        /// RFC 8983
        IP6_ALLOWED = 16440,
        /// RFC 9370
        ADDITIONAL_KEY_EXCHANGE = 16441,
        /// RFC 9347
        USE_AGGFRAG = 16442,
        /// RFC 9593
        SUPPORTED_AUTH_METHODS = 16443,
        /// RFC 9611
        SA_RESOURCE_INFO = 16444,
        /// RFC 9867
        USE_PPK_INT = 16445,
        /// RFC 9867
        PPK_IDENTITY_KEY = 16446,
        IKE_SA_INIT_FULL_TRANSCRIPT_AUTH = 16447,
    }
}

impl NotifyType {
    /// Error types are 0..=16383 (RFC 7296 §3.10.1): an unrecognised error type in a
    /// response means the request failed.
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

registry! {
    /// Traffic Selector Types (RFC 7296 §3.13.1, RFC 4595, RFC 9478).
    pub struct TsType(u8) {
        IPV4_ADDR_RANGE = 7,
        IPV6_ADDR_RANGE = 8,
        FC_ADDR_RANGE = 9,
        SECLABEL = 10,
    }
}

registry! {
    /// IKEv2 Configuration Payload CFG Types (RFC 7296 §3.15).
    pub struct CfgType(u8) {
        CFG_REQUEST = 1,
        CFG_REPLY = 2,
        CFG_SET = 3,
        CFG_ACK = 4,
    }
}

registry! {
    /// IKEv2 Configuration Payload Attribute Types (RFC 7296 §3.15.1 and later RFCs).
    pub struct CfgAttrType(u16) {
        INTERNAL_IP4_ADDRESS = 1,
        INTERNAL_IP4_NETMASK = 2,
        INTERNAL_IP4_DNS = 3,
        INTERNAL_IP4_NBNS = 4,
        INTERNAL_IP4_DHCP = 6,
        APPLICATION_VERSION = 7,
        INTERNAL_IP6_ADDRESS = 8,
        INTERNAL_IP6_DNS = 10,
        INTERNAL_IP6_DHCP = 12,
        INTERNAL_IP4_SUBNET = 13,
        SUPPORTED_ATTRIBUTES = 14,
        INTERNAL_IP6_SUBNET = 15,
        MIP6_HOME_PREFIX = 16,
        INTERNAL_IP6_LINK = 17,
        INTERNAL_IP6_PREFIX = 18,
        HOME_AGENT_ADDRESS = 19,
        P_CSCF_IP4_ADDRESS = 20,
        P_CSCF_IP6_ADDRESS = 21,
        FTT_KAT = 22,
        EXTERNAL_SOURCE_IP4_NAT_INFO = 23,
        TIMEOUT_PERIOD_FOR_LIVENESS_CHECK = 24,
        INTERNAL_DNS_DOMAIN = 25,
        INTERNAL_DNSSEC_TA = 26,
        ENCDNS_IP4 = 27,
        ENCDNS_IP6 = 28,
        ENCDNS_DIGEST_INFO = 29,
    }
}
