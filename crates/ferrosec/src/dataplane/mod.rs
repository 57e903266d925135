//! The IPsec data plane: TUN devices, ESP in UDP (NAT), raw ESP (IP protocol 50, no NAT) and
//! raw AH (IP protocol 51, never with NAT), with `ferrosec-esp` doing the packet work.
//!
//! ```text
//!   tunnel.N (TUN) ──> outbound worker (one per tunnel interface: OutboundSads)
//!                        └─ encrypted batches ──> its send thread ──> UDP 4500
//!                                                                 ├─> raw ESP
//!                                                                 └─> raw AH
//!   UDP 4500 + raw ESP + raw AH of one address ──> inbound worker (InboundSads) ──> tunnel.N
//!                                     └── IKE datagrams (non-ESP marker) ──> IKE task
//! ```
//!
//! An SA's `Path` says how its ESP travels: `udp: Some(..)` when the IKE SA detected a NAT
//! (RFC 3948), `None` for raw ESP. For every NAT-T socket there are a raw ESP and a raw AH
//! socket bound to the same address; all three feed the one inbound worker of that address,
//! so an SA is found whichever way its packets arrive. AH SAs live in their own databases
//! (`InboundSad<AhInboundSa>`, `OutboundSad<AhOutboundSa>`); an outbound packet goes to the
//! AH database only when one of its SAs covers it, so ESP-only gateways pay nothing for AH.
//! AH packets are built whole, outer IP header included (its ICV covers it), and sent with
//! `IP_HDRINCL`; an IPv6 raw socket hands over only the payload, so the worker rebuilds the
//! header from the sender's address and the SA's local address before verifying.
//!
//! Each worker owns its SA database; the IKE task installs and removes SAs over channels
//! ([`DataPlane`]), so no lock is taken per packet. Buffers are allocated once per worker.
//! Counters go to per-SA atomics ([`crate::counters::SaCounters`]).
//!
//! System calls are batched on every hot path: the TUN device is opened with offloads, so one
//! read returns a TCP super-packet of up to 64 KiB that is split into MTU-sized packets (and
//! several reads are made per wakeup while they fit); the ESP packets of a batch are packed
//! back to back and each run of one SA and size goes out in one call (UDP GSO, or `sendmmsg`
//! for raw ESP), from the tunnel interface's send thread ([`transmit`]) while the worker reads
//! and encrypts the next batch. Inbound, UDP is received with `recvmmsg` + GRO and raw ESP with `recvmmsg`;
//! the decrypted packets of a receive batch are written to the TUN device together, TCP
//! segments of a flow coalesced into super-packets (GRO on write).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrosec_config::{MssClamp, RawEspPaths};
use ferrosec_esp::{
    AhInboundSa, AhOutboundSa, AhParams, Decapsulated, DropReason, Flow, InboundSa, InboundSad,
    LifetimeEvent, LifetimeLimits, OutboundSa, OutboundSad, Path, SaParams, Selectors,
    TrafficSelector, Transmit, UdpEncap,
};
use ferrosec_ike::ts::TsSet;
use ferrosec_ike::v2::ChildSaInfo;
use ferrosec_netio::{
    EspRing, IpsecProtocol, Kind, RawBatch, RawIpsec, RecvBatch, TUN_BATCH, Tun, TunBatch,
    TunWriteBatch, UdpPort,
};
use ferrosec_wire::Spi;
use ferrosec_wire::ikev2::ProtocolId;
use tokio::sync::mpsc;

use crate::counters::{GlobalDrops, SaCounters};
use crate::ike::Incoming;
use crate::impair::Impairments;
use crate::parked::{GivenUp, Parked};
use crate::policy::{LivePolicy, PolicyView, Way};

mod inbound;
mod mss;
mod outbound;
mod raw_paths;
mod transmit;

pub(crate) use raw_paths::RawEspPath;
use raw_paths::{open_ring, with_packet_tx, with_switches};

use inbound::*;
use outbound::*;
use transmit::*;

/// Largest inner packet read from a TUN device.
const MAX_PACKET: usize = 65535;
/// Room for ESP overhead around it.
const MAX_ESP: usize = MAX_PACKET + 512;

