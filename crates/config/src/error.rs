//! Errors and warnings of loading a configuration.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// A position in the file: 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl Position {
    /// The position of a byte offset in `text` (clamped to the text).
    pub fn of_offset(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Position { line, column }
    }
}

/// One finding about the configuration: an error, or (as [`Warning`]) a warning.
///
/// It names the object (`kind` + `name`, e.g. `ike-gateway` `"branch1"`), the field (a key, or a
/// path such as `proxy-id[2].local` for the second proxy ID), what is wrong and what to do.
/// `Display` reads like
/// `site-a.toml:12:5: ike-gateway "branch1": field "pre-shared-key": … ; fix: …`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file name (or other origin) given to the loader.
    pub origin: String,
    /// Where in the file, when known.
    pub position: Option<Position>,
    /// The object kind as written in the file: `ike-gateway`, `ipsec-tunnel`, `global` …
    pub kind: String,
    /// The object's name; `None` for `global` and for file-level problems.
    pub name: Option<String>,
    /// The key (or path of keys) concerned, when there is one.
    pub field: Option<String>,
    /// What is wrong. Never contains key material.
    pub message: String,
    /// What to do about it.
    pub fix: Option<String>,
}

/// A warning: the configuration loads, but something in it deserves attention (weak algorithms,
/// AH with NAT traversal …). Same shape as an error.
pub type Warning = Diagnostic;

impl Diagnostic {
    /// The object as it reads in messages: `ike-gateway "branch1"`.
    pub fn object(&self) -> String {
        match &self.name {
            Some(name) => format!("{} \"{}\"", self.kind, name),
            None => self.kind.clone(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.origin)?;
        if let Some(p) = self.position {
            write!(f, "{}:{}:", p.line, p.column)?;
        }
        if !self.kind.is_empty() {
            write!(f, " {}:", self.object())?;
        }
        if let Some(field) = &self.field {
            write!(f, " field \"{field}\":")?;
        }
        write!(f, " {}", self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "; fix: {fix}")?;
        }
        Ok(())
    }
}

/// Why a configuration did not load.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {}: {source}", path.display())]
    Io {
        /// The path given.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML, or a value has the wrong type, or a key is unknown.
    #[error("{0}")]
    Syntax(Box<Diagnostic>),
    /// The file parsed, but objects are invalid or refer to objects that do not exist.
    /// Every problem found is listed, not only the first.
    #[error("{}", display_all(errors))]
    Invalid {
        /// Every error, in file order.
        errors: Vec<Diagnostic>,
        /// Warnings found along the way.
        warnings: Vec<Warning>,
    },
}

fn display_all(errors: &[Diagnostic]) -> String {
    let mut out = errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    if errors.len() > 1 {
        out.push_str(&format!("\n{} errors", errors.len()));
    }
    out
}

impl ConfigError {
    /// Every error with its object, field and position (one for `Syntax`, none for `Io`).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Io { .. } => &[],
            ConfigError::Syntax(d) => std::slice::from_ref(d),
            ConfigError::Invalid { errors, .. } => errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_to_positions() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(
            Position::of_offset(text, 0),
            Position { line: 1, column: 1 }
        );
        assert_eq!(
            Position::of_offset(text, 6),
            Position { line: 2, column: 1 }
        );
        assert_eq!(
            Position::of_offset(text, 9),
            Position { line: 2, column: 3 }
        );
        assert_eq!(
            Position::of_offset(text, 8),
            Position { line: 2, column: 2 }
        );
        assert_eq!(Position::of_offset(text, 999).line, 3);
    }

    #[test]
    fn display_reads_like_a_compiler() {
        let d = Diagnostic {
            origin: "site-a.toml".into(),
            position: Some(Position {
                line: 12,
                column: 5,
            }),
            kind: "ike-gateway".into(),
            name: Some("branch1".into()),
            field: Some("pre-shared-key".into()),
            message: "is 5 characters long".into(),
            fix: Some("use at least 8".into()),
        };
        assert_eq!(
            d.to_string(),
            "site-a.toml:12:5: ike-gateway \"branch1\": field \"pre-shared-key\": is 5 characters \
             long; fix: use at least 8"
        );
    }
}
