//! The IKE task: one tokio task owns the IKEv2 [`Endpoint`] and everything that changes it.
//!
//! ```text
//!  socket readers ──datagrams──┐                 ┌──> UDP sends (poll_transmit)
//!  control socket ──commands───┼──> IKE task ────┼──> SA tables (show vpn …), system log
//!  timer (poll_timeout) ───────┘   (Endpoint)    └──> data plane: install / remove Child SAs
//! ```
//!
//! Nothing else touches the engine, so no lock is taken per packet. The SA tables that `show`
//! reads are behind a mutex written once per event.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferrosec_crypto::{Encryption, Integrity};
use ferrosec_ike::Ike;
use ferrosec_ike::proposal::Selected;
use ferrosec_ike::retransmit::RetransmitPolicy;
use ferrosec_ike::v2::{
    AuthInfo, ChildPolicy, ChildSaInfo, DownReason, Event, Identity, IkeSaHandle, IkeSaInfo,
    PeerId, PolicyId,
};
use ferrosec_netio::UdpPort;
use ferrosec_wire::Spi;
use ferrosec_wire::ikev2::{AuthMethod, DhGroup, EncrId, IntegId, PrfId};
use tokio::sync::{mpsc, oneshot};

use crate::dataplane::{DataPlane, PendingOutbound};
use crate::ikecfg::{
    EngineSetup, GatewayInfo, auth_name, child_encr_name, child_integ_name, encr_name, integ_name,
    ke_names, prf_name, split_policy,
};
use crate::status::{CertificateRow, FlowRow, IkeCountersRow, IkeSaRow, IpsecSaRow};
use crate::syslog::{Severity, SharedLog};
use gateways::Gateways;

mod commands;
mod events;
mod gateways;
mod reload;
mod resolve;
mod tables;
mod virtual_ip;

#[cfg(test)]
pub(crate) use events::failure_kind;
pub(crate) use reload::{Done, ReloadPlan};
pub(crate) use tables::*;

/// A datagram for the engine.
#[derive(Debug)]
pub(crate) struct Incoming {
    /// Our address it arrived on.
    pub(crate) local: SocketAddr,
    /// The sender.
    pub(crate) remote: SocketAddr,
    /// The UDP payload (with the non-ESP marker on 4500).
    pub(crate) data: Vec<u8>,
}

/// The answer to a command: a message for the operator, or why it failed.
pub(crate) type Reply = oneshot::Sender<Result<String, String>>;

/// What the control socket asks of the IKE task.
#[derive(Debug)]
pub(crate) enum Command {
    /// `test vpn ike-sa gateway G`: bring the IKE SA up.
    TestIkeSa { gateway: String, reply: Reply },
    /// `test vpn ipsec-sa tunnel T`: bring every proxy ID of the tunnel up.
    TestIpsecSa { tunnel: String, reply: Reply },
    /// `clear vpn ike-sa [gateway G]`.
    ClearIkeSa {
        gateway: Option<String>,
        reply: Reply,
    },
    /// `clear vpn ipsec-sa [tunnel T]`.
    ClearIpsecSa {
        tunnel: Option<String>,
        reply: Reply,
    },
    /// `request vpn ipsec-sa rekey tunnel T`: rekey the tunnel's Child SAs.
    RekeyIpsecSa { tunnel: String, reply: Reply },
    /// `request vpn rekey ike-sa gateway G`: rekey the gateway's IKE SA.
    RekeyIkeSa { gateway: String, reply: Reply },
    /// `request vpn export-keys`: Wireshark's decryption tables of the SAs up now, as the
    /// JSON of [`crate::keyexport::Tables`].
    ExportKeys { reply: Reply },
    /// The answer to the engine's `FetchCertificate` (from the task that fetched).
    CertificateFetched {
        handle: IkeSaHandle,
        url: String,
        result: Result<Vec<u8>, String>,
    },
    /// The answer to the engine's `FetchCrl` (from the task that fetched).
    CrlFetched {
        handle: IkeSaHandle,
        peer: String,
        url: String,
        result: Result<Vec<u8>, String>,
    },
    /// Apply a reloaded configuration (R-OPS-4); the answer says what was done.
    Reload {
        plan: Box<ReloadPlan>,
        reply: oneshot::Sender<Done>,
    },
    /// The answer to a lookup of an FQDN peer-address (R-CFG-4, [`resolve`]).
    PeerResolved {
        gateway: String,
        name: String,
        result: Result<IpAddr, String>,
    },
    /// Delete every IKE SA on the peers, then stop (bounded by `within`).
    Shutdown {
        within: Duration,
        reply: oneshot::Sender<usize>,
    },
}

