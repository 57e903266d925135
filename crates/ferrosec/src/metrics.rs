//! Prometheus metrics (R-OPS-5): `[global] metrics-listen` serves `/metrics` in the
//! OpenMetrics text format (what the prometheus-client crate encodes; Prometheus scrapes it).
//!
//! Every scrape reads what `show` reads (the IKE task's tables and the data plane's relaxed
//! atomic counters, the tunnel monitors' board, `/proc/self`; a few locks per scrape, never
//! one per packet) into a fresh registry and encodes it. Only the handshake duration histogram
//! lives between scrapes ([`Handshakes`], observed by the IKE task once per IKE SA). Labels
//! are bounded: gateways, tunnels and proxy IDs come from the configuration, versions, states,
//! kinds, sides and failure reasons are fixed sets; there are no per-SPI labels.
//!
//! | family | type | labels |
//! |---|---|---|
//! | `ferrosec_build_info` | gauge (1) | `version`, `profile`, `features` |
//! | `ferrosec_ike_sas` | gauge | `gateway`, `version`, `state` |
//! | `ferrosec_ipsec_sa_pairs` | gauge | `tunnel`, `proxy_id` |
//! | `ferrosec_tunnel_packets_total`, `ferrosec_tunnel_bytes_total` | counter | `tunnel`, `proxy_id`, `direction` |
//! | `ferrosec_drops_total` | counter | `reason` |
//! | `ferrosec_ike_sas_established_total` | counter | `gateway`, `version` |
//! | `ferrosec_ipsec_sas_installed_total` | counter | `tunnel`, `kind` (`new`, `rekey`) |
//! | `ferrosec_negotiations_started_total` | counter | `version`, `side` (`local`, `peer`) |
//! | `ferrosec_negotiations_failed_total` | counter | `gateway`, `reason` |
//! | `ferrosec_rekeys_total` | counter | `gateway`, `kind` (`ike-sa`, `ipsec-sa`, `reauthentication`), `side` (`local`, `peer`) |
//! | `ferrosec_liveness_failures_total` | counter | `gateway`, `version`, `reason` (`no-answer`, `lost-sa`) |
//! | `ferrosec_liveness_misses_total` | counter | `gateway`, `version` |
//! | `ferrosec_ike_handshake_duration_seconds` | histogram | `gateway`, `version` |
//! | `ferrosec_ike_half_open_sas` | gauge | |
//! | `ferrosec_ike_cookies_sent_total` | counter | |
//! | `ferrosec_ike_init_refused_total` | counter | `reason` |
//! | `ferrosec_tunnel_monitor_up` | gauge (1 up, 0 down by monitor) | `tunnel` |
//! | `ferrosec_tunnel_monitor_rtt_seconds` | gauge | `tunnel` |
//! | `ferrosec_tunnel_monitor_misses` | gauge (consecutive) | `tunnel` |
//! | `ferrosec_tunnel_monitor_probes_total` | counter | `tunnel`, `result` (`sent`, `answered`) |
//! | `ferrosec_raw_esp_path` | gauge (1) | `address`, `receive` (`packet-ring`, `raw-socket`), `send` (`packet-socket`, `raw-socket`), `early_drop` (`true`, `false`) |
//! | `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_cpu_seconds_total`, `process_open_fds`, `process_max_fds`, `process_threads`, `process_start_time_seconds` | gauge / counter | |

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::dataplane::RawEspPath;
use crate::ike::Tables;
use crate::monitor::Board;
use crate::syslog::{Severity, SharedLog};

/// Labels of one series.
type Labels = Vec<(String, String)>;

/// Connections served at once; more wait for a slot (a scraper needs one).
const MAX_CONNECTIONS: usize = 8;
/// A connection that has not finished its request and response in this time is closed.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn gauge_family(
    reg: &mut Registry,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, i64)>,
) {
    let f = Family::<Labels, Gauge>::default();
    for (l, v) in rows {
        f.get_or_create(&l).set(v);
    }
    reg.register(name, help, f);
}