/// What the data plane asks of the IKE task.
#[derive(Debug, Clone)]
pub(crate) enum Trigger {
    /// A packet for this tunnel found no SA: negotiate (R-DP-6).
    OnDemand(String),
    /// An SA reached its soft (rekey) or hard (expired) byte lifetime (R-DP-7).
    Lifetime(LifetimeEvent),
    /// ESP or AH from `from` with an SPI that matches no SA (at most one a second per
    /// receive worker): tell the peer (INVALID_SPI) if an IKE SA with it exists.
    UnknownSpi {
        /// The SPI of the packet.
        spi: Spi,
        /// Its sender.
        from: std::net::IpAddr,
    },
}

/// How often a receive worker reports an unknown SPI to the IKE task.
const UNKNOWN_SPI_REPORT: Duration = Duration::from_secs(1);

/// The byte limits of one SA of a pair from the profile's `lifesize`: hard at the lifesize,
/// soft (rekey) before it, so the new pair is up before the old one stops carrying traffic
/// (strongSwan's `life_bytes`/`rekey_bytes`). Each SA counts its own bytes and whichever
/// reaches its soft limit first rekeys the pair. The sender's outbound SA and the receiver's
/// inbound SA count the same bytes, so their soft limits differ, 90 % and 95 %: the sender
/// rekeys, the receiver only when its peer does not (no lifesize there), and the two ends do
/// not start colliding rekeys on every lifesize.
///
/// Without extended sequence numbers an SA also has a packet lifetime: its 32-bit counter
/// must never cycle (RFC 4303 §3.3.3), so the pair is rekeyed at 2^32 − 2^26 packets (the
/// receiver at 2^32 − 2^25), some 67 million packets before the sender would have to stop.
fn limits(lifesize: Option<u64>, outbound: bool, esn: bool) -> LifetimeLimits {
    let margin = if outbound { 10 } else { 20 };
    let seq_margin: u64 = if outbound { 1 << 26 } else { 1 << 25 };
    LifetimeLimits {
        soft_bytes: lifesize.map(|l| l - l / margin),
        hard_bytes: lifesize,
        soft_packets: (!esn).then(|| (1u64 << 32) - seq_margin),
        hard_packets: None,
    }
}

/// Hands a lifetime event to the IKE task (never waits: the packet path does not block; the
/// event fires once per SA, and a full queue means the IKE task is far behind anyway).
fn report(triggers: &mpsc::Sender<Trigger>, event: Option<LifetimeEvent>) {
    if let Some(e) = event {
        let _ = triggers.try_send(Trigger::Lifetime(e));
    }
}

/// An outbound ESP or AH SA.
#[derive(Debug)]
enum OutSa {
    Esp(Box<OutboundSa>),
    Ah(Box<AhOutboundSa>),
}

/// An inbound ESP or AH SA.
#[derive(Debug)]
enum InSa {
    Esp(Box<InboundSa>),
    Ah(Box<AhInboundSa>),
}

impl OutSa {
    /// The largest inner packet this SA carries in one outer packet of at most `path_mtu`
    /// bytes (outer IP header, UDP when encapsulated, ESP or AH header, IV, padding, ICV).
    fn max_inner_len(&self, path_mtu: usize) -> usize {
        match self {
            OutSa::Esp(sa) => sa.max_inner_len(path_mtu),
            OutSa::Ah(sa) => path_mtu.saturating_sub(sa.packet_len(0)),
        }
    }
}

/// The path MTU assumed when the kernel cannot say it (no route yet): Ethernet's.
const DEFAULT_PATH_MTU: u32 = 1500;

/// An SA for an outbound worker.
#[derive(Debug)]
enum OutUpdate {
    /// The SA, its counters, and the largest inner packet it carries without the outer packet
    /// being fragmented (the tunnel interface's MTU follows it, R-DP-8).
    Add(OutSa, Arc<SaCounters>, u16),
    Remove(Spi),
    /// The tunnels of the interface and their local selectors (on demand), after a reload.
    Demand(Vec<(String, Vec<TsSet>)>),
}

/// An SA for an inbound worker.
#[derive(Debug)]
enum InUpdate {
    /// The SA, its counters and its tunnel's device (the worker finds the device's zone).
    Add(InSa, Arc<SaCounters>, Tun),
    Remove(Spi),
}

/// The outbound half of a rekeyed Child SA pair, held back until the engine says the peer has
/// installed the matching inbound SA ([`ferrosec_ike::v2::Event::ChildSaRekeyed`]).
#[derive(Debug)]
pub(crate) struct PendingOutbound {
    tx: mpsc::UnboundedSender<OutUpdate>,
    sa: OutSa,
    counters: Arc<SaCounters>,
    inner_mtu: u16,
}

