//! `ike-loadgen`: opens N IKEv2 SAs (shared key, one Child SA each) against a responder and
//! reports how many were established per second.
//!
//! The ferrosec IKEv2 engine ([`Endpoint`]) acts as the initiator of every SA, driven over
//! plain tokio UDP sockets on one thread (a current-thread runtime), so the generator uses at
//! most one core and leaves the other one to the responder. The SAs are spread over several
//! endpoints of `--shard` SAs each: some of the engine's bookkeeping walks all SAs of an
//! endpoint (timers, INITIAL_CONTACT and duplicate checks), which would otherwise make the
//! generator's cost per SA grow with N. Replies are routed to their endpoint by our IKE SPI
//! (the initiator's SPI, the first 8 octets of every IKE message).
//!
//! # How all N SAs stay up
//!
//! Each SA gets its own peer configuration with its own identity (`i<k>.<id-domain>`, ID_FQDN)
//! and its own initiator traffic selector (`<ts-base> + k`/32). The engine sends
//! INITIAL_CONTACT on the first IKE SA of a peer configuration, and a responder acting on it
//! deletes only older SAs of the *same* identity, so none of ours is touched. Distinct peer
//! configurations also keep the engine's crossing-IKE_SA_INIT handling (which deletes the
//! redundant one of two overlapping SAs with one peer) from firing between our SAs.
//!
//! # Sources
//!
//! SA `k` is sent from socket `k mod S`, where the sockets are `--ports` UDP ports starting at
//! `--base-port` on each `--local` address. With NAT traversal on (the default) each local
//! address also gets a socket on port 4500, used when the responder reports a NAT (strongSwan
//! with kernel-libipsec always does).
//!
//! # Output
//!
//! One line `RESULT key=value ...` when every SA is up or failed (or `--timeout` passed), then,
//! with `--hold`, one line `HOLD key=value ...` at the end of the hold period, during which the
//! engine keeps answering the responder (liveness checks).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use ferrosec_crypto::{Provider, Secret};
use ferrosec_ike::ts::{AddrRange, AddrSpec, PortRange, ProxyId};
use ferrosec_ike::v2::{
    ChildPolicy, Endpoint, EndpointConfig, Event, Identity, IkeSaHandle, PeerConfig, PeerId,
    esp_proposal_gcm, ike_proposal_gcm,
};
use ferrosec_wire::ikev2::DhGroup;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Command line.
#[derive(Parser, Debug)]
#[command(
    name = "ike-loadgen",
    about = "IKEv2 handshake load generator (initiator)"
)]
struct Args {
    /// The responder's address.
    #[arg(long)]
    target: IpAddr,
    /// Source addresses (comma-separated); each must be configured in this namespace.
    #[arg(long, value_delimiter = ',', required = true)]
    local: Vec<IpAddr>,
    /// UDP source ports per source address.
    #[arg(long, default_value_t = 16)]
    ports: u16,
    /// The first source port.
    #[arg(long, default_value_t = 20000)]
    base_port: u16,
    /// How many IKE SAs to open.
    #[arg(short = 'n', long, default_value_t = 1000)]
    count: usize,
    /// The most negotiations in flight at once.
    #[arg(long, default_value_t = 128)]
    inflight: usize,
    /// The pre-shared key.
    #[arg(long, default_value = "ferrosec-bench-psk")]
    psk: String,
    /// Our identities are `i<k>.<id-domain>` (ID_FQDN).
    #[arg(long, default_value = "bench.test")]
    id_domain: String,
    /// The identity (FQDN) the responder must present; any when absent.
    #[arg(long)]
    peer_id: Option<String>,
    /// DH group (IANA number): 19 = P-256, 31 = Curve25519, 14 = MODP-2048.
    #[arg(long, default_value_t = 19)]
    group: u16,
    /// Initiator traffic selector of SA k: this address + k, /32.
    #[arg(long, default_value = "10.128.0.0")]
    ts_base: Ipv4Addr,
    /// Responder traffic selector (prefix).
    #[arg(long, default_value = "10.2.0.0/24")]
    remote_ts: String,
    /// No NAT traversal (no NAT_DETECTION notifies, never port 4500).
    #[arg(long)]
    no_natt: bool,
    /// Act as if behind a NAT: the engine sees source address k as 192.0.2.(k+1), so its
    /// NAT_DETECTION_SOURCE_IP does not match and the responder UDP-encapsulates ESP (and,
    /// for ferrosec, installs the Child SAs in its data plane, which needs ESP in UDP).
    #[arg(long, conflicts_with = "no_natt")]
    nat: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Keep the SAs up (answering the responder) this many seconds after the result.
    #[arg(long, default_value_t = 0)]
    hold: u64,
    /// SAs per engine instance.
    #[arg(long, default_value_t = 256)]
    shard: usize,
    /// Random seed (default: from the clock and the PID).
    #[arg(long)]
    seed: Option<u64>,
}