// ---------------------------------------------------------------------------------------------
// The task

/// Who waits for what.
#[derive(Debug)]
enum Goal {
    /// An IKE SA of this gateway established.
    IkeUp { gateway: usize },
    /// Every proxy ID of this tunnel (policy indexes of the gateway) with a Child SA.
    TunnelUp {
        gateway: usize,
        tunnel: String,
        requested: BTreeSet<usize>,
    },
}

#[derive(Debug)]
struct Waiter {
    goal: Goal,
    reply: Reply,
}

/// The IKE task's state.
pub(crate) struct IkeTask {
    endpoint: Ike,
    gateways: Gateways,
    /// Per gateway (as in `gateways`): the engine's ID of its peer configuration and of its
    /// policies (in the order of [`GatewayInfo::policies`]).
    ids: Vec<(PeerId, Vec<PolicyId>)>,
    ports: Arc<Vec<UdpPort>>,
    tables: Tables,
    log: SharedLog,
    waiters: Vec<Waiter>,
    dataplane: Option<DataPlane>,
    shutdown: Option<(Instant, oneshot::Sender<usize>, usize)>,
    /// How often a NAT keepalive goes out while we are behind a NAT (R-V2-7).
    nat_keepalive: Duration,
    /// CREATE_CHILD_SA requests in flight per (IKE SA, policy), so that on-demand triggers
    /// and `test` commands do not negotiate the same proxy ID twice.
    child_requested: BTreeMap<(IkeSaHandle, usize), Instant>,
    /// Outbound SAs of rekeyed pairs, by the new inbound SPI, waiting for the engine's
    /// `ChildSaRekeyed` (make-before-break on the rekey responder).
    /// Also activated when the last other SA of the same proxy ID goes down without a switch
    /// (a re-authentication's new pairs replace the old ones without `ChildSaRekeyed`).
    pending_outbound: HashMap<Spi, (Slot, PendingOutbound)>,
    /// The names the SA tables share.
    names: Names,
    /// When each peer address was last told of an unknown SPI (bounded, see `unknown_spi`).
    invalid_spi_told: HashMap<std::net::IpAddr, Instant>,
    /// With `[global] allow-key-export`: the keys of the Child SA pairs up now, by inbound
    /// SPI, for `request vpn export-keys` (kept only then).
    esp_keys: Option<BTreeMap<Spi, crate::keyexport::EspPair>>,
    /// `establish = "always"` tunnels: (name, next try, back-off).
    always_on: Vec<(String, Instant, Duration)>,
    /// Peer IDs a reload removed or replaced, with their gateway's name: what the engines
    /// counted for them stays in that gateway's metrics.
    former_ids: BTreeMap<PeerId, String>,
    /// When the first message of each IKE SA negotiation was seen, ours or the peer's, by
    /// (peer address, initiator's SPI): the handshake duration histogram's start (see
    /// [`first_message_spi`]). At most [`TIMED_MAX`] entries, each for [`TIMED_FOR`].
    first_messages: HashMap<(IpAddr, u64), Instant>,
    /// Where fetch tasks send their results (this task's own command channel; weak, so that
    /// the channel still closes when the daemon drops its end).
    commands_tx: Option<mpsc::WeakSender<Command>>,
    /// FQDN peers resolved again (R-CFG-4).
    resolving: resolve::Resolving,
    /// What client IKE SAs' configuration payloads put on the host (addresses, routes).
    virtual_ips: BTreeMap<IkeSaHandle, virtual_ip::Applied>,
    /// TCP encapsulation (RFC 9329), when a gateway enables it.
    tcp: Option<Arc<crate::tcpencap::TcpEncap>>,
    /// IKE_SA_INIT transmissions over UDP per (peer, initiator SPI) of `fallback` gateways,
    /// counted towards the switch to TCP (at most [`TIMED_MAX`] entries).
    fallback_sends: HashMap<(IpAddr, u64), u32>,
}

