//! ML-KEM (FIPS 203) as an IKEv2 key exchange method (RFC 9370, draft-ietf-ipsecme-ikev2-mlkem):
//! the initiator's KE data is its encapsulation key, the responder's is the ciphertext made
//! with it, and both get the 32-byte shared secret. On aws-lc-rs (`aws_lc_rs::kem`).
//!
//! Unlike the Diffie-Hellman groups, key generation and encapsulation draw their randomness
//! from aws-lc's own DRBG, not from the injected [`Rng`]: aws-lc-rs has no API to seed them.
//! The exchange is still correct and interoperable; only its KE bytes differ from run to run
//! with the same seed.

use aws_lc_rs::kem::{self, Algorithm, AlgorithmId, DecapsulationKey, EncapsulationKey};

use super::{ActiveKeyExchange, KeyExchangeAlgorithm, KeyExchangeResponse};
use crate::{Error, Rng, Secret, ids};

/// One ML-KEM parameter set.
pub(crate) struct MlKem {
    group: u16,
    name: &'static str,
    alg: &'static Algorithm<AlgorithmId>,
    /// Encapsulation key length (the initiator's KE data).
    ek_len: usize,
    /// Ciphertext length (the responder's KE data).
    ct_len: usize,
}

impl std::fmt::Debug for MlKem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

pub(crate) static ML_KEM_512: MlKem = MlKem {
    group: ids::ke::ML_KEM_512,
    name: "mlkem512",
    alg: &kem::ML_KEM_512,
    ek_len: 800,
    ct_len: 768,
};
pub(crate) static ML_KEM_768: MlKem = MlKem {
    group: ids::ke::ML_KEM_768,
    name: "mlkem768",
    alg: &kem::ML_KEM_768,
    ek_len: 1184,
    ct_len: 1088,
};
pub(crate) static ML_KEM_1024: MlKem = MlKem {
    group: ids::ke::ML_KEM_1024,
    name: "mlkem1024",
    alg: &kem::ML_KEM_1024,
    ek_len: 1568,
    ct_len: 1568,
};

impl KeyExchangeAlgorithm for MlKem {
    fn group(&self) -> u16 {
        self.group
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn public_len(&self) -> usize {
        self.ek_len
    }

    fn start(&self, _rng: &mut dyn Rng) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let this = find_static(self.group);
        let dk = DecapsulationKey::generate(self.alg).map_err(|_| Error::Backend)?;
        let ek = dk.encapsulation_key().map_err(|_| Error::Backend)?;
        let public = ek
            .key_bytes()
            .map_err(|_| Error::Backend)?
            .as_ref()
            .to_vec();
        Ok(Box::new(MlKemKeyExchange {
            kem: this,
            dk,
            public,
        }))
    }

    //= https://datatracker.ietf.org/doc/html/draft-ietf-ipsecme-ikev2-mlkem#section-2.2
    //# the responder ... encapsulates ... and sends the ciphertext in its KE payload
    fn respond(&self, _rng: &mut dyn Rng, peer: &[u8]) -> Result<KeyExchangeResponse, Error> {
        if peer.len() != self.ek_len {
            return Err(Error::InvalidPublicValue(
                "ML-KEM encapsulation key of the wrong length",
            ));
        }
        // FIPS 203 §7.2 input check (the modulus check) is done by aws-lc on import.
        let ek = EncapsulationKey::new(self.alg, peer)
            .map_err(|_| Error::InvalidPublicValue("ML-KEM encapsulation key rejected"))?;
        let (ct, ss) = ek.encapsulate().map_err(|_| Error::Backend)?;
        Ok(KeyExchangeResponse {
            public: ct.as_ref().to_vec(),
            shared: Secret::from_slice(ss.as_ref()),
        })
    }
}

fn find_static(group: u16) -> &'static MlKem {
    match group {
        ids::ke::ML_KEM_512 => &ML_KEM_512,
        ids::ke::ML_KEM_1024 => &ML_KEM_1024,
        _ => &ML_KEM_768,
    }
}

/// The initiator's decapsulation key (held inside AWS-LC, which clears it on free).
pub(crate) struct MlKemKeyExchange {
    kem: &'static MlKem,
    dk: DecapsulationKey<AlgorithmId>,
    public: Vec<u8>,
}

impl std::fmt::Debug for MlKemKeyExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlKemKeyExchange")
            .field("group", &self.kem.name)
            .finish_non_exhaustive()
    }
}

impl ActiveKeyExchange for MlKemKeyExchange {
    fn group(&self) -> u16 {
        self.kem.group
    }

    fn public_key(&self) -> &[u8] {
        &self.public
    }

    fn complete(&self, peer: &[u8]) -> Result<Secret, Error> {
        if peer.len() != self.kem.ct_len {
            return Err(Error::InvalidPublicValue(
                "ML-KEM ciphertext of the wrong length",
            ));
        }
        // ML-KEM decapsulation never fails on a well-sized ciphertext (implicit rejection:
        // a tampered one gives an unrelated secret, and the next ICV check fails).
        let ss = self
            .dk
            .decapsulate(peer.into())
            .map_err(|_| Error::InvalidPublicValue("ML-KEM ciphertext rejected"))?;
        Ok(Secret::from_slice(ss.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kex::find;

    struct NoRng;
    impl Rng for NoRng {
        fn fill(&mut self, _buf: &mut [u8]) {
            unreachable!("ML-KEM draws from aws-lc's DRBG")
        }
    }

    #[test]
    fn initiator_sends_the_encapsulation_key_responder_the_ciphertext_and_both_agree() {
        for (group, ek_len, ct_len) in [(35u16, 800, 768), (36, 1184, 1088), (37, 1568, 1568)] {
            let k = find(group).unwrap();
            assert_eq!(k.public_len(), ek_len);
            let i = k.start(&mut NoRng).unwrap();
            assert_eq!(i.group(), group);
            assert_eq!(
                i.public_key().len(),
                ek_len,
                "{k:?}: KEi is the encapsulation key"
            );
            let r = k.respond(&mut NoRng, i.public_key()).unwrap();
            assert_eq!(r.public.len(), ct_len, "{k:?}: KEr is the ciphertext");
            let s = i.complete(&r.public).unwrap();
            assert_eq!(s.expose().len(), 32);
            assert_eq!(s, r.shared, "{k:?}");
        }
    }

    #[test]
    fn wrong_lengths_are_refused_and_a_tampered_ciphertext_gives_another_secret() {
        let k = find(ids::ke::ML_KEM_768).unwrap();
        let i = k.start(&mut NoRng).unwrap();
        assert!(matches!(
            k.respond(&mut NoRng, &i.public_key()[1..]),
            Err(Error::InvalidPublicValue(_))
        ));
        let r = k.respond(&mut NoRng, i.public_key()).unwrap();
        assert!(matches!(
            i.complete(&r.public[..1000]),
            Err(Error::InvalidPublicValue(_))
        ));
        let mut bad = r.public.clone();
        bad[10] ^= 1;
        assert_ne!(i.complete(&bad).unwrap(), r.shared);
    }
}