fn prefix(s: &str) -> Result<AddrRange> {
    let (a, l) = s.split_once('/').context("a prefix like 10.2.0.0/24")?;
    AddrRange::from_prefix(a.parse()?, l.parse()?).map_err(|e| anyhow::anyhow!("{s}: {e:?}"))
}

fn peer_configs(a: &Args, range: std::ops::Range<usize>) -> Result<Vec<PeerConfig>> {
    let remote = prefix(&a.remote_ts)?;
    let base = u32::from(a.ts_base);
    let psk = Secret::from_slice(a.psk.as_bytes());
    let ike = vec![ike_proposal_gcm(DhGroup(a.group))];
    let esp = vec![esp_proposal_gcm()];
    range
        .map(|k| {
            let k32 = u32::try_from(k)?;
            let host = IpAddr::V4(Ipv4Addr::from(base.wrapping_add(k32)));
            let policy = ProxyId {
                name: "lan".into(),
                local: AddrSpec::Range(AddrRange::host(host)),
                remote: AddrSpec::Range(remote),
                protocol: 0,
                local_ports: PortRange::ANY,
                remote_ports: PortRange::ANY,
            }
            .to_policy();
            Ok(PeerConfig {
                name: format!("lg{k}"),
                peer_addr: Some(a.target),
                local_id: Some(Identity::fqdn(&format!("i{k}.{}", a.id_domain))),
                peer_id: a.peer_id.as_deref().map(Identity::fqdn),
                psk: psk.clone(),
                ike_proposals: ike.clone(),
                policies: vec![ChildPolicy::new(policy, esp.clone())],
                liveness: None,
                nat_traversal: !a.no_natt,
                restart_on_dead_peer: false,
                strict_cookies: false,
            })
        })
        .collect()
}

/// What happened to the SAs so far.
#[derive(Default)]
struct Tally {
    started: usize,
    up: usize,
    failed: usize,
    down_after_up: usize,
    /// Sum of per-SA handshake latencies (initiate → Child SA up).
    latency: Duration,
    max_latency: Duration,
    first_failure: Option<String>,
}

struct Gen {
    /// Engine instances; SA k lives in `eps[k / shard]` as peer `k % shard`.
    eps: Vec<Endpoint>,
    shard: usize,
    /// Our IKE SPI → engine instance.
    by_spi: HashMap<u64, usize>,
    sockets: Vec<Arc<UdpSocket>>,
    by_local: HashMap<SocketAddr, usize>,
    /// Sockets used for initiating (not the 4500 ones).
    sources: Vec<SocketAddr>,
    target: SocketAddr,
    pending: HashMap<IkeSaHandle, Instant>,
    established: std::collections::HashSet<IkeSaHandle>,
    tally: Tally,
    unroutable: usize,
    send_errors: usize,
}

