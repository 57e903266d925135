//! `ferrosec run`: the daemon.
//!
//! It loads and validates the configuration, keeps the system log, listens for IKE on UDP 500
//! and 4500 of every gateway's local address, runs the IKE task (crate::ike) that owns the
//! IKEv2 engine, serves the control socket (`show`, `test`, `clear`, `request`), reloads the
//! file on SIGHUP and `request system reload` (R-OPS-4, see [`reload`]: a broken file is
//! rejected and changes nothing; a good one is applied object by object, and what did not
//! change keeps its SAs), and on SIGTERM deletes every IKE SA on the peer (bounded wait)
//! before it exits.
//!
//! The data plane (crate::dataplane) creates a TUN device per tunnel interface; the daemon
//! then installs the virtual router's routes through them (rtnetlink, ferrosec_netio::route),
//! keeps the list, and on SIGTERM/SIGINT removes them again first, with a system log line for
//! each: traffic moves to whatever route is left (a backup with a higher metric) while the IKE
//! SAs are deleted, and the devices still exist when their routes are removed. The routes are
//! kept in a crate::routes::RouteBook shared with the tunnel monitors (crate::monitor, one
//! task per monitored tunnel), which withdraw and restore a fail-over tunnel's routes.
//!
//! `FERROSEC_NO_DATAPLANE=1` leaves the data plane and the routes out (IKE only), for tests
//! that run the daemon in the host's network namespace.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use ferrosec_config::{Config, Keying, Loaded};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};

use crate::control::{PROTOCOL_VERSION, Request, RequestEnvelope, Response};
use crate::ike::{Command, IkeTask, Incoming, Tables};
use crate::status::TunnelRow;
use crate::syslog::{Severity, SharedLog, SystemLog};

mod live_reload;
use live_reload::*;
mod pooled_rng;

/// How long `test vpn …` waits for the negotiation before answering "in progress" (the CLI
/// gives up after 10 s).
const TEST_WAIT: Duration = Duration::from_secs(8);
/// How long SIGTERM waits for the peers to acknowledge the deletes.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

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

/// The MTU the kernel gives network device `name` now (`/sys/class/net/NAME/mtu`).
fn device_mtu(name: &str) -> Option<u32> {
    if name.contains('/') || name.starts_with('.') {
        return None;
    }
    std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
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
                        monitor: "none".to_owned(),
                        last_reply: None,
                        misses: 0,
                        rtt: None,
                        routes: "none".to_owned(),
                        mtu: None,
                    }
                })
                .collect(),
        }
    }
}

/// The daemon's state, owned by the control task.
struct Daemon {
    config_path: PathBuf,
    /// The configuration in force: what started, then what the last good reload applied.
    running: Config,
    view: View,
    log: SharedLog,
    /// The SA tables the IKE task keeps.
    tables: Tables,
    /// Commands to the IKE task (absent when no gateway could be served).
    ike: Option<tokio::sync::mpsc::Sender<Command>>,
    /// Zones and security rules with their hit counters (compiled anew by a reload).
    policy: Arc<crate::policy::LivePolicy>,
    /// The routes we installed on the host, each with its virtual router; withdrawn and
    /// restored by fail-over monitors, removed at shutdown.
    routes: crate::routes::RouteBook,
    /// The rules and routes that give virtual routers other than `default` their own tables.
    vr_tables: crate::vrtables::VrTables,
    /// The tunnel monitors' states.
    monitors: crate::monitor::Board,
    /// The monitor tasks running, by tunnel, with what they watch; how many were started in
    /// the daemon's life; what new ones are started with (absent without a data plane).
    monitor_tasks:
        std::collections::BTreeMap<String, (crate::monitor::Target, tokio::task::AbortHandle)>,
    monitors_started: usize,
    monitor_links: Option<crate::monitor::Links>,
    /// Whether TUN devices and routes are ours to make (the data plane runs).
    has_dataplane: bool,
    /// One reload at a time.
    reloading: Arc<tokio::sync::Mutex<()>>,
    /// When the daemon started (for `show system info`).
    started: std::time::Instant,
    /// How raw ESP comes in and goes out on each address (for `show system info` and
    /// `/metrics`).
    raw_esp: Vec<crate::dataplane::RawEspPath>,
}

