//! Revocation: CRLs made by rcgen in the test, checked during chain validation.

use std::time::Duration;

use ferrosec_crypto::crl::Crl;
use ferrosec_crypto::x509::{self, Certificate, ChainError};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    CrlDistributionPoint, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber, date_time_ymd,
};

/// 2026-01-01T00:00:00Z.
const NOW: u64 = 1_767_225_600;
const ALG: &rcgen::SignatureAlgorithm = &rcgen::PKCS_ECDSA_P256_SHA256;

fn ca(
    name: &str,
    parent: Option<&CertifiedIssuer<'static, KeyPair>>,
) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate_for(ALG).unwrap();
    match parent {
        None => CertifiedIssuer::self_signed(p, key).unwrap(),
        Some(i) => CertifiedIssuer::signed_by(p, key, i).unwrap(),
    }
}

fn leaf(cn: &str, serial: u64, issuer: &CertifiedIssuer<'static, KeyPair>) -> Certificate {
    let mut p = CertificateParams::new(vec![format!("{cn}.example.net")]).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.serial_number = Some(SerialNumber::from(serial));
    p.crl_distribution_points = vec![CrlDistributionPoint {
        uris: vec!["http://192.0.2.80/ca.crl".into()],
    }];
    let c = p
        .signed_by(&KeyPair::generate_for(ALG).unwrap(), issuer)
        .unwrap();
    Certificate::from_der(c.der()).unwrap()
}