impl PendingOutbound {
    /// Moves outbound traffic of the pair's policy onto this SA (the newest SA of a policy
    /// carries its traffic).
    pub(crate) fn activate(self) {
        let _ = self
            .tx
            .send(OutUpdate::Add(self.sa, self.counters, self.inner_mtu));
    }
}

/// The IKE task's handle on the data plane.
#[derive(Debug, Clone)]
pub(crate) struct DataPlane {
    /// Per tunnel: its interface's TUN and outbound worker.
    tunnels: BTreeMap<String, (Tun, mpsc::UnboundedSender<OutUpdate>)>,
    /// Per NAT-T socket (and the raw ESP socket of its address): the inbound worker.
    inbound: Vec<(SocketAddr, bool, mpsc::UnboundedSender<InUpdate>)>,
    /// Whether raw ESP sockets could be opened (CAP_NET_RAW).
    raw_esp: bool,
    /// Whether raw AH sockets could be opened.
    raw_ah: bool,
    /// How raw ESP comes in and goes out on each address, for `show system info`.
    raw_esp_paths: Vec<RawEspPath>,
    provider: Arc<ferrosec_crypto::Provider>,
    /// What new outbound workers are started with (a reload adds tunnel interfaces).
    spawn: Arc<Spawn>,
    /// Test impairments (crate::impair).
    impair: Impairments,
    /// Per inbound worker: the queue of ESP from TCP streams (crate::tcpencap).
    tcp_esp: Vec<crate::tcpencap::EspSink>,
    /// Path MTUs the kernel gave, by peer address, for [`PATH_MTU_FRESH`]: a burst of Child
    /// SAs to one peer asks the kernel once.
    path_mtus: Arc<std::sync::Mutex<HashMap<IpAddr, (u32, Instant)>>>,
}

/// How long a path MTU the kernel gave is used for new SAs to the same peer (a changed route
/// or interface MTU is followed by the SAs installed after that).
const PATH_MTU_FRESH: Duration = Duration::from_secs(5);
/// At most this many peers' path MTUs are kept (the cache starts again when full).
const PATH_MTU_PEERS: usize = 4096;

/// What an outbound worker needs beside its device.
#[derive(Debug)]
struct Spawn {
    ports: Arc<Vec<UdpPort>>,
    raw: Arc<RawSenders>,
    on_demand: mpsc::Sender<Trigger>,
    drops: Arc<GlobalDrops>,
    policy: Arc<LivePolicy>,
    tcp: Option<Arc<crate::tcpencap::TcpEncap>>,
}

impl Spawn {
    /// Creates the TUN device of `interface` and starts its outbound worker for `demand`.
    fn device(
        &self,
        interface: &str,
        plan: &InterfacePlan,
        demand: Vec<(String, Vec<TsSet>)>,
    ) -> Result<(Tun, mpsc::UnboundedSender<OutUpdate>), String> {
        let (mtu, addrs) = plan;
        let tun = Tun::create(interface, *mtu, addrs).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(outbound_worker(
            tun.clone(),
            Senders {
                udp: Arc::clone(&self.ports),
                raw: Arc::clone(&self.raw),
                triggers: self.on_demand.clone(),
                drops: Arc::clone(&self.drops),
                tcp: self.tcp.clone(),
            },
            rx,
            self.on_demand.clone(),
            demand,
            Arc::clone(&self.policy),
        ));
        Ok((tun, tx))
    }
}

/// What [`DataPlane::set_tunnels`] changed.
#[derive(Debug, Default)]
pub(crate) struct DeviceChanges {
    /// Tunnel interfaces whose TUN device was created.
    pub(crate) created: Vec<String>,
    /// Tunnel interfaces whose TUN device goes (with its last SA).
    pub(crate) removed: Vec<String>,
    /// Why a device could not be created, in words.
    pub(crate) errors: Vec<String>,
}

/// A tunnel interface's device settings: MTU and addresses, IPv4 and IPv6 (address, prefix
/// length).
pub(crate) type InterfacePlan = (u16, Vec<(std::net::IpAddr, u8)>);