impl Daemon {
    fn handle(&mut self, request: Request) -> Response {
        match request {
            Request::ShowIkeSa { gateway } => match self.check_gateway(gateway.as_deref()) {
                Ok(()) => rows(self.tables.ike_rows(gateway.as_deref())),
                Err(e) => e,
            },
            Request::ShowIpsecSa { tunnel } => match self.check_tunnel(tunnel.as_deref()) {
                Ok(()) => rows(self.tables.ipsec_rows(tunnel.as_deref())),
                Err(e) => e,
            },
            Request::ShowFlow => rows(self.tables.flow_rows()),
            Request::ShowIkeCounters => rows(vec![self.tables.ike_counters()]),
            Request::ShowTunnel => rows(
                self.view
                    .tunnels
                    .iter()
                    .map(|t| {
                        let up = self.tables.proxy_ids_up(&t.tunnel).len();
                        let want = t.proxy_ids.max(1);
                        let monitor = self.monitors.get(&t.tunnel);
                        TunnelRow {
                            monitor: match monitor {
                                None => "none",
                                Some(m) if m.down => "down-by-monitor",
                                Some(_) => "up",
                            }
                            .to_owned(),
                            last_reply: monitor
                                .and_then(|m| m.last_reply)
                                .map(|at| at.elapsed().as_secs()),
                            misses: monitor.map_or(0, |m| m.misses),
                            rtt: monitor.and_then(|m| m.rtt).map(|d| d.as_secs_f64()),
                            routes: self.routes.state(&t.interface).as_str().to_owned(),
                            mtu: self
                                .has_dataplane
                                .then(|| device_mtu(&t.interface))
                                .flatten(),
                            state: match up {
                                _ if self.tables.manual_up(&t.tunnel) => "up",
                                0 => "down",
                                n if n >= want => "up",
                                _ => "partial",
                            }
                            .to_owned(),
                            ..t.clone()
                        }
                    })
                    .collect::<Vec<_>>(),
            ),
            Request::ShowSystemLog { lines } => rows(self.log.tail(lines)),
            Request::ShowSystemInfo => rows(vec![crate::status::SystemInfoRow {
                version: crate::buildinfo::VERSION.to_owned(),
                features: crate::buildinfo::FEATURES
                    .iter()
                    .map(|f| f.to_string())
                    .collect(),
                profile: crate::buildinfo::profile().to_owned(),
                pid: std::process::id(),
                uptime: self.started.elapsed().as_secs(),
                config_file: self.config_path.display().to_string(),
                gateways: self.view.gateways.len(),
                tunnels: self.view.tunnels.len(),
                ike_sas: self.tables.ike_rows(None).len(),
                ipsec_sa_pairs: self.tables.ipsec_rows(None).len(),
                metrics: self
                    .running
                    .global
                    .metrics_listen
                    .map(|a| format!("http://{a}/metrics")),
                raw_esp: self.raw_esp.iter().map(ToString::to_string).collect(),
            }]),
            Request::ShowSecurityRules => rows(self.policy.load().rows()),
            Request::ShowAuthCerts => rows(crate::status::crl_rows(
                &self.running,
                &self.tables.fetched_crls(),
                i64::try_from(crate::ikecfg::unix_now()).unwrap_or(i64::MAX),
            )),
            Request::TestIkeSa { .. }
            | Request::TestIpsecSa { .. }
            | Request::ClearIkeSa { .. }
            | Request::ClearIpsecSa { .. }
            | Request::RekeyIpsecSa { .. }
            | Request::RekeyIkeSa { .. }
            | Request::ReloadConfig
            | Request::ExportKeys => {
                Response::error("internal error: an IKE request reached the wrong handler")
            }
        }
    }

    /// Checks the names in an IKE request and returns the channel to the IKE task.
    fn ike_request(
        &self,
        request: &Request,
    ) -> Result<tokio::sync::mpsc::Sender<Command>, Response> {
        match request {
            Request::TestIkeSa { gateway } | Request::RekeyIkeSa { gateway } => {
                self.check_gateway(Some(gateway))?
            }
            Request::ClearIkeSa { gateway } => self.check_gateway(gateway.as_deref())?,
            Request::TestIpsecSa { tunnel } | Request::RekeyIpsecSa { tunnel } => {
                self.check_tunnel(Some(tunnel))?
            }
            Request::ClearIpsecSa { tunnel } => self.check_tunnel(tunnel.as_deref())?,
            _ => {}
        }
        self.ike.clone().ok_or_else(|| {
            Response::error(
                "no IKE gateway is served by this daemon (see `show system log` for why)",
            )
        })
    }

    fn check_gateway(&self, name: Option<&str>) -> Result<(), Response> {
        check_known("ike-gateway", name, &self.view.gateways)
    }

    fn check_tunnel(&self, name: Option<&str>) -> Result<(), Response> {
        let names: Vec<String> = self.view.tunnels.iter().map(|t| t.tunnel.clone()).collect();
        check_known("ipsec-tunnel", name, &names)
    }
}