/// A `fallback` gateway moves to TCP when this many transmissions of an IKE_SA_INIT (the
/// first and its first retransmission) went unanswered over UDP: with the engine's default
/// back-off (4 s, then 7.2 s) the second retransmission, about 11 s after the first
/// transmission, goes over TCP. One lost datagram does not move a gateway to TCP, two in a
/// row do; RFC 9329 §5.1 leaves the count to the implementation (clients that try TCP after
/// the first retransmission times out do much the same).
pub(crate) const FALLBACK_AFTER_TRANSMISSIONS: u32 = 2;

/// At most this many negotiations are timed at once: a flood of IKE_SA_INIT requests from
/// spoofed addresses fills it, and the negotiations after it go untimed until entries expire.
const TIMED_MAX: usize = 4096;
/// A negotiation not established in this time is no longer timed.
const TIMED_FOR: Duration = Duration::from_secs(120);

/// The first retry of an always-on tunnel that is down, doubled up to [`ALWAYS_ON_MAX_RETRY`].
const ALWAYS_ON_FIRST_RETRY: Duration = Duration::from_secs(2);
const ALWAYS_ON_MAX_RETRY: Duration = Duration::from_secs(60);

/// How long the inbound SA of a pair replaced by a rekey keeps accepting packets.
const REKEYED_INBOUND_LINGER: Duration = Duration::from_secs(3);

/// How often one peer is told of an SPI we do not know.
const INVALID_SPI_EVERY: Duration = Duration::from_secs(10);

/// How long a requested Child SA counts as in flight.
const CHILD_REQUEST_HOLD: Duration = Duration::from_secs(10);

impl IkeTask {
    /// The task for an engine built from `setup`, sending on `ports`.
    pub(crate) fn new(
        setup: EngineSetup,
        endpoint: Ike,
        ports: Arc<Vec<UdpPort>>,
        tables: Tables,
        log: SharedLog,
        dataplane: Option<DataPlane>,
    ) -> Self {
        let ids = setup
            .gateways
            .iter()
            .map(|g| {
                endpoint
                    .peers()
                    .find(|(_, p)| p.name == g.name)
                    .map(|(id, p)| (id, p.policies.iter().map(ChildPolicy::id).collect()))
                    .unwrap_or((PeerId(u32::MAX), Vec::new()))
            })
            .collect();
        let mut names = Names::default();
        tables.lock().liveness = endpoint
            .peers()
            .map(|(_, p)| (names.get(&p.name), p.liveness))
            .collect();
        IkeTask {
            endpoint,
            gateways: Gateways::new(setup.gateways),
            ids,
            ports,
            tables,
            log,
            waiters: Vec::new(),
            dataplane,
            shutdown: None,
            nat_keepalive: Duration::from_secs(20),
            child_requested: BTreeMap::new(),
            pending_outbound: HashMap::new(),
            names,
            invalid_spi_told: HashMap::new(),
            esp_keys: None,
            commands_tx: None,
            always_on: Vec::new(),
            former_ids: BTreeMap::new(),
            first_messages: HashMap::new(),
            resolving: resolve::Resolving::new(Duration::from_secs(300)),
            virtual_ips: BTreeMap::new(),
            tcp: None,
            fallback_sends: HashMap::new(),
        }
    }

    /// Sends IKE to peers of gateways with `tcp-encapsulation` over TCP (crate::tcpencap).
    pub(crate) fn with_tcp(mut self, tcp: Option<Arc<crate::tcpencap::TcpEncap>>) -> Self {
        self.tcp = tcp;
        self
    }

    /// After a reload: who may open streams to us follows the gateways; peers whose gateway
    /// no longer has TCP encapsulation go back to UDP. The listener starts with the daemon,
    /// so a reload that enables TCP encapsulation where none was says it needs a restart.
    fn tcp_reloaded(&mut self) {
        use ferrosec_config::algo::TcpEncapsulation as Mode;
        let on: Vec<&GatewayInfo> = self
            .gateways
            .iter()
            .filter(|g| g.tcp.0 != Mode::No)
            .collect();
        let Some(tcp) = &self.tcp else {
            for g in on {
                self.log.record(
                    Severity::Warning,
                    &format!("ike-gateway {}", g.name),
                    "tcp-encapsulation takes effect at the next restart of the daemon (the TCP \
                     listener and streams start with it); until then the gateway uses UDP",
                );
            }
            return;
        };
        tcp.set_allowed(on.iter().map(|g| g.peer_address).collect());
        for g in self.gateways.iter().filter(|g| g.tcp.0 == Mode::No) {
            if let Some(peer) = g.peer_address {
                tcp.stop(peer);
            }
        }
    }