/// What the data plane is built from.
#[derive(Debug, Clone)]
pub(crate) struct TunnelPlan {
    /// The IPsec tunnel.
    pub(crate) tunnel: String,
    /// Its tunnel interface.
    pub(crate) interface: String,
    /// Our side's selectors of its proxy IDs: only a packet from inside them starts a
    /// negotiation on demand.
    pub(crate) local: Vec<TsSet>,
}

impl DataPlane {
    /// How raw ESP comes in and goes out on each address ("192.0.2.1: in packet ring, out
    /// packet socket"), for `show system info`.
    pub(crate) fn raw_esp_paths(&self) -> &[RawEspPath] {
        &self.raw_esp_paths
    }

    /// Makes the tunnels and their devices those of `plans` (a reload): a device and
    /// outbound worker for each interface new here, the on-demand selectors of the others
    /// updated; an interface no plan uses any more loses its worker, and its device goes with
    /// the last SA that still holds it (the IKE task deletes them).
    pub(crate) fn set_tunnels(
        &mut self,
        plans: &[TunnelPlan],
        interfaces: &BTreeMap<String, InterfacePlan>,
    ) -> DeviceChanges {
        let mut changes = DeviceChanges::default();
        let mut devices: BTreeMap<String, (Tun, mpsc::UnboundedSender<OutUpdate>)> = self
            .tunnels
            .values()
            .map(|(tun, tx)| (tun.name().to_owned(), (tun.clone(), tx.clone())))
            .collect();
        let wanted: std::collections::BTreeSet<&str> =
            plans.iter().map(|p| p.interface.as_str()).collect();
        for gone in devices
            .keys()
            .filter(|i| !wanted.contains(i.as_str()))
            .cloned()
            .collect::<Vec<_>>()
        {
            devices.remove(&gone);
            changes.removed.push(gone);
        }
        let demand_of = |interface: &str| -> Vec<(String, Vec<TsSet>)> {
            plans
                .iter()
                .filter(|p| p.interface == interface)
                .map(|p| (p.tunnel.clone(), p.local.clone()))
                .collect()
        };
        for interface in wanted {
            match devices.get(interface) {
                Some((_, tx)) => {
                    let _ = tx.send(OutUpdate::Demand(demand_of(interface)));
                }
                None => {
                    let plan = interfaces
                        .get(interface)
                        .cloned()
                        .unwrap_or((1400, Vec::new()));
                    match self.spawn.device(interface, &plan, demand_of(interface)) {
                        Ok(d) => {
                            devices.insert(interface.to_owned(), d);
                            changes.created.push(interface.to_owned());
                        }
                        Err(e) => changes.errors.push(e),
                    }
                }
            }
        }
        self.tunnels = plans
            .iter()
            .filter_map(|p| Some((p.tunnel.clone(), devices.get(&p.interface)?.clone())))
            .collect();
        changes
    }

    /// The tunnel interface of `tunnel`, if it has a device.
    pub(crate) fn interface_of(&self, tunnel: &str) -> Option<&str> {
        self.tunnels.get(tunnel).map(|(tun, _)| tun.name())
    }

    /// Where ESP received on TCP streams goes: the inbound worker of each local address.
    pub(crate) fn tcp_esp_sinks(&self) -> Vec<crate::tcpencap::EspSink> {
        self.tcp_esp.clone()
    }

    /// Whether any tunnel has a TUN device.
    pub(crate) fn is_empty(&self) -> bool {
        self.tunnels.is_empty()
    }

    /// The test impairments in force (crate::impair).
    pub(crate) fn impairments(&self) -> Impairments {
        self.impair
    }

    /// Installs a Child SA pair; `replay_window` `None` switches anti-replay off.
    ///
    /// With `defer_outbound` (a rekey), only the inbound SA goes in now and the outbound one is
    /// handed back, to be activated when the engine reports the switch (make-before-break:
    /// the peer may not have installed its inbound SA yet).
    /// The path MTU to `remote` as the kernel routes it, asked at most every
    /// [`PATH_MTU_FRESH`] per peer.
    fn path_mtu(&self, remote: IpAddr) -> u32 {
        let now = Instant::now();
        let mut cache = self.path_mtus.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((mtu, at)) = cache.get(&remote)
            && now.duration_since(*at) < PATH_MTU_FRESH
        {
            return *mtu;
        }
        let mtu = ferrosec_netio::path_mtu(remote).unwrap_or_else(|e| {
            tracing::debug!("path MTU to {remote}: {e}; assuming {DEFAULT_PATH_MTU}");
            DEFAULT_PATH_MTU
        });
        if cache.len() >= PATH_MTU_PEERS {
            cache.clear();
        }
        cache.insert(remote, (mtu, now));
        mtu
    }

