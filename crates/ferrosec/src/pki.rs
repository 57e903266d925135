//! `ferrosec pki`: a small CA for certificate tunnels without OpenSSL incantations (rcgen).
//!
//! * `pki ca create --subject "CN=…" --out DIR` writes `DIR/ca.pem` (a self-signed CA
//!   certificate: basicConstraints CA, keyCertSign and cRLSign) and `DIR/ca.key` (mode 0600);
//! * `pki cert issue --ca DIR --subject … --san fqdn:… --san ip:… --key ecdsa-p256 --out DIR`
//!   writes a gateway's `cert.pem` (signed by the CA: not a CA, digitalSignature, serverAuth
//!   and clientAuth, the SANs), its `key.pem` (PKCS#8, mode 0600) and a copy of the CA's
//!   `ca.pem` beside them: the three files of `certificate = { local, key, ca }`; with
//!   `--crl-url http://…` the certificate names that CRL distribution point (for peers with
//!   `crl-fetch`);
//! * `pki crl sign --ca DIR --revoke cert.pem … --out ca.crl` writes the CA's CRL (PEM, X.509
//!   v2 with a CRL number and a nextUpdate `--days` ahead) revoking those certificates: the
//!   file of `certificate.crl`, or what to publish at the distribution point.
//!
//! Existing files are never overwritten. Keys: ECDSA P-256 and P-384 (the Suite-B and PRIME
//! curves), RSA 2048, 3072 and 4096; the CA signs with SHA-256 (P-256, RSA) or SHA-384 (P-384).

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, RsaKeySize, SanType,
    SerialNumber,
};

/// A key type the helper makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum KeyType {
    /// ECDSA on P-256 (Suite-B-GCM-128, PRIME-128).
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    /// ECDSA on P-384 (Suite-B-GCM-256, PRIME-256).
    #[value(name = "ecdsa-p384")]
    EcdsaP384,
    /// RSA, 2048-bit modulus.
    #[value(name = "rsa-2048")]
    Rsa2048,
    /// RSA, 3072-bit modulus.
    #[value(name = "rsa-3072")]
    Rsa3072,
    /// RSA, 4096-bit modulus.
    #[value(name = "rsa-4096")]
    Rsa4096,
}

impl KeyType {
    fn generate(self) -> anyhow::Result<KeyPair> {
        let rsa = |size| KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size);
        match self {
            KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            KeyType::Rsa2048 => rsa(RsaKeySize::_2048),
            KeyType::Rsa3072 => rsa(RsaKeySize::_3072),
            KeyType::Rsa4096 => rsa(RsaKeySize::_4096),
        }
        .with_context(|| format!("generating the {self:?} key"))
    }

    fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096)
    }
}

/// What a `pki` command wrote (printed, or as JSON with `--json`).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Written {
    /// The subject DN, as the configuration's `dn` ID would give it.
    pub(crate) subject: String,
    /// The issuer DN.
    pub(crate) issuer: String,
    /// notAfter, RFC 3339 (UTC).
    pub(crate) not_after: String,
    /// The certificate file.
    pub(crate) certificate: PathBuf,
    /// The private key file.
    pub(crate) key: PathBuf,
    /// The CA certificate file (the trust anchor).
    pub(crate) ca: PathBuf,
    /// subjectAltNames, as `fqdn:…`, `ip:…`, `email:…`.
    pub(crate) san: Vec<String>,
}

impl Written {
    /// The text `pki` prints: the files, and for a gateway certificate the configuration
    /// line that uses them.
    pub(crate) fn text(&self, gateway: bool) -> String {
        let mut out = format!(
            "subject     {}\nissuer      {}\nnot after   {}\ncertificate {}\nkey         {} (mode 0600)\n",
            self.subject,
            self.issuer,
            self.not_after,
            self.certificate.display(),
            self.key.display()
        );
        if !self.san.is_empty() {
            out.push_str(&format!("san         {}\n", self.san.join(", ")));
        }
        if gateway {
            out.push_str(&format!(
                "ca          {}\n\nIn the gateway's [ike-gateway.NAME]:\ncertificate = {{ local = \"{}\", key = \"{}\", ca = [\"{}\"] }}\n",
                self.ca.display(),
                self.certificate.display(),
                self.key.display(),
                self.ca.display()
            ));
        } else {
            out.push_str(
                "\nIssue gateway certificates with `ferrosec pki cert issue --ca DIR …`; keep \
                 ca.key off the gateways.\n",
            );
        }
        out
    }
}