/// The data plane's tunnels (the served ones) and their interfaces' device settings.
fn tunnel_plans(
    config: &Config,
    setup: &crate::ikecfg::EngineSetup,
    manual: &[crate::manual::ManualSa],
) -> (
    Vec<crate::dataplane::TunnelPlan>,
    std::collections::BTreeMap<String, crate::dataplane::InterfacePlan>,
) {
    let served: std::collections::BTreeSet<&str> = setup
        .gateways
        .iter()
        .flat_map(|g| g.policies.iter().map(|p| p.tunnel.as_str()))
        .chain(manual.iter().map(|m| m.tunnel.as_str()))
        .collect();
    let plans = config
        .ipsec_tunnels
        .values()
        .filter(|t| served.contains(t.name.as_str()))
        .map(|t| crate::dataplane::TunnelPlan {
            tunnel: t.name.clone(),
            interface: t.tunnel_interface.clone(),
            local: setup
                .gateways
                .iter()
                .flat_map(|g| &g.policies)
                .filter(|p| p.tunnel == t.name)
                .map(|p| p.local.clone())
                .collect(),
        })
        .collect();
    let interfaces = config
        .tunnel_interfaces
        .values()
        .map(|i| {
            let addrs = i
                .addresses
                .iter()
                .map(|a| (a.addr(), a.prefix_len()))
                .collect();
            (i.name.clone(), (i.mtu, addrs))
        })
        .collect();
    (plans, interfaces)
}

/// The virtual routers' static routes through the tunnels' devices, with their router.
fn wanted_routes(
    config: &Config,
    plans: &[crate::dataplane::TunnelPlan],
) -> Vec<(String, ferrosec_netio::Route)> {
    let devices: std::collections::BTreeSet<&str> =
        plans.iter().map(|p| p.interface.as_str()).collect();
    let mut v = Vec::new();
    for vr in config.virtual_routers.values() {
        for r in &vr.static_routes {
            let tunnel = config.tunnel_interfaces.contains_key(&r.interface);
            // Through a tunnel interface: only one that has a device (its tunnel is served).
            if tunnel && !devices.contains(r.interface.as_str()) {
                continue;
            }
            v.push((
                vr.name.clone(),
                ferrosec_netio::Route {
                    destination: r.destination,
                    interface: r.interface.clone(),
                    metric: r.metric,
                    source: None,
                    // A next hop means nothing on a tunnel interface: the tunnel is the path.
                    next_hop: if tunnel { None } else { r.next_hop },
                    table: vr.routing_table,
                },
            ));
        }
    }
    v
}

/// What one responder key exchange of each group in the IKE proposals costs on this host
/// and build (the fastest of three), for the engine's key-exchange budget under a flood.
fn measure_key_exchanges(
    peers: &[ferrosec_ike::v2::PeerConfig],
) -> Vec<(u16, std::time::Duration)> {
    use ferrosec_wire::ikev2::TransformType;
    let provider = ferrosec_crypto::Provider::default();
    let mut rng = rand_core::OsRng;
    let mut groups: Vec<u16> = peers
        .iter()
        .flat_map(|p| &p.ike_proposals)
        .flat_map(|p| &p.transforms)
        .filter(|t| t.ty == TransformType::KE)
        .map(|t| t.id)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
        .into_iter()
        .filter_map(|g| {
            let kx = provider.key_exchange(g).ok()?;
            let peer = kx.start(&mut rng).ok()?;
            let mut best = None;
            for _ in 0..3 {
                let t = std::time::Instant::now();
                kx.respond(&mut rng, peer.public_key()).ok()?;
                let d = t.elapsed();
                best = Some(best.map_or(d, |b: std::time::Duration| b.min(d)));
            }
            Some((g, best?))
        })
        .collect()
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
    let log = SystemLog::open(view.log_file.as_deref()).with_context(|| {
        format!(
            "opening the system log file {}",
            view.log_file.as_deref().unwrap_or(Path::new("")).display()
        )
    })?;
    let log = SharedLog::new(log);
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
        running: config.clone(),
        view,
        log,
        tables: Tables::default(),
        ike: None,
        policy: Arc::new(crate::policy::LivePolicy::new(crate::policy::Policy::new(
            &config,
            &connected_prefixes,
        ))),
        routes: crate::routes::RouteBook::default(),
        vr_tables: crate::vrtables::VrTables::default(),
        monitors: crate::monitor::Board::default(),
        monitor_tasks: std::collections::BTreeMap::new(),
        monitors_started: 0,
        monitor_links: None,
        has_dataplane: false,
        reloading: Arc::new(tokio::sync::Mutex::new(())),
        started: std::time::Instant::now(),
        raw_esp: Vec::new(),
    };
    runtime.block_on(serve(daemon, config))
}