    pub(crate) fn install(
        &self,
        tunnel: &str,
        info: &ChildSaInfo,
        replay_window: Option<u32>,
        lifesize: Option<u64>,
        counters: Arc<SaCounters>,
        defer_outbound: bool,
    ) -> Result<Option<PendingOutbound>, String> {
        let Some((tun, out_tx)) = self.tunnels.get(tunnel) else {
            return Err(format!(
                "ipsec-tunnel {tunnel} has no tunnel interface device"
            ));
        };
        let ah = info.protocol == ProtocolId::AH;
        if ah && info.udp_encap {
            return Err(
                "AH cannot cross the NAT detected between the peers (its ICV covers the \
                 IP addresses the NAT rewrites); use an ESP profile for this tunnel"
                    .into(),
            );
        }
        if ah && !self.raw_ah {
            return Err(
                "no raw AH socket (IP protocol 51; needs CAP_NET_RAW, see the system log), so \
                 the SA carries no traffic"
                    .into(),
            );
        }
        if !ah && !info.udp_encap && !self.raw_esp {
            return Err(
                "no NAT between the peers and no raw ESP socket (IP protocol 50; needs \
                 CAP_NET_RAW, see the system log), so the SA carries no traffic"
                    .into(),
            );
        }
        let path = Path {
            local: info.local.ip(),
            remote: info.remote.ip(),
            udp: info.udp_encap.then_some(UdpEncap {
                local_port: info.local.port(),
                remote_port: info.remote.port(),
            }),
        };
        // One copy, shared by both SAs (a clone is a reference count).
        let selectors =
            Selectors::from_lists(&selectors(&info.local_ts), &selectors(&info.remote_ts));
        let window = replay_window.unwrap_or(0);
        let (outbound, inbound) = if ah {
            let integrity = info.integ.ok_or("AH SA without an integrity algorithm")?;
            let params = |spi, keys: &ferrosec_ike::v2::ChildKeys, outbound| AhParams {
                spi,
                integrity,
                key: keys.integ.clone(),
                esn: info.esn,
                path,
                selectors: selectors.clone(),
                lifetime: limits(lifesize, outbound, info.esn),
            };
            let out = AhOutboundSa::new(params(info.outbound_spi, &info.outbound, true))
                .map_err(|e| format!("outbound AH SA: {e}"))?;
            let inb = AhInboundSa::new(params(info.inbound_spi, &info.inbound, false), window)
                .map_err(|e| format!("inbound AH SA: {e}"))?;
            (OutSa::Ah(Box::new(out)), InSa::Ah(Box::new(inb)))
        } else {
            let encr = info.encr.ok_or("ESP SA without an encryption algorithm")?;
            let suite = self
                .provider
                .esp_suite(encr, info.integ)
                .map_err(|e| format!("unsupported ESP transform: {e}"))?;
            let params = |spi, keys: &ferrosec_ike::v2::ChildKeys, outbound| SaParams {
                spi,
                suite,
                encr_key: keys.encr.clone(),
                integ_key: keys.integ.clone(),
                esn: info.esn,
                path,
                selectors: selectors.clone(),
                lifetime: limits(lifesize, outbound, info.esn),
            };
            let mut out = OutboundSa::new(params(info.outbound_spi, &info.outbound, true))
                .map_err(|e| format!("outbound SA: {e}"))?;
            if let Some(start) = self.impair.seq_start {
                // Test impairment (impair::SEQ_START): a new SA's sequence numbers start here.
                out.danger_set_sequence(start);
            }
            let inb = InboundSa::new(params(info.inbound_spi, &info.inbound, false), window)
                .map_err(|e| format!("inbound SA: {e}"))?;
            (OutSa::Esp(Box::new(out)), InSa::Esp(Box::new(inb)))
        };
        let Some((_, _, in_tx)) = self
            .inbound
            .iter()
            .find(|(bound, wild, _)| serves(*bound, *wild, info.local.ip()))
        else {
            return Err(format!("no NAT-T socket for {}", info.local.ip()));
        };
        let add = InUpdate::Add(inbound, Arc::clone(&counters), tun.clone());
        match self.impair.inbound_delay {
            Some(delay) => {
                let in_tx = in_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = in_tx.send(add);
                });
            }
            None => {
                let _ = in_tx.send(add);
            }
        }
        // R-DP-8: what the SA carries along the path the kernel routes to the peer.
        let path_mtu = self.path_mtu(path.remote);
        let inner_mtu =
            u16::try_from(outbound.max_inner_len(path_mtu as usize)).unwrap_or(u16::MAX);
        let pending = PendingOutbound {
            tx: out_tx.clone(),
            sa: outbound,
            counters,
            inner_mtu,
        };
        if defer_outbound {
            return Ok(Some(pending));
        }
        pending.activate();
        Ok(None)
    }

    /// Removes a Child SA pair. With `linger` (a pair replaced by a rekey) the inbound SA stays
    /// that long, for packets the peer sent on it before it switched that are still in flight
    /// or queued (strongSwan's `delete_rekeyed_delay` does the same, with 5 s).
    pub(crate) fn remove(&self, inbound: Spi, outbound: Spi, linger: Option<Duration>) {
        for (_, _, tx) in &self.inbound {
            match linger {
                Some(delay) => {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = tx.send(InUpdate::Remove(inbound));
                    });
                }
                None => {
                    let _ = tx.send(InUpdate::Remove(inbound));
                }
            }
        }
        for (_, tx) in self.tunnels.values() {
            let _ = tx.send(OutUpdate::Remove(outbound));
        }
    }
}