fn counter_family(
    reg: &mut Registry,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, u64)>,
) {
    let f = Family::<Labels, Counter>::default();
    for (l, v) in rows {
        f.get_or_create(&l).inc_by(v);
    }
    reg.register(name, help, f);
}

/// The upper bounds of the handshake histogram's buckets, in seconds: a handshake on a LAN
/// takes milliseconds, one across the world a few hundred, retransmissions make seconds.
const HANDSHAKE_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

fn handshake_histogram() -> Histogram {
    Histogram::new(HANDSHAKE_BUCKETS)
}

/// How long IKE SAs took to establish, from the first message (ours or the peer's) to the
/// engine's `IkeSaUp`, by gateway and version, measured by the IKE task with the daemon's
/// clock. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub(crate) struct Handshakes(Family<Labels, Histogram, fn() -> Histogram>);

impl Default for Handshakes {
    fn default() -> Self {
        Self(Family::new_with_constructor(handshake_histogram))
    }
}

impl Handshakes {
    /// One IKE SA of `gateway` and `version` established after `took`.
    pub(crate) fn observe(&self, gateway: &str, version: &str, took: Duration) {
        self.0
            .get_or_create(&labels(&[("gateway", gateway), ("version", version)]))
            .observe(took.as_secs_f64());
    }