    /// Decides, before a datagram goes out, whether its peer is reached over TCP: always for
    /// an `always` gateway; for a `fallback` one once an IKE_SA_INIT went unanswered
    /// [`FALLBACK_AFTER_TRANSMISSIONS`] times over UDP (and back to UDP first for a new
    /// negotiation while no IKE SA with the peer is up).
    fn tcp_route(&mut self, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        use ferrosec_config::algo::TcpEncapsulation as Mode;
        let Some(tcp) = self.tcp.clone() else {
            return;
        };
        let peer = remote.ip();
        let Some(g) = self
            .gateways
            .iter()
            .find(|g| g.peer_address == Some(peer) && g.tcp.0 != Mode::No && g.may_initiate)
        else {
            return;
        };
        let (mode, port, name) = (g.tcp.0, g.tcp.1, g.name.clone());
        let local_ip = g.local_address.or(Some(local.ip()));
        if mode == Mode::Always {
            tcp.open_to(peer, local_ip, port);
            return;
        }
        let Some((spi, "ikev2")) = first_message_spi(local.port(), data) else {
            return;
        };
        if self.fallback_sends.len() >= TIMED_MAX && !self.fallback_sends.contains_key(&(peer, spi))
        {
            self.fallback_sends.clear();
        }
        let n = self.fallback_sends.entry((peer, spi)).or_default();
        *n += 1;
        let n = *n;
        let up = self
            .tables
            .lock()
            .ike
            .values()
            .any(|e| e.remote.ip() == peer && e.state == IkeState::Established);
        if n == 1 && !up {
            // A new negotiation: UDP first (RFC 9329 §5.1).
            tcp.stop(peer);
        } else if n == FALLBACK_AFTER_TRANSMISSIONS + 1 && !tcp.carries(peer) {
            tcp.open_to(peer, local_ip, port);
            self.log.record(
                Severity::Warning,
                &format!("ike-gateway {name}"),
                format!(
                    "no answer over UDP to IKE_SA_INIT after {} transmissions; trying TCP \
                     encapsulation to {peer} port {port} (RFC 9329)",
                    n - 1
                ),
            );
        }
    }

    /// Notes the start of a negotiation when `data` (from or to `peer`, on our `port`; `side`
    /// `local` when we send it) is its first message: counted once (its retransmissions and
    /// the responder's COOKIE or INVALID_KE_PAYLOAD answers have the same key), and the
    /// handshake histogram measures from this first sighting. With [`TIMED_MAX`] negotiations
    /// timed already, it is counted without being timed (and its retransmissions again).
    fn note_first_message(
        &mut self,
        now: Instant,
        peer: IpAddr,
        port: u16,
        data: &[u8],
        side: &'static str,
    ) {
        let Some((spi_i, version)) = first_message_spi(port, data) else {
            return;
        };
        let new = if self.first_messages.len() < TIMED_MAX {
            match self.first_messages.entry((peer, spi_i)) {
                Entry::Occupied(_) => false,
                Entry::Vacant(v) => {
                    v.insert(now);
                    true
                }
            }
        } else {
            !self.first_messages.contains_key(&(peer, spi_i))
        };
        if new {
            let mut t = self.tables.lock();
            *t.outcomes.started.entry((version, side)).or_default() += 1;
        }
    }

    /// How long the negotiation of the IKE SA `info` took, from its first message to now
    /// (forgotten then); `None` when its start was not seen.
    fn handshake_took(&mut self, now: Instant, info: &IkeSaInfo) -> Option<Duration> {
        let start = self
            .first_messages
            .remove(&(info.remote.ip(), info.spi_i.0))?;
        Some(now.saturating_duration_since(start))
    }

    /// The tunnels brought up at start and kept up (`establish = "always"`).
    pub(crate) fn with_always_on(mut self, tunnels: Vec<String>) -> Self {
        let now = Instant::now();
        self.always_on = tunnels
            .into_iter()
            .map(|t| (t, now, ALWAYS_ON_FIRST_RETRY))
            .collect();
        self
    }

    /// This task's own command channel, for the results of certificate fetches.
    pub(crate) fn with_commands(mut self, tx: mpsc::Sender<Command>) -> Self {
        self.commands_tx = Some(tx.downgrade());
        self
    }

