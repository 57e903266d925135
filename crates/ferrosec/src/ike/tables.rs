//! The tables behind `show vpn ike-sa` / `ipsec-sa` / `flow` and the metrics: what the IKE
//! task knows of every SA, filed for the control socket and the scrapes.
//!
//! One IKE SA and one Child SA pair cost an entry each here, at 10,000 SAs about 250 bytes
//! together: names are shared ([`Names`]) and algorithms kept as their IDs, named when shown.

use super::*;

// One IKE SA and one Child SA pair cost an entry each here, at 10,000 SAs about 250 bytes
// together: names are shared ([`Names`]) and algorithms kept as their IDs, named when shown.

/// Where an IKE SA of the tables is in its life (as `show vpn ike-sa` names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IkeState {
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
    pub(super) fn name(self) -> &'static str {
        match self {
            IkeState::Connecting => "connecting",
            IkeState::Established => "established",
            IkeState::Deleting => "deleting",
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct IkeEntry {
    pub(super) gateway: Arc<str>,
    pub(super) state: IkeState,
    /// IKEv2, or IKEv1 and its phase-1 mode.
    pub(super) version: IkeVersionTag,
    pub(super) initiator: bool,
    pub(super) local: SocketAddr,
    pub(super) remote: SocketAddr,
    pub(super) nat: (bool, bool),
    pub(super) algos: Option<IkeAlgos>,
    /// The peer's authenticated identity (once established).
    pub(super) peer_id: Option<Arc<Identity>>,
    /// How both sides authenticated, when not with the pre-shared key (once established; 8
    /// bytes, and no allocation for PSK SAs).
    pub(super) auth: Option<Arc<AuthInfo>>,
    pub(super) since: Instant,
    /// The IKE lifetime in seconds (4 bytes: the entry has a size budget, see the tests).
    pub(super) lifetime: u32,
    /// When we re-authenticate it next (`authentication-multiple`): whole seconds after
    /// `since`.
    pub(super) reauth_after: Option<NonZeroU32>,
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

    pub(super) fn of(mode: Option<ferrosec_ike::v1::Mode>) -> Self {
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
pub(super) struct IkeAlgos {
    pub(super) encr: Option<(EncrId, Option<u16>)>,
    pub(super) integ: Option<IntegId>,
    pub(super) prf: Option<PrfId>,
    pub(super) ke: Option<DhGroup>,
    /// The first RFC 9370 additional key exchange (NONE: none): the one the configuration
    /// can ask for (ADDKE1); two bytes, so that the entry stays as small as before.
    pub(super) addke: DhGroup,
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
pub(super) struct Names(BTreeSet<Arc<str>>);

impl Names {
    pub(super) fn get(&mut self, name: &str) -> Arc<str> {
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
pub(super) struct Slot {
    /// First, so that comparing the slots of other peers' pairs mostly reads no pointer.
    pub(super) peer: SocketAddr,
    pub(super) peer_id: Option<Arc<Identity>>,
    pub(super) tunnel: Arc<str>,
    pub(super) proxy_id: Arc<str>,
}

/// How often the IKE task looks at the Child SAs' inbound counters for liveness.
pub(super) const TRAFFIC_LOOK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub(super) struct ChildEntry {
    pub(super) ike: IkeSaHandle,
    pub(super) slot: Slot,
    pub(super) outbound: Spi,
    pub(super) encr: Option<Encryption>,
    pub(super) integ: Option<Integrity>,
    pub(super) udp: bool,
    /// AH rather than ESP.
    pub(super) ah: bool,
    /// Extended sequence numbers.
    pub(super) esn: bool,
    /// A manual-key pair (crate::manual): never rekeyed, no IKE SA.
    pub(super) manual: bool,
    pub(super) since: Instant,
    pub(super) lifetime: Duration,
    pub(super) counters: Arc<crate::counters::SaCounters>,
    /// The key exchanges of its keys: the PFS group (`None`: none, its KEYMAT came from SK_d
    /// alone) and the first RFC 9370 additional one (NONE: none), as `show` names them
    /// (`group19+ml-kem-768`); `None` when the engine does not say (IKEv1, manual keys).
    /// Four bytes in the padding ([`KesTag`]), so that the entry stays as small as before.
    pub(super) key_exchanges: KesTag,
}

/// The key exchanges of a Child SA's keys in four bytes: the PFS group (0: none, its KEYMAT
/// came from SK_d alone; `u16::MAX`: not reported, IKEv1 and manual keys) and the first
/// RFC 9370 additional key exchange (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KesTag([u16; 2]);

impl KesTag {
    /// Not reported (IKEv1, manual keys).
    pub(super) const UNKNOWN: KesTag = KesTag([u16::MAX, 0]);

    /// From an engine report: the PFS group, then the additional key exchanges.
    pub(super) fn of(kes: Option<&[DhGroup]>) -> Self {
        match kes {
            None => Self::UNKNOWN,
            Some(k) => KesTag([k.first().map_or(0, |g| g.0), k.get(1).map_or(0, |g| g.0)]),
        }
    }

    /// As `show vpn ipsec-sa` names it: `group19+ml-kem-768`, `none`, `n/a`.
    pub(super) fn name(self) -> String {
        match self.0 {
            [u16::MAX, _] => "n/a".into(),
            [0, _] => "none".into(),
            [g, a] => ke_names(Some(DhGroup(g)), &[DhGroup(a)]),
        }
    }
}

/// [`IkeEntry::auth`] of a pre-shared-key SA.
static PSK: std::sync::LazyLock<AuthInfo> = std::sync::LazyLock::new(AuthInfo::psk);

impl IkeEntry {
    /// How both sides authenticated.
    pub(super) fn auth(&self) -> &AuthInfo {
        self.auth.as_deref().unwrap_or(&PSK)
    }

    /// What [`IkeEntry::auth`] keeps of an engine report.
    pub(super) fn auth_of(a: &AuthInfo) -> Option<Arc<AuthInfo>> {
        (*a != AuthInfo::psk()).then(|| Arc::new(a.clone()))
    }

    /// Who the peer is, as a re-authentication keeps it (see [`Slot`]).
    pub(super) fn peer_key(&self) -> (&str, SocketAddr, Option<&Identity>) {
        (&self.gateway, self.remote, self.peer_id.as_deref())
    }
}

/// How many table entries have a key, counted by the key's hash: "is there another entry
/// like this one?" is answered without a scan when there is none, the common case (a new
/// peer; a scan of 10,000 entries per new SA was half the daemon's CPU at 10,000 SAs). A
/// count only says "maybe": the caller confirms with a scan (a rekey or re-authentication).
/// About 30 bytes per entry.
#[derive(Debug, Default)]
pub(super) struct KeyCounts {
    pub(super) counts: HashMap<u64, u32>,
    pub(super) hasher: RandomState,
}

impl KeyCounts {
    pub(super) fn add(&mut self, key: impl Hash) {
        *self.counts.entry(self.hasher.hash_one(key)).or_default() += 1;
    }

    pub(super) fn remove(&mut self, key: impl Hash) {
        if let Entry::Occupied(mut e) = self.counts.entry(self.hasher.hash_one(key)) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    pub(super) fn maybe(&self, key: impl Hash) -> bool {
        self.counts.contains_key(&self.hasher.hash_one(key))
    }
}

/// The SAs as operators see them. Entries come and go through the methods below, which keep
/// the key counts.
#[derive(Debug, Default)]
pub(crate) struct SaTables {
    pub(super) ike: BTreeMap<IkeSaHandle, IkeEntry>,
    pub(super) child: BTreeMap<Spi, ChildEntry>,
    /// IKE entries by [`IkeEntry::peer_key`].
    pub(super) ike_peers: KeyCounts,
    /// Child entries by [`Slot`].
    pub(super) child_slots: KeyCounts,
    /// The responder's half-open counters, refreshed after every batch.
    pub(super) counters: IkeCountersRow,
    /// Each gateway's liveness check interval (`None`: off), for `show vpn ike-sa`.
    pub(super) liveness: BTreeMap<Arc<str>, Option<Duration>>,
    /// Negotiation outcomes since start, for the metrics (bounded: gateways × a fixed set
    /// of versions and reasons).
    pub(super) outcomes: Outcomes,
    /// What the configuration payload settled, per IKE SA that has one (beside `ike`, whose
    /// entries have a size budget); goes with the SA's entry.
    pub(super) virtual_config: BTreeMap<IkeSaHandle, Arc<ferrosec_ike::v2::VirtualConfig>>,
    /// The CRLs the engine holds from distribution points, for `show auth certs`.
    pub(super) fetched_crls: Vec<(String, ferrosec_crypto::crl::Crl)>,
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
    pub(super) fn add(&mut self, n: &crate::counters::CounterSnapshot) {
        self.packets_in += n.packets_in;
        self.packets_out += n.packets_out;
        self.bytes_in += n.bytes_in;
        self.bytes_out += n.bytes_out;
    }
}

impl SaTables {
    pub(super) fn insert_ike(&mut self, h: IkeSaHandle, e: IkeEntry) {
        self.ike_peers.add(e.peer_key());
        if let Some(old) = self.ike.insert(h, e) {
            self.ike_peers.remove(old.peer_key());
        }
    }

    pub(super) fn remove_ike(&mut self, h: &IkeSaHandle) -> Option<IkeEntry> {
        self.virtual_config.remove(h);
        let e = self.ike.remove(h)?;
        self.ike_peers.remove(e.peer_key());
        Some(e)
    }

    pub(super) fn insert_child(&mut self, spi: Spi, c: ChildEntry) {
        self.child_slots.add(&c.slot);
        if let Some(old) = self.child.insert(spi, c) {
            self.child_slots.remove(&old.slot);
        }
    }

    pub(super) fn remove_child(&mut self, spi: &Spi) -> Option<ChildEntry> {
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
    pub(super) fn peer_established(
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
    pub(super) fn slot_taken(&self, slot: &Slot) -> bool {
        self.child_slots.maybe(slot) && self.child.values().any(|c| c.slot == *slot)
    }
}

/// Shared, written by the IKE task per event, read by `show`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tables {
    pub(super) sas: Arc<Mutex<SaTables>>,
    /// Drops that belong to no SA, counted by the data plane.
    pub(super) drops: Arc<crate::counters::GlobalDrops>,
    /// How long IKE SAs took to establish (the IKE task observes, the metrics read).
    pub(super) handshakes: crate::metrics::Handshakes,
    /// Peers whose IKE and ESP travel over TCP (RFC 9329; crate::tcpencap keeps it).
    pub(super) tcp_peers: Arc<Mutex<std::collections::BTreeSet<IpAddr>>>,
}

impl Tables {
    pub(super) fn lock(&self) -> MutexGuard<'_, SaTables> {
        self.sas.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The data plane's counters of drops that belong to no SA.
    pub(crate) fn drops(&self) -> Arc<crate::counters::GlobalDrops> {
        Arc::clone(&self.drops)
    }

    /// The peers on TCP encapsulation, shared with crate::tcpencap.
    pub(crate) fn tcp_peers(&self) -> Arc<Mutex<std::collections::BTreeSet<IpAddr>>> {
        Arc::clone(&self.tcp_peers)
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

    /// The CRLs fetched from distribution points and held now, with their URLs.
    pub(crate) fn fetched_crls(&self) -> Vec<(String, ferrosec_crypto::crl::Crl)> {
        self.lock().fetched_crls.clone()
    }

    /// The row of `show vpn ike-counters`.
    pub(crate) fn ike_counters(&self) -> IkeCountersRow {
        self.lock().counters.clone()
    }

    /// Rows of `show vpn ike-sa [gateway G]`.
    pub(crate) fn ike_rows(&self, gateway: Option<&str>) -> Vec<IkeSaRow> {
        let now = Instant::now();
        let tcp = self
            .tcp_peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let t = self.lock();
        t.ike
            .iter()
            .filter(|(_, e)| gateway.is_none_or(|g| g == &*e.gateway))
            .map(|(h, e)| {
                let p = e.algos.as_ref();
                let cp = t.virtual_config.get(h);
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
                    transport: if tcp.contains(&e.remote.ip()) {
                        "tcp"
                    } else if e.nat.0 || e.nat.1 {
                        "udp-encap"
                    } else {
                        "udp"
                    }
                    .into(),
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
                    virtual_ip: cp.map_or_else(Vec::new, |c| {
                        c.addresses
                            .iter()
                            .map(|(a, l)| match a {
                                IpAddr::V4(_) if *l == 32 => a.to_string(),
                                _ => format!("{a}/{l}"),
                            })
                            .collect()
                    }),
                    virtual_ip_from: cp
                        .map_or("", |c| if c.assigned_by_us { "pool" } else { "peer" })
                        .into(),
                    dns: cp
                        .map_or_else(Vec::new, |c| c.dns.iter().map(IpAddr::to_string).collect()),
                    subnets: cp.map_or_else(Vec::new, |c| {
                        c.subnets.iter().map(|(a, l)| format!("{a}/{l}")).collect()
                    }),
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
                key_exchanges: KesTag::UNKNOWN,
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
        let tcp = self
            .tcp_peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let t = self.lock();
        let on_tcp = |h: &IkeSaHandle| t.ike.get(h).is_some_and(|e| tcp.contains(&e.remote.ip()));
        t.child
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
                        (false, true) if on_tcp(&c.ike) => "tcp",
                        (false, true) => "udp",
                        (false, false) => "esp",
                    }
                    .into(),
                    encryption: child_encr_name(c.encr),
                    integrity: child_integ_name(c.integ),
                    // IKEv2: the PFS group and RFC 9370 additional key exchanges of the
                    // pair's own keys ("none": from SK_d alone); IKEv1 and manual: n/a.
                    dh_group: c.key_exchanges.name(),
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

pub(super) fn remaining(since: Instant, lifetime: Duration, now: Instant) -> u64 {
    lifetime
        .saturating_sub(now.saturating_duration_since(since))
        .as_secs()
}