/// A CRL of `issuer` revoking `serials` (keyCompromise), valid from 2025-12-01 for `days`.
fn crl(issuer: &CertifiedIssuer<'static, KeyPair>, serials: &[u64], days: u64) -> Crl {
    let this = date_time_ymd(2025, 12, 1);
    let params = CertificateRevocationListParams {
        this_update: this,
        next_update: this + Duration::from_secs(days * 86_400),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: date_time_ymd(2025, 12, 2),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let pem = params.signed_by(issuer).unwrap().pem().unwrap();
    let crls = Crl::from_pem_or_der(pem.as_bytes()).unwrap();
    assert_eq!(crls.len(), 1);
    crls.into_iter().next().unwrap()
}

fn anchor(c: &CertifiedIssuer<'static, KeyPair>) -> Certificate {
    Certificate::from_der(c.der()).unwrap()
}

#[test]
fn a_revoked_peer_certificate_fails_with_serial_date_and_reason() {
    let root = ca("Root CA", None);
    let bad = leaf("bad", 0x1234, &root);
    let good = leaf("good", 0x1235, &root);
    let list = crl(&root, &[0x1234], 30);
    assert_eq!(list.revoked_count(), 1);
    assert_eq!(list.issuer(), "CN=Root CA");
    assert!(list.is_signed_by(&anchor(&root)));
    let anchors = [anchor(&root)];
    let crls = [list];
    let e = x509::check_chain(&bad, &[], &anchors, &crls, NOW).unwrap_err();
    assert!(matches!(e, ChainError::Revoked { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "peer certificate \"CN=bad\" serial 12:34 revoked by \"CN=Root CA\" on 2025-12-02 \
         00:00:00 UTC (reason keyCompromise)"
    );
    x509::check_chain(&good, &[], &anchors, &crls, NOW).unwrap();
    // Without the CRL, the revoked certificate validates: the CRL is what refuses it.
    x509::check_chain(&bad, &[], &anchors, &[], NOW).unwrap();
}

#[test]
fn a_revoked_intermediate_fails_the_chain_below_it() {
    let root = ca("Root CA", None);
    let inter = ca("Intermediate CA", Some(&root));
    let ee = leaf("gw", 7, &inter);
    let inter_cert = anchor(&inter);
    // Revoke the intermediate by the exact octets of its serial (rcgen's is random).
    let this = date_time_ymd(2025, 12, 1);
    let params = CertificateRevocationListParams {
        this_update: this,
        next_update: this + Duration::from_secs(30 * 86_400),
        crl_number: SerialNumber::from(2u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from_slice(&inter_cert.serial()),
            revocation_time: date_time_ymd(2025, 12, 3),
            reason_code: Some(RevocationReason::CaCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let list = Crl::from_der(params.signed_by(&root).unwrap().der()).unwrap();
    let anchors = [anchor(&root)];
    let e = x509::check_chain(
        &ee,
        std::slice::from_ref(&inter_cert),
        &anchors,
        &[list],
        NOW,
    )
    .unwrap_err();
    let ChainError::Revoked { role, subject, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        (*role, subject.as_str()),
        ("intermediate certificate", "CN=Intermediate CA")
    );
    // A CRL of the intermediate that does not list the end entity changes nothing.
    let empty = crl(&inter, &[8], 30);
    x509::check_chain(&ee, &[inter_cert], &anchors, &[empty], NOW).unwrap();
}

#[test]
fn a_stale_crl_is_still_used_and_a_foreign_one_is_not_signed_by_the_ca() {
    let root = ca("Root CA", None);
    let bad = leaf("bad", 0x99, &root);
    // nextUpdate 2025-12-11, a month before NOW: still applied (strongSwan's behaviour).
    let stale = crl(&root, &[0x99], 10);
    assert!(stale.next_update().unwrap() < i64::try_from(NOW).unwrap());
    let e = x509::check_chain(&bad, &[], &[anchor(&root)], &[stale], NOW).unwrap_err();
    assert!(matches!(e, ChainError::Revoked { .. }), "{e:?}");
    // A CRL by another CA of the same name: not signed by ours.
    let impostor = ca("Root CA", None);
    let forged = crl(&impostor, &[0x99], 30);
    assert!(!forged.is_signed_by(&anchor(&root)));
    assert!(forged.is_signed_by(&anchor(&impostor)));
}

#[test]
fn crl_files_parse_as_pem_or_der_and_garbage_is_an_error() {
    let root = ca("Root CA", None);
    let list = crl(&root, &[1, 2, 3], 30);
    assert_eq!(list.revoked_count(), 3);
    assert_eq!(list.this_update(), 1_764_547_200);
    assert_eq!(list.next_update(), Some(1_764_547_200 + 30 * 86_400));
    let again = Crl::from_pem_or_der(list.der()).unwrap();
    assert_eq!(again, std::slice::from_ref(&list));
    assert!(Crl::from_der(&list.der()[..list.der().len() - 1]).is_err());
    assert!(Crl::from_pem_or_der(b"not a crl").unwrap().is_empty());
    assert!(Crl::from_der(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
    // A certificate's distribution point is read for fetching.
    let c = leaf("gw", 5, &root);
    assert_eq!(c.crl_urls(), ["http://192.0.2.80/ca.crl"]);
}

#[test]
fn a_crl_is_signed_only_by_a_ca_allowed_to_sign_crls() {
    // A CA whose keyUsage lacks cRLSign (a certificate of the same name and key as the CA
    // that signed the CRL): the CRL would fail every validation in webpki, so it is refused
    // when loaded, in words.
    let ca = ca("KU CA", None);
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "KU CA");
    let same_key = KeyPair::try_from(ca.key().serialize_der()).unwrap();
    let no_crl_sign = CertifiedIssuer::self_signed(p, same_key).unwrap();
    let list = crl(&ca, &[1], 30);
    assert_eq!(list.check_signed_by(&anchor(&ca)), Ok(()));
    let e = list.check_signed_by(&anchor(&no_crl_sign)).unwrap_err();
    assert!(e.contains("does not include cRLSign"), "{e}");
    // Another CA's name.
    let e = list.check_signed_by(&anchor(&ca_rsa())).unwrap_err();
    assert!(e.contains("not by \"CN=RSA CA\""), "{e}");
    // An RSA CA's CRL verifies with webpki's RSA algorithms.
    let rsa = ca_rsa();
    assert_eq!(crl(&rsa, &[1], 30).check_signed_by(&anchor(&rsa)), Ok(()));
}

fn ca_rsa() -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "RSA CA");
    CertifiedIssuer::self_signed(p, KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap())
        .unwrap()
}
