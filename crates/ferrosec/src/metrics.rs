//! Prometheus metrics (R-OPS-5): `[global] metrics-listen` serves `/metrics` in the
//! OpenMetrics text format (what the prometheus-client crate encodes; Prometheus scrapes it).
//!
//! Every scrape reads what `show` reads (the IKE task's tables and the data plane's relaxed
//! atomic counters, one lock of the tables per scrape, never one per packet) into a fresh
//! registry and encodes it. Labels are bounded: gateways, tunnels and proxy IDs come from the
//! configuration, versions, states and failure reasons are fixed sets; there are no per-SPI
//! labels.

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
use prometheus_client::registry::Registry;

use crate::ike::Tables;
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

/// The metrics text of one scrape.
pub(crate) fn render(tables: &Tables) -> String {
    let mut reg = Registry::with_prefix("ferrosec");
    let build = Family::<Labels, Gauge>::default();
    build
        .get_or_create(&labels(&[("version", env!("CARGO_PKG_VERSION"))]))
        .set(1);
    reg.register("build_info", "The ferrosec build", build);

    // IKE SAs now, by gateway, version and state.
    let mut ike: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for r in tables.ike_rows(None) {
        *ike.entry((r.gateway, r.version, r.state)).or_default() += 1;
    }
    gauge_family(
        &mut reg,
        "ike_sas",
        "IKE SAs now, by gateway, version (ikev2, ikev1-main, ikev1-aggressive) and state",
        ike.into_iter().map(|((g, v, s), n)| {
            (
                labels(&[("gateway", &g), ("version", &v), ("state", &s)]),
                n,
            )
        }),
    );

    // IPsec SA pairs and their traffic, per tunnel and proxy ID.
    let mut pairs: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut traffic: BTreeMap<(String, String, &str), (u64, u64)> = BTreeMap::new();
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
        &mut reg,
        "ipsec_sa_pairs",
        "IPsec SA pairs installed now, by tunnel and proxy ID",
        pairs
            .into_iter()
            .map(|((t, p), n)| (labels(&[("tunnel", &t), ("proxy_id", &p)]), n)),
    );
    counter_family(
        &mut reg,
        "tunnel_packets",
        "Packets through the IPsec SAs installed now, by tunnel, proxy ID and direction",
        traffic.iter().map(|((t, p, d), (n, _))| {
            (
                labels(&[("tunnel", t), ("proxy_id", p), ("direction", d)]),
                *n,
            )
        }),
    );
    counter_family(
        &mut reg,
        "tunnel_bytes",
        "Inner bytes through the IPsec SAs installed now, by tunnel, proxy ID and direction",
        traffic.iter().map(|((t, p, d), (_, b))| {
            (
                labels(&[("tunnel", t), ("proxy_id", p), ("direction", d)]),
                *b,
            )
        }),
    );

    // Drops, by the data plane's reason.
    counter_family(
        &mut reg,
        "drops",
        "Packets dropped by the data plane, by reason",
        tables
            .all_drops()
            .into_iter()
            .map(|(r, n)| (labels(&[("reason", &r)]), n)),
    );

    // Negotiation outcomes since start.
    let o = tables.outcomes();
    counter_family(
        &mut reg,
        "ike_sas_established",
        "IKE SAs established since start, by gateway and version",
        o.ike_established
            .iter()
            .map(|((g, v), n)| (labels(&[("gateway", g), ("version", v)]), *n)),
    );
    counter_family(
        &mut reg,
        "ipsec_sas_installed",
        "IPsec SA pairs installed since start, by tunnel and kind (new, rekey)",
        o.child_installed
            .iter()
            .map(|((t, k), n)| (labels(&[("tunnel", t), ("kind", k)]), *n)),
    );
    counter_family(
        &mut reg,
        "negotiations_failed",
        "Negotiations failed since start, by gateway (or peer address) and reason",
        o.failed
            .iter()
            .map(|((g, r), n)| (labels(&[("gateway", g), ("reason", r)]), *n)),
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
        &mut reg,
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

    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}

/// Serves `/metrics` on `addr` until the daemon stops; a bind failure is logged and the
/// daemon runs on without metrics.
pub(crate) async fn serve(addr: SocketAddr, tables: Tables, log: SharedLog) {
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
        let tables = tables.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let tables = tables.clone();
                async move { Ok::<_, Infallible>(answer(&req, &tables)) }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, svc);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
        });
    }
}

fn answer(req: &Request<Incoming>, tables: &Tables) -> Response<Full<Bytes>> {
    let (status, ty, body) = match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render(tables),
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

    /// The text format of an idle daemon: the build info and the responder's figures (the
    /// labelled families appear with their first series; the interop scenario 21 checks them
    /// with a tunnel up), no series with an SPI label.
    #[test]
    fn an_idle_daemon_renders_the_build_and_the_responder() {
        let text = render(&Tables::default());
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
                "ferrosec_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
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
