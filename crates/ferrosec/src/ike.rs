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

use ferrosec_ike::Ike;
use ferrosec_ike::proposal::Selected;
use ferrosec_ike::retransmit::RetransmitPolicy;
use ferrosec_ike::v2::{
    ChildPolicy, ChildSaInfo, DownReason, Event, Identity, IkeSaHandle, IkeSaInfo, PeerId, PolicyId,
};
use ferrosec_netio::UdpPort;
use ferrosec_wire::Spi;
use ferrosec_wire::ikev2::{DhGroup, EncrId, IntegId, PrfId};
use tokio::sync::{mpsc, oneshot};

use crate::dataplane::{DataPlane, PendingOutbound};
use crate::ikecfg::{
    EngineSetup, GatewayInfo, encr_name, group_name, integ_name, prf_name, split_policy,
};
use crate::status::{FlowRow, IkeCountersRow, IkeSaRow, IpsecSaRow};
use crate::syslog::{Severity, SharedLog};

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
    /// Delete every IKE SA on the peers, then stop (bounded by `within`).
    Shutdown {
        within: Duration,
        reply: oneshot::Sender<usize>,
    },
}

// ---------------------------------------------------------------------------------------------
// The tables behind `show vpn ike-sa` / `ipsec-sa` / `flow`

// One IKE SA and one Child SA pair cost an entry each here, at 10,000 SAs about 250 bytes
// together: names are shared ([`Names`]) and algorithms kept as their IDs, named when shown.

#[derive(Debug, Clone)]
struct IkeEntry {
    gateway: Arc<str>,
    state: &'static str,
    initiator: bool,
    local: SocketAddr,
    remote: SocketAddr,
    nat: (bool, bool),
    algos: Option<IkeAlgos>,
    /// The peer's authenticated identity (once established).
    peer_id: Option<Arc<Identity>>,
    since: Instant,
    /// The IKE lifetime in seconds (4 bytes: the entry has a size budget, see the tests).
    lifetime: u32,
    /// When we re-authenticate it next (`authentication-multiple`): whole seconds after
    /// `since`.
    reauth_after: Option<NonZeroU32>,
}

/// An IKE SA's negotiated algorithms, as `show vpn ike-sa` names them.
#[derive(Debug, Clone, Copy)]
struct IkeAlgos {
    encr: Option<(EncrId, Option<u16>)>,
    integ: Option<IntegId>,
    prf: Option<PrfId>,
    ke: Option<DhGroup>,
}

impl From<&Selected> for IkeAlgos {
    fn from(p: &Selected) -> Self {
        IkeAlgos {
            encr: p.encr,
            integ: p.integ,
            prf: p.prf,
            ke: p.ke,
        }
    }
}

/// The tunnel, proxy ID and gateway names of the table entries: one shared copy of each
/// (they come from the configuration, so the set stays small).
#[derive(Debug, Default)]
struct Names(BTreeSet<Arc<str>>);

impl Names {
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.0.get(name) {
            return Arc::clone(n);
        }
        let n: Arc<str> = name.into();
        self.0.insert(Arc::clone(&n));
        n
    }
}

/// The traffic a Child SA pair carries: one proxy ID of one tunnel with one peer. A new pair in
/// the slot of another replaces it (a rekey or a re-authentication: make-before-break); on a
/// `dynamic` gateway every peer has slots of its own, though the proxy IDs are the same.
///
/// The peer is the address and port of its IKE SA (as `ike_up` tells a re-authentication from
/// a new IKE SA) and its authenticated identity: IKE SAs of several identities may share an
/// address and port (a concentrator; `ike-loadgen` runs 10,000 over 256 sockets), and the
/// engine takes an identity for one peer (INITIAL_CONTACT).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Slot {
    /// First, so that comparing the slots of other peers' pairs mostly reads no pointer.
    peer: SocketAddr,
    peer_id: Option<Arc<Identity>>,
    tunnel: Arc<str>,
    proxy_id: Arc<str>,
}

#[derive(Debug, Clone)]
struct ChildEntry {
    ike: IkeSaHandle,
    slot: Slot,
    outbound: Spi,
    encr: Option<(EncrId, Option<u16>)>,
    integ: Option<IntegId>,
    udp: bool,
    /// AH rather than ESP.
    ah: bool,
    since: Instant,
    lifetime: Duration,
    counters: Arc<crate::counters::SaCounters>,
}

impl IkeEntry {
    /// Who the peer is, as a re-authentication keeps it (see [`Slot`]).
    fn peer_key(&self) -> (&str, SocketAddr, Option<&Identity>) {
        (&self.gateway, self.remote, self.peer_id.as_deref())
    }
}

/// How many table entries have a key, counted by the key's hash: "is there another entry
/// like this one?" is answered without a scan when there is none, the common case (a new
/// peer; a scan of 10,000 entries per new SA was half the daemon's CPU at 10,000 SAs). A
/// count only says "maybe": the caller confirms with a scan (a rekey or re-authentication).
/// About 30 bytes per entry.
#[derive(Debug, Default)]
struct KeyCounts {
    counts: HashMap<u64, u32>,
    hasher: RandomState,
}

impl KeyCounts {
    fn add(&mut self, key: impl Hash) {
        *self.counts.entry(self.hasher.hash_one(key)).or_default() += 1;
    }

    fn remove(&mut self, key: impl Hash) {
        if let Entry::Occupied(mut e) = self.counts.entry(self.hasher.hash_one(key)) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    fn maybe(&self, key: impl Hash) -> bool {
        self.counts.contains_key(&self.hasher.hash_one(key))
    }
}

/// The SAs as operators see them. Entries come and go through the methods below, which keep
/// the key counts.
#[derive(Debug, Default)]
pub(crate) struct SaTables {
    ike: BTreeMap<IkeSaHandle, IkeEntry>,
    child: BTreeMap<Spi, ChildEntry>,
    /// IKE entries by [`IkeEntry::peer_key`].
    ike_peers: KeyCounts,
    /// Child entries by [`Slot`].
    child_slots: KeyCounts,
    /// The responder's half-open counters, refreshed after every batch.
    counters: IkeCountersRow,
    /// Each gateway's liveness check interval (`None`: off), for `show vpn ike-sa`.
    liveness: BTreeMap<Arc<str>, Option<Duration>>,
}

impl SaTables {
    fn insert_ike(&mut self, h: IkeSaHandle, e: IkeEntry) {
        self.ike_peers.add(e.peer_key());
        if let Some(old) = self.ike.insert(h, e) {
            self.ike_peers.remove(old.peer_key());
        }
    }

    fn remove_ike(&mut self, h: &IkeSaHandle) -> Option<IkeEntry> {
        let e = self.ike.remove(h)?;
        self.ike_peers.remove(e.peer_key());
        Some(e)
    }

    fn insert_child(&mut self, spi: Spi, c: ChildEntry) {
        self.child_slots.add(&c.slot);
        if let Some(old) = self.child.insert(spi, c) {
            self.child_slots.remove(&old.slot);
        }
    }

    fn remove_child(&mut self, spi: &Spi) -> Option<ChildEntry> {
        let c = self.child.remove(spi)?;
        self.child_slots.remove(&c.slot);
        Some(c)
    }

    /// Whether an established IKE SA other than `except` has the peer `key`.
    fn peer_established(
        &self,
        key: (&str, SocketAddr, Option<&Identity>),
        except: Option<IkeSaHandle>,
    ) -> bool {
        self.ike_peers.maybe(key)
            && self.ike.iter().any(|(h, e)| {
                Some(*h) != except
                    && e.remote == key.1
                    && e.peer_key() == key
                    && e.state == "established"
            })
    }

