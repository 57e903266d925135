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

mod commands;
mod events;
mod reload;

#[cfg(test)]
pub(crate) use events::failure_kind;
pub(crate) use reload::{Done, ReloadPlan};

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
    /// Apply a reloaded configuration (R-OPS-4); the answer says what was done.
    Reload {
        plan: Box<ReloadPlan>,
        reply: oneshot::Sender<Done>,
    },
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

/// Where an IKE SA of the tables is in its life (as `show vpn ike-sa` names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IkeState {
    /// We started it; IKE_SA_INIT or IKE_AUTH in flight.
    Connecting,
    /// Authenticated and usable.
    Established,
    /// Being deleted (our DELETE in flight).
    Deleting,
}

impl IkeState {
    /// The name `show vpn ike-sa` prints (a JSON contract: `connecting`, `established`,
    /// `deleting`).
    fn name(self) -> &'static str {
        match self {
            IkeState::Connecting => "connecting",
            IkeState::Established => "established",
            IkeState::Deleting => "deleting",
        }
    }
}

#[derive(Debug, Clone)]
struct IkeEntry {
    gateway: Arc<str>,
    state: IkeState,
    /// IKEv2, or IKEv1 and its phase-1 mode.
    version: IkeVersionTag,
    initiator: bool,
    local: SocketAddr,
    remote: SocketAddr,
    nat: (bool, bool),
    algos: Option<IkeAlgos>,
    /// The peer's authenticated identity (once established).
    peer_id: Option<Arc<Identity>>,
    /// How both sides authenticated, when not with the pre-shared key (once established; 8
    /// bytes, and no allocation for PSK SAs).
    auth: Option<Arc<AuthInfo>>,
    since: Instant,
    /// The IKE lifetime in seconds (4 bytes: the entry has a size budget, see the tests).
    lifetime: u32,
    /// When we re-authenticate it next (`authentication-multiple`): whole seconds after
    /// `since`.
    reauth_after: Option<NonZeroU32>,
}

/// The IKE version of an SA, with the IKEv1 phase-1 mode, as `show vpn ike-sa` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IkeVersionTag {
    /// IKEv2.
    V2,
    /// IKEv1 main mode.
    V1Main,
    /// IKEv1 aggressive mode.
    V1Aggressive,
}

impl IkeVersionTag {
    /// `ikev2`, `ikev1-main`, `ikev1-aggressive`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            IkeVersionTag::V2 => "ikev2",
            IkeVersionTag::V1Main => "ikev1-main",
            IkeVersionTag::V1Aggressive => "ikev1-aggressive",
        }
    }

    fn of(mode: Option<ferrosec_ike::v1::Mode>) -> Self {
        match mode {
            None => IkeVersionTag::V2,
            Some(ferrosec_ike::v1::Mode::Main) => IkeVersionTag::V1Main,
            Some(ferrosec_ike::v1::Mode::Aggressive) => IkeVersionTag::V1Aggressive,
        }
    }

    /// The version of the IKE SA `h` of `ike`.
    pub(crate) fn of_sa(ike: &Ike, h: IkeSaHandle) -> Self {
        Self::of(ike.v1().mode(h))
    }

    /// The version a negotiation with `peer` of `ike` starts with.
    pub(crate) fn of_peer(ike: &Ike, peer: ferrosec_ike::v2::PeerId) -> Self {
        Self::of(ike.starts_with_ikev1(peer))
    }
}

/// An IKE SA's negotiated algorithms, as `show vpn ike-sa` names them.
#[derive(Debug, Clone, Copy)]
struct IkeAlgos {
    encr: Option<(EncrId, Option<u16>)>,
    integ: Option<IntegId>,
    prf: Option<PrfId>,
    ke: Option<DhGroup>,
    /// The first RFC 9370 additional key exchange (NONE: none): the one the configuration
    /// can ask for (ADDKE1); two bytes, so that the entry stays as small as before.
    addke: DhGroup,
}

