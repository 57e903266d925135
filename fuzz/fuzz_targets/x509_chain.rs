//! Certificates and CRLs from the peer (CERT payload bytes, fetched CRLs): parsing, every field
//! the engine reads, and chain validation with revocation against a fixed trust anchor must
//! never panic, whatever the bytes.
//!
//! Input: a byte with the number of certificates (mod 6), a byte with the number of CRLs (mod
//! 3), then each as a big-endian u16 length and its DER; what is left is also read as a PEM
//! file of certificates and of CRLs. The seeds (fuzz/seeds/x509_chain/) hold a chain through
//! an intermediate under fuzz/fixtures/x509_anchor.der, with its CRLs, one revoking the leaf.
#![no_main]

use ferrosec_crypto::crl::Crl;
use ferrosec_crypto::x509::{self, Certificate};
use libfuzzer_sys::fuzz_target;

/// 2026-01-01T00:00:00Z: inside the seeds' validity.
const NOW: u64 = 1_767_225_600;

/// The next length-prefixed chunk.
fn chunk<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    let (c, rest) = (rest.get(..len)?, rest.get(len..)?);
    *data = rest;
    Some(c)
}

fn read_all(c: &Certificate) {
    let _ = (c.subject(), c.issuer(), c.subject_der(), c.issuer_der());
    let _ = (
        c.subject_alt_names(),
        c.public_key(),
        c.validity(),
        c.key_kind(),
    );
    let _ = (c.is_ca(), c.spki_sha1(), c.sha1(), c.serial(), c.crl_urls());
}

fuzz_target!(|data: &[u8]| {
    let anchor = Certificate::from_der(include_bytes!("../fixtures/x509_anchor.der"))
        .expect("the fixture is a certificate");
    let Some((&[n_certs, n_crls], mut rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let mut certs = Vec::new();
    for _ in 0..n_certs % 6 {
        let Some(der) = chunk(&mut rest) else { break };
        if let Ok(c) = Certificate::from_der(der) {
            read_all(&c);
            certs.push(c);
        }
    }
    let mut crls = Vec::new();
    for _ in 0..n_crls % 3 {
        let Some(der) = chunk(&mut rest) else { break };
        if let Ok(l) = Crl::from_der(der) {
            let _ = (l.issuer(), l.issuer_der(), l.this_update(), l.next_update());
            let _ = (l.revoked_count(), l.is_signed_by(&anchor));
            for c in &certs {
                let _ = l.entry(&c.serial());
                let _ = l.is_signed_by(c);
            }
            crls.push(l);
        }
    }
    if let Ok(pem) = Certificate::from_pem(rest) {
        pem.iter().for_each(read_all);
    }
    if let Ok(pem) = Crl::from_pem_or_der(rest) {
        for l in &pem {
            let _ = (l.issuer(), l.revoked_count(), l.is_signed_by(&anchor));
        }
    }
    if let Some((ee, inter)) = certs.split_first() {
        match x509::check_chain(ee, inter, std::slice::from_ref(&anchor), &crls, NOW) {
            Ok(()) => {}
            // Every refusal has words.
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
});