/// Whether the inbound worker of NAT-T socket `bound` receives ESP sent to `local` (by UDP
/// on its port, or raw on its address).
fn serves(bound: SocketAddr, wildcard: bool, local: std::net::IpAddr) -> bool {
    bound.is_ipv4() == local.is_ipv4() && (wildcard || bound.ip() == local)
}

fn selectors(ts: &TsSet) -> Vec<TrafficSelector> {
    ts.iter()
        .map(|t| TrafficSelector {
            protocol: t.protocol,
            start_addr: t.addrs.start(),
            end_addr: t.addrs.end(),
            start_port: t.ports.start,
            end_port: t.ports.end,
        })
        .collect()
}

/// Starts the workers: an outbound worker per tunnel interface (creating its TUN device), an
/// inbound worker per NAT-T socket and the raw ESP socket of its address (which also passes
/// IKE on to the IKE task). Sockets that are not NAT-T keep a plain IKE reader. Returns the
/// handle and the errors met, in words.
pub(crate) fn start(
    plans: &[TunnelPlan],
    interfaces: &BTreeMap<String, InterfacePlan>,
    ports: &Arc<Vec<UdpPort>>,
    to_ike: &mpsc::Sender<Incoming>,
    on_demand: &mpsc::Sender<Trigger>,
    (drops, policy, paths): (&Arc<GlobalDrops>, &Arc<LivePolicy>, RawEspPaths),
    tcp: Option<Arc<crate::tcpencap::TcpEncap>>,
) -> (DataPlane, Vec<String>) {
    let paths = with_switches(paths, |name| std::env::var(name).ok());
    let mut errors = Vec::new();
    // A raw ESP and a raw AH socket for the address of every NAT-T socket.
    let opts = ferrosec_netio::SocketOptions {
        freebind: true,
        ..ferrosec_netio::SocketOptions::default()
    };
    let mut raws: Vec<RawPair> = Vec::new();
    for port in ports.iter() {
        let mut pair = RawPair::default();
        if port.is_natt() {
            for proto in [IpsecProtocol::Esp, IpsecProtocol::Ah] {
                match RawIpsec::bind(port.bound().ip(), proto, &opts) {
                    Ok(r) => pair.set(proto, Arc::new(with_packet_tx(r, paths.packet_socket))),
                    Err(e) => errors.push(match proto {
                        IpsecProtocol::Esp => format!(
                            "{e}; raw ESP (no NAT) does not work on this address, only ESP in UDP"
                        ),
                        IpsecProtocol::Ah => {
                            format!("{e}; AH does not work on this address (raw AH socket)")
                        }
                    }),
                }
            }
        }
        raws.push(pair);
    }
    let mut rings: Vec<Option<EspRing>> = raws.iter().map(|p| open_ring(p, paths)).collect();
    let raw_esp_paths = raws
        .iter()
        .zip(&rings)
        .filter_map(|(pair, ring)| {
            let esp = pair.esp.as_ref()?;
            Some(RawEspPath {
                address: esp.bound(),
                ring: ring.is_some(),
                packet_socket: esp.has_packet_tx(),
                early_drop: ring
                    .as_ref()
                    .and_then(EspRing::early_drop)
                    .map(|d| d.table().to_owned()),
            })
        })
        .collect();
    watch_sockets(drops, ports, &raws, &rings);
    let raw_senders = Arc::new(RawSenders {
        esp: raws.iter().filter_map(|p| p.esp.clone()).collect(),
        ah: raws.iter().filter_map(|p| p.ah.clone()).collect(),
    });
    let spawn = Arc::new(Spawn {
        ports: Arc::clone(ports),
        raw: Arc::clone(&raw_senders),
        on_demand: on_demand.clone(),
        drops: Arc::clone(drops),
        policy: Arc::clone(policy),
        tcp,
    });
    let mut tuns: BTreeMap<String, (Tun, mpsc::UnboundedSender<OutUpdate>)> = BTreeMap::new();
    let mut tunnels = BTreeMap::new();
    for plan in plans {
        if !tuns.contains_key(&plan.interface) {
            let iplan = interfaces
                .get(&plan.interface)
                .cloned()
                .unwrap_or((1400, Vec::new()));
            let demand: Vec<(String, Vec<TsSet>)> = plans
                .iter()
                .filter(|p| p.interface == plan.interface)
                .map(|p| (p.tunnel.clone(), p.local.clone()))
                .collect();
            match spawn.device(&plan.interface, &iplan, demand) {
                Ok(d) => {
                    tuns.insert(plan.interface.clone(), d);
                }
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            }
        }
        if let Some(t) = tuns.get(&plan.interface) {
            tunnels.insert(plan.tunnel.clone(), t.clone());
        }
    }
    let mut inbound = Vec::new();
    let mut tcp_esp = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        if port.is_natt() {
            let (tx, rx) = mpsc::unbounded_channel();
            inbound.push((port.bound(), port.is_wildcard(), tx));
            // ESP from TCP streams: a bounded queue, the stream drops when it is full.
            let (esp_tx, esp_rx) = mpsc::channel(1024);
            tcp_esp.push((port.bound(), port.is_wildcard(), esp_tx));
            let raw = raws.get(i).cloned().unwrap_or_default();
            let ring = rings.get_mut(i).and_then(Option::take);
            tokio::spawn(inbound_worker(
                Arc::clone(ports),
                i,
                (raw, ring),
                (rx, esp_rx),
                ToIke {
                    datagrams: to_ike.clone(),
                    triggers: on_demand.clone(),
                },
                Arc::clone(drops),
                Arc::clone(policy),
            ));
        } else {
            tokio::spawn(ike_reader(
                Arc::clone(ports),
                i,
                to_ike.clone(),
                Arc::clone(drops),
            ));
        }
    }
    let dp = DataPlane {
        tunnels,
        inbound,
        raw_esp: !raw_senders.esp.is_empty(),
        raw_ah: !raw_senders.ah.is_empty(),
        raw_esp_paths,
        provider: Arc::new(ferrosec_crypto::Provider::default()),
        spawn,
        impair: Impairments::from_env(),
        tcp_esp,
        path_mtus: Arc::default(),
    };
    (dp, errors)
}