/// Builds the engine, binds the IKE sockets and starts the IKE task and the socket readers.
fn start_ike(daemon: &mut Daemon, config: &Config) {
    let setup = crate::ikecfg::engine_setup(config, &crate::ikecfg::system_resolve);
    // The same list `config check` prints: objects left out are errors, settings without
    // effect warnings.
    for u in &setup.unserved {
        let severity = match u.impact {
            crate::served::Impact::NotServed => Severity::Error,
            crate::served::Impact::Ignored => Severity::Warning,
        };
        daemon.log.record(severity, &u.object(), u.detail());
    }
    for (gw, why) in &setup.skipped {
        daemon
            .log
            .record(Severity::Error, &format!("ike-gateway {gw}"), why.clone());
    }
    for (gw, name) in &setup.unresolved {
        daemon.log.record(
            Severity::Warning,
            &format!("ike-gateway {gw}"),
            crate::ikecfg::unresolved_words(name, config.global.fqdn_refresh),
        );
    }
    let mut manual = Vec::new();
    for m in crate::manual::manual_sas(config) {
        match m {
            Ok(m) => manual.push(m),
            Err((tunnel, why)) => {
                daemon
                    .log
                    .record(Severity::Error, &format!("ipsec-tunnel {tunnel}"), why)
            }
        }
    }
    if setup.peers.is_empty() && manual.is_empty() {
        return;
    }
    let opts = ferrosec_netio::SocketOptions {
        freebind: true,
        ..ferrosec_netio::SocketOptions::default()
    };
    let mut ports = Vec::new();
    let mut listen = crate::ike::listen_addresses(&setup.gateways);
    // Manual-key SAs are received on their local address (raw ESP beside a NAT-T socket).
    for m in &manual {
        let ip = m.info.local.ip();
        let covered = listen
            .iter()
            .any(|a| *a == ip || (a.is_unspecified() && a.is_ipv4() == ip.is_ipv4()));
        if !covered {
            listen.push(ip);
        }
    }
    let tcp_listen = listen.clone();
    for ip in listen {
        for (port, natt) in [
            (ferrosec_ike::v2::IKE_PORT, false),
            (ferrosec_ike::v2::NATT_PORT, true),
        ] {
            let addr = std::net::SocketAddr::new(ip, port);
            match ferrosec_netio::UdpPort::bind(addr, natt, &opts) {
                Ok(p) => ports.push(p),
                Err(e) => daemon.log.record(
                    Severity::Error,
                    "daemon",
                    format!("{e}; IKE on this address does not work"),
                ),
            }
        }
    }
    let ports = Arc::new(ports);
    let (dgram_tx, dgram_rx) = tokio::sync::mpsc::channel::<Incoming>(1024);
    let (cmd_tx, cmd_rx) = tokio::sync::mpsc::channel::<Command>(64);
    let (demand_tx, demand_rx) = tokio::sync::mpsc::channel::<crate::dataplane::Trigger>(256);
    let tcp = crate::tcpencap::start(
        &setup.gateways,
        &tcp_listen,
        &dgram_tx,
        daemon.tables.drops(),
        &daemon.log,
        daemon.tables.tcp_peers(),
    );
    let dataplane = if std::env::var_os("FERROSEC_NO_DATAPLANE").is_some() {
        // For tests that run the daemon outside a namespace: IKE only, no TUN devices.
        for i in 0..ports.len() {
            tokio::spawn(crate::dataplane::ike_reader(
                Arc::clone(&ports),
                i,
                dgram_tx.clone(),
                daemon.tables.drops(),
            ));
        }
        None
    } else {
        Some(start_dataplane(
            daemon,
            config,
            &setup,
            &manual,
            &ports,
            (&dgram_tx, &demand_tx),
            tcp.clone(),
        ))
    };
    if let (Some(t), Some(dp)) = (&tcp, &dataplane) {
        t.set_esp_sinks(dp.tcp_esp_sinks());
    }
    if let Some(dp) = &dataplane {
        install_manual(daemon, dp, &manual);
    }
    let endpoint = ferrosec_ike::v2::Endpoint::new(
        setup.endpoint.clone(),
        setup.peers.clone(),
        ferrosec_crypto::Provider::default(),
        Box::new(pooled_rng::PooledOsRng::new()),
        std::time::Instant::now(),
    );
    // The daemon owns the facade: IKEv1 datagrams go to the IKEv1 engine (which refuses
    // them politely, in the log), the rest to IKEv2.
    let mut endpoint = ferrosec_ike::Ike::new(
        endpoint,
        ferrosec_ike::v1::Engine::new(
            ferrosec_crypto::Provider::default(),
            Box::new(pooled_rng::PooledOsRng::new()),
        ),
    );
    for (group, cost) in measure_key_exchanges(&setup.peers) {
        endpoint.set_dh_cost(group, cost);
        tracing::debug!("key exchange of group {group}: {cost:?} (responder, measured)");
    }
    let ids: Vec<(ferrosec_ike::v2::PeerId, String)> = endpoint
        .peers()
        .map(|(id, p)| (id, p.name.clone()))
        .collect();
    for (id, name) in ids {
        let Some(g) = setup.gateways.iter().find(|g| g.name == name) else {
            continue;
        };
        if let Err(e) = endpoint.set_lifetimes(id, g.lifetimes) {
            tracing::warn!("lifetimes of {}: {e}", g.name);
        }
        if let Some(cp) = &g.config_payload
            && let Err(e) = endpoint.set_config_payload(id, cp.clone())
        {
            tracing::warn!("configuration payload of {}: {e}", g.name);
        }
        if let Some(c) = &g.certificates
            && let Err(e) = endpoint.set_certificates(id, c.clone())
        {
            tracing::warn!("certificates of {}: {e}", g.name);
        }
        if let Some(v1) = g.ikev1 {
            let served = if g.ikev2_preferred {
                endpoint.serve_ikev2_preferred(id, v1)
            } else {
                endpoint.serve_ikev1(id, v1)
            };
            if let Err(e) = served {
                tracing::warn!("IKEv1 for {}: {e}", g.name);
            }
        }
    }
    let setup_tunnels: std::collections::BTreeSet<String> = setup
        .gateways
        .iter()
        .flat_map(|g| g.policies.iter().map(|p| p.tunnel.clone()))
        .collect();
    let has_dataplane = dataplane.is_some();
    daemon.has_dataplane = has_dataplane;
    let task = IkeTask::new(
        setup,
        endpoint,
        Arc::clone(&ports),
        daemon.tables.clone(),
        daemon.log.clone(),
        dataplane,
    )
    .with_nat_keepalive(config.global.nat_keepalive_interval)
    .with_fqdn_refresh(config.global.fqdn_refresh)
    .with_key_export(config.global.allow_key_export)
    .with_commands(cmd_tx.clone())
    .with_tcp(tcp)
    .with_always_on(
        config
            .ipsec_tunnels
            .values()
            .filter(|t| t.always_on && setup_tunnels.contains(&t.name))
            .map(|t| t.name.clone())
            .collect(),
    );
    if config.global.allow_key_export {
        daemon.log.record(
            Severity::Warning,
            "daemon",
            "allow-key-export is on: `request vpn export-keys` can write every SA's keys to a \
             file, and whoever reads it can decrypt the traffic; switch it off when done \
             debugging",
        );
    }
    tokio::spawn(task.run(dgram_rx, cmd_rx, demand_rx));
    start_monitors(daemon, config, &setup_tunnels, has_dataplane, &cmd_tx);
    tokio::spawn(report_drops(daemon.tables.clone(), daemon.log.clone()));
    if let Some(addr) = config.global.metrics_listen {
        let sources = crate::metrics::Sources {
            tables: daemon.tables.clone(),
            monitors: daemon.monitors.clone(),
            raw_esp: Arc::new(daemon.raw_esp.clone()),
        };
        tokio::spawn(crate::metrics::serve(addr, sources, daemon.log.clone()));
    }
    daemon.ike = Some(cmd_tx);
}

