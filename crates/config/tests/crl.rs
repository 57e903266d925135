//! `certificate.crl`: CRL files read with the certificates, each signed by a configured CA, a
//! stale one a warning, every problem naming the gateway, the field and the file.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ferrosec_config::{ConfigError, Diagnostic, GatewayAuth, Loaded};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
    date_time_ymd,
};

/// 2026-01-01T00:00:00Z, the tests' clock.
const NOW: u64 = 1_767_225_600;
const P256: &rcgen::SignatureAlgorithm = &rcgen::PKCS_ECDSA_P256_SHA256;

const CONF: &str = r#"
[ike-crypto-profile.p]
dh-group = ["group19"]
authentication = ["sha256"]
encryption = ["aes-128-gcm"]
[ike-gateway.hq]
local-address = "198.51.100.1"
peer-address = "198.51.100.2"
certificate = { local = "hq.pem", key = "hq.key", ca = ["ca.pem"], crl = ["ca.crl"] }
ike-crypto-profile = "p"
[tunnel-interface."tunnel.1"]
zone = "vpn"
[zone.vpn]
[ipsec-tunnel.t1]
tunnel-interface = "tunnel.1"
ike-gateway = "hq"
ipsec-crypto-profile = "Suite-B-GCM-128"
"#;

type Issuer = CertifiedIssuer<'static, KeyPair>;

fn ca(name: &str) -> Issuer {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate_for(P256).unwrap()).unwrap()
}

/// A CRL of `by` listing serials 7 and 9, issued 2025-12-01, next update on the date given.
fn crl_pem(by: &Issuer, next: (i32, u8, u8)) -> String {
    CertificateRevocationListParams {
        this_update: date_time_ymd(2025, 12, 1),
        next_update: date_time_ymd(next.0, next.1, next.2),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: [7u64, 9]
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: date_time_ymd(2025, 12, 2),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(by)
    .unwrap()
    .pem()
    .unwrap()
}

struct Pki {
    dir: tempfile::TempDir,
    root: Issuer,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let root = ca("Example Root CA");
        let key = KeyPair::generate_for(P256).unwrap();
        let mut p = CertificateParams::new(vec!["hq.example.net".to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, "hq");
        let cert = p.signed_by(&key, &root).unwrap();
        let pki = Pki { dir, root };
        pki.write("hq.pem", cert.pem().as_bytes());
        pki.write("hq.key", key.serialize_pem().as_bytes());
        pki.write("ca.pem", pki.root.pem().as_bytes());
        pki
    }

    fn write(&self, name: &str, data: &[u8]) {
        std::fs::write(self.dir.path().join(name), data).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn load(&self) -> Result<Loaded, ConfigError> {
        self.write("vpn.toml", CONF.as_bytes());
        ferrosec_config::load_file_at(
            &self.path("vpn.toml"),
            SystemTime::UNIX_EPOCH + Duration::from_secs(NOW),
        )
    }

    /// The one error, which names the gateway and certificate.crl.
    fn error(&self) -> String {
        let errors: Vec<Diagnostic> = match self.load() {
            Err(ConfigError::Invalid { errors, .. }) => errors,
            other => panic!("expected errors, got {other:?}"),
        };
        assert_eq!(errors.len(), 1, "{errors:#?}");
        let e = &errors[0];
        assert_eq!(
            (e.kind.as_str(), e.name.as_deref(), e.field.as_deref()),
            ("ike-gateway", Some("hq"), Some("certificate.crl")),
            "{e}"
        );
        assert!(e.fix.is_some() && e.position.is_some(), "{e}");
        e.to_string()
    }
}

fn credentials(loaded: &Loaded) -> ferrosec_config::Credentials {
    match &loaded.config.ike_gateways["hq"].authentication {
        GatewayAuth::Certificate(c) => c.credentials.clone().expect("files were read"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_crl_of_the_ca_loads_as_pem_or_der() {
    let pki = Pki::new();
    let pem = crl_pem(&pki.root, (2026, 2, 1));
    pki.write("ca.crl", pem.as_bytes());
    let loaded = pki.load().unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let GatewayAuth::Certificate(c) = &loaded.config.ike_gateways["hq"].authentication else {
        panic!()
    };
    assert_eq!(c.crl, [pki.path("ca.crl")]);
    assert!(!c.crl_fetch);
    let cr = credentials(&loaded);
    let crls: Vec<_> = cr.crls().collect();
    assert_eq!(crls.len(), 1);
    assert_eq!(crls[0].issuer(), "CN=Example Root CA");
    assert_eq!(crls[0].revoked_count(), 2);

    // The same CRL as DER.
    let der = ferrosec_crypto::crl::Crl::from_pem_or_der(pem.as_bytes()).unwrap()[0]
        .der()
        .to_vec();
    pki.write("ca.crl", &der);
    let again = credentials(&pki.load().unwrap());
    assert_eq!(again, cr, "the same CRL");

    // A new CRL is a change the reload sees.
    pki.write("ca.crl", crl_pem(&pki.root, (2026, 3, 1)).as_bytes());
    assert_ne!(credentials(&pki.load().unwrap()), cr);
}

#[test]
fn a_crl_not_signed_by_a_configured_ca_is_an_error_naming_the_file() {
    let pki = Pki::new();
    // Another CA of another name.
    pki.write("ca.crl", crl_pem(&ca("Other CA"), (2026, 2, 1)).as_bytes());
    let e = pki.error();
    assert!(
        e.contains("ca.crl")
            && e.contains("(issuer \"CN=Other CA\") is not signed by one of the CA certificates")
            && e.contains("they are: \"CN=Example Root CA\""),
        "{e}"
    );
    // A CA of the same name but another key: the signature does not verify.
    pki.write(
        "ca.crl",
        crl_pem(&ca("Example Root CA"), (2026, 2, 1)).as_bytes(),
    );
    let e = pki.error();
    assert!(e.contains("signature does not verify"), "{e}");
}

#[test]
fn an_unreadable_or_unparsable_crl_is_an_error() {
    let pki = Pki::new();
    let e = pki.error();
    assert!(
        e.contains("cannot read CRL file") && e.contains("ca.crl"),
        "{e}"
    );
    pki.write(
        "ca.crl",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let e = pki.error();
    assert!(e.contains("holds no CRL"), "{e}");
    pki.write("ca.crl", &[0x30, 0x03, 0x02, 0x01, 0x00]);
    let e = pki.error();
    assert!(
        e.contains("malformed CRL") || e.contains("unsupported CRL"),
        "{e}"
    );
}

#[test]
fn a_stale_crl_is_a_warning_and_still_used() {
    let pki = Pki::new();
    pki.write("ca.crl", crl_pem(&pki.root, (2025, 12, 15)).as_bytes());
    let loaded = pki.load().unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let w = loaded.warnings[0].to_string();
    assert!(
        w.contains("ike-gateway \"hq\"")
            && w.contains("field \"certificate.crl\"")
            && w.contains("is past its next update (2025-12-15 00:00:00 UTC")
            && w.contains("still used"),
        "{w}"
    );
    assert_eq!(credentials(&loaded).crls().count(), 1);
}