/// Has `drops` report what the kernel dropped at each WAN socket's full receive buffer, so
/// that a flood's losses before the daemon read anything are counted too.
fn watch_sockets(
    drops: &GlobalDrops,
    ports: &Arc<Vec<UdpPort>>,
    raws: &[RawPair],
    rings: &[Option<EspRing>],
) {
    use crate::counters::{RING_REASONS, SOCKET_REASONS, SocketWatch};
    let mut w = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let ports = Arc::clone(ports);
        w.push(SocketWatch {
            reason: SOCKET_REASONS[usize::from(port.is_natt())],
            drops: Box::new(move || ports.get(i).and_then(|p| p.kernel_drops().ok())),
        });
    }
    for (socket, reason) in raws.iter().flat_map(|p| {
        [(&p.esp, SOCKET_REASONS[2]), (&p.ah, SOCKET_REASONS[3])]
            .into_iter()
            .filter_map(|(s, r)| s.clone().map(|s| (s, r)))
    }) {
        w.push(SocketWatch {
            reason,
            drops: Box::new(move || socket.kernel_drops().ok()),
        });
    }
    // A ring's full frames are the raw ESP socket's full buffer by another name.
    for ring in rings.iter().flatten() {
        let [full, malformed, fragments] = [ring.drops(), ring.drops(), ring.drops()];
        w.push(SocketWatch {
            reason: SOCKET_REASONS[2],
            drops: Box::new(move || full.kernel_drops().ok()),
        });
        w.push(SocketWatch {
            reason: RING_REASONS[0],
            drops: Box::new(move || Some(malformed.malformed())),
        });
        w.push(SocketWatch {
            reason: RING_REASONS[1],
            drops: Box::new(move || Some(fragments.fragments_dropped())),
        });
    }
    drops.watch_sockets(w);
}

