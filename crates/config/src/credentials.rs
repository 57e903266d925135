//! Certificate material of a gateway: read from its PEM files when the configuration is loaded.
//!
//! `certificate = { local = …, key = …, ca = […] }` names three kinds of file. The loader
//! ([`crate::load_file`], used by `ferrosec config check` and by the daemon at start and reload)
//! reads them and checks them here, so a certificate that cannot work is an error of the file,
//! naming the gateway, the field and the file, before anything runs:
//!
//! * `local`: our certificate, optionally followed by its intermediates (kept, and later sent,
//!   in that order); at most [`MAX_CHAIN_LEN`] certificates in all; ours must be valid now;
//! * `key`: its private key, PEM PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1
//!   (`EC PRIVATE KEY`), unencrypted; RSA 2048–4096 bits or ECDSA P-256/P-384/P-521; it must
//!   be the key of the certificate;
//! * `ca`: the trust anchors for the peer's certificate; one that has expired is a warning;
//! * `crl`: certificate revocation lists (PEM `X509 CRL` blocks or one DER CRL per file), each
//!   signed by one of the `ca` certificates (else an error); one past its nextUpdate is a
//!   warning and is still used, as strongSwan uses a stale CRL (a certificate it revokes stays
//!   revoked; one revoked since is not known).
//!
//! The clock is an input ([`check`] takes `now`), so tests set it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferrosec_crypto::crl::{Crl, MAX_CRL_SIZE};
use ferrosec_crypto::sig::{KeyKind, SigningKey};
use ferrosec_crypto::x509::{Certificate, MAX_CHAIN_LEN};
use zeroize::Zeroizing;

/// The loaded certificate material of a gateway: our certificate and its intermediates, our
/// private key, and the trust anchors.
///
/// The private key lives inside AWS-LC ([`SigningKey`]), which clears it when the last clone of
/// this value is dropped; the PEM text it was read from is zeroed as soon as it is parsed.
/// `Debug` prints the subjects and the key's type, never key material. Two values are equal
/// when they hold the same certificates and the same public key (so a reload notices a renewed
/// certificate or a new key).
#[derive(Clone)]
pub struct Credentials {
    inner: Arc<Inner>,
}

struct Inner {
    chain: Vec<Certificate>,
    key: SigningKey,
    trust_anchors: Vec<Certificate>,
    crls: Vec<(PathBuf, Crl)>,
}

impl Credentials {
    /// Our certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.inner.chain[0]
    }

    /// Its intermediates, in file order (the order they are sent in).
    pub fn intermediates(&self) -> &[Certificate] {
        &self.inner.chain[1..]
    }

    /// Our certificate followed by its intermediates.
    pub fn chain(&self) -> &[Certificate] {
        &self.inner.chain
    }

    /// Our private key.
    pub fn key(&self) -> &SigningKey {
        &self.inner.key
    }

    /// The trusted CA certificates, from every `ca` file in order.
    pub fn trust_anchors(&self) -> &[Certificate] {
        &self.inner.trust_anchors
    }

    /// The CRLs of every `crl` file in order.
    pub fn crls(&self) -> impl Iterator<Item = &Crl> {
        self.inner.crls.iter().map(|(_, c)| c)
    }

    /// The CRLs with the file each was read from.
    pub fn crl_files(&self) -> &[(PathBuf, Crl)] {
        &self.inner.crls
    }

    /// Our certificate's subject DN, as text (RFC 4514 style).
    pub fn subject(&self) -> String {
        self.certificate().subject()
    }

    /// Our certificate's subject DN as DER: the data of an ID_DER_ASN1_DN identity.
    pub fn subject_der(&self) -> Vec<u8> {
        self.certificate().subject_der()
    }
}

impl PartialEq for Credentials {
    fn eq(&self, other: &Credentials) -> bool {
        self.inner.chain == other.inner.chain
            && self.inner.trust_anchors == other.inner.trust_anchors
            && self.inner.crls == other.inner.crls
            && self.inner.key.public_key() == other.inner.key.public_key()
    }
}

impl Eq for Credentials {}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("certificate", &self.subject())
            .field(
                "intermediates",
                &self
                    .intermediates()
                    .iter()
                    .map(Certificate::subject)
                    .collect::<Vec<_>>(),
            )
            .field("key", &self.inner.key.kind().to_string())
            .field(
                "trust_anchors",
                &self
                    .trust_anchors()
                    .iter()
                    .map(Certificate::subject)
                    .collect::<Vec<_>>(),
            )
            .field("crls", &self.crls().collect::<Vec<_>>())
            .finish()
    }
}

/// One problem found in the files: the field (`certificate.local` …), what and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// `certificate.local`, `certificate.key`, `certificate.ca` or `certificate.crl`.
    pub(crate) field: &'static str,
    pub(crate) message: String,
    pub(crate) fix: String,
}