/// `CN=hq, O=Example, C=DE`: comma-separated attributes in order (CN, O, OU, C, ST, L).
pub(crate) fn parse_dn(text: &str) -> anyhow::Result<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            bail!(
                "\"{part}\" in the subject is not ATTRIBUTE=value (e.g. \"CN=hq.example.net, O=Example\")"
            );
        };
        let ty = match k.trim().to_ascii_uppercase().as_str() {
            "CN" => DnType::CommonName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "C" => DnType::CountryName,
            "ST" => DnType::StateOrProvinceName,
            "L" => DnType::LocalityName,
            other => bail!(
                "the subject attribute \"{other}\" is not one the helper writes (CN, O, OU, C, ST, L)"
            ),
        };
        dn.push(ty, v.trim());
    }
    if dn.get(&DnType::CommonName).is_none() {
        bail!("the subject \"{text}\" has no CN (e.g. --subject \"CN=hq.example.net, O=Example\")");
    }
    Ok(dn)
}

/// `fqdn:vpn.example.net`, `dns:…` (the same), `ip:192.0.2.1`, `email:ops@example.net` or
/// `ufqdn:…` (the same): the IKE ID types a peer may match against the certificate.
pub(crate) fn parse_san(text: &str) -> anyhow::Result<SanType> {
    let Some((kind, value)) = text.split_once(':') else {
        bail!("--san \"{text}\" has no type: use fqdn:NAME, ip:ADDRESS or email:ADDRESS");
    };
    let ia5 = |v: &str| {
        Ia5String::try_from(v).with_context(|| format!("--san \"{text}\": not an ASCII name"))
    };
    Ok(match kind.to_ascii_lowercase().as_str() {
        "fqdn" | "dns" => SanType::DnsName(ia5(value)?),
        "email" | "ufqdn" => SanType::Rfc822Name(ia5(value)?),
        "ip" | "ipaddr" => SanType::IpAddress(
            value
                .parse::<IpAddr>()
                .with_context(|| format!("--san \"{text}\": not an IP address"))?,
        ),
        other => bail!("--san type \"{other}\" is not fqdn, ip or email"),
    })
}

/// `not_before` an hour ago (clocks differ), `not_after` `days` from now.
fn validity(p: &mut CertificateParams, days: u32) -> anyhow::Result<()> {
    let secs = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the system clock is before 1970")?
            .as_secs(),
    )?;
    // `YYYY-MM-DD HH:MM:SS UTC`: midnight of today, then the seconds since.
    let text = ferrosec_crypto::x509::fmt_utc(secs);
    let ymd: Vec<i64> = text[..10]
        .split('-')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("formatting today's date")?;
    let midnight = rcgen::date_time_ymd(
        i32::try_from(ymd[0])?,
        u8::try_from(ymd[1])?,
        u8::try_from(ymd[2])?,
    );
    let since = Duration::from_secs(u64::try_from(secs.rem_euclid(86_400))?);
    let now = midnight + since;
    p.not_before = now - Duration::from_secs(3600);
    p.not_after = now + Duration::from_secs(u64::from(days) * 86_400);
    Ok(())
}

fn serial() -> SerialNumber {
    use rand_core::RngCore;
    let mut b = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut b);
    b[0] &= 0x7f; // positive
    b[0] |= 0x01; // and 16 bytes long
    SerialNumber::from_slice(&b)
}

/// Writes `text` to a new file (never over an existing one), with `mode`.
fn write_new(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| {
            if path.exists() {
                format!(
                    "{} exists already; the helper never overwrites: choose another --out or \
                     remove it",
                    path.display()
                )
            } else {
                format!("cannot create {}", path.display())
            }
        })?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

fn check_new(paths: &[&Path]) -> anyhow::Result<()> {
    for p in paths {
        if p.exists() {
            bail!(
                "{} exists already; the helper never overwrites: choose another --out or remove it",
                p.display()
            );
        }
    }
    Ok(())
}

