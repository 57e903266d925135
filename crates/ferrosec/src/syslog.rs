//! The system log (SPEC R-OPS-1/3): one plain-words line per tunnel event, kept in memory for
//! `show system log` and appended to the configured `log-file`.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Lines kept in memory for `show system log`; older ones are only in the file.
const MEMORY_LINES: usize = 4096;

/// How bad an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Severity {
    /// Normal operation: a tunnel came up, a rekey finished.
    Info,
    /// Something an operator should look at, but nothing is down.
    Warning,
    /// A tunnel is down or could not be brought up.
    Error,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// One line of the system log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct LogLine {
    /// UTC time, RFC 3339 to the second.
    pub(crate) time: String,
    /// How bad it is.
    pub(crate) severity: Severity,
    /// The object the line is about (`ike-gateway branch1`, `daemon`, …).
    pub(crate) object: String,
    /// What happened and why, in plain words.
    pub(crate) message: String,
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:<7} {}: {}",
            self.time,
            self.severity.as_str(),
            self.object,
            self.message
        )
    }
}

/// The in-memory ring plus the optional file.
#[derive(Debug)]
pub(crate) struct SystemLog {
    lines: VecDeque<LogLine>,
    file: Option<File>,
}

impl SystemLog {
    /// A log that appends to `path` when given (the directory is created).
    pub(crate) fn open(path: Option<&Path>) -> std::io::Result<Self> {
        let file = match path {
            Some(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                Some(OpenOptions::new().create(true).append(true).open(path)?)
            }
            None => None,
        };
        Ok(Self {
            lines: VecDeque::new(),
            file,
        })
    }

    /// Records one event. A failing file write is reported on stderr but never stops the daemon.
    pub(crate) fn record(&mut self, severity: Severity, object: &str, message: impl Into<String>) {
        // Up to MEMORY_LINES lines are kept: without the slack of `format!`'s growth (a
        // third of a line's memory; issue 16).
        let mut time = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        time.shrink_to_fit();
        let mut message = message.into();
        message.shrink_to_fit();
        let line = LogLine {
            time,
            severity,
            object: object.to_owned(),
            message,
        };
        // One write(2) per line: `writeln!` on a `File` issues one per formatted piece (and
        // one per padding character), a dozen system calls for a line.
        if let Some(file) = &mut self.file
            && let Err(e) = file.write_all(format!("{line}\n").as_bytes())
        {
            eprintln!("ferrosec: cannot write the system log file: {e}");
        }
        tracing::info!(target: "ferrosec::syslog", "{line}");
        if self.lines.len() == MEMORY_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// The newest `n` lines (all when `None`), oldest first.
    pub(crate) fn tail(&self, n: Option<usize>) -> Vec<LogLine> {
        let n = n.unwrap_or(self.lines.len()).min(self.lines.len());
        self.lines
            .iter()
            .skip(self.lines.len() - n)
            .cloned()
            .collect()
    }
}

/// The system log shared by the tasks of the daemon (the control task and the IKE task record
/// into it; a line is written per event, never per packet).
#[derive(Debug, Clone)]
pub(crate) struct SharedLog(std::sync::Arc<std::sync::Mutex<SystemLog>>);

impl SharedLog {
    /// Shares `log`.
    pub(crate) fn new(log: SystemLog) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(log)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SystemLog> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// See [`SystemLog::record`].
    pub(crate) fn record(&self, severity: Severity, object: &str, message: impl Into<String>) {
        self.lock().record(severity, object, message);
    }

    /// See [`SystemLog::tail`].
    pub(crate) fn tail(&self, n: Option<usize>) -> Vec<LogLine> {
        self.lock().tail(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded_and_tail_returns_newest() {
        let mut log = SystemLog::open(None).unwrap();
        for i in 0..MEMORY_LINES + 10 {
            log.record(Severity::Info, "daemon", format!("line {i}"));
        }
        assert_eq!(log.tail(None).len(), MEMORY_LINES);
        let last = log.tail(Some(2));
        assert_eq!(last.len(), 2);
        assert_eq!(last[0].message, format!("line {}", MEMORY_LINES + 8));
        assert_eq!(last[1].message, format!("line {}", MEMORY_LINES + 9));
    }

    #[test]
    fn lines_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/system.log");
        let mut log = SystemLog::open(Some(&path)).unwrap();
        log.record(Severity::Error, "ike-gateway branch1", "peer unreachable");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("error   ike-gateway branch1: peer unreachable"),
            "{text}"
        );
    }
}