/// The raw sockets of one address.
#[derive(Debug, Default, Clone)]
struct RawPair {
    esp: Option<Arc<RawIpsec>>,
    ah: Option<Arc<RawIpsec>>,
}

impl RawPair {
    fn set(&mut self, proto: IpsecProtocol, socket: Arc<RawIpsec>) {
        match proto {
            IpsecProtocol::Esp => self.esp = Some(socket),
            IpsecProtocol::Ah => self.ah = Some(socket),
        }
    }
}

/// Every raw socket, for the outbound workers to send on.
#[derive(Debug, Default)]
struct RawSenders {
    esp: Vec<Arc<RawIpsec>>,
    ah: Vec<Arc<RawIpsec>>,
}

/// Reads a socket that carries only IKE (port 500).
pub(crate) async fn ike_reader(
    ports: Arc<Vec<UdpPort>>,
    index: usize,
    to_ike: mpsc::Sender<Incoming>,
    drops: Arc<GlobalDrops>,
) {
    let port = &ports[index];
    let mut batch = RecvBatch::new(8);
    loop {
        if let Err(e) = port.recv(&mut batch).await {
            tracing::debug!("receive on {}: {e}", port.bound());
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        if forward_ike(&batch, &to_ike, &drops).is_err() {
            return;
        }
    }
}

/// Whether an IKE datagram (after the non-ESP marker on 4500) is too short for the IKE header
/// or disagrees with its length field (RFC 7296 §3.1): the engine would drop it anyway.
fn ike_malformed(natt: bool, data: &[u8]) -> bool {
    let msg = if natt { data.get(4..) } else { Some(data) };
    let Some(len) = msg.and_then(|m| m.get(24..28)) else {
        return true;
    };
    let declared = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    msg.is_none_or(|m| m.len() != declared)
}

/// Forwards the IKE datagrams of a batch (counting the malformed ones, which are dropped, and
/// those on a NAT-T port that are nothing); `Err` when the IKE task is gone.
fn forward_ike(
    batch: &RecvBatch,
    to_ike: &mpsc::Sender<Incoming>,
    drops: &GlobalDrops,
) -> Result<(), ()> {
    for r in batch.iter() {
        match r.kind {
            Kind::Ike if ike_malformed(batch.is_natt(), r.data) => {
                drops.ike_malformed();
                continue;
            }
            Kind::Ike => {}
            Kind::Malformed => {
                drops.natt_malformed();
                continue;
            }
            Kind::Esp | Kind::Keepalive => continue,
        }
        let d = Incoming {
            local: r.local,
            remote: r.remote,
            data: r.data.to_vec(),
        };
        match to_ike.try_send(d) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => drops.ike_queue_full(),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sas_without_esn_rekey_well_before_their_counter_would_cycle() {
        let out = limits(None, true, false);
        let inb = limits(None, false, false);
        let (so, si) = (out.soft_packets.unwrap(), inb.soft_packets.unwrap());
        assert!(
            so < si && si < 1 << 32,
            "the sender rekeys first, both before 2^32"
        );
        assert!(
            (1u64 << 32) - so >= 1 << 26,
            "room for a rekey at line rate"
        );
        assert_eq!(
            limits(None, true, true).soft_packets,
            None,
            "ESN: 2^64 is far"
        );
        let sized = limits(Some(1000), true, true);
        assert_eq!(
            (sized.soft_bytes, sized.hard_bytes),
            (Some(900), Some(1000))
        );
    }
}