fn describe(der: &[u8], cert: PathBuf, key: PathBuf, ca: PathBuf) -> anyhow::Result<Written> {
    let c = ferrosec_crypto::x509::Certificate::from_der(der)?;
    let san = c
        .subject_alt_names()
        .iter()
        .map(|s| match s {
            ferrosec_crypto::x509::SubjectAltName::Dns(d) => format!("fqdn:{d}"),
            ferrosec_crypto::x509::SubjectAltName::Email(e) => format!("email:{e}"),
            ferrosec_crypto::x509::SubjectAltName::Ip(a) => format!("ip:{a}"),
        })
        .collect();
    Ok(Written {
        subject: c.subject(),
        issuer: c.issuer(),
        not_after: crate::status::rfc3339(c.validity().1),
        certificate: cert,
        key,
        ca,
        san,
    })
}

/// `pki ca create`: a self-signed CA certificate and its key in `out`.
pub(crate) fn ca_create(
    subject: &str,
    out: &Path,
    key: KeyType,
    days: u32,
) -> anyhow::Result<Written> {
    let (cert_path, key_path) = (out.join("ca.pem"), out.join("ca.key"));
    check_new(&[&cert_path, &key_path])?;
    let mut p = CertificateParams::default();
    p.distinguished_name = parse_dn(subject)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.serial_number = Some(serial());
    validity(&mut p, days)?;
    let kp = key.generate()?;
    let ca = CertifiedIssuer::self_signed(p, kp).context("signing the CA certificate")?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_new(&key_path, &ca.key().serialize_pem(), 0o600)?;
    write_new(&cert_path, &ca.pem(), 0o644)?;
    describe(ca.der(), cert_path.clone(), key_path, cert_path)
}

/// `pki cert issue`: a gateway certificate signed by the CA in `ca_dir`, its key and a copy
/// of the CA certificate, in `out`.
pub(crate) fn cert_issue(
    ca_dir: &Path,
    subject: &str,
    sans: &[String],
    crl_url: Option<&str>,
    key: KeyType,
    out: &Path,
    days: u32,
) -> anyhow::Result<Written> {
    let (cert_path, key_path, ca_copy) = (
        out.join("cert.pem"),
        out.join("key.pem"),
        out.join("ca.pem"),
    );
    check_new(&[&cert_path, &key_path])?;
    let read = |name: &str| {
        let p = ca_dir.join(name);
        std::fs::read_to_string(&p).with_context(|| {
            format!(
                "cannot read {} (make the CA with `ferrosec pki ca create --out {}`)",
                p.display(),
                ca_dir.display()
            )
        })
    };
    let ca_pem = read("ca.pem")?;
    let ca_key = KeyPair::from_pem(&read("ca.key")?).context("reading ca.key")?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).context("reading ca.pem")?;
    let mut p = CertificateParams::default();
    if let Some(url) = crl_url {
        if !url.starts_with("http://") {
            bail!("--crl-url \"{url}\" is not an http:// URL (what crl-fetch fetches)");
        }
        p.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec![url.to_owned()],
        }];
    }
    p.distinguished_name = parse_dn(subject)?;
    p.subject_alt_names = sans
        .iter()
        .map(|s| parse_san(s))
        .collect::<anyhow::Result<_>>()?;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if key.is_rsa() {
        p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    // RFC 4945 §5.1.3.12 allows any; serverAuth and clientAuth are what every IKE peer
    // (strongSwan, Windows, firewalls) accepts.
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.use_authority_key_identifier_extension = true;
    p.serial_number = Some(serial());
    validity(&mut p, days)?;
    let kp = key.generate()?;
    let cert = p
        .signed_by(&kp, &issuer)
        .context("signing the certificate")?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_new(&key_path, &kp.serialize_pem(), 0o600)?;
    write_new(&cert_path, &cert.pem(), 0o644)?;
    // The trust anchor beside them (the same file for every gateway of this CA).
    match std::fs::read_to_string(&ca_copy) {
        Ok(existing) if existing == ca_pem => {}
        Ok(_) => bail!(
            "{} holds another CA certificate; choose another --out",
            ca_copy.display()
        ),
        Err(_) => write_new(&ca_copy, &ca_pem, 0o644)?,
    }
    describe(cert.der(), cert_path, key_path, ca_copy)
}