    /// (count, sum in seconds) of a series, as encoded (tests).
    #[cfg(test)]
    pub(crate) fn series(&self, gateway: &str, version: &str) -> (u64, f64) {
        let mut reg = Registry::default();
        reg.register("h", "", self.0.clone());
        let mut out = String::new();
        let _ = encode(&mut out, &reg);
        let value = |suffix: &str| {
            let head = format!("h_{suffix}{{gateway=\"{gateway}\",version=\"{version}\"}} ");
            out.lines()
                .find_map(|l| l.strip_prefix(&head)?.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (value("count") as u64, value("sum"))
    }
}

/// What a scrape reads: the IKE task's tables, the tunnel monitors' board, and how raw ESP
/// passes the kernel on each address (fixed at start).
#[derive(Clone, Default)]
pub(crate) struct Sources {
    pub(crate) tables: Tables,
    pub(crate) monitors: Board,
    pub(crate) raw_esp: Arc<Vec<RawEspPath>>,
}

/// The metrics text of one scrape.
pub(crate) fn render(sources: &Sources) -> String {
    let (tables, monitors) = (&sources.tables, &sources.monitors);
    let mut root = Registry::default();
    process_families(&mut root);
    let reg = root.sub_registry_with_prefix("ferrosec");
    let build = Family::<Labels, Gauge>::default();
    build
        .get_or_create(&labels(&[
            ("version", crate::buildinfo::VERSION),
            ("profile", crate::buildinfo::profile()),
            ("features", &crate::buildinfo::features_label()),
        ]))
        .set(1);
    reg.register(
        "build_info",
        "The ferrosec build: version, profile and the features it serves (as show system info)",
        build,
    );

    // IKE SAs now, by gateway, version and state.
    let mut ike: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for r in tables.ike_rows(None) {
        *ike.entry((r.gateway, r.version, r.state)).or_default() += 1;
    }
    gauge_family(
        reg,
        "ike_sas",
        "IKE SAs now, by gateway, version (ikev2, ikev1-main, ikev1-aggressive) and state",
        ike.into_iter().map(|((g, v, s), n)| {
            (
                labels(&[("gateway", &g), ("version", &v), ("state", &s)]),
                n,
            )
        }),
    );

    // IPsec SA pairs and their traffic, per tunnel and proxy ID: the pairs up now and those
    // gone (rekeyed, deleted), so that the counters never go down.
    let o = tables.outcomes();
    let mut pairs: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut traffic: BTreeMap<(String, String, &str), (u64, u64)> = BTreeMap::new();
    for ((t, p), n) in &o.retired {
        for (dir, packets, bytes) in [
            ("in", n.packets_in, n.bytes_in),
            ("out", n.packets_out, n.bytes_out),
        ] {
            let e = traffic
                .entry((t.to_string(), p.to_string(), dir))
                .or_default();
            e.0 += packets;
            e.1 += bytes;
        }
    }
    for r in tables.ipsec_rows(None) {
        *pairs
            .entry((r.tunnel.clone(), r.proxy_id.clone()))
            .or_default() += 1;
        for (dir, packets, bytes) in [
            ("in", r.packets_in, r.bytes_in),
            ("out", r.packets_out, r.bytes_out),
        ] {
            let t = traffic
                .entry((r.tunnel.clone(), r.proxy_id.clone(), dir))
                .or_default();
            t.0 += packets;
            t.1 += bytes;
        }
    }
    gauge_family(
        reg,
        "ipsec_sa_pairs",
        "IPsec SA pairs installed now, by tunnel and proxy ID",
        pairs
            .into_iter()
            .map(|((t, p), n)| (labels(&[("tunnel", &t), ("proxy_id", &p)]), n)),
    );
    counter_family(
        reg,
        "tunnel_packets",
        "Packets through the tunnel's IPsec SAs since start, by tunnel, proxy ID and direction",
        traffic.iter().map(|((t, p, d), (n, _))| {
            (
                labels(&[("tunnel", t), ("proxy_id", p), ("direction", d)]),
                *n,
            )
        }),
    );
    counter_family(
        reg,
        "tunnel_bytes",
        "Inner bytes through the tunnel's IPsec SAs since start, by tunnel, proxy ID and \
         direction",
        traffic.iter().map(|((t, p, d), (_, b))| {
            (
                labels(&[("tunnel", t), ("proxy_id", p), ("direction", d)]),
                *b,
            )
        }),
    );

    // Drops, by the data plane's reason.
    counter_family(
        reg,
        "drops",
        "Packets dropped by the data plane, by reason",
        tables
            .all_drops()
            .into_iter()
            .map(|(r, n)| (labels(&[("reason", &r)]), n)),
    );

    // Negotiations since start: started, and how they ended.
    counter_family(
        reg,
        "negotiations_started",
        "IKE SA negotiations started since start (their first message: IKE_SA_INIT, IKEv1 main \
         or aggressive mode), by version and side (local: we sent it, peer: the peer did)",
        o.started
            .iter()
            .map(|((v, s), n)| (labels(&[("version", v), ("side", s)]), *n)),
    );
    counter_family(
        reg,
        "ike_sas_established",
        "IKE SAs established since start, by gateway and version",
        o.ike_established
            .iter()
            .map(|((g, v), n)| (labels(&[("gateway", g), ("version", v)]), *n)),
    );
    counter_family(
        reg,
        "ipsec_sas_installed",
        "IPsec SA pairs installed since start, by tunnel and kind (new, rekey)",
        o.child_installed
            .iter()
            .map(|((t, k), n)| (labels(&[("tunnel", t), ("kind", k)]), *n)),
    );
    counter_family(
        reg,
        "negotiations_failed",
        "Negotiations failed since start, by gateway (or peer address) and reason",
        o.failed
            .iter()
            .map(|((g, r), n)| (labels(&[("gateway", g), ("reason", r)]), *n)),
    );
    counter_family(
        reg,
        "rekeys",
        "Rekeys since start, by gateway, kind (ike-sa, ipsec-sa, reauthentication) and side \
         (local: we started it, peer: the peer did)",
        o.rekeys
            .iter()
            .map(|((g, k, s), n)| (labels(&[("gateway", g), ("kind", k), ("side", s)]), *n)),
    );
    counter_family(
        reg,
        "liveness_failures",
        "IKE SAs declared dead since start: the liveness check (IKEv2), R-U-THERE (IKEv1 \
         DPD) or another request unanswered after every retransmission; by gateway, version \
         and reason (no-answer; lost-sa: the peer answered that it has lost the IKE SA)",
        o.liveness_failures
            .iter()
            .map(|((g, v, r), n)| (labels(&[("gateway", g), ("version", v), ("reason", r)]), *n)),
    );
    counter_family(
        reg,
        "liveness_misses",
        "Liveness checks (IKEv2) and R-U-THERE requests (IKEv1 DPD) that went unanswered \
         since start, each try once, by gateway and version",
        o.liveness_misses
            .iter()
            .map(|((g, v), n)| (labels(&[("gateway", g), ("version", v)]), *n)),
    );
    reg.register(
        "ike_handshake_duration_seconds",
        "Seconds from the first message of an IKE SA negotiation (ours or the peer's) to the \
         IKE SA established, by gateway and version",
        tables.handshakes().0.clone(),
    );

    // The responder under load.
    let c = tables.ike_counters();
    let half_open = Gauge::<i64>::default();
    half_open.set(i64::try_from(c.half_open).unwrap_or(i64::MAX));
    reg.register(
        "ike_half_open_sas",
        "Half-open IKE SAs now (responder, waiting for IKE_AUTH)",
        half_open,
    );
    let cookies = Counter::<u64>::default();
    cookies.inc_by(c.cookies_sent);
    reg.register(
        "ike_cookies_sent",
        "COOKIE notifies sent since start",
        cookies,
    );
    counter_family(
        reg,
        "ike_init_refused",
        "IKE_SA_INIT requests refused under load since start, by reason",
        [
            ("per-address", c.refused_per_address),
            ("global", c.refused_global),
            ("dh-rate", c.refused_dh_rate),
        ]
        .into_iter()
        .map(|(r, n)| (labels(&[("reason", r)]), n)),
    );

    monitor_families(reg, &monitors.all());

    gauge_family(
        reg,
        "raw_esp_path",
        "How raw ESP passes the kernel on each address, as show system info: received \
         through a packet-ring or the raw-socket, sent through a packet-socket or the raw-socket, \
         dropped before IP input (early_drop) or not",
        sources.raw_esp.iter().map(|p| {
            let address = p.address.to_string();
            let early = if p.early_drop.is_some() {
                "true"
            } else {
                "false"
            };
            let l = labels(&[
                ("address", &address),
                ("receive", p.receive()),
                ("send", p.send()),
                ("early_drop", early),
            ]);
            (l, 1)
        }),
    );

    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &root);
    out
}

/// The tunnel monitors (crate::monitor), one series per monitored tunnel.
fn monitor_families(reg: &mut Registry, all: &[(String, crate::monitor::Status)]) {
    let tunnel = |t: &str| labels(&[("tunnel", t)]);
    gauge_family(
        reg,
        "tunnel_monitor_up",
        "The tunnel monitor's verdict: 1 up, 0 down by monitor (as show vpn tunnel)",
        all.iter().map(|(t, s)| (tunnel(t), i64::from(!s.down))),
    );
    // A gauge of seconds as a float: the last answered probe's round trip.
    let rtt = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    for (t, s) in all {
        if let Some(d) = s.rtt {
            rtt.get_or_create(&tunnel(t)).set(d.as_secs_f64());
        }
    }
    reg.register(
        "tunnel_monitor_rtt_seconds",
        "Round-trip time of the tunnel monitor's last answered echo request, in seconds",
        rtt,
    );
    gauge_family(
        reg,
        "tunnel_monitor_misses",
        "Consecutive unanswered echo requests of the tunnel monitor",
        all.iter().map(|(t, s)| (tunnel(t), i64::from(s.misses))),
    );
    counter_family(
        reg,
        "tunnel_monitor_probes",
        "Echo requests the tunnel monitor sent and those answered, since start",
        all.iter().flat_map(|(t, s)| {
            [
                (labels(&[("tunnel", t), ("result", "sent")]), s.sent),
                (labels(&[("tunnel", t), ("result", "answered")]), s.received),
            ]
        }),
    );
}

/// The `process_*` families of the Prometheus client libraries, read from `/proc/self`
/// (crate::process); none when it cannot be read.
fn process_families(reg: &mut Registry) {
    let Some(p) = crate::process::ProcessStats::read() else {
        return;
    };
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let gauge = |reg: &mut Registry, name: &str, help: &str, v: i64| {
        let g = Gauge::<i64>::default();
        g.set(v);
        reg.register(name, help, g);
    };
    gauge(
        reg,
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
        int(p.resident_bytes),
    );
    gauge(
        reg,
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes",
        int(p.virtual_bytes),
    );
    gauge(
        reg,
        "process_open_fds",
        "Open file descriptors",
        int(p.open_fds),
    );
    if let Some(m) = p.max_fds {
        gauge(
            reg,
            "process_max_fds",
            "Maximum number of open file descriptors",
            int(m),
        );
    }
    gauge(reg, "process_threads", "Threads", int(p.threads));
    let cpu = Counter::<f64, std::sync::atomic::AtomicU64>::default();
    cpu.inc_by(p.cpu_seconds);
    reg.register(
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds",
        cpu,
    );
    let start = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    start.set(p.start_time_seconds);
    reg.register(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch in seconds",
        start,
    );
}

/// Serves `/metrics` on `addr` until the daemon stops; a bind failure is logged and the
/// daemon runs on without metrics.
pub(crate) async fn serve(addr: SocketAddr, sources: Sources, log: SharedLog) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            log.record(
                Severity::Error,
                "global",
                format!("metrics-listen {addr}: cannot listen ({e}); no metrics are served"),
            );
            return;
        }
    };
    log.record(
        Severity::Info,
        "global",
        format!("metrics served at http://{addr}/metrics"),
    );
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let sources = sources.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let sources = sources.clone();
                async move { Ok::<_, Infallible>(answer(&req, &sources)) }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, svc);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
        });
    }
}