impl Gen {
    async fn flush(&mut self) {
        for e in 0..self.eps.len() {
            while let Some(t) = self.eps[e].poll_transmit() {
                let Some(&i) = self.by_local.get(&t.local) else {
                    self.unroutable += 1;
                    continue;
                };
                let sock = &self.sockets[i];
                match sock.try_send_to(&t.data, t.remote) {
                    Ok(_) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                        if sock.send_to(&t.data, t.remote).await.is_err() {
                            self.send_errors += 1;
                        }
                    }
                    Err(_) => self.send_errors += 1,
                }
            }
        }
    }

    /// Hands a datagram to the engine instance that owns its IKE SA.
    fn datagram(&mut self, now: Instant, local: SocketAddr, from: SocketAddr, data: &[u8]) {
        // On port 4500 IKE messages follow a four-octet non-ESP marker.
        let ike = if local.port() == 4500 {
            data.get(4..)
        } else {
            Some(data)
        };
        let spi = ike
            .and_then(|d| d.get(..8))
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes);
        if let Some(&e) = spi.and_then(|s| self.by_spi.get(&s)) {
            self.eps[e].handle_datagram(now, local, from, data);
        } else {
            self.unroutable += 1;
        }
    }

    fn events(&mut self, now: Instant) {
        for e in 0..self.eps.len() {
            self.events_of(now, e);
        }
    }

    fn events_of(&mut self, now: Instant, idx: usize) {
        while let Some(e) = self.eps[idx].poll_event() {
            match e {
                Event::ChildSaUp(info) => {
                    if let Some(t0) = self.pending.remove(&info.ike_sa) {
                        let l = now.saturating_duration_since(t0);
                        self.tally.up += 1;
                        self.tally.latency += l;
                        self.tally.max_latency = self.tally.max_latency.max(l);
                        self.established.insert(info.ike_sa);
                    }
                }
                Event::Failed { handle, reason, .. } => {
                    if let Some(h) = handle
                        && self.pending.remove(&h).is_some()
                    {
                        self.tally.failed += 1;
                        self.tally.first_failure.get_or_insert(reason.to_string());
                    }
                }
                Event::IkeSaDown { handle, reason, .. } => {
                    if self.pending.remove(&handle).is_some() {
                        self.tally.failed += 1;
                        self.tally
                            .first_failure
                            .get_or_insert(format!("IKE SA down: {reason}"));
                    } else if self.established.remove(&handle) {
                        self.tally.down_after_up += 1;
                    }
                }
                _ => {}
            }
        }
    }

    /// Starts negotiations until `inflight` are pending or all `count` are started.
    fn refill(&mut self, now: Instant, count: usize, inflight: usize) {
        while self.tally.started < count && self.pending.len() < inflight {
            let k = self.tally.started;
            let local = self.sources[k % self.sources.len()];
            self.tally.started += 1;
            let e = k / self.shard;
            let peer = PeerId(u32::try_from(k % self.shard).unwrap_or(u32::MAX));
            match self.eps[e].initiate(now, peer, local, self.target) {
                Ok(h) => {
                    self.pending.insert(h, now);
                    self.by_spi.insert(h.0.0, e);
                }
                Err(e) => {
                    self.tally.failed += 1;
                    self.tally.first_failure.get_or_insert(e.to_string());
                }
            }
        }
    }

    /// Gives up on negotiations older than `limit`.
    fn expire(&mut self, now: Instant, limit: Duration) {
        let old: Vec<IkeSaHandle> = self
            .pending
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(**t) > limit)
            .map(|(h, _)| *h)
            .collect();
        for h in old {
            self.pending.remove(&h);
            self.tally.failed += 1;
            self.tally
                .first_failure
                .get_or_insert("no answer within the per-SA limit".into());
        }
    }
}

/// This process's user + system CPU time so far, from /proc/self/stat (0 if unreadable).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

fn bind(addr: SocketAddr) -> Result<Arc<UdpSocket>> {
    let s = StdUdpSocket::bind(addr).with_context(|| format!("bind {addr}"))?;
    s.set_nonblocking(true)?;
    Ok(Arc::new(UdpSocket::from_std(s)?))
}