/// One tunnel monitor task per served tunnel with a `tunnel-monitor` (crate::monitor); they
/// need the data plane's TUN devices, so without one a line says that they do not run.
fn start_monitors(
    daemon: &mut Daemon,
    config: &Config,
    served: &std::collections::BTreeSet<String>,
    has_dataplane: bool,
    ike: &tokio::sync::mpsc::Sender<Command>,
) {
    let targets = crate::monitor::targets(config, |t| served.contains(t));
    if !has_dataplane {
        for t in targets {
            daemon.log.record(
                Severity::Warning,
                &format!("ipsec-tunnel {}", t.tunnel),
                "tunnel monitor not started: the data plane does not run, so probes cannot \
                 cross the tunnel",
            );
        }
        return;
    }
    let links = crate::monitor::Links {
        log: daemon.log.clone(),
        routes: daemon.routes.clone(),
        board: daemon.monitors.clone(),
        ike: ike.clone(),
    };
    let n = targets.len();
    for (t, task) in crate::monitor::spawn(targets.clone(), 0, &links) {
        if let Some(target) = targets.iter().find(|x| x.tunnel == t) {
            daemon.monitor_tasks.insert(t, (target.clone(), task));
        }
    }
    daemon.monitors_started = n;
    daemon.monitor_links = Some(links);
}

/// What the zones know of host interface `name`: the prefixes connected to it
/// (`ip -o addr show dev NAME`) and those routed through it (`ip route show dev NAME`, IPv4
/// and IPv6, the default route as 0.0.0.0/0 or ::/0). A packet's zone is the zone of the
/// interface its source (leaving into a tunnel) or destination (entering from one) is reached
/// by, as a firewall takes the interface a packet arrived on when routing is symmetric; the
/// most specific prefix wins (crate::policy). Read at start and at each reload.
fn connected_prefixes(name: &str) -> Vec<(std::net::IpAddr, u8)> {
    let ip = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let mut v = crate::vrtables::interface_addresses(name);
    for (family, any) in [("-4", "0.0.0.0"), ("-6", "::")] {
        let routes = ip(&[family, "-o", "route", "show", "dev", name]);
        v.extend(routes.lines().filter_map(|l| route_prefix(l, any)));
    }
    v
}