    /// Whether a pair carries the traffic of `slot`.
    fn slot_taken(&self, slot: &Slot) -> bool {
        self.child_slots.maybe(slot) && self.child.values().any(|c| c.slot == *slot)
    }
}

/// Shared, written by the IKE task per event, read by `show`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tables {
    sas: Arc<Mutex<SaTables>>,
    /// Drops that belong to no SA, counted by the data plane.
    drops: Arc<crate::counters::GlobalDrops>,
}

impl Tables {
    fn lock(&self) -> MutexGuard<'_, SaTables> {
        self.sas.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The data plane's counters of drops that belong to no SA.
    pub(crate) fn drops(&self) -> Arc<crate::counters::GlobalDrops> {
        Arc::clone(&self.drops)
    }

    /// Every drop counter by reason: the SAs' summed, and those of no SA.
    pub(crate) fn all_drops(&self) -> BTreeMap<String, u64> {
        let mut m = self.drops.snapshot();
        for c in self.lock().child.values() {
            for (k, v) in c.counters.snapshot().drops {
                *m.entry(k).or_default() += v;
            }
        }
        m
    }

    /// The row of `show vpn ike-counters`.
    pub(crate) fn ike_counters(&self) -> IkeCountersRow {
        self.lock().counters.clone()
    }

    /// Rows of `show vpn ike-sa [gateway G]`.
    pub(crate) fn ike_rows(&self, gateway: Option<&str>) -> Vec<IkeSaRow> {
        let now = Instant::now();
        let t = self.lock();
        t.ike
            .values()
            .filter(|e| gateway.is_none_or(|g| g == &*e.gateway))
            .map(|e| {
                let p = e.algos.as_ref();
                let live = t.liveness.get(&e.gateway).copied().flatten();
                let policy = live.map(RetransmitPolicy::liveness);
                IkeSaRow {
                    gateway: e.gateway.to_string(),
                    state: e.state.to_owned(),
                    version: "ikev2".into(),
                    role: if e.initiator {
                        "initiator"
                    } else {
                        "responder"
                    }
                    .into(),
                    local_address: e.local.to_string(),
                    peer_address: e.remote.to_string(),
                    local_nat: e.nat.0,
                    peer_nat: e.nat.1,
                    encryption: p.map_or("-".into(), |p| encr_name(p.encr)),
                    integrity: p.map_or("-".into(), |p| integ_name(p.integ)),
                    prf: p.map_or("-".into(), |p| prf_name(p.prf)),
                    dh_group: p.map_or("-".into(), |p| group_name(p.ke)),
                    remaining_lifetime: remaining(
                        e.since,
                        Duration::from_secs(u64::from(e.lifetime)),
                        now,
                    ),
                    next_reauthentication: e
                        .reauth_after
                        .map(|s| remaining(e.since, Duration::from_secs(u64::from(s.get())), now)),
                    liveness_interval: live.map_or(0.0, |d| d.as_secs_f64()),
                    liveness_retransmissions: policy.map_or(0, |p| p.tries),
                    liveness_retransmit_every: policy.map_or(0.0, |p| p.timeout.as_secs_f64()),
                    liveness_gives_up_after: policy.map_or(0.0, |p| p.total().as_secs_f64()),
                }
            })
            .collect()
    }

    /// Rows of `show vpn ipsec-sa [tunnel T]`.
    pub(crate) fn ipsec_rows(&self, tunnel: Option<&str>) -> Vec<IpsecSaRow> {
        let now = Instant::now();
        self.lock()
            .child
            .iter()
            .filter(|(_, c)| tunnel.is_none_or(|t| t == &*c.slot.tunnel))
            .map(|(spi, c)| {
                let n = c.counters.snapshot();
                IpsecSaRow {
                    tunnel: c.slot.tunnel.to_string(),
                    proxy_id: c.slot.proxy_id.to_string(),
                    state: "installed".into(),
                    spi_in: format!("0x{:08x}", spi.0),
                    spi_out: format!("0x{:08x}", c.outbound.0),
                    encapsulation: match (c.ah, c.udp) {
                        (true, _) => "ah",
                        (false, true) => "udp",
                        (false, false) => "esp",
                    }
                    .into(),
                    encryption: encr_name(c.encr),
                    integrity: integ_name(c.integ),
                    // The engine does not report the PFS group of a Child SA (yet).
                    dh_group: "n/a".into(),
                    packets_in: n.packets_in,
                    packets_out: n.packets_out,
                    bytes_in: n.bytes_in,
                    bytes_out: n.bytes_out,
                    remaining_lifetime: remaining(c.since, c.lifetime, now),
                }
            })
            .collect()
    }

    /// Rows of `show vpn flow`.
    pub(crate) fn flow_rows(&self) -> Vec<FlowRow> {
        let mut rows: Vec<FlowRow> = self
            .lock()
            .child
            .iter()
            .map(|(spi, c)| {
                let n = c.counters.snapshot();
                FlowRow {
                    tunnel: c.slot.tunnel.to_string(),
                    proxy_id: c.slot.proxy_id.to_string(),
                    spi_in: format!("0x{:08x}", spi.0),
                    spi_out: format!("0x{:08x}", c.outbound.0),
                    packets_in: n.packets_in,
                    packets_out: n.packets_out,
                    bytes_in: n.bytes_in,
                    bytes_out: n.bytes_out,
                    drops: n.drops,
                }
            })
            .collect();
        let global = self.drops.snapshot();
        if !global.is_empty() {
            rows.push(FlowRow {
                tunnel: "(no SA)".into(),
                proxy_id: "-".into(),
                spi_in: "-".into(),
                spi_out: "-".into(),
                packets_in: 0,
                packets_out: 0,
                bytes_in: 0,
                bytes_out: 0,
                drops: global,
            });
        }
        rows
    }

    /// Proxy IDs of `tunnel` that have a Child SA.
    pub(crate) fn proxy_ids_up(&self, tunnel: &str) -> BTreeSet<String> {
        self.lock()
            .child
            .values()
            .filter(|c| &*c.slot.tunnel == tunnel)
            .map(|c| c.slot.proxy_id.to_string())
            .collect()
    }
}

