//! `ferrosec run`: the daemon.
//!
//! Today it loads and validates the configuration, keeps the system log, serves the control
//! socket (so every `show`, `test` and `clear` command works against it), reloads on SIGHUP
//! without dropping the running configuration when the new file is broken, and exits cleanly on
//! SIGTERM. The IKE engine and the ESP data plane plug in here (issues 5 and 6); until then the
//! SA tables are empty and `test vpn` says that negotiation is not in this build.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use ferrosec_config::{Config, Keying, Loaded};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};

use crate::control::{PROTOCOL_VERSION, Request, RequestEnvelope, Response};
use crate::status::{FlowRow, IkeSaRow, IpsecSaRow, TunnelRow};
use crate::syslog::{Severity, SystemLog};

/// Longest request line the daemon reads.
const MAX_REQUEST: u64 = 64 * 1024;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the daemon needs from the configuration, taken in one place.
#[derive(Debug, Clone)]
struct View {
    control_socket: PathBuf,
    log_file: Option<PathBuf>,
    gateways: Vec<String>,
    tunnels: Vec<TunnelRow>,
}

impl View {
    fn of(config: &Config) -> Self {
        Self {
            control_socket: config.global.control_socket.clone(),
            log_file: config.global.log_file.clone(),
            gateways: config.ike_gateways.keys().cloned().collect(),
            tunnels: config
                .ipsec_tunnels
                .values()
                .map(|t| {
                    let (kind, gateway, profile) = match &t.keying {
                        Keying::AutoKey {
                            ike_gateway,
                            crypto,
                        } => ("auto-key", ike_gateway.clone(), crypto.name.clone()),
                        Keying::ManualKey(_) => ("manual-key", String::new(), String::new()),
                    };
                    TunnelRow {
                        tunnel: t.name.clone(),
                        interface: t.tunnel_interface.clone(),
                        kind: kind.to_owned(),
                        gateway,
                        profile,
                        proxy_ids: t.proxy_ids.len(),
                        state: "down".to_owned(),
                    }
                })
                .collect(),
        }
    }
}

/// The daemon's state, owned by the control task.
struct Daemon {
    config_path: PathBuf,
    view: View,
    log: SystemLog,
}

impl Daemon {
    fn handle(&mut self, request: Request) -> Response {
        match request {
            Request::ShowIkeSa { gateway } => match self.check_gateway(gateway.as_deref()) {
                Ok(()) => rows::<IkeSaRow>(Vec::new()),
                Err(e) => e,
            },
            Request::ShowIpsecSa { tunnel } => match self.check_tunnel(tunnel.as_deref()) {
                Ok(()) => rows::<IpsecSaRow>(Vec::new()),
                Err(e) => e,
            },
            Request::ShowFlow => rows::<FlowRow>(Vec::new()),
            Request::ShowTunnel => rows(self.view.tunnels.clone()),
            Request::ShowSystemLog { lines } => rows(self.log.tail(lines)),
            Request::TestIkeSa { gateway } => match self.check_gateway(Some(&gateway)) {
                Ok(()) => Response::error(format!(
                    "cannot negotiate with ike-gateway \"{gateway}\": this build of ferrosec has \
                     no IKE engine yet"
                )),
                Err(e) => e,
            },
            Request::TestIpsecSa { tunnel } => match self.check_tunnel(Some(&tunnel)) {
                Ok(()) => Response::error(format!(
                    "cannot negotiate ipsec-tunnel \"{tunnel}\": this build of ferrosec has no \
                     IKE engine yet"
                )),
                Err(e) => e,
            },
            Request::ClearIkeSa { gateway } => match self.check_gateway(gateway.as_deref()) {
                Ok(()) => Response::ok("cleared 0 IKE SA(s)".into()),
                Err(e) => e,
            },
            Request::ClearIpsecSa { tunnel } => match self.check_tunnel(tunnel.as_deref()) {
                Ok(()) => Response::ok("cleared 0 IPsec SA pair(s)".into()),
                Err(e) => e,
            },
        }
    }

    fn check_gateway(&self, name: Option<&str>) -> Result<(), Response> {
        check_known("ike-gateway", name, &self.view.gateways)
    }

    fn check_tunnel(&self, name: Option<&str>) -> Result<(), Response> {
        let names: Vec<String> = self.view.tunnels.iter().map(|t| t.tunnel.clone()).collect();
        check_known("ipsec-tunnel", name, &names)
    }