    /// Keeps the Child SAs' keys for `request vpn export-keys` (`[global]
    /// allow-key-export`).
    pub(crate) fn with_key_export(mut self, on: bool) -> Self {
        self.esp_keys = on.then(BTreeMap::new);
        self
    }

    /// Sets the NAT keepalive interval (`[global] nat-keepalive-interval`).
    pub(crate) fn with_nat_keepalive(mut self, interval: Duration) -> Self {
        self.nat_keepalive = interval.max(Duration::from_millis(100));
        self
    }

    /// RFC 3948 §2.3: while we are behind a NAT, one 0xff byte to the peer's NAT-T port keeps
    /// the NAT's mapping alive. Sent per (local, remote) pair of the established IKE SAs.
    fn send_keepalives(&self) {
        let pairs: BTreeSet<(SocketAddr, SocketAddr)> = self
            .tables
            .lock()
            .ike
            .values()
            .filter(|e| e.state == IkeState::Established && e.nat.0)
            .map(|e| (e.local, e.remote))
            .collect();
        for (local, remote) in pairs {
            // RFC 9329 §6.6: no NAT keepalives on a stream (TCP keeps it).
            if self.tcp.as_ref().is_some_and(|t| t.carries(remote.ip())) {
                continue;
            }
            if let Some(port) = self.ports.iter().find(|p| p.serves(local))
                && let Err(e) = port.try_send(local, remote, &[0xff])
            {
                tracing::debug!("NAT keepalive to {remote}: {e}");
            }
        }
    }