/// The destination of one line of `ip -o route show` (`default`, `a.b.c.d/len`, a host).
fn route_prefix(line: &str, any: &str) -> Option<(std::net::IpAddr, u8)> {
    let mut w = line.split_whitespace();
    let mut dst = w.next()?;
    // Route types other than unicast come first (`unreachable 10.0.0.0/8`): not a path.
    if matches!(dst, "unreachable" | "blackhole" | "prohibit" | "throw") {
        return None;
    }
    if dst == "unicast" {
        dst = w.next()?;
    }
    if dst == "default" {
        return Some((any.parse().ok()?, 0));
    }
    match dst.split_once('/') {
        Some((a, len)) => Some((a.parse().ok()?, len.parse().ok()?)),
        None => {
            let a: std::net::IpAddr = dst.parse().ok()?;
            Some((a, if a.is_ipv4() { 32 } else { 128 }))
        }
    }
}

/// How often dropped packets are summed up in the system log (when there were any).
const DROP_REPORT: Duration = Duration::from_secs(5);

/// Logs, at most every [`DROP_REPORT`], the packets dropped since the last report by reason
/// (ESP with an unknown SPI, replays, failed integrity checks, malformed IKE or NAT-T
/// datagrams …): one line, not one per packet.
async fn report_drops(tables: Tables, log: SharedLog) {
    let mut last = tables.all_drops();
    let mut tick = tokio::time::interval(DROP_REPORT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = tables.all_drops();
        let grown = crate::counters::grown(&last, &now);
        if !grown.is_empty() {
            log.record(
                Severity::Warning,
                "data plane",
                format!(
                    "dropped in the last {} s: {grown} (see show vpn flow)",
                    DROP_REPORT.as_secs()
                ),
            );
        }
        last = now;
    }
}

/// Installs the manual-key SA pairs (crate::manual) and files them for `show`.
fn install_manual(
    daemon: &mut Daemon,
    dp: &crate::dataplane::DataPlane,
    manual: &[crate::manual::ManualSa],
) {
    for m in manual {
        let source = format!("ipsec-tunnel {}", m.tunnel);
        let counters = Arc::new(crate::counters::SaCounters::default());
        match dp.install(
            &m.tunnel,
            &m.info,
            m.replay_window,
            None,
            Arc::clone(&counters),
            false,
        ) {
            Ok(_) => {
                daemon.tables.insert_manual(&m.tunnel, &m.info, counters);
                daemon.log.record(
                    Severity::Info,
                    &source,
                    format!(
                        "manual-key SA pair installed: SPI in 0x{:08x} out 0x{:08x}, {}/{}, {} \
                         {} -> {}, anti-replay {}",
                        m.info.inbound_spi.0,
                        m.info.outbound_spi.0,
                        crate::ikecfg::child_encr_name(m.info.encr),
                        crate::ikecfg::child_integ_name(m.info.integ),
                        if m.info.protocol == ferrosec_wire::ikev2::ProtocolId::AH {
                            "AH"
                        } else {
                            "ESP"
                        },
                        m.info.local.ip(),
                        m.info.remote.ip(),
                        m.replay_window
                            .map_or("off".to_owned(), |w| format!("window {w}")),
                    ),
                );
            }
            Err(e) => daemon.log.record(
                Severity::Error,
                &source,
                format!("manual-key SA pair not installed: {e}"),
            ),
        }
    }
}

/// TUN devices for the tunnel interfaces of the served tunnels, the routes of the virtual
/// routers through them (kept in `daemon.routes`), and the data-plane workers.
fn start_dataplane(
    daemon: &mut Daemon,
    config: &Config,
    setup: &crate::ikecfg::EngineSetup,
    manual: &[crate::manual::ManualSa],
    ports: &Arc<Vec<ferrosec_netio::UdpPort>>,
    (to_ike, on_demand): (
        &tokio::sync::mpsc::Sender<Incoming>,
        &tokio::sync::mpsc::Sender<crate::dataplane::Trigger>,
    ),
    tcp: Option<Arc<crate::tcpencap::TcpEncap>>,
) -> crate::dataplane::DataPlane {
    let (plans, interfaces) = tunnel_plans(config, setup, manual);
    let (dp, errors) = crate::dataplane::start(
        &plans,
        &interfaces,
        ports,
        to_ike,
        on_demand,
        (
            &daemon.tables.drops(),
            &daemon.policy,
            config.global.raw_esp,
        ),
        tcp,
    );
    for e in errors {
        daemon.log.record(Severity::Error, "daemon", e);
    }
    daemon.raw_esp = dp.raw_esp_paths().to_vec();
    for w in dp.impairments().warnings() {
        daemon.log.record(Severity::Warning, "daemon", w);
    }
    if !dp.is_empty() {
        let devices: Vec<&str> = plans.iter().map(|p| p.interface.as_str()).collect();
        let pieces =
            crate::vrtables::wanted(config, &devices, &crate::vrtables::interface_addresses);
        daemon.vr_tables.install(pieces, &daemon.log);
        for (router, route) in wanted_routes(config, &plans) {
            let source = format!("virtual-router {router}");
            match ferrosec_netio::replace_route(&route) {
                Ok(()) => {
                    daemon
                        .log
                        .record(Severity::Info, &source, format!("route {route} installed"));
                    daemon.routes.installed(&router, route);
                }
                Err(e) => daemon.log.record(Severity::Error, &source, e.to_string()),
            }
        }
    }
    dp
}