/// What reading a gateway's files gave.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    /// The material, when there was no error.
    pub(crate) credentials: Option<Credentials>,
    pub(crate) errors: Vec<Finding>,
    pub(crate) warnings: Vec<Finding>,
}

const LOCAL: &str = "certificate.local";
const KEY: &str = "certificate.key";
const CA: &str = "certificate.ca";
const CRL: &str = "certificate.crl";

const ALLOWED: &str = "RSA 2048–4096 bits and ECDSA P-256, P-384 and P-521";

/// Whether a key type and size is one ferrosec authenticates with.
pub(crate) fn allowed(kind: &KeyKind) -> bool {
    match kind {
        KeyKind::Rsa { bits } => (2048..=4096).contains(bits),
        KeyKind::Ecdsa { curve } => matches!(curve, 256 | 384 | 521),
        KeyKind::Ed25519 | KeyKind::Other(_) => false,
    }
}

/// `an RSA 2048-bit key`, `an ECDSA P-256 key`, `a key of type DSA`.
fn a_key(kind: &KeyKind) -> String {
    match kind {
        KeyKind::Other(s) => format!("a key of type {s}"),
        k => format!("an {k} key"),
    }
}

/// Reads and checks the files of a `certificate` (paths already resolved) at `now` (seconds
/// since the Unix epoch).
pub(crate) fn check(
    local: &Path,
    key_file: &Path,
    ca: &[PathBuf],
    crl: &[PathBuf],
    now: i64,
) -> Checked {
    let mut out = Checked::default();
    let chain = read_local(local, now, &mut out.errors);
    let key = read_key(key_file, &mut out.errors);
    if let (Some(chain), Some(k)) = (&chain, &key)
        && chain[0].public_key() != k.public_key()
    {
        out.errors.push(Finding {
            field: KEY,
            message: format!(
                "the private key in {} ({}) does not match the certificate in {} (subject \
                     \"{}\", {} key)",
                key_file.display(),
                k.kind(),
                local.display(),
                chain[0].subject(),
                chain[0].key_kind()
            ),
            fix: "give the key the certificate was issued for (or the certificate issued \
                      for this key)"
                .into(),
        });
    }
    let mut anchors = Vec::new();
    for path in ca {
        anchors.extend(read_ca(path, now, &mut out.errors, &mut out.warnings));
    }
    let mut crls = Vec::new();
    for path in crl {
        for c in read_crl(path, &anchors, now, &mut out.errors, &mut out.warnings) {
            crls.push((path.clone(), c));
        }
    }
    if out.errors.is_empty()
        && let (Some(chain), Some(key)) = (chain, key)
    {
        out.credentials = Some(Credentials {
            inner: Arc::new(Inner {
                chain,
                key,
                trust_anchors: anchors,
                crls,
            }),
        });
    }
    out
}

fn read(
    path: &Path,
    field: &'static str,
    what: &str,
    errors: &mut Vec<Finding>,
) -> Option<Zeroizing<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Some(Zeroizing::new(bytes)),
        Err(e) => {
            errors.push(Finding {
                field,
                message: format!("cannot read {what} file {}: {e}", path.display()),
                fix: "check the path (a relative path is taken from the configuration file's \
                      directory) and that ferrosec may read the file"
                    .into(),
            });
            None
        }
    }
}

fn read_local(path: &Path, now: i64, errors: &mut Vec<Finding>) -> Option<Vec<Certificate>> {
    let pem = read(path, LOCAL, "certificate", errors)?;
    let err = |message: String, fix: &str| Finding {
        field: LOCAL,
        message,
        fix: fix.to_owned(),
    };
    let chain = match Certificate::from_pem(&pem) {
        Ok(c) if c.is_empty() => {
            errors.push(err(
                format!(
                    "{} holds no certificate (no -----BEGIN CERTIFICATE----- block)",
                    path.display()
                ),
                "give a PEM file with our certificate first, then its intermediates",
            ));
            return None;
        }
        Ok(c) => c,
        Err(e) => {
            errors.push(err(
                format!("{}: {e}", path.display()),
                "give a PEM file with our certificate first, then its intermediates",
            ));
            return None;
        }
    };
    let before = errors.len();
    if chain.len() > MAX_CHAIN_LEN {
        errors.push(err(
            format!(
                "{} holds {} certificates (ours and {} intermediates); a chain has at most \
                 {MAX_CHAIN_LEN} (ours and {} intermediates)",
                path.display(),
                chain.len(),
                chain.len() - 1,
                MAX_CHAIN_LEN - 1
            ),
            "shorten the chain: leave out the intermediates the peer does not need (never the \
             root CA, which the peer has)",
        ));
    }
    let ours = &chain[0];
    let kind = ours.key_kind();
    if !allowed(&kind) {
        errors.push(err(
            format!(
                "the certificate in {} (subject \"{}\") has {}; ferrosec authenticates with \
                 {ALLOWED}",
                path.display(),
                ours.subject(),
                a_key(&kind)
            ),
            "issue the gateway a certificate with an RSA 2048–4096 or ECDSA P-256/P-384/P-521 \
             key",
        ));
    }
    for (i, c) in chain.iter().enumerate() {
        let which = if i == 0 {
            "our certificate".to_owned()
        } else {
            format!("intermediate {i}")
        };
        if let Some(problem) = out_of_date(c, now) {
            errors.push(err(
                format!(
                    "{which} in {} (subject \"{}\") {problem}",
                    path.display(),
                    c.subject()
                ),
                if i == 0 {
                    "renew the certificate (or, if it is not yet valid, check the system clock)"
                } else {
                    "put the issuing CA's current intermediate certificate in the file"
                },
            ));
        }
    }
    (errors.len() == before).then_some(chain)
}