impl From<&Selected> for IkeAlgos {
    fn from(p: &Selected) -> Self {
        IkeAlgos {
            encr: p.encr,
            integ: p.integ,
            prf: p.prf,
            ke: p.ke,
            addke: p.addke[0],
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

/// How often the IKE task looks at the Child SAs' inbound counters for liveness.
const TRAFFIC_LOOK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct ChildEntry {
    ike: IkeSaHandle,
    slot: Slot,
    outbound: Spi,
    encr: Option<Encryption>,
    integ: Option<Integrity>,
    udp: bool,
    /// AH rather than ESP.
    ah: bool,
    /// Extended sequence numbers.
    esn: bool,
    /// A manual-key pair (crate::manual): never rekeyed, no IKE SA.
    manual: bool,
    since: Instant,
    lifetime: Duration,
    counters: Arc<crate::counters::SaCounters>,
}

/// [`IkeEntry::auth`] of a pre-shared-key SA.
static PSK: std::sync::LazyLock<AuthInfo> = std::sync::LazyLock::new(AuthInfo::psk);

impl IkeEntry {
    /// How both sides authenticated.
    fn auth(&self) -> &AuthInfo {
        self.auth.as_deref().unwrap_or(&PSK)
    }

    /// What [`IkeEntry::auth`] keeps of an engine report.
    fn auth_of(a: &AuthInfo) -> Option<Arc<AuthInfo>> {
        (*a != AuthInfo::psk()).then(|| Arc::new(a.clone()))
    }

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
    /// Negotiation outcomes since start, for the metrics (bounded: gateways × a fixed set
    /// of versions and reasons).
    outcomes: Outcomes,
}

/// Negotiations established and failed since start, by gateway and version or reason.
#[derive(Debug, Default, Clone)]
pub(crate) struct Outcomes {
    /// IKE SAs established: (gateway, version) → count.
    pub(crate) ike_established: BTreeMap<(Arc<str>, &'static str), u64>,
    /// IPsec SA pairs installed: (tunnel, new or rekey) → count.
    pub(crate) child_installed: BTreeMap<(Arc<str>, &'static str), u64>,
    /// Negotiations failed: (gateway or peer, reason) → count.
    pub(crate) failed: BTreeMap<(String, &'static str), u64>,
    /// Rekeys: (gateway, kind, side) → count; kind `ike-sa`, `ipsec-sa` or
    /// `reauthentication`, side `local` (we started it) or `peer`.
    pub(crate) rekeys: BTreeMap<(Arc<str>, &'static str, &'static str), u64>,
    /// IKE SAs declared dead (liveness, DPD or any request unanswered after every
    /// retransmission): (gateway, version, `no-answer` or `lost-sa`) → count.
    pub(crate) liveness_failures: BTreeMap<(Arc<str>, &'static str, &'static str), u64>,
    /// Liveness checks (IKEv2) and R-U-THERE (IKEv1 DPD) that went unanswered, each try
    /// once: (gateway, version) → count, as the engines count them.
    pub(crate) liveness_misses: BTreeMap<(Arc<str>, &'static str), u64>,
    /// The traffic of the pairs gone, by (tunnel, proxy ID), so that the metrics' per-tunnel
    /// counters never go down when a rekey replaces a pair.
    pub(crate) retired: BTreeMap<(Arc<str>, Arc<str>), Traffic>,
    /// The drops of the pairs gone, by reason.
    pub(crate) retired_drops: BTreeMap<String, u64>,
    /// IKE SA negotiations started: (version `ikev2` or `ikev1`, side `local` or `peer`) →
    /// count (their first messages, see [`first_message_spi`]).
    pub(crate) started: BTreeMap<(&'static str, &'static str), u64>,
}

/// Packets and bytes in and out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Traffic {
    pub(crate) packets_in: u64,
    pub(crate) packets_out: u64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
}

impl Traffic {
    fn add(&mut self, n: &crate::counters::CounterSnapshot) {
        self.packets_in += n.packets_in;
        self.packets_out += n.packets_out;
        self.bytes_in += n.bytes_in;
        self.bytes_out += n.bytes_out;
    }
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
        // What it carried stays counted (packets of a rekeyed pair's lingering inbound SA
        // after this moment are left out).
        let n = c.counters.snapshot();
        let o = &mut self.outcomes;
        o.retired
            .entry((Arc::clone(&c.slot.tunnel), Arc::clone(&c.slot.proxy_id)))
            .or_default()
            .add(&n);
        for (k, v) in n.drops {
            *o.retired_drops.entry(k).or_default() += v;
        }
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
                    && e.state == IkeState::Established
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
    /// How long IKE SAs took to establish (the IKE task observes, the metrics read).
    handshakes: crate::metrics::Handshakes,
}

impl Tables {
    fn lock(&self) -> MutexGuard<'_, SaTables> {
        self.sas.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The data plane's counters of drops that belong to no SA.
    pub(crate) fn drops(&self) -> Arc<crate::counters::GlobalDrops> {
        Arc::clone(&self.drops)
    }

    /// The handshake duration histogram.
    pub(crate) fn handshakes(&self) -> &crate::metrics::Handshakes {
        &self.handshakes
    }

    /// Every drop counter by reason since start: the SAs' summed (those gone too), and those
    /// of no SA.
    pub(crate) fn all_drops(&self) -> BTreeMap<String, u64> {
        let mut m = self.drops.snapshot();
        let t = self.lock();
        for (k, v) in &t.outcomes.retired_drops {
            *m.entry(k.clone()).or_default() += v;
        }
        for c in t.child.values() {
            for (k, v) in c.counters.snapshot().drops {
                *m.entry(k).or_default() += v;
            }
        }
        m
    }

    /// The negotiation outcomes since start (for the metrics).
    pub(crate) fn outcomes(&self) -> Outcomes {
        self.lock().outcomes.clone()
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
                    state: e.state.name().to_owned(),
                    version: e.version.name().into(),
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
                    dh_group: p.map_or("-".into(), |p| ke_names(p.ke, &[p.addke])),
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
                    local_auth: auth_name(p.map(|_| e.auth().local)),
                    peer_auth: auth_name(p.map(|_| e.auth().peer)),
                    local_certificate: p
                        .and(e.auth().local_certificate.as_deref())
                        .map(CertificateRow::of),
                    peer_certificate: p
                        .and(e.auth().peer_certificate.as_deref())
                        .map(CertificateRow::of),
                }
            })
            .collect()
    }

    /// Rows of `show vpn ipsec-sa [tunnel T]`.
    /// Files a manual-key SA pair (crate::manual) for `show`: state `manual`, no lifetime.
    pub(crate) fn insert_manual(
        &self,
        tunnel: &str,
        info: &ferrosec_ike::v2::ChildSaInfo,
        counters: Arc<crate::counters::SaCounters>,
    ) {
        self.lock().insert_child(
            info.inbound_spi,
            ChildEntry {
                ike: crate::manual::NO_IKE_SA,
                slot: Slot {
                    peer: info.remote,
                    peer_id: None,
                    tunnel: Arc::from(tunnel),
                    proxy_id: Arc::from("manual"),
                },
                outbound: info.outbound_spi,
                encr: info.encr,
                integ: info.integ,
                udp: false,
                ah: info.protocol == ferrosec_wire::ikev2::ProtocolId::AH,
                esn: false,
                manual: true,
                since: Instant::now(),
                lifetime: Duration::ZERO,
                counters,
            },
        );
    }

    /// Whether a manual-key pair of this tunnel is installed.
    pub(crate) fn manual_up(&self, tunnel: &str) -> bool {
        self.lock()
            .child
            .values()
            .any(|c| c.manual && &*c.slot.tunnel == tunnel)
    }

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
                    state: if c.manual { "manual" } else { "installed" }.into(),
                    spi_in: format!("0x{:08x}", spi.0),
                    spi_out: format!("0x{:08x}", c.outbound.0),
                    encapsulation: match (c.ah, c.udp) {
                        (true, _) => "ah",
                        (false, true) => "udp",
                        (false, false) => "esp",
                    }
                    .into(),
                    encryption: child_encr_name(c.encr),
                    integrity: child_integ_name(c.integ),
                    // The engine does not report the PFS group of a Child SA (yet).
                    dh_group: "n/a".into(),
                    esn: c.esn,
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
    /// The proxy IDs with an installed pair, of every tunnel: one pass over the table.
    pub(crate) fn proxy_ids_up_by_tunnel(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut up: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for c in self.lock().child.values() {
            up.entry(c.slot.tunnel.to_string())
                .or_default()
                .insert(c.slot.proxy_id.to_string());
        }
        up
    }

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
}

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
            esp_keys: None,
            commands_tx: None,
            always_on: Vec::new(),
            former_ids: BTreeMap::new(),
            first_messages: HashMap::new(),
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
        self.gateways.iter().position(|g| g.name == name)
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