async fn run(a: Args) -> Result<()> {
    if a.count == 0 || a.inflight == 0 || a.shard == 0 {
        bail!("--count, --inflight and --shard must be positive");
    }
    let seed = a.seed.unwrap_or_else(|| {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        t ^ u64::from(std::process::id()).rotate_left(32)
    });
    let mut eps = Vec::new();
    for (i, lo) in (0..a.count).step_by(a.shard).enumerate() {
        let peers = peer_configs(&a, lo..(lo + a.shard).min(a.count))?;
        eps.push(Endpoint::new(
            EndpointConfig::default(),
            peers,
            Provider::default(),
            Box::new(ChaCha8Rng::seed_from_u64(seed.wrapping_add(i as u64))),
            Instant::now(),
        ));
    }

    let mut sockets = Vec::new();
    let mut by_local = HashMap::new();
    let mut sources = Vec::new();
    // What the engine is told its local address is, per socket.
    let mut locals = Vec::new();
    if a.nat && a.local.len() > 254 {
        bail!("--nat: at most 254 source addresses");
    }
    for (j, &ip) in a.local.iter().enumerate() {
        let seen = if a.nat {
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, u8::try_from(j + 1)?))
        } else {
            ip
        };
        for p in 0..a.ports {
            let addr = SocketAddr::new(ip, a.base_port + p);
            let engine = SocketAddr::new(seen, a.base_port + p);
            by_local.insert(engine, sockets.len());
            sockets.push(bind(addr)?);
            locals.push(engine);
            sources.push(engine);
        }
        if !a.no_natt {
            let addr = SocketAddr::new(ip, 4500);
            let engine = SocketAddr::new(seen, 4500);
            by_local.insert(engine, sockets.len());
            sockets.push(bind(addr)?);
            locals.push(engine);
        }
    }
    // Interleave addresses so consecutive SAs come from different source addresses.
    let per = usize::from(a.ports);
    let n_addr = a.local.len();
    let sources: Vec<SocketAddr> = (0..sources.len())
        .map(|i| sources[(i % n_addr) * per + i / n_addr])
        .collect();

    let (tx, mut rx) = mpsc::channel::<(usize, SocketAddr, Vec<u8>)>(8192);
    for (i, sock) in sockets.iter().enumerate() {
        let sock = Arc::clone(sock);
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                if tx.send((i, from, buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);

    let mut g = Gen {
        eps,
        shard: a.shard,
        by_spi: HashMap::new(),
        by_local,
        sources,
        target: SocketAddr::new(a.target, 500),
        pending: HashMap::new(),
        established: Default::default(),
        tally: Tally::default(),
        unroutable: 0,
        send_errors: 0,
        sockets,
    };

    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.timeout);
    let per_sa_limit = Duration::from_secs(a.timeout.min(30));
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut batch = Vec::with_capacity(256);
    g.refill(start, a.count, a.inflight);
    g.flush().await;

    let mut phase_done = false;
    let mut result_at = start;
    let hold_until = |t: Instant| t + Duration::from_secs(a.hold);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 { break; }
                let now = Instant::now();
                for (i, from, data) in std::mem::take(&mut batch) {
                    g.datagram(now, locals[i], from, &data);
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                for ep in &mut g.eps {
                    ep.handle_timeout(now);
                }
                if !phase_done {
                    g.expire(now, per_sa_limit);
                }
            }
        }
        let now = Instant::now();
        g.events(now);
        if !phase_done {
            g.refill(now, a.count, a.inflight);
        }
        g.flush().await;

        if !phase_done && ((g.tally.started == a.count && g.pending.is_empty()) || now >= deadline)
        {
            phase_done = true;
            result_at = now;
            let secs = now.duration_since(start).as_secs_f64();
            let t = &g.tally;
            let mean_ms = if t.up > 0 {
                t.latency.as_secs_f64() * 1e3 / t.up as f64
            } else {
                0.0
            };
            println!(
                "RESULT n={} established={} failed={} seconds={:.3} rate={:.1} \
                 mean_latency_ms={:.2} max_latency_ms={:.1} down_after_up={} unroutable={} \
                 send_errors={} cpu_seconds={:.2} first_failure={:?}",
                a.count,
                t.up,
                t.failed + g.pending.len(),
                secs,
                t.up as f64 / secs,
                mean_ms,
                t.max_latency.as_secs_f64() * 1e3,
                t.down_after_up,
                g.unroutable,
                g.send_errors,
                cpu_seconds(),
                t.first_failure.as_deref().unwrap_or("none"),
            );
            if a.hold == 0 {
                break;
            }
        }
        if phase_done && now >= hold_until(result_at) {
            println!(
                "HOLD still_up={} down_after_up={} ike_sas={}",
                g.established.len(),
                g.tally.down_after_up,
                g.eps.iter().map(Endpoint::ike_sa_count).sum::<usize>()
            );
            break;
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}