fn remaining(since: Instant, lifetime: Duration, now: Instant) -> u64 {
    lifetime
        .saturating_sub(now.saturating_duration_since(since))
        .as_secs()
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
    gateways: Vec<GatewayInfo>,
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
}

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
            gateways: setup.gateways,
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
        }
    }

    /// Starts a CREATE_CHILD_SA for policy `i` of gateway `gw` under IKE SA `h`, unless one
    /// is in flight.
    fn request_child(&mut self, now: Instant, h: IkeSaHandle, gw: usize, i: usize) {
        self.child_requested
            .retain(|_, at| now.duration_since(*at) < CHILD_REQUEST_HOLD);
        if self.child_requested.contains_key(&(h, i)) {
            return;
        }
        let Some(policy) = self.ids.get(gw).and_then(|(_, p)| p.get(i)).copied() else {
            return;
        };
        match self.endpoint.create_child_sa(now, h, policy) {
            Ok(()) => {
                self.child_requested.insert((h, i), now);
            }
            Err(e) => tracing::debug!("CREATE_CHILD_SA for policy {i}: {e}"),
        }
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
            .filter(|e| e.state == "established" && e.nat.0)
            .map(|e| (e.local, e.remote))
            .collect();
        for (local, remote) in pairs {
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
                        self.endpoint.handle_datagram(now, d.local, d.remote, &d.data);
                        // Take what else is queued, a bounded batch per wakeup.
                        for _ in 0..64 {
                            let Ok(d) = datagrams.try_recv() else { break };
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
            }
            self.flush().await;
            if self.shutdown_done() {
                break;
            }
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

    /// Copies the engine's half-open counters where `show` reads them (one small copy per
    /// batch, under the lock the batch takes anyway).
    fn publish_counters(&mut self) {
        let s = self.endpoint.half_open_stats();
        let (threshold, limit, per_address) = self.endpoint.half_open_limits();
        let row = IkeCountersRow {
            ike_sas: self.endpoint.ike_sa_count() as u64,
            half_open: self.endpoint.half_open_count() as u64,
            cookie_threshold: threshold as u64,
            half_open_limit: limit as u64,
            half_open_per_address: per_address as u64,
            cookies_sent: s.cookies_sent,
            refused_per_address: s.refused_per_address,
            refused_global: s.refused_global,
            refused_dh_rate: s.refused_dh_rate,
            evicted: s.evicted,
            tombstones: self.endpoint.tombstone_count() as u64,
            tombstone_answers: self.endpoint.tombstone_stats().answered,
        };
        self.tables.lock().counters = row;
    }

    /// An IKEv1 peer knocking: say so, naming the gateway when the address is a configured
    /// peer's (otherwise the tunnel just looks unreachable).
    fn unserved_version(&mut self, major: u8, count: u64, sources: &[std::net::SocketAddr]) {
        let names: Vec<String> = sources
            .iter()
            .map(|a| {
                match self
                    .endpoint
                    .peers()
                    .find(|(_, p)| p.peer_addr == Some(a.ip()))
                {
                    Some((_, p)) => format!("{a} (ike-gateway {})", p.name),
                    None => a.to_string(),
                }
            })
            .collect();
        self.log.record(
            Severity::Warning,
            "global",
            format!(
                "IKEv{major} message(s) dropped: {count} from {}; this build speaks IKEv2 only \
                 (configure the peer for IKEv2)",
                names.join(", ")
            ),
        );
    }

    /// One system log line for an interval of half-open pressure (never one per packet).
    fn half_open_pressure(&mut self, r: &ferrosec_ike::halfopen::PressureReport) {
        let (threshold, limit, per_address) = self.endpoint.half_open_limits();
        let secs = r.interval.as_secs();
        let top = r
            .top_sources
            .iter()
            .map(|(ip, n)| format!("{ip} ({n})"))
            .collect::<Vec<_>>()
            .join(", ");
        let others = if r.others > 0 {
            format!(" and {} from untracked sources", r.others)
        } else {
            String::new()
        };
        let (severity, text) = if r.refused() > 0 {
            (
                Severity::Warning,
                format!(
                    "half-open limit reached: {} IKE_SA_INIT requests refused in the last {secs} s \
                     ({} over the per-address limit of {per_address}, {} at the global limit of \
                     {limit}, {} over the key-exchange rate); {} old half-open SAs replaced, {} \
                     cookies sent, {} half-open now; top sources {top}{others}",
                    r.refused(),
                    r.per_address,
                    r.global,
                    r.dh_rate,
                    r.evicted,
                    r.cookies_sent,
                    r.half_open,
                ),
            )
        } else {
            (
                Severity::Info,
                format!(
                    "cookie challenge active: {} cookies sent in the last {secs} s \
                     ({} half-open IKE SAs, cookies from {threshold}); {} old half-open SAs replaced",
                    r.cookies_sent, r.half_open, r.evicted,
                ),
            )
        };
        self.log.record(severity, "global", text);
    }

    fn gateway_index(&self, name: &str) -> Option<usize> {
        self.gateways.iter().position(|g| g.name == name)
    }

    /// Our established IKE SA with gateway `gw`, newest first.
    fn established(&self, gw: usize) -> Option<IkeSaHandle> {
        let name = &self.gateways[gw].name;
        let t = self.tables.lock();
        t.ike
            .iter()
            .filter(|(_, e)| *e.gateway == **name && e.state == "established")
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
            .any(|e| *e.gateway == **name && e.state == "connecting")
            || self.endpoint.negotiating(self.ids[gw].0)
    }

    /// Starts IKE_SA_INIT with gateway `gw`; `why` (what asked for it) goes into the log.
    fn initiate(&mut self, gw: usize, why: &str) -> Result<(), String> {
        let info = &self.gateways[gw];
        if !info.may_initiate {
            return Err(format!(
                "ike-gateway \"{}\" is passive or has a dynamic peer: it only responds",
                info.name
            ));
        }
        let Some(peer) = info.peer_address else {
            return Err(format!("ike-gateway \"{}\" has no peer address", info.name));
        };
        let local_ip = match info.local_address {
            Some(a) => a,
            None => ferrosec_netio::source_address_for(peer)
                .map_err(|e| format!("no route to the peer {peer}: {e}"))?,
        };
        let local = SocketAddr::new(local_ip, ferrosec_ike::v2::IKE_PORT);
        let remote = SocketAddr::new(peer, ferrosec_ike::v2::IKE_PORT);
        if !self.ports.iter().any(|p| p.serves(local)) {
            return Err(format!(
                "ferrosec does not listen on {local}; see the system log for why"
            ));
        }
        let h = self
            .endpoint
            .initiate(Instant::now(), self.ids[gw].0, local, remote)
            .map_err(|e| format!("cannot start IKE with {}: {e}", info.name))?;
        let lifetime = secs_u32(info.ike_lifetime);
        let name = info.name.clone();
        let gateway = self.names.get(&name);
        self.tables.lock().insert_ike(
            h,
            IkeEntry {
                gateway,
                state: "connecting",
                initiator: true,
                local,
                remote,
                nat: (false, false),
                algos: None,
                peer_id: None,
                since: Instant::now(),
                lifetime,
                reauth_after: None,
            },
        );
        self.log.record(
            Severity::Info,
            &format!("ike-gateway {name}"),
            format!("negotiation started with {remote} ({why})"),
        );
        Ok(())
    }

    /// The Child SA pairs (IKE SA, inbound SPI) of one tunnel, or of all.
    fn pairs(&self, tunnel: Option<&str>) -> Vec<(IkeSaHandle, Spi)> {
        self.tables
            .lock()
            .child
            .iter()
            .filter(|(_, c)| tunnel.is_none_or(|t| t == &*c.slot.tunnel))
            .map(|(spi, c)| (c.ike, *spi))
            .collect()
    }

    /// R-DP-7: an SA of a pair reached its byte lifetime. Soft: rekey the pair (make-before-
    /// break as for a time-based rekey). Hard: the SA carries nothing more; delete the pair, so
    /// the tunnel is negotiated again (on demand or by the engine's policy).
    /// ESP or AH from `from` with an SPI we have no SA for: if an IKE SA with that peer is
    /// up, tell it (INVALID_SPI, RFC 7296 §2.21.4), so that it deletes the pair it still
    /// sends on, and log it; at most once per [`INVALID_SPI_EVERY`] per peer.
    fn unknown_spi(&mut self, spi: Spi, from: std::net::IpAddr) {
        let now = Instant::now();
        if self
            .invalid_spi_told
            .get(&from)
            .is_some_and(|t| now.duration_since(*t) < INVALID_SPI_EVERY)
        {
            return;
        }
        let found = {
            let t = self.tables.lock();
            t.ike
                .iter()
                .filter(|(_, e)| e.state == "established" && e.remote.ip() == from)
                .max_by_key(|(_, e)| e.since)
                .map(|(h, e)| (*h, Arc::clone(&e.gateway)))
        };
        let Some((h, gateway)) = found else {
            return;
        };
        if self.invalid_spi_told.len() >= 4096 {
            self.invalid_spi_told
                .retain(|_, t| now.duration_since(*t) < INVALID_SPI_EVERY);
        }
        self.invalid_spi_told.insert(from, now);
        if self.endpoint.report_invalid_spi(now, h, spi).is_ok() {
            self.log.record(
                Severity::Info,
                &format!("ike-gateway {gateway}"),
                format!(
                    "ESP/AH from {from} with SPI 0x{:08x}, which matches no SA of ours: told \
                     the peer (INVALID_SPI)",
                    spi.0
                ),
            );
        }
    }

    fn lifetime(&mut self, e: ferrosec_esp::LifetimeEvent) {
        let found = {
            let t = self.tables.lock();
            t.child
                .iter()
                .find(|(inbound, c)| match e.direction {
                    ferrosec_esp::Direction::Inbound => **inbound == e.spi,
                    ferrosec_esp::Direction::Outbound => c.outbound == e.spi,
                })
                .map(|(inbound, c)| (c.ike, *inbound, c.slot.tunnel.to_string()))
        };
        let Some((ike, inbound, tunnel)) = found else {
            return;
        };
        let way = match e.direction {
            ferrosec_esp::Direction::Inbound => "inbound",
            ferrosec_esp::Direction::Outbound => "outbound",
        };
        let now = Instant::now();
        let (severity, what, r) = match e.kind {
            ferrosec_esp::LifetimeKind::Soft => (
                Severity::Info,
                "near its lifesize (90 % sent or 95 % received); rekeying",
                self.endpoint.rekey_child_sa(now, ike, inbound),
            ),
            ferrosec_esp::LifetimeKind::Hard => (
                Severity::Warning,
                "lifesize reached, the SA expired before its rekey finished; deleting the pair",
                self.endpoint.delete_child_sa(now, ike, inbound),
            ),
        };
        // The other direction of a pair already being rekeyed (or deleted) asks again: quiet.
        if let Err(err) = r {
            tracing::debug!("byte lifetime of 0x{:08x} ({way}): {err}", e.spi.0);
            return;
        }
        self.log.record(
            severity,
            &format!("ipsec-tunnel {tunnel}"),
            format!("IPsec SA 0x{:08x} ({way}): {what}", e.spi.0),
        );
    }

    /// R-DP-6: a packet for `tunnel` found no SA: start the negotiation if none runs.
    fn on_demand(&mut self, tunnel: &str) {
        let Some(gw) = self
            .gateways
            .iter()
            .position(|g| g.policies.iter().any(|p| p.tunnel == tunnel))
        else {
            return;
        };
        if !self.gateways[gw].may_initiate || self.connecting(gw) {
            return;
        }
        if let Some(h) = self.established(gw) {
            let up = self.tables.proxy_ids_up(tunnel);
            let missing: Vec<usize> = self.gateways[gw]
                .policies
                .iter()
                .enumerate()
                .filter(|(_, p)| p.tunnel == tunnel && !up.contains(&p.proxy_id))
                .map(|(i, _)| i)
                .collect();
            for i in missing {
                self.request_child(Instant::now(), h, gw, i);
            }
            return;
        }
        let why = format!("on demand: traffic for ipsec-tunnel {tunnel}");
        if let Err(e) = self.initiate(gw, &why) {
            tracing::debug!("on-demand start for {tunnel}: {e}");
        }
    }

    fn command(&mut self, c: Command) {
        let now = Instant::now();
        match c {
            Command::TestIkeSa { gateway, reply } => {
                let Some(gw) = self.gateway_index(&gateway) else {
                    let _ = reply.send(Err(not_served(&gateway)));
                    return;
                };
                if self.established(gw).is_some() {
                    let _ = reply.send(Ok(format!(
                        "IKE SA with ike-gateway \"{gateway}\" is already established"
                    )));
                    return;
                }
                if !self.connecting(gw)
                    && let Err(e) = self.initiate(gw, &format!("test vpn ike-sa gateway {gateway}"))
                {
                    let _ = reply.send(Err(e));
                    return;
                }
                self.waiters.push(Waiter {
                    goal: Goal::IkeUp { gateway: gw },
                    reply,
                });
            }
            Command::TestIpsecSa { tunnel, reply } => {
                let Some(gw) = self
                    .gateways
                    .iter()
                    .position(|g| g.policies.iter().any(|p| p.tunnel == tunnel))
                else {
                    let _ = reply.send(Err(format!(
                        "ipsec-tunnel \"{tunnel}\" has no auto-key IKE gateway that this daemon \
                         serves (see the system log)"
                    )));
                    return;
                };
                if self.established(gw).is_none()
                    && !self.connecting(gw)
                    && let Err(e) = self.initiate(gw, &format!("test vpn ipsec-sa tunnel {tunnel}"))
                {
                    let _ = reply.send(Err(e));
                    return;
                }
                self.waiters.push(Waiter {
                    goal: Goal::TunnelUp {
                        gateway: gw,
                        tunnel,
                        requested: BTreeSet::new(),
                    },
                    reply,
                });
            }
            Command::ClearIkeSa { gateway, reply } => {
                let handles: Vec<IkeSaHandle> = {
                    let mut t = self.tables.lock();
                    t.ike
                        .iter_mut()
                        .filter(|(_, e)| gateway.as_deref().is_none_or(|g| g == &*e.gateway))
                        .filter(|(_, e)| e.state == "established")
                        .map(|(h, e)| {
                            e.state = "deleting";
                            *h
                        })
                        .collect()
                };
                let n = handles
                    .into_iter()
                    .filter(|h| self.endpoint.delete_ike_sa(now, *h).is_ok())
                    .count();
                let _ = reply.send(Ok(format!("cleared {n} IKE SA(s)")));
            }
            Command::ClearIpsecSa { tunnel, reply } => {
                let n = self
                    .pairs(tunnel.as_deref())
                    .into_iter()
                    .filter(|(h, spi)| self.endpoint.delete_child_sa(now, *h, *spi).is_ok())
                    .count();
                let _ = reply.send(Ok(format!("cleared {n} IPsec SA pair(s)")));
            }
            Command::RekeyIpsecSa { tunnel, reply } => {
                let pairs = self.pairs(Some(&tunnel));
                if pairs.is_empty() {
                    let _ = reply.send(Err(format!(
                        "ipsec-tunnel \"{tunnel}\" has no IPsec SA to rekey"
                    )));
                    return;
                }
                let mut n = 0;
                for (h, spi) in pairs {
                    match self.endpoint.rekey_child_sa(now, h, spi) {
                        Ok(()) => n += 1,
                        Err(e) => tracing::debug!("rekey of 0x{:08x}: {e}", spi.0),
                    }
                }
                let _ = reply.send(Ok(format!("rekeying {n} IPsec SA pair(s)")));
            }
            Command::RekeyIkeSa { gateway, reply } => {
                let r = match self
                    .gateway_index(&gateway)
                    .and_then(|g| self.established(g))
                {
                    None => Err(format!(
                        "ike-gateway \"{gateway}\" has no established IKE SA to rekey"
                    )),
                    Some(h) => self
                        .endpoint
                        .rekey_ike_sa(now, h)
                        .map(|()| format!("rekeying the IKE SA with ike-gateway \"{gateway}\""))
                        .map_err(|e| format!("cannot rekey: {e}")),
                };
                let _ = reply.send(r);
            }
            Command::Shutdown { within, reply } => {
                let handles = self.endpoint.established();
                let n = handles
                    .iter()
                    .filter(|h| self.endpoint.delete_ike_sa(now, **h).is_ok())
                    .count();
                self.shutdown = Some((now + within, reply, n));
            }
        }
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

    fn fail_waiters(&mut self, gateway: &str, why: &str) {
        let Some(gw) = self.gateway_index(gateway) else {
            return;
        };
        let (fail, keep): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| match &w.goal {
                Goal::IkeUp { gateway } | Goal::TunnelUp { gateway, .. } => *gateway == gw,
            });
        self.waiters = keep;
        for w in fail {
            let _ = w.reply.send(Err(why.to_owned()));
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::IkeSaUp(info) => self.ike_up(info),
            Event::IkeSaRekeyed { old, new } => self.ike_rekeyed(old, new),
            Event::HalfOpenPressure(r) => self.half_open_pressure(&r),
            Event::UnservedVersion {
                major,
                count,
                sources,
            } => self.unserved_version(major, count, &sources),
            Event::ChildSaRekeyed {
                old_inbound_spi,
                new_inbound_spi,
                ..
            } => {
                // The new pair's inbound SA went in at its ChildSaUp; its outbound SA goes in
                // now, when the peer has installed the matching inbound SA (the newest SA of a
                // policy carries the outbound traffic). The old inbound SA stays until its
                // delete.
                if let Some((_, pending)) = self.pending_outbound.remove(&new_inbound_spi) {
                    pending.activate();
                }
                tracing::debug!(
                    "Child SA 0x{:08x} replaced by 0x{:08x}",
                    old_inbound_spi.0,
                    new_inbound_spi.0
                );
            }
            Event::ChildSaExpired { inbound_spi, .. } => {
                let tunnel = self
                    .tables
                    .lock()
                    .child
                    .get(&inbound_spi)
                    .map(|c| c.slot.tunnel.clone());
                if let Some(t) = tunnel {
                    self.log.record(
                        Severity::Warning,
                        &format!("ipsec-tunnel {t}"),
                        format!(
                            "IPsec SA 0x{:08x} reached its hard lifetime; deleting it",
                            inbound_spi.0
                        ),
                    );
                }
            }
            Event::ChildSaUp(info) => self.child_up(info),
            Event::ChildSaDown {
                ike_sa,
                inbound_spi,
                outbound_spi,
                reason,
            } => self.child_down(ike_sa, inbound_spi, outbound_spi, &reason),
            Event::IkeSaDown {
                handle,
                peer,
                reason,
            } => {
                let (rekeyed, entry) = {
                    let mut t = self.tables.lock();
                    let entry = t.remove_ike(&handle);
                    let others = entry
                        .as_ref()
                        .is_some_and(|gone| t.peer_established(gone.peer_key(), None));
                    (others, entry)
                };
                let obj = format!("ike-gateway {peer}");
                if rekeyed && matches!(reason, DownReason::LocalDelete | DownReason::PeerDelete) {
                    // (The old SA of an IKE rekey leaves with IkeSaRekeyed, not here: this one
                    // was replaced by a re-authentication, ours or the peer's.)
                    self.log.record(
                        Severity::Info,
                        &obj,
                        format!(
                            "old IKE SA {} removed after re-authentication ({reason})",
                            spi_pair(&entry)
                        ),
                    );
                } else {
                    let sev = match reason {
                        DownReason::LocalDelete => Severity::Info,
                        _ => Severity::Warning,
                    };
                    self.log.record(
                        sev,
                        &obj,
                        format!("IKE SA down: {reason}{}", peer_of(&entry)),
                    );
                    self.fail_waiters(&peer, &format!("IKE SA with {peer} went down: {reason}"));
                    if matches!(reason, DownReason::PeerUnreachable | DownReason::PeerLostSa)
                        && let Some(gw) = self.gateway_index(&peer)
                        && self.endpoint.negotiating(self.ids[gw].0)
                    {
                        // The engine starts again at once as the SA's initiator (R-V2-3).
                        self.log.record(
                            Severity::Info,
                            &obj,
                            format!(
                                "negotiation started again{} (the IKE SA was declared dead)",
                                entry
                                    .as_ref()
                                    .map(|e| format!(" with {}", e.remote.ip()))
                                    .unwrap_or_default()
                            ),
                        );
                    }
                }
            }
            Event::PeerHint { handle, peer, hint } => {
                let remote = self.tables.lock().ike.get(&handle).map(|e| e.remote);
                self.log.record(
                    Severity::Warning,
                    &format!("ike-gateway {peer}"),
                    match remote {
                        Some(r) => format!("{hint} (peer {r})"),
                        None => hint.to_string(),
                    },
                );
            }
            Event::Failed {
                handle,
                peer,
                exchange,
                ike_sa_survives,
                reason,
            } => {
                let obj = if self.gateway_index(&peer).is_some() {
                    format!("ike-gateway {peer}")
                } else {
                    format!("peer {peer}")
                };
                let what = if ike_sa_survives {
                    format!("IPsec SA negotiation failed in {exchange}")
                } else {
                    format!("IKE negotiation failed in {exchange}")
                };
                self.log
                    .record(Severity::Error, &obj, format!("{what}: {reason}"));
                if !ike_sa_survives && let Some(h) = handle {
                    self.tables.lock().remove_ike(&h);
                }
                self.fail_waiters(&peer, &format!("{what}: {reason}"));
            }
        }
    }

    fn ike_up(&mut self, info: IkeSaInfo) {
        let gw = self.gateway_index(&info.peer);
        let lifetime = gw.map_or(0, |g| secs_u32(self.gateways[g].ike_lifetime));
        let p = &info.proposal;
        let algos = format!(
            "{}/{}/prf-{}/{}",
            encr_name(p.encr),
            integ_name(p.integ),
            prf_name(p.prf),
            group_name(p.ke)
        );
        let nat = match info.nat {
            (false, false) => "no NAT".to_owned(),
            (true, false) => "we are behind a NAT".to_owned(),
            (false, true) => "the peer is behind a NAT".to_owned(),
            (true, true) => "both sides are behind NATs".to_owned(),
        };
        let gateway = self.names.get(&info.peer);
        let now = Instant::now();
        let rekey = {
            let mut t = self.tables.lock();
            // Another IKE SA of this gateway with the same peer (address and port, and
            // identity: see `Slot`) is the one a make-before-break reauthentication replaces;
            // on a `dynamic` gateway the IKE SAs of other peers are new IKE SAs, not rekeys.
            let rekey = t.peer_established(
                (&info.peer, info.remote, Some(&info.peer_id)),
                Some(info.handle),
            );
            t.insert_ike(
                info.handle,
                IkeEntry {
                    gateway,
                    state: "established",
                    initiator: info.initiator,
                    local: info.local,
                    remote: info.remote,
                    nat: info.nat,
                    algos: Some(IkeAlgos::from(&info.proposal)),
                    peer_id: Some(Arc::new(info.peer_id.clone())),
                    since: now,
                    lifetime,
                    reauth_after: reauth_after(now, info.reauth_at),
                },
            );
            rekey
        };
        // A re-authentication (RFC 7296 §2.8.3) is a new IKE SA beside the old one: ours
        // says so and why; one the peer starts shows as a second IKE SA of the same peer.
        let (verb, why) = match (&info.reauth, rekey) {
            (Some(r), _) => (
                "re-authenticated",
                format!(" ({}; replaces SPI {:016x})", r.reason, r.replaces.0.0),
            ),
            (None, true) if !info.initiator => ("re-authenticated by the peer", String::new()),
            _ => ("established", String::new()),
        };
        let next = info
            .reauth_at
            .map(|t| {
                format!(
                    "; next re-authentication in {}s",
                    t.saturating_duration_since(now).as_secs()
                )
            })
            .unwrap_or_default();
        self.log.record(
            Severity::Info,
            &format!("ike-gateway {}", info.peer),
            format!(
                "IKE SA {verb} with {} as {}{why}: {algos}; peer ID {}; {nat}; SPIs \
                 {:016x}/{:016x}{next}",
                info.remote,
                if info.initiator {
                    "initiator"
                } else {
                    "responder"
                },
                info.peer_id,
                info.spi_i.0,
                info.spi_r.0,
            ),
        );
    }

    fn ike_rekeyed(&mut self, old: IkeSaHandle, new: IkeSaInfo) {
        let gw = self.gateway_index(&new.peer);
        let lifetime = gw.map_or(0, |g| secs_u32(self.gateways[g].ike_lifetime));
        let gateway = self.names.get(&new.peer);
        let now = Instant::now();
        {
            let mut t = self.tables.lock();
            t.remove_ike(&old);
            t.insert_ike(
                new.handle,
                IkeEntry {
                    gateway,
                    state: "established",
                    initiator: new.initiator,
                    local: new.local,
                    remote: new.remote,
                    nat: new.nat,
                    algos: Some(IkeAlgos::from(&new.proposal)),
                    peer_id: Some(Arc::new(new.peer_id.clone())),
                    since: now,
                    lifetime,
                    reauth_after: reauth_after(now, new.reauth_at),
                },
            );
            for c in t.child.values_mut().filter(|c| c.ike == old) {
                c.ike = new.handle;
            }
        }
        let p = &new.proposal;
        self.log.record(
            Severity::Info,
            &format!("ike-gateway {}", new.peer),
            format!(
                "IKE SA rekeyed with {}: {}/{}/prf-{}/{}; SPIs {:016x}/{:016x} replace {:016x}",
                new.remote,
                encr_name(p.encr),
                integ_name(p.integ),
                prf_name(p.prf),
                group_name(p.ke),
                new.spi_i.0,
                new.spi_r.0,
                old.0.0,
            ),
        );
    }

    fn child_up(&mut self, info: ChildSaInfo) {
        let (tunnel, proxy_id) = split_policy(&info.policy);
        let (tunnel, proxy_id) = (tunnel.to_owned(), proxy_id.to_owned());
        let policy = self
            .gateways
            .iter()
            .flat_map(|g| &g.policies)
            .find(|p| p.tunnel == tunnel && p.proxy_id == proxy_id)
            .cloned();
        let lifetime = policy.as_ref().map_or(Duration::ZERO, |p| p.lifetime);
        let index = self.gateways.iter().find_map(|g| {
            g.policies
                .iter()
                .position(|p| p.tunnel == tunnel && p.proxy_id == proxy_id)
        });
        if let Some(i) = index {
            self.child_requested.remove(&(info.ike_sa, i));
        }
        let counters = Arc::new(crate::counters::SaCounters::default());
        let encr = encr_name(info.encr);
        let integ = integ_name(info.integ);
        let (tunnel_name, proxy_name) = (self.names.get(&tunnel), self.names.get(&proxy_id));
        let (slot, rekey, reauth) = {
            let mut t = self.tables.lock();
            let slot = Slot {
                peer: info.remote,
                peer_id: t.ike.get(&info.ike_sa).and_then(|e| e.peer_id.clone()),
                tunnel: tunnel_name,
                proxy_id: proxy_name,
            };
            let rekey = t.slot_taken(&slot);
            // A pair of another IKE SA in the slot: a re-authentication's new pair.
            let reauth = rekey
                && !t
                    .child
                    .values()
                    .any(|c| c.slot == slot && c.ike == info.ike_sa);
            t.insert_child(
                info.inbound_spi,
                ChildEntry {
                    ike: info.ike_sa,
                    slot: slot.clone(),
                    outbound: info.outbound_spi,
                    encr: info.encr,
                    integ: info.integ,
                    udp: info.udp_encap,
                    ah: info.protocol == ferrosec_wire::ikev2::ProtocolId::AH,
                    since: Instant::now(),
                    lifetime,
                    counters: Arc::clone(&counters),
                },
            );
            (slot, rekey, reauth)
        };
        let verb = match (rekey, reauth) {
            (true, true) => "re-established (IKE SA re-authenticated)",
            (true, false) => "rekeyed",
            _ => "up",
        };
        self.log.record(
            Severity::Info,
            &format!("ipsec-tunnel {tunnel}"),
            format!(
                "IPsec SA {verb} for proxy-id {proxy_id}: local [{}] remote [{}], SPI in \
                 0x{:08x} out 0x{:08x}, {encr}/{integ}, {}",
                info.local_ts,
                info.remote_ts,
                info.inbound_spi.0,
                info.outbound_spi.0,
                match (
                    info.protocol == ferrosec_wire::ikev2::ProtocolId::AH,
                    info.udp_encap
                ) {
                    (true, _) => "AH",
                    (false, true) => "ESP in UDP (NAT)",
                    (false, false) => "ESP",
                }
            ),
        );
        if let Some(dp) = &self.dataplane {
            let window = policy.as_ref().and_then(|p| p.replay_window);
            let lifesize = policy.and_then(|p| p.lifesize);
            match dp.install(&tunnel, &info, window, lifesize, counters, rekey) {
                Ok(Some(pending)) => {
                    self.pending_outbound
                        .insert(info.inbound_spi, (slot, pending));
                }
                Ok(None) => {}
                Err(e) => self.log.record(
                    Severity::Warning,
                    &format!("ipsec-tunnel {tunnel}"),
                    format!(
                        "IPsec SA 0x{:08x} not installed in the data plane: {e}",
                        info.inbound_spi.0
                    ),
                ),
            }
        }
    }

    fn child_down(&mut self, _ike: IkeSaHandle, inbound: Spi, outbound: Spi, reason: &DownReason) {
        // A pair that lost a rekey collision never carried outbound traffic.
        let was_pending = self.pending_outbound.remove(&inbound).is_some();
        let (entry, replaced, reauth) = {
            let mut t = self.tables.lock();
            let entry = t.remove_child(&inbound);
            let replaced = entry.as_ref().is_some_and(|e| t.slot_taken(&e.slot));
            // Replaced by a pair of another IKE SA: a re-authentication.
            let reauth = replaced
                && entry
                    .as_ref()
                    .is_some_and(|e| !t.child.values().any(|c| c.slot == e.slot && c.ike == e.ike));
            (entry, replaced, reauth)
        };
        if let Some(dp) = &self.dataplane {
            dp.remove(
                inbound,
                outbound,
                replaced.then_some(REKEYED_INBOUND_LINGER),
            );
        }
        let Some(e) = entry else {
            return;
        };
        // The last pair carrying this proxy ID's traffic is gone without a switch to its
        // successor (re-authentication makes new pairs without `ChildSaRekeyed`): the
        // successor carries the traffic from now on.
        let carriers = self
            .tables
            .lock()
            .child
            .iter()
            .any(|(spi, c)| c.slot == e.slot && !self.pending_outbound.contains_key(spi));
        let orphaned: Vec<Spi> = if was_pending || carriers {
            Vec::new()
        } else {
            self.pending_outbound
                .iter()
                .filter(|(_, (slot, _))| *slot == e.slot)
                .map(|(spi, _)| *spi)
                .collect()
        };
        for spi in orphaned {
            if let Some((_, pending)) = self.pending_outbound.remove(&spi) {
                pending.activate();
            }
        }
        let obj = format!("ipsec-tunnel {}", e.slot.tunnel);
        if replaced {
            self.log.record(
                Severity::Info,
                &obj,
                format!(
                    "old IPsec SA of proxy-id {} (SPI in 0x{:08x}) removed after {}",
                    e.slot.proxy_id,
                    inbound.0,
                    if reauth { "re-authentication" } else { "rekey" }
                ),
            );
        } else {
            let sev = match reason {
                DownReason::LocalDelete => Severity::Info,
                _ => Severity::Warning,
            };
            self.log.record(
                sev,
                &obj,
                format!(
                    "IPsec SA down for proxy-id {} (SPI in 0x{:08x}): {reason}",
                    e.slot.proxy_id, inbound.0
                ),
            );
        }
    }
}

fn not_served(gateway: &str) -> String {
    format!("ike-gateway \"{gateway}\" is not served by this daemon (see the system log for why)")
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
mod tests {
    use super::*;

    fn gw(local: Option<&str>, peer: Option<&str>) -> GatewayInfo {
        GatewayInfo {
            name: "g".into(),
            local_address: local.map(|a| a.parse().unwrap()),
            peer_address: peer.map(|a| a.parse().unwrap()),
            may_initiate: true,
            ike_lifetime: Duration::from_secs(1),
            policies: Vec::new(),
            lifetimes: ferrosec_ike::v2::Lifetimes::default(),
        }
    }

    #[test]
    fn listen_addresses_dedup_and_wildcards_cover_specifics() {
        let v = listen_addresses(&[
            gw(Some("198.51.100.1"), None),
            gw(Some("198.51.100.1"), None),
            gw(Some("2001:db8::1"), None),
        ]);
        assert_eq!(
            v,
            vec![
                "198.51.100.1".parse::<IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
        let v = listen_addresses(&[
            gw(Some("198.51.100.1"), None),
            gw(None, Some("192.0.2.1")),
            gw(Some("2001:db8::1"), None),
        ]);
        assert_eq!(
            v,
            vec![
                "0.0.0.0".parse::<IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
        let v = listen_addresses(&[gw(None, Some("2001:db8::2"))]);
        assert_eq!(v, vec!["::".parse::<IpAddr>().unwrap()]);
    }

    /// On a `dynamic` gateway all peers negotiate the same proxy ID: a new peer's first pair is
    /// not a rekey of another peer's (it was, and its outbound SA then waited for a switch that
    /// never comes); a second pair with the same peer is.
    #[test]
    fn a_pair_replaces_only_pairs_of_the_same_peer() {
        let slot = |port: u16, id: &str| Slot {
            peer: SocketAddr::from(([198, 51, 100, 101], port)),
            peer_id: Some(Arc::new(Identity::fqdn(id))),
            tunnel: "lg".into(),
            proxy_id: "lan".into(),
        };
        let pair = |slot: Slot| ChildEntry {
            ike: IkeSaHandle(ferrosec_wire::IkeSpi(7)),
            slot,
            outbound: Spi(2),
            encr: Some((EncrId::AES_GCM_16, Some(256))),
            integ: None,
            udp: true,
            ah: false,
            since: Instant::now(),
            lifetime: Duration::from_secs(3600),
            counters: Arc::default(),
        };
        let mut t = SaTables::default();
        t.insert_child(Spi(1), pair(slot(4500, "i1.bench.test")));
        // The same peer again (a re-authentication's new IKE SA has its own Identity value).
        assert!(t.slot_taken(&slot(4500, "i1.bench.test")));
        // Another peer: another port, or another identity on the same address and port.
        assert!(!t.slot_taken(&slot(4501, "i1.bench.test")));
        assert!(!t.slot_taken(&slot(4500, "i2.bench.test")));
        assert!(!t.slot_taken(&Slot {
            proxy_id: "other".into(),
            ..slot(4500, "i1.bench.test")
        }));
        // During a rekey two pairs share the slot: it is taken until both are gone.
        t.insert_child(Spi(3), pair(slot(4500, "i1.bench.test")));
        assert!(t.remove_child(&Spi(1)).is_some());
        assert!(t.slot_taken(&slot(4500, "i1.bench.test")));
        assert!(t.remove_child(&Spi(3)).is_some());
        assert!(!t.slot_taken(&slot(4500, "i1.bench.test")));
        assert!(t.child_slots.counts.is_empty());
    }

    /// A re-authentication is a second established IKE SA of the same gateway, address and
    /// port, and identity; a connecting entry or another identity is not one.
    #[test]
    fn an_ike_sa_replaces_only_one_of_the_same_peer() {
        let remote = SocketAddr::from(([198, 51, 100, 101], 4500));
        let (i1, i2) = (
            Identity::fqdn("i1.bench.test"),
            Identity::fqdn("i2.bench.test"),
        );
        let entry = |state, id: Option<&Identity>| IkeEntry {
            gateway: "lg".into(),
            state,
            initiator: false,
            local: SocketAddr::from(([198, 51, 100, 1], 4500)),
            remote,
            nat: (false, true),
            algos: None,
            peer_id: id.cloned().map(Arc::new),
            since: Instant::now(),
            lifetime: 3600,
            reauth_after: None,
        };
        let h = |n| IkeSaHandle(ferrosec_wire::IkeSpi(n));
        let mut t = SaTables::default();
        t.insert_ike(h(1), entry("connecting", None));
        assert!(!t.peer_established(("lg", remote, Some(&i1)), None));
        // The connecting entry becomes established (same handle): counted once.
        t.insert_ike(h(1), entry("established", Some(&i1)));
        assert!(t.peer_established(("lg", remote, Some(&i1)), None));
        assert!(!t.peer_established(("lg", remote, Some(&i1)), Some(h(1))));
        assert!(!t.peer_established(("lg", remote, Some(&i2)), None));
        assert!(!t.peer_established(("other", remote, Some(&i1)), None));
        assert!(t.remove_ike(&h(1)).is_some());
        assert!(!t.peer_established(("lg", remote, Some(&i1)), None));
        assert!(t.ike_peers.counts.is_empty());
    }

    /// Every SA costs an entry in these tables: names are shared, not copied per SA.
    #[test]
    fn table_entries_share_names_and_stay_small() {
        let mut names = Names::default();
        let a = names.get("tunnel-1");
        assert!(Arc::ptr_eq(&a, &names.get("tunnel-1")));
        assert!(!Arc::ptr_eq(&a, &names.get("tunnel-2")));
        // 152 (with the next re-authentication time) and 136 bytes; they were 192 and 152,
        // plus six small allocations between them.
        assert!(std::mem::size_of::<IkeEntry>() <= 152);
        assert!(std::mem::size_of::<ChildEntry>() <= 136);
    }

    #[test]
    fn remaining_lifetime_counts_down_and_stops_at_zero() {
        let t0 = Instant::now();
        assert_eq!(
            remaining(t0, Duration::from_secs(100), t0 + Duration::from_secs(30)),
            70
        );
        assert_eq!(
            remaining(t0, Duration::from_secs(10), t0 + Duration::from_secs(30)),
            0
        );
    }

    /// Site A (this daemon) or B (its peer, a bare engine): a gateway with one tunnel; A has
    /// an IKE lifetime of 3 minutes (the shortest accepted) and re-authenticates at every one,
    /// B's is 8 hours (so that B never rekeys first).
    fn site(a: bool) -> String {
        let (local, peer, lid, pid, nets, multiple, lifetime) = if a {
            let nets = ("10.1.0.0/24", "10.2.0.0/24");
            (
                "198.51.100.1",
                "198.51.100.2",
                "a.test",
                "b.test",
                nets,
                1,
                "3m",
            )
        } else {
            let nets = ("10.2.0.0/24", "10.1.0.0/24");
            (
                "198.51.100.2",
                "198.51.100.1",
                "b.test",
                "a.test",
                nets,
                0,
                "8h",
            )
        };
        let (l, r) = nets;
        format!(
            r#"
[ike-crypto-profile.p]
dh-group = ["group19"]
authentication = ["sha256"]
encryption = ["aes-256-cbc"]
lifetime = "{lifetime}"
authentication-multiple = {multiple}
[ipsec-crypto-profile.e]
encryption = ["aes-256-gcm"]
authentication = ["none"]
dh-group = "no-pfs"
lifetime = "1h"
[ike-gateway.gw]
local-address = "{local}"
peer-address = "{peer}"
pre-shared-key = "a long enough test key"
local-id = {{ type = "fqdn", value = "{lid}" }}
peer-id = {{ type = "fqdn", value = "{pid}" }}
ike-crypto-profile = "p"
liveness-interval = "5s"
[tunnel-interface."tunnel.1"]
zone = "vpn"
[zone.vpn]
[ipsec-tunnel.t1]
tunnel-interface = "tunnel.1"
ike-gateway = "gw"
ipsec-crypto-profile = "e"
proxy-id = [ {{ name = "lan", local = "{l}", remote = "{r}" }} ]
"#
        )
    }

    fn engine(setup: &EngineSetup, now: Instant) -> Ike {
        let mut e = ferrosec_ike::v2::Endpoint::new(
            setup.endpoint.clone(),
            setup.peers.clone(),
            ferrosec_crypto::Provider::default(),
            Box::new(rand_core::OsRng),
            now,
        );
        for (i, g) in setup.gateways.iter().enumerate() {
            e.set_lifetimes(ferrosec_ike::v2::PeerId(i as u32), g.lifetimes)
                .unwrap();
        }
        Ike::new(e)
    }

    /// Issue 20, part 4: the daemon's IKE task with the real engine, against a peer engine on
    /// a virtual clock (no sockets), through a re-authentication (`authentication-multiple =
    /// 1`, lifetime 3m): the system log says "re-authenticated" and why, not "rekeyed", and
    /// `show vpn ike-sa` has the time of the next one.
    #[test]
    fn a_reauthentication_is_logged_as_one_and_shown_with_the_next_one() {
        let load = |t: &str| ferrosec_config::load_str(t, "t.toml").unwrap().config;
        let (sa, sb) = (
            crate::ikecfg::engine_setup(&load(&site(true)), &|_| None),
            crate::ikecfg::engine_setup(&load(&site(false)), &|_| None),
        );
        assert!(sa.skipped.is_empty() && sb.skipped.is_empty());
        let t0 = Instant::now();
        let mut b = engine(&sb, t0);
        let log = SharedLog::new(crate::syslog::SystemLog::open(None).unwrap());
        let tables = Tables::default();
        let ea = engine(&sa, t0);
        let mut task = IkeTask::new(
            sa,
            ea,
            Arc::new(Vec::new()),
            tables.clone(),
            log.clone(),
            None,
        );
        let (a_addr, b_addr): (SocketAddr, SocketAddr) = (
            "198.51.100.1:500".parse().unwrap(),
            "198.51.100.2:500".parse().unwrap(),
        );
        task.endpoint
            .initiate(t0, ferrosec_ike::v2::PeerId(0), a_addr, b_addr)
            .unwrap();
        // Deliver everything, handle timeouts, move the clock; the task handles the events.
        let mut now = t0;
        let mut run_until = |task: &mut IkeTask, until: Instant| {
            for _ in 0..100_000 {
                let mut moved = false;
                while let Some(t) = task.endpoint.poll_transmit() {
                    b.handle_datagram(now, t.remote, t.local, &t.data);
                    moved = true;
                }
                while let Some(t) = b.poll_transmit() {
                    task.endpoint
                        .handle_datagram(now, t.remote, t.local, &t.data);
                    moved = true;
                }
                while let Some(e) = task.endpoint.poll_event() {
                    task.event(e);
                }
                while b.poll_event().is_some() {}
                if moved {
                    continue;
                }
                let next = [task.endpoint.poll_timeout(), b.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                match next {
                    Some(t) if t <= until => {
                        now = now.max(t);
                        task.endpoint.handle_timeout(now);
                        b.handle_timeout(now);
                    }
                    _ => break,
                }
            }
        };
        run_until(&mut task, t0 + Duration::from_secs(1));
        let lines = |log: &SharedLog| -> Vec<String> {
            log.tail(None).iter().map(|l| l.to_string()).collect()
        };
        let first = lines(&log);
        assert!(
            first.iter().any(
                |l| l.contains("IKE SA established") && l.contains("next re-authentication in")
            ),
            "{first:#?}"
        );
        let rows = tables.ike_rows(None);
        assert_eq!(rows.len(), 1);
        // The soft lifetime: 3 min less the 10 % margin and up to 10 % jitter.
        let next = rows[0]
            .next_reauthentication
            .expect("next re-authentication shown");
        assert!((140..=162).contains(&next), "{next}");
        // Past the lifetime: re-authenticated, and the old IKE SA gone.
        run_until(&mut task, t0 + Duration::from_secs(200));
        let all = lines(&log);
        let reauth: Vec<&String> = all
            .iter()
            .filter(|l| l.contains("ike-gateway gw: IKE SA re-authenticated"))
            .collect();
        assert_eq!(reauth.len(), 1, "{all:#?}");
        assert!(
            reauth[0].contains("authentication-multiple 1 reached"),
            "{}",
            reauth[0]
        );
        assert!(
            !all.iter().any(|l| l.contains("IKE SA rekeyed")),
            "{all:#?}"
        );
        assert!(
            all.iter()
                .any(|l| l
                    .contains("old IKE SA with 198.51.100.2:500 removed after re-authentication")),
            "{all:#?}"
        );
        // Its Child SA pair: made anew under the new IKE SA, the old one removed after it.
        assert!(
            all.iter()
                .any(|l| l.contains("IPsec SA re-established (IKE SA re-authenticated)")),
            "{all:#?}"
        );
        assert!(
            all.iter()
                .any(|l| l.contains("(SPI in 0x") && l.contains("removed after re-authentication")),
            "{all:#?}"
        );
        assert!(!all.iter().any(|l| l.contains("rekey")), "{all:#?}");
        let rows = tables.ike_rows(None);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(rows[0].next_reauthentication.is_some());
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert!(json["next-reauthentication"].is_u64(), "{json}");
        assert_eq!(json["liveness-interval"], 5.0);
        assert_eq!(json["liveness-gives-up-after"], 18.0);
    }
}