/// `expired on …` / `is not valid before …`, with both dates, or `None` when valid at `now`.
fn out_of_date(c: &Certificate, now: i64) -> Option<String> {
    let (from, to) = c.validity();
    let range = format!("valid from {} to {}", date(from), date(to));
    if now > to {
        Some(format!("expired on {} ({range})", date(to)))
    } else if now < from {
        Some(format!(
            "is not valid yet: {range}, and it is {} now",
            date(now)
        ))
    } else {
        None
    }
}

fn read_key(path: &Path, errors: &mut Vec<Finding>) -> Option<SigningKey> {
    let pem = read(path, KEY, "private key", errors)?;
    match SigningKey::from_pem(&pem) {
        Ok(k) if allowed(&k.kind()) => Some(k),
        Ok(k) => {
            errors.push(Finding {
                field: KEY,
                message: format!(
                    "the private key in {} is {}; ferrosec authenticates with {ALLOWED}",
                    path.display(),
                    a_key(&k.kind())
                ),
                fix: "make an RSA 2048–4096 or ECDSA P-256/P-384/P-521 key and a certificate \
                      for it"
                    .into(),
            });
            None
        }
        Err(e) => {
            let reason = e.to_string();
            let reason = reason.strip_prefix("invalid key: ").unwrap_or(&reason);
            let fix = if reason.contains("RSA key") {
                "make an RSA 2048–4096 or ECDSA P-256/P-384/P-521 key and a certificate for it"
            } else if reason.contains("encrypted") {
                "store the key unencrypted (e.g. openssl pkey -in KEY -out KEY.plain) and \
                 restrict the file's permissions"
            } else {
                "give an unencrypted PEM private key: PKCS#8 (BEGIN PRIVATE KEY), PKCS#1 (BEGIN \
                 RSA PRIVATE KEY) or SEC1 (BEGIN EC PRIVATE KEY)"
            };
            let message = if reason.starts_with("no ") {
                format!("{} holds no private key: {reason}", path.display())
            } else {
                format!(
                    "the private key in {} is not usable: {reason}",
                    path.display()
                )
            };
            errors.push(Finding {
                field: KEY,
                message,
                fix: fix.into(),
            });
            None
        }
    }
}

fn read_ca(
    path: &Path,
    now: i64,
    errors: &mut Vec<Finding>,
    warnings: &mut Vec<Finding>,
) -> Vec<Certificate> {
    let finding = |message: String, fix: &str| Finding {
        field: CA,
        message,
        fix: fix.to_owned(),
    };
    let Some(pem) = read(path, CA, "CA certificate", errors) else {
        return Vec::new();
    };
    let certs = match Certificate::from_pem(&pem) {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => {
            errors.push(finding(
                format!(
                    "{} holds no certificate (no -----BEGIN CERTIFICATE----- block)",
                    path.display()
                ),
                "give the PEM file of the CA certificate that issued the peer's certificate \
                 (or its chain)",
            ));
            return Vec::new();
        }
        Err(e) => {
            errors.push(finding(
                format!("{}: {e}", path.display()),
                "give the PEM file of the CA certificate that issued the peer's certificate",
            ));
            return Vec::new();
        }
    };
    for c in &certs {
        if let Some(problem) = out_of_date(c, now) {
            warnings.push(finding(
                format!(
                    "the CA certificate in {} (subject \"{}\") {problem}; peer certificates \
                     that chain to it will be refused",
                    path.display(),
                    c.subject()
                ),
                "replace it with the CA's current certificate, or remove it from ca",
            ));
        }
    }
    certs
}

