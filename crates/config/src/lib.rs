//! The ferrosec configuration model.
//!
//! One TOML file holds the whole gateway (SPEC §1, Appendix A). This crate reads it in two steps,
//! "parse, don't validate":
//!
//! 1. serde reads the text into raw structs that mirror the file exactly (kebab-case keys,
//!    unknown keys refused, every value kept with its position);
//! 2. the validator turns them into a typed [`Config`]: algorithms are enums with their IANA
//!    IDs, durations are [`std::time::Duration`], sizes bytes (1 KB = 1024), addresses `IpAddr`
//!    / `IpNet`, keys [`Secret`]s, and every reference is resolved (see [`model`] for how).
//!    Every problem is collected, each naming the object, the field, what is wrong and the fix.
//!
//! ```
//! let text = r#"
//! [ike-gateway.branch1]
//! peer-address = "198.51.100.2"
//! pre-shared-key = "correct horse battery staple"
//! ike-crypto-profile = "Suite-B-GCM-128"
//! [tunnel-interface."tunnel.1"]
//! zone = "vpn"
//! [zone.vpn]
//! [ipsec-tunnel.to-branch1]
//! tunnel-interface = "tunnel.1"
//! ike-gateway = "branch1"
//! ipsec-crypto-profile = "Suite-B-GCM-128"
//! "#;
//! let loaded = ferrosec_config::load_str(text, "example.toml").unwrap();
//! assert!(loaded.warnings.is_empty());
//! let gw = &loaded.config.ike_gateways["branch1"];
//! assert_eq!(gw.crypto.name, "Suite-B-GCM-128");
//! println!("{}", loaded.config.summary());
//! ```
//!
//! The reference of every key is generated from [`reference::REFERENCE`] into
//! `docs/configuration.md`; tests keep the table, the parser and the document in step.

pub mod algo;
pub mod credentials;
mod error;
pub mod model;
pub mod presets;
mod raw;
pub mod reference;
mod secret;
mod summary;
mod validate;
pub mod value;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use crate::credentials::Credentials;
pub use crate::error::{ConfigError, Diagnostic, Position, Warning};
pub use crate::model::*;
pub use crate::secret::Secret;
pub use crate::summary::*;

/// A loaded configuration and the warnings found while loading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// Warnings (weak algorithms, settings without effect …), in file order.
    pub warnings: Vec<Warning>,
}

/// Read and load a configuration file, and the certificate files its gateways name (checked
/// against the system clock). An I/O error names the path. Relative certificate paths are taken
/// relative to the file's directory and stored absolute.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    load_file_at(path, SystemTime::now())
}

/// [`load_file`] with the clock as an input: certificates are checked for validity at `now`.
pub fn load_file_at(path: &Path, now: SystemTime) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    let dir = path.parent().map(Path::to_owned).unwrap_or_default();
    load(
        &text,
        &path.display().to_string(),
        Some(Files::new(dir, now)),
    )
}

/// Load a configuration from text. `origin` (usually the file name) starts every message.
/// No file is read: certificate paths stay as written and their
/// [`CertificateAuth::credentials`] are `None`.
pub fn load_str(text: &str, origin: &str) -> Result<Loaded, ConfigError> {
    load(text, origin, None)
}

/// Where certificate files are read from, and the time they are checked at.
#[derive(Debug, Clone)]
pub(crate) struct Files {
    /// The directory relative paths start from.
    pub(crate) dir: PathBuf,
    /// Seconds since the Unix epoch.
    pub(crate) now: i64,
}

impl Files {
    fn new(dir: PathBuf, now: SystemTime) -> Files {
        let now = match now.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        };
        Files { dir, now }
    }
}

fn load(text: &str, origin: &str, files: Option<Files>) -> Result<Loaded, ConfigError> {
    let raw: raw::RawRoot = toml::from_str(text).map_err(|e| syntax_error(&e, text, origin))?;
    let mut ctx = validate::Ctx::new(origin, text);
    ctx.files = files;
    let config = validate::validate(raw, &mut ctx);
    let mut warnings = std::mem::take(&mut ctx.warnings);
    sort(&mut warnings);
    match config {
        Some(config) if ctx.errors.is_empty() => Ok(Loaded { config, warnings }),
        _ => {
            let mut errors = std::mem::take(&mut ctx.errors);
            sort(&mut errors);
            Err(ConfigError::Invalid { errors, warnings })
        }
    }
}

/// File order; findings without a position last, in the order found.
fn sort(list: &mut [Diagnostic]) {
    list.sort_by_key(|d| {
        d.position
            .map_or((usize::MAX, usize::MAX), |p| (p.line, p.column))
    });
}

/// A TOML error as a diagnostic: position from the span, the object from the enclosing header.
fn syntax_error(e: &toml::de::Error, text: &str, origin: &str) -> ConfigError {
    let position = e.span().map(|s| Position::of_offset(text, s.start));
    let (kind, name) = position.map_or((String::new(), None), |p| enclosing_header(text, p.line));
    let message = e.message().trim().to_owned();
    let fix = if message.contains("duplicate") {
        "each object name and each key may appear only once: rename or remove the second one"
    } else if message.starts_with("unknown field") {
        "remove the key or correct its spelling (docs/configuration.md lists every key)"
    } else if message.contains("invalid type") || message.contains("expected") {
        "give the value the type docs/configuration.md shows for this key"
    } else {
        "correct the TOML syntax at this position"
    };
    ConfigError::Syntax(Box::new(Diagnostic {
        origin: origin.to_owned(),
        position,
        kind,
        name,
        field: None,
        message,
        fix: Some(fix.to_owned()),
    }))
}

/// The `[kind.name]` header above `line` (1-based), as (kind, name).
fn enclosing_header(text: &str, line: usize) -> (String, Option<String>) {
    for l in text
        .lines()
        .take(line)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let t = l.trim();
        if !t.starts_with('[') {
            continue;
        }
        let inner = t.trim_start_matches('[');
        let inner = inner.split(']').next().unwrap_or("").trim();
        let (kind, name) = match inner.split_once('.') {
            Some((k, n)) => (
                k.trim(),
                Some(n.trim().trim_matches(['"', '\'']).to_owned()),
            ),
            None => (inner, None),
        };
        return (kind.to_owned(), name);
    }
    (String::new(), None)
}
