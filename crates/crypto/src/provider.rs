//! The provider: algorithm lookup by negotiated transform ID (STYLE.md 8).

use crate::kex;
use crate::{Encryption, Error, EspSuite, Integrity, KeyExchangeAlgorithm, Prf};

/// The table of algorithms the engines negotiate from. The engines hold transform IDs and ask
/// the provider; they never name a backend.
///
/// `Provider::default()` is the aws-lc-rs + RustCrypto provider with every algorithm of the
/// specification (SPEC R-CFG-1, R-CFG-2).
#[derive(Debug, Clone, Copy, Default)]
pub struct Provider {
    _private: (),
}

impl Provider {
    /// The PRF for an IKEv2 PRF transform ID.
    pub fn prf(&self, id: u16) -> Result<Prf, Error> {
        Prf::from_id(id)
    }

    /// The integrity algorithm for an IKEv2 integrity transform ID (0 = NONE is an error here;
    /// AEAD suites simply have no integrity algorithm).
    pub fn integrity(&self, id: u16) -> Result<Integrity, Error> {
        Integrity::from_id(id)
    }

    /// The encryption algorithm for an encryption transform ID and its Key Length attribute
    /// (bits). Use with [`crate::IkeSkCrypter`] for IKE and [`Provider::esp`] for ESP.
    pub fn encryption(&self, id: u16, key_bits: Option<u16>) -> Result<Encryption, Error> {
        Encryption::from_id(id, key_bits)
    }

    /// An ESP suite from the negotiated encryption transform, key length and integrity
    /// transform (`None` or `Some(0)` for AEAD).
    pub fn esp(
        &self,
        encr: u16,
        key_bits: Option<u16>,
        integ: Option<u16>,
    ) -> Result<EspSuite, Error> {
        let e = Encryption::from_id(encr, key_bits)?;
        let i = match integ {
            None | Some(0) => None,
            Some(id) => Some(Integrity::from_id(id)?),
        };
        self.esp_suite(e, i)
    }

    /// An ESP suite from algorithms already looked up (what a Child SA carries once it is
    /// negotiated): `integ` is `None` exactly when `encr` is an AEAD.
    pub fn esp_suite(&self, encr: Encryption, integ: Option<Integrity>) -> Result<EspSuite, Error> {
        EspSuite::new(encr, integ)
    }

    /// The key exchange method for a group number.
    pub fn key_exchange(&self, group: u16) -> Result<&'static dyn KeyExchangeAlgorithm, Error> {
        kex::find(group).ok_or(Error::Unsupported("key exchange method"))
    }

    /// Every supported key exchange method, preferred first.
    pub fn key_exchanges(&self) -> &'static [&'static dyn KeyExchangeAlgorithm] {
        &kex::ALL
    }

    /// Every supported PRF, preferred first.
    pub fn prfs(&self) -> &'static [Prf] {
        &Prf::ALL
    }

    /// Every supported integrity algorithm, preferred first.
    pub fn integrities(&self) -> &'static [Integrity] {
        &Integrity::ALL
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids;

    #[test]
    fn lookups() {
        let p = Provider::default();
        assert_eq!(p.prf(ids::prf::HMAC_SHA2_256).unwrap(), Prf::HmacSha256);
        assert!(p.prf(99).is_err());
        assert_eq!(
            p.integrity(ids::integ::HMAC_SHA2_256_128)
                .unwrap()
                .icv_len(),
            16
        );
        let s = p.esp(ids::encr::AES_GCM_16, Some(256), None).unwrap();
        assert_eq!(s.encr_keymat_len(), 36);
        assert!(p.esp(ids::encr::AES_CBC, Some(128), None).is_err());
        assert!(
            p.esp(
                ids::encr::AES_CBC,
                Some(128),
                Some(ids::integ::HMAC_SHA1_96)
            )
            .is_ok()
        );
        for g in [1u16, 2, 5, 14, 15, 16, 17, 18, 19, 20, 21, 31] {
            let k = p.key_exchange(g).unwrap();
            assert_eq!(k.group(), g);
        }
        assert!(p.key_exchange(22).is_err());
        assert_eq!(p.key_exchanges().len(), 15);
        let gcm = Encryption::AesGcm {
            key_len: 32,
            icv_len: 16,
        };
        assert_eq!(
            p.esp_suite(gcm, None).unwrap(),
            p.esp(ids::encr::AES_GCM_16, Some(256), Some(0)).unwrap()
        );
        let cbc = Encryption::AesCbc { key_len: 16 };
        assert!(p.esp_suite(cbc, None).is_err());
        assert!(p.esp_suite(gcm, Some(Integrity::HmacSha256_128)).is_err());
        assert_eq!(
            p.esp_suite(cbc, Some(Integrity::HmacSha1_96)).unwrap(),
            p.esp(
                ids::encr::AES_CBC,
                Some(128),
                Some(ids::integ::HMAC_SHA1_96)
            )
            .unwrap()
        );
    }
}
