//! The control socket: how the CLI talks to a running daemon.
//!
//! One request per connection over a Unix stream socket: the client writes one JSON object and a
//! newline, the daemon answers with one JSON object and a newline, then closes. The protocol is
//! versioned by the `v` field so an old CLI talking to a new daemon gets a clear message.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Version of the request/response shapes below.
pub(crate) const PROTOCOL_VERSION: u32 = 1;

/// Longest response the client accepts (a `show` of 10,000 tunnels fits comfortably).
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;

/// How long the client waits for the daemon to answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A request from the CLI to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub(crate) enum Request {
    /// `show vpn ike-sa [gateway G]`
    ShowIkeSa {
        /// Only this gateway.
        gateway: Option<String>,
    },
    /// `show vpn ipsec-sa [tunnel T]`
    ShowIpsecSa {
        /// Only this IPsec tunnel.
        tunnel: Option<String>,
    },
    /// `show vpn flow`
    ShowFlow,
    /// `show vpn ike-counters`
    ShowIkeCounters,
    /// `show vpn tunnel`
    ShowTunnel,
    /// `show security rules`: the security rules with their hit counts.
    ShowSecurityRules,
    /// `show auth certs`: the CRLs loaded from files and fetched from distribution points.
    ShowAuthCerts,
    /// `show system info`
    ShowSystemInfo,
    /// `show system log`
    ShowSystemLog {
        /// At most this many of the newest lines.
        lines: Option<usize>,
    },
    /// `test vpn ike-sa gateway G`
    TestIkeSa {
        /// The gateway to negotiate with.
        gateway: String,
    },
    /// `test vpn ipsec-sa tunnel T`
    TestIpsecSa {
        /// The IPsec tunnel to bring up.
        tunnel: String,
    },
    /// `clear vpn ike-sa [gateway G]`
    ClearIkeSa {
        /// Only this gateway (all when absent).
        gateway: Option<String>,
    },
    /// `clear vpn ipsec-sa [tunnel T]`
    ClearIpsecSa {
        /// Only this IPsec tunnel (all when absent).
        tunnel: Option<String>,
    },
    /// `request vpn rekey ike-sa gateway G`
    RekeyIkeSa {
        /// The IKE gateway whose IKE SA is rekeyed.
        gateway: String,
    },
    /// `request vpn rekey ipsec-sa tunnel T`
    RekeyIpsecSa {
        /// The IPsec tunnel whose SAs are rekeyed.
        tunnel: String,
    },
    /// `request vpn export-keys --wireshark DIR`: the decryption tables (the CLI writes
    /// them).
    ExportKeys,
    /// `request system reload`: load the configuration file again and apply it, as SIGHUP
    /// does; the answer says what was done.
    ReloadConfig,
}

/// The envelope a request travels in.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RequestEnvelope {
    /// Protocol version of the sender.
    pub(crate) v: u32,
    /// The request itself.
    #[serde(flatten)]
    pub(crate) request: Request,
}

/// The daemon's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Response {
    /// Protocol version of the daemon.
    pub(crate) v: u32,
    /// The data of a successful request (shape depends on the request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<serde_json::Value>,
    /// Why the request failed, in plain words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

impl Response {
    pub(crate) fn ok(data: serde_json::Value) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            data: Some(data),
            error: None,
        }
    }

    pub(crate) fn error(message: impl Into<String>) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            data: None,
            error: Some(message.into()),
        }
    }
}

/// Why the CLI could not get an answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// Nothing listens at the socket.
    #[error(
        "no ferrosec daemon is running at {path} ({reason}); start one with `ferrosec run -c FILE`, \
         or point at its socket with --socket PATH"
    )]
    NotRunning {
        /// The socket path tried.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// The daemon answered with an error.
    #[error("{0}")]
    Daemon(String),
    /// The connection broke or the answer could not be read.
    #[error("talking to the daemon at {path}: {reason}")]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Sends one request to the daemon at `path` and returns its data.
pub(crate) fn call(path: &Path, request: Request) -> Result<serde_json::Value, ClientError> {
    let protocol = |reason: String| ClientError::Protocol {
        path: path.to_owned(),
        reason,
    };
    let stream = UnixStream::connect(path).map_err(|e| ClientError::NotRunning {
        path: path.to_owned(),
        reason: match e.kind() {
            std::io::ErrorKind::NotFound => "the socket does not exist".to_owned(),
            std::io::ErrorKind::ConnectionRefused => "nothing listens on the socket".to_owned(),
            _ => e.to_string(),
        },
    })?;
    stream
        .set_read_timeout(Some(CLIENT_TIMEOUT))
        .map_err(|e| protocol(e.to_string()))?;
    stream
        .set_write_timeout(Some(CLIENT_TIMEOUT))
        .map_err(|e| protocol(e.to_string()))?;

    let mut line = serde_json::to_vec(&RequestEnvelope {
        v: PROTOCOL_VERSION,
        request,
    })
    .map_err(|e| protocol(e.to_string()))?;
    line.push(b'\n');
    (&stream)
        .write_all(&line)
        .map_err(|e| protocol(e.to_string()))?;

    let mut answer = String::new();
    BufReader::new((&stream).take(MAX_RESPONSE))
        .read_line(&mut answer)
        .map_err(|e| protocol(e.to_string()))?;
    if answer.is_empty() {
        return Err(protocol(
            "the daemon closed the connection without answering".into(),
        ));
    }
    let response: Response =
        serde_json::from_str(&answer).map_err(|e| protocol(format!("unreadable answer: {e}")))?;
    if response.v != PROTOCOL_VERSION {
        return Err(protocol(format!(
            "the daemon speaks control protocol {}, this CLI speaks {PROTOCOL_VERSION}; use the \
             ferrosec binary that matches the running daemon",
            response.v
        )));
    }
    match (response.data, response.error) {
        (_, Some(error)) => Err(ClientError::Daemon(error)),
        (Some(data), None) => Ok(data),
        (None, None) => Err(protocol(
            "the answer holds neither data nor an error".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_shape_is_stable() {
        let env = RequestEnvelope {
            v: PROTOCOL_VERSION,
            request: Request::ShowIkeSa {
                gateway: Some("branch1".into()),
            },
        };
        let text = serde_json::to_string(&env).unwrap();
        assert_eq!(text, r#"{"v":1,"cmd":"show-ike-sa","gateway":"branch1"}"#);
        let back: RequestEnvelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.request, env.request);
    }

    #[test]
    fn missing_socket_says_no_daemon_is_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nothing.sock");
        let err = call(&path, Request::ShowFlow).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("no ferrosec daemon is running"), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("does not exist"), "{text}");
    }

    #[test]
    fn stale_socket_file_says_nothing_listens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let err = call(&path, Request::ShowFlow).unwrap_err();
        assert!(err.to_string().contains("nothing listens"), "{err}");
    }
}