/// The CRLs of a `crl` file: each must be signed by one of `anchors`; one past its nextUpdate
/// is a warning (it is used all the same).
fn read_crl(
    path: &Path,
    anchors: &[Certificate],
    now: i64,
    errors: &mut Vec<Finding>,
    warnings: &mut Vec<Finding>,
) -> Vec<Crl> {
    let finding = |message: String, fix: &str| Finding {
        field: CRL,
        message,
        fix: fix.to_owned(),
    };
    let Some(bytes) = read(path, CRL, "CRL", errors) else {
        return Vec::new();
    };
    // PEM is a third larger than the DER it holds.
    if bytes.len() > MAX_CRL_SIZE * 4 / 3 + 4096 {
        errors.push(finding(
            format!(
                "{} has {} bytes; a CRL file may have at most {MAX_CRL_SIZE} bytes of DER",
                path.display(),
                bytes.len()
            ),
            "give the CRL of the CA that issued the peer's certificate (a delta or combined \
             CRL of many CAs is not taken)",
        ));
        return Vec::new();
    }
    let crls = match Crl::from_pem_or_der(&bytes) {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => {
            errors.push(finding(
                format!(
                    "{} holds no CRL (no -----BEGIN X509 CRL----- block, and it is not DER)",
                    path.display()
                ),
                "give the CA's CRL as PEM or DER (strongSwan: pki --signcrl; OpenSSL: openssl \
                 ca -gencrl)",
            ));
            return Vec::new();
        }
        Err(e) => {
            errors.push(finding(
                format!("{}: {e}", path.display()),
                "give the CA's CRL as PEM or DER: X.509 v2 with a nextUpdate, not a delta CRL",
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for c in crls {
        if !anchors.iter().any(|a| c.is_signed_by(a)) {
            // The CA certificates of the CRL's issuer name, and why each does not fit.
            let reasons: Vec<String> = anchors
                .iter()
                .filter(|a| a.subject_der() == c.issuer_der())
                .filter_map(|a| c.check_signed_by(a).err())
                .collect();
            let why = if reasons.is_empty() {
                format!(
                    "no CA certificate in ca has that subject (they are: {})",
                    anchors
                        .iter()
                        .map(|a| format!("\"{}\"", a.subject()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                reasons.join("; ")
            };
            errors.push(finding(
                format!(
                    "the CRL in {} (issuer \"{}\") is not signed by one of the CA certificates \
                     in ca: {why}",
                    path.display(),
                    c.issuer()
                ),
                "give the CRL of a CA listed in ca (or add that CA's certificate to ca)",
            ));
            continue;
        }
        if let Some(next) = c.next_update()
            && now >= next
        {
            warnings.push(finding(
                format!(
                    "the CRL in {} (issuer \"{}\") is past its next update ({}; it was issued \
                     {}); it is still used, as strongSwan does, but certificates revoked since \
                     are not known",
                    path.display(),
                    c.issuer(),
                    date(next),
                    date(c.this_update())
                ),
                "fetch the CA's current CRL into the file and reload",
            ));
        }
        out.push(c);
    }
    out
}

/// `2026-01-01 00:00:00 UTC` from seconds since the Unix epoch (the crypto crate's
/// formatting, so that config errors and IKE failures print dates alike).
pub(crate) fn date(secs: i64) -> String {
    ferrosec_crypto::x509::fmt_utc(secs)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        SignatureAlgorithm,
    };

    use super::*;
    use crate::algo::IdType;
    use crate::{ConfigError, Diagnostic, GatewayAuth, Loaded};

    /// 2026-01-01T00:00:00Z, the tests' clock.
    const NOW: i64 = 1_767_225_600;
    const P256: &SignatureAlgorithm = &rcgen::PKCS_ECDSA_P256_SHA256;

    const CONF: &str = r#"
[ike-crypto-profile.p]
dh-group = ["group19"]
authentication = ["sha256"]
encryption = ["aes-128-gcm"]
[ike-gateway.hq]
local-address = "198.51.100.1"
peer-address = "198.51.100.2"
certificate = { local = "hq.pem", key = "hq.key", ca = ["ca.pem"] }
ike-crypto-profile = "p"
[tunnel-interface."tunnel.1"]
zone = "vpn"
[zone.vpn]
[ipsec-tunnel.t1]
tunnel-interface = "tunnel.1"
ike-gateway = "hq"
ipsec-crypto-profile = "Suite-B-GCM-128"
"#;

    fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        CertifiedIssuer::self_signed(p, KeyPair::generate_for(P256).unwrap()).unwrap()
    }

    fn leaf_params(cn: &str) -> CertificateParams {
        let mut p = CertificateParams::new(vec!["hq.example.net".to_owned()]).unwrap();
        p.distinguished_name
            .push(DnType::OrganizationName, "Example");
        p.distinguished_name.push(DnType::CommonName, cn);
        p
    }

    /// The files of a gateway in a temporary directory.
    struct Pki {
        dir: tempfile::TempDir,
    }

    impl Pki {
        /// A CA, and our P-256 certificate and key issued by it.
        fn new() -> (Pki, CertifiedIssuer<'static, KeyPair>) {
            let pki = Pki {
                dir: tempfile::tempdir().unwrap(),
            };
            let root = ca("Example Root CA");
            let key = KeyPair::generate_for(P256).unwrap();
            let cert = leaf_params("hq").signed_by(&key, &root).unwrap();
            pki.write("hq.pem", &cert.pem());
            pki.write("hq.key", &key.serialize_pem());
            pki.write("ca.pem", &root.pem());
            (pki, root)
        }

        fn write(&self, name: &str, text: &str) {
            std::fs::write(self.dir.path().join(name), text).unwrap();
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn load_with(&self, conf: &str, now: i64) -> Result<Loaded, ConfigError> {
            self.write("vpn.toml", conf);
            crate::load_file_at(
                &self.path("vpn.toml"),
                SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap()),
            )
        }

        fn load(&self) -> Result<Loaded, ConfigError> {
            self.load_with(CONF, NOW)
        }

        /// The errors of loading, which must fail.
        fn errors(&self) -> Vec<Diagnostic> {
            match self.load() {
                Err(ConfigError::Invalid { errors, .. }) => errors,
                other => panic!("expected errors, got {other:?}"),
            }
        }

        /// The one error, which must name the gateway and `field`.
        fn error(&self, field: &str) -> String {
            let errors = self.errors();
            assert_eq!(errors.len(), 1, "{errors:#?}");
            let e = &errors[0];
            assert_eq!(
                (e.kind.as_str(), e.name.as_deref(), e.field.as_deref()),
                ("ike-gateway", Some("hq"), Some(field)),
                "{e}"
            );
            assert!(e.fix.is_some());
            assert!(e.position.is_some(), "{e}");
            e.to_string()
        }
    }

    fn credentials(loaded: &Loaded) -> Credentials {
        match &loaded.config.ike_gateways["hq"].authentication {
            GatewayAuth::Certificate(c) => c.credentials.clone().expect("files were read"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn good_files_load_and_the_local_id_defaults_to_the_subject() {
        let (pki, _) = Pki::new();
        let loaded = pki.load().unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let gw = &loaded.config.ike_gateways["hq"];
        let GatewayAuth::Certificate(auth) = &gw.authentication else {
            panic!()
        };
        assert_eq!(
            auth.local,
            pki.path("hq.pem"),
            "relative paths made absolute"
        );
        assert_eq!(auth.ca, [pki.path("ca.pem")]);
        let cr = credentials(&loaded);
        assert_eq!(cr.subject(), "CN=hq, O=Example");
        assert_eq!(cr.key().kind(), KeyKind::Ecdsa { curve: 256 });
        assert!(cr.intermediates().is_empty());
        assert_eq!(cr.trust_anchors()[0].subject(), "CN=Example Root CA");
        let id = gw.local_id.as_ref().unwrap();
        assert_eq!(id.id_type, IdType::Dn);
        assert_eq!(id.value, "CN=hq, O=Example");
        assert_eq!(id.der.as_deref(), Some(cr.subject_der().as_slice()));
        assert_eq!(gw.peer_id, None, "the peer's certificate names the peer");

        // Debug names subjects and the key type, never key material.
        let debug = format!("{:?}", loaded.config);
        assert!(debug.contains("ecdsa-p256") || debug.contains("ECDSA P-256"));
        let key_pem = std::fs::read_to_string(pki.path("hq.key")).unwrap();
        let body: String = key_pem.lines().nth(1).unwrap().chars().take(20).collect();
        assert!(!debug.contains(&body) && !debug.contains("PRIVATE"));

        let summary = loaded.config.summary().to_string();
        assert!(
            summary
                .contains("local-id dn:CN=hq, O=Example, peer-id (the subject of its certificate)"),
            "{summary}"
        );

        // Loaded twice from the same files: equal (a reload sees no change).
        assert_eq!(pki.load().unwrap().config, loaded.config);
    }

    #[test]
    fn an_explicit_local_id_is_kept_and_a_matching_dn_gets_its_der() {
        let (pki, _) = Pki::new();
        let conf = CONF.replace(
            "ike-crypto-profile = \"p\"\n[tunnel",
            "ike-crypto-profile = \"p\"\nlocal-id = { type = \"dn\", value = \"CN=hq, O=Example\" }\n[tunnel",
        );
        let loaded = pki.load_with(&conf, NOW).unwrap();
        let id = loaded.config.ike_gateways["hq"].local_id.clone().unwrap();
        assert_eq!(id.der, Some(credentials(&loaded).subject_der()));
        let conf = CONF.replace(
            "ike-crypto-profile = \"p\"\n[tunnel",
            "ike-crypto-profile = \"p\"\nlocal-id = { type = \"fqdn\", value = \"hq.example.net\" }\n[tunnel",
        );
        let loaded = pki.load_with(&conf, NOW).unwrap();
        let id = loaded.config.ike_gateways["hq"].local_id.clone().unwrap();
        assert_eq!((id.id_type, id.der), (IdType::Fqdn, None));
    }

    #[test]
    fn load_str_reads_no_files() {
        let loaded = crate::load_str(CONF, "t.toml").unwrap();
        let gw = &loaded.config.ike_gateways["hq"];
        let GatewayAuth::Certificate(auth) = &gw.authentication else {
            panic!()
        };
        assert_eq!(auth.credentials, None);
        assert_eq!(auth.local, PathBuf::from("hq.pem"));
        assert_eq!(gw.local_id, None);
    }

    #[test]
    fn missing_files_are_named_with_their_field() {
        for (file, field, what) in [
            ("hq.pem", "certificate.local", "certificate file"),
            ("hq.key", "certificate.key", "private key file"),
            ("ca.pem", "certificate.ca", "CA certificate file"),
        ] {
            let (pki, _) = Pki::new();
            std::fs::remove_file(pki.path(file)).unwrap();
            let e = pki.error(field);
            let path = pki.path(file);
            assert!(
                e.contains(&format!("cannot read {what} {}: ", path.display())),
                "{e}"
            );
            assert!(e.contains("ike-gateway \"hq\""), "{e}");
        }
    }

    #[test]
    fn a_file_without_a_certificate_or_a_key() {
        let (pki, _) = Pki::new();
        let key = std::fs::read_to_string(pki.path("hq.key")).unwrap();
        pki.write("hq.pem", &key);
        let e = pki.error("certificate.local");
        assert!(e.contains("holds no certificate"), "{e}");

        let (pki, root) = Pki::new();
        pki.write("hq.key", &root.pem());
        let e = pki.error("certificate.key");
        assert!(e.contains("holds no private key"), "{e}");
        assert!(e.contains(&pki.path("hq.key").display().to_string()), "{e}");

        let (pki, _) = Pki::new();
        pki.write("ca.pem", "not a PEM file\n");
        let e = pki.error("certificate.ca");
        assert!(e.contains("holds no certificate"), "{e}");

        let (pki, _) = Pki::new();
        pki.write(
            "hq.key",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        let e = pki.error("certificate.key");
        assert!(e.contains("encrypted"), "{e}");
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate() {
        let (pki, _) = Pki::new();
        pki.write(
            "hq.key",
            &KeyPair::generate_for(P256).unwrap().serialize_pem(),
        );
        let e = pki.error("certificate.key");
        assert!(
            e.contains("does not match the certificate in")
                && e.contains("subject \"CN=hq, O=Example\""),
            "{e}"
        );
    }

    #[test]
    fn key_types_and_sizes_outside_the_allowed_set() {
        // Ed25519: a key type ferrosec does not authenticate with.
        let (pki, root) = Pki::new();
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = leaf_params("hq").signed_by(&key, &root).unwrap();
        pki.write("hq.pem", &cert.pem());
        pki.write("hq.key", &key.serialize_pem());
        let errors = pki.errors();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 2, "{text:#?}");
        assert!(
            text[0].contains("field \"certificate.local\"")
                && text[0].contains("has an Ed25519 key")
        );
        assert!(
            text[1].contains("field \"certificate.key\"") && text[1].contains("is an Ed25519 key")
        );

        // RSA 1024 (made with openssl: see fixtures/README.md).
        let (pki, _) = Pki::new();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        for (from, to) in [("rsa1024.pem", "hq.pem"), ("rsa1024.key", "hq.key")] {
            std::fs::copy(fixtures.join(from), pki.path(to)).unwrap();
        }
        let from = Certificate::from_pem(&std::fs::read(pki.path("hq.pem")).unwrap()).unwrap()[0]
            .validity()
            .0;
        let Err(ConfigError::Invalid { errors, .. }) = pki.load_with(CONF, from + 86_400) else {
            panic!("an RSA 1024 certificate loaded")
        };
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:#?}");
        assert!(text[0].contains("has an RSA 1024-bit key"), "{}", text[0]);
        assert!(
            text[1].contains("RSA key smaller than 2048 bits"),
            "{}",
            text[1]
        );

        assert!(allowed(&KeyKind::Rsa { bits: 2048 }) && allowed(&KeyKind::Rsa { bits: 4096 }));
        assert!(!allowed(&KeyKind::Rsa { bits: 8192 }) && !allowed(&KeyKind::Rsa { bits: 1024 }));
        assert!(!allowed(&KeyKind::Ecdsa { curve: 224 }));
    }

    #[test]
    fn pkcs1_and_sec1_keys_load() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        for (cert, key, kind) in [
            (
                "rsa2048.pem",
                "rsa2048-pkcs1.key",
                KeyKind::Rsa { bits: 2048 },
            ),
            ("p384.pem", "p384-sec1.key", KeyKind::Ecdsa { curve: 384 }),
        ] {
            let (pki, _) = Pki::new();
            std::fs::copy(fixtures.join(cert), pki.path("hq.pem")).unwrap();
            std::fs::copy(fixtures.join(key), pki.path("hq.key")).unwrap();
            // The fixtures were made for 100 years from their creation: check inside that.
            let from = Certificate::from_pem(&std::fs::read(pki.path("hq.pem")).unwrap()).unwrap()
                [0]
            .validity()
            .0;
            let loaded = pki.load_with(CONF, from + 86_400).unwrap();
            assert_eq!(credentials(&loaded).key().kind(), kind);
        }
    }

    fn leaf_valid(
        root: &CertifiedIssuer<'static, KeyPair>,
        from: (i32, u8, u8),
        to: (i32, u8, u8),
    ) -> (String, String) {
        let key = KeyPair::generate_for(P256).unwrap();
        let mut p = leaf_params("hq");
        p.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        p.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
        (p.signed_by(&key, root).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn an_expired_or_not_yet_valid_certificate_says_its_dates() {
        let (pki, root) = Pki::new();
        let (cert, key) = leaf_valid(&root, (2024, 1, 1), (2025, 6, 30));
        pki.write("hq.pem", &cert);
        pki.write("hq.key", &key);
        let e = pki.error("certificate.local");
        assert!(
            e.contains(
                "our certificate in {} (subject \"CN=hq, O=Example\") expired on 2025-06-30 \
                 00:00:00 UTC (valid from 2024-01-01 00:00:00 UTC to 2025-06-30 00:00:00 UTC)"
                    .replace("{}", &pki.path("hq.pem").display().to_string())
                    .as_str()
            ),
            "{e}"
        );
        // The clock is an input: the same file loads at a time inside its validity.
        assert!(pki.load_with(CONF, NOW - 365 * 86_400).is_ok());

        let (cert, key) = leaf_valid(&root, (2026, 3, 1), (2027, 1, 1));
        pki.write("hq.pem", &cert);
        pki.write("hq.key", &key);
        let e = pki.error("certificate.local");
        assert!(
            e.contains("is not valid yet: valid from 2026-03-01 00:00:00 UTC to 2027-01-01 00:00:00 UTC, and it is 2026-01-01 00:00:00 UTC now"),
            "{e}"
        );
    }

    /// Our certificate issued under `n` intermediates; the file lists ours, then the
    /// intermediates from its issuer upward.
    fn chain_pem(root: &CertifiedIssuer<'static, KeyPair>, n: usize) -> (String, String) {
        let mut issuers: Vec<CertifiedIssuer<'static, KeyPair>> = Vec::new();
        for i in 0..n {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name
                .push(DnType::CommonName, format!("inter{i}"));
            let k = KeyPair::generate_for(P256).unwrap();
            let next = match issuers.last() {
                Some(up) => CertifiedIssuer::signed_by(p, k, up),
                None => CertifiedIssuer::signed_by(p, k, root),
            }
            .unwrap();
            issuers.push(next);
        }
        let key = KeyPair::generate_for(P256).unwrap();
        let cert = match issuers.last() {
            Some(up) => leaf_params("hq").signed_by(&key, up),
            None => leaf_params("hq").signed_by(&key, root),
        }
        .unwrap();
        let mut pem = cert.pem();
        for i in issuers.iter().rev() {
            pem.push_str(&i.pem());
        }
        (pem, key.serialize_pem())
    }

    #[test]
    fn intermediates_are_kept_in_order_up_to_a_chain_of_five() {
        let (pki, root) = Pki::new();
        let (pem, key) = chain_pem(&root, MAX_CHAIN_LEN - 1);
        pki.write("hq.pem", &pem);
        pki.write("hq.key", &key);
        let cr = credentials(&pki.load().unwrap());
        let names: Vec<String> = cr
            .intermediates()
            .iter()
            .map(Certificate::subject)
            .collect();
        assert_eq!(names, ["CN=inter3", "CN=inter2", "CN=inter1", "CN=inter0"]);
        assert_eq!(cr.chain().len(), MAX_CHAIN_LEN);
        // The chain as loaded validates to the CA (as the peer will check it).
        ferrosec_crypto::x509::verify_chain(
            cr.certificate(),
            cr.intermediates(),
            cr.trust_anchors(),
            u64::try_from(NOW).unwrap(),
        )
        .unwrap();

        let (pem, key) = chain_pem(&root, MAX_CHAIN_LEN);
        pki.write("hq.pem", &pem);
        pki.write("hq.key", &key);
        let e = pki.error("certificate.local");
        assert!(
            e.contains("holds 6 certificates (ours and 5 intermediates); a chain has at most 5 (ours and 4 intermediates)"),
            "{e}"
        );
    }

    #[test]
    fn an_expired_ca_is_a_warning() {
        let (pki, _) = Pki::new();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, "Old CA");
        p.not_before = rcgen::date_time_ymd(2015, 1, 1);
        p.not_after = rcgen::date_time_ymd(2025, 1, 1);
        let old = CertifiedIssuer::self_signed(p, KeyPair::generate_for(P256).unwrap()).unwrap();
        pki.write("old-ca.pem", &old.pem());
        let conf = CONF.replace("ca = [\"ca.pem\"]", "ca = [\"ca.pem\", \"old-ca.pem\"]");
        let loaded = pki.load_with(&conf, NOW).unwrap();
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        let w = loaded.warnings[0].to_string();
        assert!(
            w.contains("field \"certificate.ca\"")
                && w.contains("(subject \"CN=Old CA\") expired on 2025-01-01 00:00:00 UTC"),
            "{w}"
        );
        assert_eq!(credentials(&loaded).trust_anchors().len(), 2);
    }

    /// The suites authenticate with ECDSA on their curve (RFC 6380 §3): a P-256 certificate
    /// fits Suite-B-GCM-128 and PRIME-128; with the 256-bit suites the check names the
    /// gateway, the field, the key and the fix (warnings: the tunnel would still come up).
    #[test]
    fn a_suite_preset_says_when_the_certificate_key_does_not_fit() {
        let (pki, root) = Pki::new();
        let with = |preset: &str| {
            CONF.replace(
                "ike-crypto-profile = \"p\"",
                &format!("ike-crypto-profile = \"{preset}\""),
            )
        };
        for preset in ["Suite-B-GCM-128", "PRIME-128"] {
            let loaded = pki.load_with(&with(preset), NOW).unwrap();
            assert!(
                loaded.warnings.is_empty(),
                "{preset}: {:?}",
                loaded.warnings
            );
        }
        for (preset, other) in [
            ("Suite-B-GCM-256", "Suite-B-GCM-128"),
            ("PRIME-256", "PRIME-128"),
        ] {
            let loaded = pki.load_with(&with(preset), NOW).unwrap();
            assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
            let w = loaded.warnings[0].to_string();
            for needle in [
                "ike-gateway \"hq\"",
                "field \"certificate.local\"",
                &format!("ike-crypto-profile \"{preset}\" authenticates with ECDSA P-384"),
                "(subject \"CN=hq, O=Example\") has an ECDSA P-256 key",
                "fix: issue the gateway an ECDSA P-384 certificate (ferrosec pki cert issue --key ecdsa-p384",
                &format!("or use the preset \"{other}\", whose curve P-256 the key is on"),
            ] {
                assert!(w.contains(needle), "missing {needle:?} in {w}");
            }
        }
        // A P-384 certificate fits the 256-bit suites; an RSA one fits none.
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        pki.write(
            "hq.pem",
            &leaf_params("hq").signed_by(&key, &root).unwrap().pem(),
        );
        pki.write("hq.key", &key.serialize_pem());
        assert!(
            pki.load_with(&with("Suite-B-GCM-256"), NOW)
                .unwrap()
                .warnings
                .is_empty()
        );
        assert_eq!(
            pki.load_with(&with("PRIME-128"), NOW)
                .unwrap()
                .warnings
                .len(),
            1
        );
        let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        pki.write(
            "hq.pem",
            &leaf_params("hq").signed_by(&key, &root).unwrap().pem(),
        );
        pki.write("hq.key", &key.serialize_pem());
        let w = pki.load_with(&with("PRIME-256"), NOW).unwrap().warnings[0].to_string();
        assert!(
            w.contains("has an RSA 2048-bit key")
                && w.contains("or use an ike-crypto-profile of your own"),
            "{w}"
        );
    }

    #[test]
    fn dates_read_as_utc() {
        assert_eq!(date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(date(NOW), "2026-01-01 00:00:00 UTC");
        assert_eq!(date(951_782_400 + 3661), "2000-02-29 01:01:01 UTC");
        assert_eq!(date(-1), "1969-12-31 23:59:59 UTC");
    }
}