    /// SIGHUP: load the file again; a broken file changes nothing that runs.
    fn reload(&mut self) {
        match ferrosec_config::load_file(&self.config_path) {
            Ok(loaded) => {
                let new = View::of(&loaded.config);
                if new.control_socket != self.view.control_socket {
                    self.log.record(
                        Severity::Warning,
                        "daemon",
                        "global.control-socket changed; the new path takes effect at the next \
                         restart",
                    );
                }
                for w in &loaded.warnings {
                    self.log.record(Severity::Warning, "config", w.to_string());
                }
                let socket = std::mem::replace(&mut self.view.control_socket, PathBuf::new());
                self.view = View {
                    control_socket: socket,
                    ..new
                };
                self.log.record(
                    Severity::Info,
                    "daemon",
                    format!("configuration reloaded from {}", self.config_path.display()),
                );
            }
            Err(e) => self.log.record(
                Severity::Error,
                "daemon",
                format!("reload rejected, the running configuration stays in force: {e}"),
            ),
        }
    }
}

fn rows<T: serde::Serialize>(rows: Vec<T>) -> Response {
    match serde_json::to_value(rows) {
        Ok(v) => Response::ok(v),
        Err(e) => Response::error(format!("internal error encoding the answer: {e}")),
    }
}

fn check_known(kind: &str, name: Option<&str>, known: &[String]) -> Result<(), Response> {
    match name {
        None => Ok(()),
        Some(n) if known.iter().any(|k| k == n) => Ok(()),
        Some(n) => Err(Response::error(format!(
            "{kind} \"{n}\" is not configured; configured: {}",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ))),
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub(crate) fn run(config_path: &Path) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERROSEC_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let Loaded { config, warnings } =
        ferrosec_config::load_file(config_path).map_err(|e| anyhow!("{e}"))?;
    let view = View::of(&config);
    let mut log = SystemLog::open(view.log_file.as_deref()).with_context(|| {
        format!(
            "opening the system log file {}",
            view.log_file.as_deref().unwrap_or(Path::new("")).display()
        )
    })?;
    for w in &warnings {
        eprintln!("warning: {w}");
        log.record(Severity::Warning, "config", w.to_string());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let daemon = Daemon {
        config_path: config_path.to_owned(),
        view,
        log,
    };
    runtime.block_on(serve(daemon))
}

async fn serve(mut daemon: Daemon) -> anyhow::Result<()> {
    let socket = daemon.view.control_socket.clone();
    let listener = bind_control_socket(&socket).await?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    daemon.log.record(
        Severity::Info,
        "daemon",
        format!(
            "started: {} ike-gateway(s), {} ipsec-tunnel(s) from {}; control socket {}",
            daemon.view.gateways.len(),
            daemon.view.tunnels.len(),
            daemon.config_path.display(),
            socket.display()
        ),
    );
    let daemon = Arc::new(Mutex::new(daemon));
    let why = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_client(stream, Arc::clone(&daemon)));
                }
                Err(e) => tracing::warn!("control socket accept failed: {e}"),
            },
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
            _ = sighup.recv() => lock(&daemon).reload(),
        }
    };
    lock(&daemon)
        .log
        .record(Severity::Info, "daemon", format!("stopping on {why}"));
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

fn lock(daemon: &Mutex<Daemon>) -> std::sync::MutexGuard<'_, Daemon> {
    // A panic while holding the lock would be a bug; keep serving with the state as it is.
    daemon
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Binds the control socket, replacing a stale socket file but never a live daemon's.
async fn bind_control_socket(path: &Path) -> anyhow::Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            anyhow::bail!(
                "another ferrosec daemon is already running at {}; stop it first or set a \
                 different global.control-socket",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale control socket {}", path.display()))?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the control socket directory {}", dir.display()))?;
    }
    UnixListener::bind(path)
        .with_context(|| format!("binding the control socket {}", path.display()))
}

async fn serve_client(stream: UnixStream, daemon: Arc<Mutex<Daemon>>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await {
        Err(_) => Response::error("no request within 5 s"),
        Ok(Err(e)) => Response::error(format!("reading the request: {e}")),
        Ok(Ok(_)) => match serde_json::from_str::<RequestEnvelope>(&line) {
            Ok(env) if env.v != PROTOCOL_VERSION => Response::error(format!(
                "this daemon speaks control protocol {PROTOCOL_VERSION}, the CLI speaks {}; use \
                 the ferrosec binary that matches the running daemon",
                env.v
            )),
            Ok(env) => lock(&daemon).handle(env.request),
            Err(e) => Response::error(format!("malformed request: {e}")),
        },
    };
    if let Ok(mut out) = serde_json::to_vec(&response) {
        out.push(b'\n');
        let _ = write.write_all(&out).await;
    }
}