/// What `pki crl sign` wrote.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct CrlWritten {
    /// The CRL's issuer (the CA).
    pub(crate) issuer: String,
    /// The file.
    pub(crate) crl: PathBuf,
    /// The serial numbers revoked (`0a:1b:…`).
    pub(crate) revoked: Vec<String>,
    /// thisUpdate and nextUpdate, RFC 3339 (UTC).
    pub(crate) this_update: String,
    pub(crate) next_update: String,
}

impl CrlWritten {
    pub(crate) fn text(&self) -> String {
        format!(
            "issuer      {}\nrevoked     {}\nthis update {}\nnext update {}\ncrl         {}\n\nIn the peer gateways' certificate blocks: crl = [\"{}\"] (and reload), or \
             publish it at the URL of the certificates' --crl-url for crl-fetch; sign a new \
             one before the next update.\n",
            self.issuer,
            if self.revoked.is_empty() {
                "none".to_owned()
            } else {
                self.revoked.join(", ")
            },
            self.this_update,
            self.next_update,
            self.crl.display(),
            self.crl.display()
        )
    }
}

/// A CRL revocation reason by its RFC 5280 name.
fn reason(name: &str) -> anyhow::Result<rcgen::RevocationReason> {
    use rcgen::RevocationReason as R;
    Ok(match name {
        "unspecified" => R::Unspecified,
        "keyCompromise" => R::KeyCompromise,
        "cACompromise" => R::CaCompromise,
        "affiliationChanged" => R::AffiliationChanged,
        "superseded" => R::Superseded,
        "cessationOfOperation" => R::CessationOfOperation,
        "certificateHold" => R::CertificateHold,
        "privilegeWithdrawn" => R::PrivilegeWithdrawn,
        other => bail!(
            "--reason \"{other}\" is not one of unspecified, keyCompromise, cACompromise, \
             affiliationChanged, superseded, cessationOfOperation, certificateHold, \
             privilegeWithdrawn"
        ),
    })
}

/// `pki crl sign`: the CA in `ca_dir` signs a CRL revoking the certificates in the PEM files
/// `revoke` (each must be one it issued), valid for `days`, written to `out` (a new file).
pub(crate) fn crl_sign(
    ca_dir: &Path,
    revoke: &[PathBuf],
    why: &str,
    days: u32,
    out: &Path,
) -> anyhow::Result<CrlWritten> {
    use ferrosec_crypto::x509::Certificate;
    check_new(&[out])?;
    let read = |p: &Path| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let ca_pem = read(&ca_dir.join("ca.pem"))?;
    let ca_key = KeyPair::from_pem(&read(&ca_dir.join("ca.key"))?).context("reading ca.key")?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).context("reading ca.pem")?;
    let ca = Certificate::from_pem(ca_pem.as_bytes())?
        .into_iter()
        .next()
        .context("ca.pem holds no certificate")?;
    let reason = reason(why)?;
    let mut p = CertificateParams::default();
    validity(&mut p, days)?;
    let mut entries = Vec::new();
    for path in revoke {
        for c in Certificate::from_pem(read(path)?.as_bytes())? {
            if c.issuer_der() != ca.subject_der() {
                bail!(
                    "{} holds \"{}\", issued by \"{}\", not by this CA (\"{}\")",
                    path.display(),
                    c.subject(),
                    c.issuer(),
                    ca.subject()
                );
            }
            entries.push(c.serial());
        }
    }
    let params = rcgen::CertificateRevocationListParams {
        this_update: p.not_before + Duration::from_secs(3600),
        next_update: p.not_after,
        crl_number: serial(),
        issuing_distribution_point: None,
        revoked_certs: entries
            .iter()
            .map(|s| rcgen::RevokedCertParams {
                serial_number: SerialNumber::from_slice(s),
                revocation_time: p.not_before + Duration::from_secs(3600),
                reason_code: Some(reason),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&issuer).context("signing the CRL")?;
    let parsed = ferrosec_crypto::crl::Crl::from_der(crl.der())?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    write_new(out, &crl.pem().context("encoding the CRL")?, 0o644)?;
    Ok(CrlWritten {
        issuer: parsed.issuer().to_owned(),
        crl: out.to_owned(),
        revoked: entries
            .iter()
            .map(|s| ferrosec_crypto::crl::serial_hex(s))
            .collect(),
        this_update: crate::status::rfc3339(parsed.this_update()),
        next_update: crate::status::rfc3339(parsed.next_update().unwrap_or_default()),
    })
}