    /// Runs until shut down or until both channels close.
    pub(crate) async fn run(
        mut self,
        mut datagrams: mpsc::Receiver<Incoming>,
        mut commands: mpsc::Receiver<Command>,
        mut on_demand: mpsc::Receiver<crate::dataplane::Trigger>,
    ) {
        let mut no_more_datagrams = false;
        let mut keepalive = tokio::time::interval(self.nat_keepalive);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut traffic = tokio::time::interval(TRAFFIC_LOOK);
        traffic.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut deadline = self.endpoint.poll_timeout();
            if let Some((until, _, _)) = &self.shutdown {
                deadline = Some(deadline.map_or(*until, |d| d.min(*until)));
            }
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                d = datagrams.recv(), if !no_more_datagrams => match d {
                    Some(d) => {
                        let now = Instant::now();
                        // The engine checks certificate dates against this, never the clock.
                        self.endpoint.set_wall_clock(now, crate::ikecfg::unix_now());
                        self.note_first_message(now, d.remote.ip(), d.local.port(), &d.data, "peer");
                        if !self.fallback_sends.is_empty() {
                            // The peer answers: what we sent it was not lost.
                            self.fallback_sends.retain(|(ip, _), _| *ip != d.remote.ip());
                        }
                        self.endpoint.handle_datagram(now, d.local, d.remote, &d.data);
                        // Take what else is queued, a bounded batch per wakeup.
                        for _ in 0..64 {
                            let Ok(d) = datagrams.try_recv() else { break };
                            self.note_first_message(now, d.remote.ip(), d.local.port(), &d.data, "peer");
                            self.endpoint.handle_datagram(now, d.local, d.remote, &d.data);
                        }
                    }
                    // No socket could be bound (see the system log): commands still work.
                    None => no_more_datagrams = true,
                },
                c = commands.recv() => match c {
                    Some(c) => self.command(c),
                    None => break,
                },
                Some(t) = on_demand.recv() => match t {
                    crate::dataplane::Trigger::OnDemand(tunnel) => self.on_demand(&tunnel),
                    crate::dataplane::Trigger::Lifetime(e) => self.lifetime(e),
                    crate::dataplane::Trigger::UnknownSpi { spi, from } => {
                        self.unknown_spi(spi, from)
                    }
                },
                () = timer => self.endpoint.handle_timeout(Instant::now()),
                _ = keepalive.tick() => {
                    self.send_keepalives();
                    continue;
                }
                _ = traffic.tick() => {
                    self.report_traffic();
                    let now = Instant::now();
                    self.first_messages
                        .retain(|_, t| now.saturating_duration_since(*t) < TIMED_FOR);
                    self.resolve_due(now);
                    if self.always_on.is_empty() {
                        continue;
                    }
                    self.keep_up(Instant::now());
                }
            }
            self.flush().await;
            if self.shutdown_done() {
                break;
            }
        }
    }

    /// Tells the engine which IKE SAs had ESP or AH arrive since the last look: their
    /// liveness checks (IKEv2) and DPD (IKEv1) wait while traffic flows (RFC 7296 §2.4,
    /// RFC 3706 §5.5). One relaxed load and swap per Child SA per second.
    fn report_traffic(&mut self) {
        let active: BTreeSet<IkeSaHandle> = self
            .tables
            .lock()
            .child
            .values()
            .filter(|c| c.counters.arrived_since_last_look())
            .map(|c| c.ike)
            .collect();
        let now = Instant::now();
        for h in active {
            self.endpoint.traffic_seen(now, h);
        }
    }

    fn shutdown_done(&mut self) -> bool {
        let Some((until, _, _)) = &self.shutdown else {
            return false;
        };
        if self.endpoint.established().is_empty() || Instant::now() >= *until {
            if let Some((_, reply, n)) = self.shutdown.take() {
                let _ = reply.send(n);
            }
            return true;
        }
        false
    }

    /// Sends what the engine queued and handles its events.
    async fn flush(&mut self) {
        // Events first: the data plane must have the new SAs before the datagrams that follow
        // them go out (our answer to a CREATE_CHILD_SA finds our new inbound SA installed; our
        // DELETE of a rekeyed pair leaves after outbound traffic moved to its successor).
        while let Some(e) = self.endpoint.poll_event() {
            self.event(e);
        }
        while let Some(t) = self.endpoint.poll_transmit() {
            let now = Instant::now();
            self.note_first_message(now, t.remote.ip(), t.local.port(), &t.data, "local");
            if let Some(tcp) = self.tcp.clone() {
                self.tcp_route(t.local, t.remote, &t.data);
                if tcp.send_ike(t.local, t.remote, &t.data) {
                    continue;
                }
            }
            match self.ports.iter().find(|p| p.serves(t.local)) {
                Some(port) => {
                    if let Err(e) = port.send(t.local, t.remote, &t.data).await {
                        tracing::debug!("sending IKE to {}: {e}", t.remote);
                    }
                }
                None => tracing::debug!("no socket for {}; IKE datagram dropped", t.local),
            }
        }
        self.reconcile();
        self.waiters.retain(|w| !w.reply.is_closed());
        self.publish_counters();
    }

    fn gateway_index(&self, name: &str) -> Option<usize> {
        self.gateways.index_of(name)
    }

    /// Our established IKE SA with gateway `gw`, newest first.
    fn established(&self, gw: usize) -> Option<IkeSaHandle> {
        let name = &self.gateways[gw].name;
        let t = self.tables.lock();
        t.ike
            .iter()
            .filter(|(_, e)| *e.gateway == **name && e.state == IkeState::Established)
            .max_by_key(|(_, e)| e.since)
            .map(|(h, _)| *h)
    }

    /// Whether an IKE SA with gateway `gw` is being negotiated: one we started, or one the
    /// engine started again after the peer was declared dead (not in the tables until up).
    fn connecting(&self, gw: usize) -> bool {
        let name = &self.gateways[gw].name;
        self.tables
            .lock()
            .ike
            .values()
            .any(|e| *e.gateway == **name && e.state == IkeState::Connecting)
            || self.endpoint.negotiating(self.ids[gw].0)
    }

    /// Moves waiting `test` commands forward: Child SAs for the proxy IDs still missing,
    /// answers for the goals reached.
    fn reconcile(&mut self) {
        let now = Instant::now();
        let mut waiters = std::mem::take(&mut self.waiters);
        for w in &mut waiters {
            let Goal::TunnelUp {
                gateway,
                tunnel,
                requested,
            } = &mut w.goal
            else {
                continue;
            };
            let Some(h) = self.established(*gateway) else {
                continue;
            };
            let up = self.tables.proxy_ids_up(tunnel);
            let gw = &self.gateways[*gateway];
            let missing: Vec<usize> = gw
                .policies
                .iter()
                .enumerate()
                .filter(|(_, p)| &p.tunnel == tunnel && !up.contains(&p.proxy_id))
                .map(|(i, _)| i)
                .collect();
            if missing.is_empty() {
                continue;
            }
            for i in missing {
                // Policy 0 comes with IKE_AUTH; the others need CREATE_CHILD_SA, once.
                if i != 0 && requested.insert(i) {
                    self.request_child(now, h, *gateway, i);
                }
            }
        }
        // Answer the goals reached.
        let mut keep = Vec::new();
        for w in waiters {
            let done = match &w.goal {
                Goal::IkeUp { gateway } => self.established(*gateway).map(|_| {
                    format!(
                        "IKE SA with ike-gateway \"{}\" established",
                        self.gateways[*gateway].name
                    )
                }),
                Goal::TunnelUp {
                    gateway, tunnel, ..
                } => {
                    let up = self.tables.proxy_ids_up(tunnel);
                    let gw = &self.gateways[*gateway];
                    let all = gw
                        .policies
                        .iter()
                        .filter(|p| &p.tunnel == tunnel)
                        .all(|p| up.contains(&p.proxy_id));
                    all.then(|| {
                        format!(
                            "ipsec-tunnel \"{tunnel}\" is up: {} proxy ID(s) with IPsec SAs",
                            up.len()
                        )
                    })
                }
            };
            match done {
                Some(msg) => {
                    let _ = w.reply.send(Ok(msg));
                }
                None => keep.push(w),
            }
        }
        self.waiters.extend(keep);
    }
}