async fn serve(mut daemon: Daemon, config: Config) -> anyhow::Result<()> {
    let socket = daemon.view.control_socket.clone();
    let listener = bind_control_socket(&socket).await?;
    start_ike(&mut daemon, &config);
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
            _ = sighup.recv() => {
                let d = Arc::clone(&daemon);
                tokio::spawn(async move {
                    let _ = reload(&d).await;
                });
            }
        }
    };
    let (log, ike) = {
        let d = lock(&daemon);
        (d.log.clone(), d.ike.clone())
    };
    log.record(Severity::Info, "daemon", format!("stopping on {why}"));
    let routes = lock(&daemon).routes.close();
    remove_routes(&log, routes);
    lock(&daemon).vr_tables.remove_all(&log);
    if let Some(ike) = ike {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = ike
            .send(Command::Shutdown {
                within: SHUTDOWN_WAIT,
                reply: tx,
            })
            .await;
        if sent.is_ok()
            && let Ok(Ok(n)) =
                tokio::time::timeout(SHUTDOWN_WAIT + Duration::from_secs(1), rx).await
            && n > 0
        {
            log.record(
                Severity::Info,
                "daemon",
                format!("deleted {n} IKE SA(s) on the peers"),
            );
        }
    }
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// Removes the routes we installed, the last installed first, a system log line for each.
/// Called first on the way out, while the data plane (and so every TUN device) still runs:
/// once the IKE task has ended, its workers drop the devices, and the kernel drops their
/// routes with them. Removing them here makes the order explicit and covers a device that
/// outlives us.
fn remove_routes(log: &SharedLog, routes: Vec<(String, ferrosec_netio::Route)>) {
    for (router, route) in routes.into_iter().rev() {
        let source = format!("virtual-router {router}");
        match ferrosec_netio::delete_route(&route) {
            Ok(()) => log.record(Severity::Info, &source, format!("route {route} removed")),
            Err(e) => log.record(Severity::Warning, &source, e.to_string()),
        }
    }
}