fn answer(req: &Request<Incoming>, sources: &Sources) -> Response<Full<Bytes>> {
    let (status, ty, body) = match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render(sources),
        ),
        (&hyper::Method::GET, _) => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "ferrosec serves /metrics here\n".to_owned(),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "GET /metrics\n".to_owned(),
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ty) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One series per address with a raw ESP socket, its labels as `show system info` says
    /// it in words.
    #[test]
    fn raw_esp_paths_are_one_series_per_address() {
        let text = render(&Sources {
            raw_esp: Arc::new(vec![
                RawEspPath {
                    address: "192.0.2.1".parse().unwrap(),
                    ring: true,
                    packet_socket: true,
                    early_drop: Some("ferrosec_esp_1_0".to_owned()),
                },
                RawEspPath {
                    address: "2001:db8::1".parse().unwrap(),
                    ring: false,
                    packet_socket: false,
                    early_drop: None,
                },
            ]),
            ..Sources::default()
        });
        for line in [
            "# TYPE ferrosec_raw_esp_path gauge",
            "ferrosec_raw_esp_path{address=\"192.0.2.1\",receive=\"packet-ring\",send=\"packet-socket\",early_drop=\"true\"} 1",
            "ferrosec_raw_esp_path{address=\"2001:db8::1\",receive=\"raw-socket\",send=\"raw-socket\",early_drop=\"false\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        let empty = render(&Sources::default());
        assert!(!empty.contains("ferrosec_raw_esp_path{"), "{empty}");
    }

    /// The text format of an idle daemon: the build info and the responder's figures (the
    /// labelled families appear with their first series; the interop scenario 21 checks them
    /// with a tunnel up), no series with an SPI label.
    #[test]
    fn an_idle_daemon_renders_the_build_and_the_responder() {
        let text = render(&Sources::default());
        for family in [
            "ferrosec_build_info",
            "ferrosec_ike_half_open_sas",
            "ferrosec_ike_cookies_sent",
            "ferrosec_ike_init_refused",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family} missing:\n{text}"
            );
        }
        assert!(
            text.contains(&format!(
                "ferrosec_build_info{{version=\"{}\",profile=\"{}\",features=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION"),
                crate::buildinfo::profile(),
                crate::buildinfo::FEATURES.join(",")
            )),
            "{text}"
        );
        // The process, from /proc/self (this test process).
        for family in [
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
            "process_threads",
            "process_cpu_seconds",
            "process_start_time_seconds",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family} missing:\n{text}"
            );
        }
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} "))?.parse().ok())
                .unwrap_or_else(|| panic!("{name} has no value:\n{text}"))
        };
        assert!(value("process_resident_memory_bytes") > 1e6, "{text}");
        assert!(value("process_open_fds") >= 3.0, "{text}");
        assert!(value("process_start_time_seconds") > 1.7e9, "{text}");
        // (Counted in 10 ms ticks: a short test may not have used one yet.)
        assert!(value("process_cpu_seconds_total") >= 0.0, "{text}");
        assert!(text.contains("ferrosec_ike_cookies_sent_total 0"), "{text}");
        assert!(text.contains("ferrosec_ike_half_open_sas 0"), "{text}");
        assert!(
            text.contains("ferrosec_ike_init_refused_total{reason=\"dh-rate\"} 0"),
            "{text}"
        );
        assert!(!text.to_lowercase().contains("spi"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

/// The tunnel monitors' families: one series per monitored tunnel with its verdict, last
/// round-trip time (absent before the first reply), consecutive misses and probe counts.
#[cfg(test)]
mod monitor_tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::monitor::Status;

    #[test]
    fn each_monitored_tunnel_has_its_state_rtt_misses_and_probes() {
        let board = Board::default();
        let up = Status {
            down: false,
            misses: 0,
            replies: 9,
            last_reply: Some(Instant::now()),
            routes_active: true,
            sent: 10,
            received: 9,
            rtt: Some(Duration::from_micros(1500)),
        };
        board.set("t-a", up);
        board.set(
            "t-b",
            Status {
                down: true,
                misses: 4,
                replies: 0,
                rtt: None,
                received: 0,
                ..up
            },
        );
        let text = render(&Sources {
            monitors: board,
            ..Sources::default()
        });
        for line in [
            "ferrosec_tunnel_monitor_up{tunnel=\"t-a\"} 1",
            "ferrosec_tunnel_monitor_up{tunnel=\"t-b\"} 0",
            "ferrosec_tunnel_monitor_rtt_seconds{tunnel=\"t-a\"} 0.0015",
            "ferrosec_tunnel_monitor_misses{tunnel=\"t-b\"} 4",
            "ferrosec_tunnel_monitor_probes_total{tunnel=\"t-a\",result=\"sent\"} 10",
            "ferrosec_tunnel_monitor_probes_total{tunnel=\"t-a\",result=\"answered\"} 9",
            "ferrosec_tunnel_monitor_probes_total{tunnel=\"t-b\",result=\"answered\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(
            !text.contains("ferrosec_tunnel_monitor_rtt_seconds{tunnel=\"t-b\"}"),
            "no reply yet, no round-trip time:\n{text}"
        );
    }
}

#[cfg(test)]
mod reason_tests {
    use ferrosec_ike::event::Failure;

    use crate::ike::failure_kind;

    /// Failure reasons become a small fixed set of label values.
    #[test]
    fn failure_reasons_are_a_bounded_label_set() {
        assert_eq!(failure_kind(&Failure::AuthFailed), "authentication");
        assert_eq!(
            failure_kind(&Failure::PeerUnreachable { retransmissions: 5 }),
            "unreachable"
        );
        assert_eq!(
            failure_kind(&Failure::NoPeerConfig("192.0.2.1:500".parse().unwrap())),
            "no-gateway"
        );
        assert_eq!(
            failure_kind(&Failure::Local(ferrosec_ike::event::LocalError::NoKeys)),
            "other"
        );
    }
}