fn not_served(gateway: &str) -> String {
    format!("ike-gateway \"{gateway}\" is not served by this daemon (see the system log for why)")
}

/// The initiator's SPI and the version (`ikev2`, `ikev1`) when `data`, an IKE datagram on our
/// UDP `port`, is the first message of a negotiation: an IKEv2 IKE_SA_INIT or an IKEv1 main
/// or aggressive mode message whose responder SPI is still zero (RFC 7296 §3.1, RFC 2408
/// §3.1). The responder's error answers to it (COOKIE, INVALID_KE_PAYLOAD) have the same key,
/// so they change nothing. On port 4500 the datagram starts with the non-ESP marker (RFC 3948
/// §2.2). Reads 28 bytes.
fn first_message_spi(port: u16, data: &[u8]) -> Option<(u64, &'static str)> {
    let data = if port == 4500 {
        data.strip_prefix(&[0u8; 4][..])?
    } else {
        data
    };
    let h = data.get(..28)?;
    let spi_i = u64::from_be_bytes(h.get(0..8)?.try_into().ok()?);
    let spi_r = u64::from_be_bytes(h.get(8..16)?.try_into().ok()?);
    let (major, exchange) = (h[17] >> 4, h[18]);
    let version = match (major, exchange) {
        (2, 34) => "ikev2",
        (1, 2 | 4) => "ikev1",
        _ => return None,
    };
    (spi_i != 0 && spi_r == 0).then_some((spi_i, version))
}

/// A duration in whole seconds, saturating at `u32::MAX` (136 years).
fn secs_u32(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// A deadline as whole seconds (rounded up) after `since`, for [`IkeEntry::reauth_after`].
fn reauth_after(since: Instant, at: Option<Instant>) -> Option<NonZeroU32> {
    let d = at?.saturating_duration_since(since);
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    NonZeroU32::new(u32::try_from(secs).unwrap_or(u32::MAX).max(1))
}

fn spi_pair(e: &Option<IkeEntry>) -> String {
    e.as_ref()
        .map(|e| format!("with {}", e.remote))
        .unwrap_or_default()
}

fn peer_of(e: &Option<IkeEntry>) -> String {
    e.as_ref()
        .map(|e| format!(" (peer {})", e.remote))
        .unwrap_or_default()
}

/// The addresses to listen on: each gateway's local address, or the wildcard of the peer's
/// family when it has none.
pub(crate) fn listen_addresses(gateways: &[GatewayInfo]) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = Vec::new();
    for g in gateways {
        let a = match (g.local_address, g.peer_address) {
            (Some(a), _) => a,
            (None, Some(IpAddr::V6(_))) => IpAddr::from([0u16; 8]),
            (None, _) => IpAddr::from([0u8; 4]),
        };
        if !v.contains(&a) {
            v.push(a);
        }
    }
    // A wildcard of one family covers every specific address of that family.
    let wild4 = v.iter().any(|a| a.is_ipv4() && a.is_unspecified());
    let wild6 = v.iter().any(|a| a.is_ipv6() && a.is_unspecified());
    v.retain(|a| a.is_unspecified() || (a.is_ipv4() && !wild4) || (a.is_ipv6() && !wild6));
    v
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_tables;