/// Sends an IKE request to the IKE task and waits (bounded) for its answer.
async fn ike_call(ike: tokio::sync::mpsc::Sender<Command>, request: Request) -> Response {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let command = match request {
        Request::TestIkeSa { gateway } => Command::TestIkeSa { gateway, reply: tx },
        Request::TestIpsecSa { tunnel } => Command::TestIpsecSa { tunnel, reply: tx },
        Request::ClearIkeSa { gateway } => Command::ClearIkeSa { gateway, reply: tx },
        Request::ClearIpsecSa { tunnel } => Command::ClearIpsecSa { tunnel, reply: tx },
        Request::RekeyIpsecSa { tunnel } => Command::RekeyIpsecSa { tunnel, reply: tx },
        Request::RekeyIkeSa { gateway } => Command::RekeyIkeSa { gateway, reply: tx },
        Request::ExportKeys => Command::ExportKeys { reply: tx },
        _ => return Response::error("internal error: not an IKE request"),
    };
    if ike.send(command).await.is_err() {
        return Response::error("the IKE task has stopped");
    }
    match tokio::time::timeout(TEST_WAIT, rx).await {
        Ok(Ok(Ok(message))) => Response::ok(message.into()),
        Ok(Ok(Err(why))) => Response::error(why),
        Ok(Err(_)) => Response::error("the IKE task dropped the request"),
        Err(_) => Response::error(format!(
            "negotiation still in progress after {} s; see `show vpn ike-sa` and `show system log`",
            TEST_WAIT.as_secs()
        )),
    }
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
            Ok(env) => match env.request {
                r @ (Request::TestIkeSa { .. }
                | Request::TestIpsecSa { .. }
                | Request::ClearIkeSa { .. }
                | Request::ClearIpsecSa { .. }
                | Request::RekeyIpsecSa { .. }
                | Request::RekeyIkeSa { .. }
                | Request::ExportKeys) => {
                    let checked = lock(&daemon).ike_request(&r);
                    match checked {
                        Ok(ike) => ike_call(ike, r).await,
                        Err(e) => e,
                    }
                }
                Request::ReloadConfig => match reload(&daemon).await {
                    Ok(done) => Response::ok(serde_json::Value::String(done)),
                    Err(e) => Response::error(e),
                },
                r => lock(&daemon).handle(r),
            },
            Err(e) => Response::error(format!("malformed request: {e}")),
        },
    };
    if let Ok(mut out) = serde_json::to_vec(&response) {
        out.push(b'\n');
        let _ = write.write_all(&out).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The destinations of `ip -o route show` lines, as the zones read them.
    #[test]
    fn route_lines_give_their_prefixes() {
        let v4 = |l: &str| route_prefix(l, "0.0.0.0");
        assert_eq!(
            v4("default via 198.51.100.254 dev wan0 proto static"),
            Some(("0.0.0.0".parse().unwrap(), 0))
        );
        assert_eq!(
            v4("10.1.9.0/24 via 10.1.0.10 dev lan0"),
            Some(("10.1.9.0".parse().unwrap(), 24))
        );
        assert_eq!(
            v4("10.1.0.0/24 proto kernel scope link src 10.1.0.1"),
            Some(("10.1.0.0".parse().unwrap(), 24))
        );
        assert_eq!(
            v4("192.0.2.7 via 10.1.0.10 dev lan0"),
            Some(("192.0.2.7".parse().unwrap(), 32))
        );
        assert_eq!(v4("unreachable 10.66.0.0/16"), None);
        assert_eq!(
            route_prefix("default via fe80::1 dev wan0 metric 1024", "::"),
            Some(("::".parse().unwrap(), 0))
        );
        assert_eq!(
            route_prefix("2001:db8:1::/64 proto kernel metric 256", "::"),
            Some(("2001:db8:1::".parse().unwrap(), 64))
        );
    }

    /// The routes a reload keeps, installs and removes are those of the virtual routers
    /// through the devices of the served tunnels; a route names its tunnel in the log.
    #[test]
    fn wanted_routes_go_through_served_tunnels_only() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/appendix-a.toml"
        ))
        .unwrap();
        let config = ferrosec_config::load_str(&text, "appendix-a.toml")
            .unwrap()
            .config;
        let setup = crate::ikecfg::engine_setup(&config, &|_, _| None);
        let (plans, interfaces) = tunnel_plans(&config, &setup, &[]);
        assert!(!plans.is_empty());
        assert!(plans.iter().all(|p| interfaces.contains_key(&p.interface)));
        let wanted = wanted_routes(&config, &plans);
        assert!(!wanted.is_empty());
        assert!(
            wanted
                .iter()
                .all(|(_, r)| plans.iter().any(|p| p.interface == r.interface))
        );
        let (_, r) = &wanted[0];
        assert_eq!(
            route_tunnel(&config, &r.interface).as_deref(),
            Some("ipsec-tunnel to-branch1")
        );
        // No served tunnel: no route.
        assert!(wanted_routes(&config, &[]).is_empty());

        // A route through a physical interface is installed with its next hop, served
        // tunnels or not; a next hop on a tunnel interface means nothing.
        let text = text.replace(
            "metric = 10 },\n]",
            "metric = 10 },\n  { name = \"lab\", destination = \"10.9.0.0/24\", interface = \"eth1\", next-hop = \"10.1.0.254\" },\n]",
        );
        let config = ferrosec_config::load_str(&text, "appendix-a.toml")
            .unwrap()
            .config;
        let physical: Vec<_> = wanted_routes(&config, &[])
            .into_iter()
            .map(|(_, r)| r.to_string())
            .collect();
        assert_eq!(physical, ["10.9.0.0/24 via 10.1.0.254 dev eth1 metric 10"]);

        // The same route in a second virtual router goes into that router's table.
        let text = format!(
            "{text}\n[virtual-router.red]\ninterfaces = [\"eth7\"]\nrouting-table = 1001\nstatic-route = [ {{ name = \"lab\", destination = \"10.9.0.0/24\", interface = \"eth7\", next-hop = \"10.7.0.254\" }} ]\n"
        );
        let config = ferrosec_config::load_str(&text, "appendix-a.toml")
            .unwrap()
            .config;
        let both: Vec<_> = wanted_routes(&config, &[])
            .into_iter()
            .map(|(vr, r)| format!("{vr}: {r}"))
            .collect();
        assert_eq!(
            both,
            [
                "default: 10.9.0.0/24 via 10.1.0.254 dev eth1 metric 10",
                "red: 10.9.0.0/24 via 10.7.0.254 dev eth7 metric 10 table 1001"
            ]
        );
    }

    #[test]
    fn a_reload_line_that_says_something_was_not_done_is_a_warning() {
        assert_eq!(
            severity_of(
                "reload: virtual-router default (changed): route 10.2.0.0/24 via tunnel.1 metric 10 installed"
            ),
            Severity::Info
        );
        assert_eq!(
            severity_of(
                "reload: global (changed): not applied live: [global] settings take effect at the next restart"
            ),
            Severity::Warning
        );
        assert_eq!(
            severity_of(
                "reload: ipsec-tunnel t1 (added): route 10.2.0.0/24 via tunnel.1 metric 10 not installed: exists"
            ),
            Severity::Warning
        );
    }
}
