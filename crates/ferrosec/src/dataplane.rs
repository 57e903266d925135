//! The ESP data plane: TUN devices and UDP-encapsulated ESP, with `ferrosec-esp` doing the
//! packet work.
//!
//! ```text
//!   tunnel.N (TUN) ──> outbound worker (one per tunnel interface: OutboundSad) ──> UDP 4500
//!   UDP 4500 ──> inbound worker (one per NAT-T socket: InboundSad) ──> tunnel.N (TUN)
//!                                     └── IKE datagrams (non-ESP marker) ──> IKE task
//! ```
//!
//! Each worker owns its SA database; the IKE task installs and removes SAs over channels
//! ([`DataPlane`]), so no lock is taken per packet. Buffers are allocated once per worker.
//! Counters go to per-SA atomics ([`crate::counters::SaCounters`]).
//!
//! Not yet: raw ESP (IP protocol 50) without NAT, batching on the TUN side, NAT keepalives.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrosec_esp::{
    InboundSa, InboundSad, LifetimeLimits, OutboundSa, OutboundSad, Path, SaParams, Selectors,
    TrafficSelector, UdpEncap,
};
use ferrosec_ike::ts::TsSet;
use ferrosec_ike::v2::ChildSaInfo;
use ferrosec_netio::{Kind, RecvBatch, Tun, UdpPort};
use ferrosec_wire::Spi;
use tokio::sync::mpsc;

use crate::counters::SaCounters;
use crate::ike::Incoming;

/// Largest inner packet read from a TUN device.
const MAX_PACKET: usize = 65535;
/// Room for ESP overhead around it.
const MAX_ESP: usize = MAX_PACKET + 512;

/// An SA for an outbound worker.
#[derive(Debug)]
enum OutUpdate {
    Add(Box<OutboundSa>, Arc<SaCounters>),
    Remove(Spi),
}

/// An SA for an inbound worker.
#[derive(Debug)]
enum InUpdate {
    Add(Box<InboundSa>, Arc<SaCounters>, Tun),
    Remove(Spi),
}

/// The IKE task's handle on the data plane.
#[derive(Debug, Clone)]
pub(crate) struct DataPlane {
    /// Per tunnel: its interface's TUN and outbound worker.
    tunnels: BTreeMap<String, (Tun, mpsc::UnboundedSender<OutUpdate>)>,
    /// Per NAT-T socket: the inbound worker.
    inbound: Vec<(SocketAddr, bool, mpsc::UnboundedSender<InUpdate>)>,
    provider: Arc<ferrosec_crypto::Provider>,
}

/// A tunnel interface's device settings: MTU and IPv4 addresses (address, prefix length).
pub(crate) type InterfacePlan = (u16, Vec<(std::net::IpAddr, u8)>);

/// What the data plane is built from.
#[derive(Debug, Clone)]
pub(crate) struct TunnelPlan {
    /// The IPsec tunnel.
    pub(crate) tunnel: String,
    /// Its tunnel interface.
    pub(crate) interface: String,
}

impl DataPlane {
    /// Whether any tunnel has a TUN device.
    pub(crate) fn is_empty(&self) -> bool {
        self.tunnels.is_empty()
    }

    /// Installs a Child SA pair; `replay_window` `None` switches anti-replay off.
    pub(crate) fn install(
        &self,
        tunnel: &str,
        info: &ChildSaInfo,
        replay_window: Option<u32>,
        counters: Arc<SaCounters>,
    ) -> Result<(), String> {
        let Some((tun, out_tx)) = self.tunnels.get(tunnel) else {
            return Err(format!(
                "ipsec-tunnel {tunnel} has no tunnel interface device"
            ));
        };
        if !info.udp_encap {
            return Err(
                "no NAT between the peers: raw ESP (IP protocol 50) is not in this build, so \
                 the SA carries no traffic"
                    .into(),
            );
        }
        let suite = self
            .provider
            .esp(
                info.encr.map_or(0, |e| e.0.0),
                info.encr.and_then(|e| e.1),
                info.integ.map(|i| i.0),
            )
            .map_err(|e| format!("unsupported ESP transform: {e}"))?;
        let path = Path {
            local: info.local.ip(),
            remote: info.remote.ip(),
            udp: Some(UdpEncap {
                local_port: info.local.port(),
                remote_port: info.remote.port(),
            }),
        };
        let selectors = Selectors {
            local: selectors(&info.local_ts),
            remote: selectors(&info.remote_ts),
        };
        let params = |spi, keys: &ferrosec_ike::v2::ChildKeys| SaParams {
            spi,
            suite,
            encr_key: keys.encr.clone(),
            integ_key: keys.integ.clone(),
            esn: info.esn,
            path,
            selectors: selectors.clone(),
            lifetime: LifetimeLimits::default(),
        };
        let outbound = OutboundSa::new(params(info.outbound_spi, &info.outbound))
            .map_err(|e| format!("outbound SA: {e}"))?;
        let inbound = InboundSa::new(
            params(info.inbound_spi, &info.inbound),
            replay_window.unwrap_or(0),
        )
        .map_err(|e| format!("inbound SA: {e}"))?;
        let Some((_, _, in_tx)) = self
            .inbound
            .iter()
            .find(|(bound, wild, _)| serves(*bound, *wild, info.local))
        else {
            return Err(format!("no NAT-T socket for {}", info.local));
        };
        let _ = in_tx.send(InUpdate::Add(
            Box::new(inbound),
            Arc::clone(&counters),
            tun.clone(),
        ));
        let _ = out_tx.send(OutUpdate::Add(Box::new(outbound), counters));
        Ok(())
    }

    /// Removes a Child SA pair.
    pub(crate) fn remove(&self, inbound: Spi, outbound: Spi) {
        for (_, _, tx) in &self.inbound {
            let _ = tx.send(InUpdate::Remove(inbound));
        }
        for (_, tx) in self.tunnels.values() {
            let _ = tx.send(OutUpdate::Remove(outbound));
        }
    }
}

fn serves(bound: SocketAddr, wildcard: bool, local: SocketAddr) -> bool {
    bound.port() == local.port()
        && bound.is_ipv4() == local.is_ipv4()
        && (wildcard || bound.ip() == local.ip())
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
/// inbound worker per NAT-T socket (which also passes IKE on to the IKE task). Sockets that
/// are not NAT-T keep a plain IKE reader. Returns the handle and the errors met, in words.
pub(crate) fn start(
    plans: &[TunnelPlan],
    interfaces: &BTreeMap<String, InterfacePlan>,
    ports: &Arc<Vec<UdpPort>>,
    to_ike: &mpsc::Sender<Incoming>,
    on_demand: &mpsc::Sender<String>,
) -> (DataPlane, Vec<String>) {
    let mut errors = Vec::new();
    let mut tuns: BTreeMap<String, (Tun, mpsc::UnboundedSender<OutUpdate>)> = BTreeMap::new();
    let mut tunnels = BTreeMap::new();
    for plan in plans {
        if !tuns.contains_key(&plan.interface) {
            let (mtu, addrs) = interfaces
                .get(&plan.interface)
                .cloned()
                .unwrap_or((1400, Vec::new()));
            match Tun::create(&plan.interface, mtu, &addrs) {
                Ok(tun) => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let tunnel_names: Vec<String> = plans
                        .iter()
                        .filter(|p| p.interface == plan.interface)
                        .map(|p| p.tunnel.clone())
                        .collect();
                    tokio::spawn(outbound_worker(
                        tun.clone(),
                        Arc::clone(ports),
                        rx,
                        on_demand.clone(),
                        tunnel_names,
                    ));
                    tuns.insert(plan.interface.clone(), (tun, tx));
                }
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            }
        }
        if let Some(t) = tuns.get(&plan.interface) {
            tunnels.insert(plan.tunnel.clone(), t.clone());
        }
    }
    let mut inbound = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        if port.is_natt() {
            let (tx, rx) = mpsc::unbounded_channel();
            inbound.push((port.bound(), port.is_wildcard(), tx));
            tokio::spawn(inbound_worker(Arc::clone(ports), i, rx, to_ike.clone()));
        } else {
            tokio::spawn(ike_reader(Arc::clone(ports), i, to_ike.clone()));
        }
    }
    let dp = DataPlane {
        tunnels,
        inbound,
        provider: Arc::new(ferrosec_crypto::Provider::default()),
    };
    (dp, errors)
}

/// Reads a socket that carries only IKE (port 500).
pub(crate) async fn ike_reader(
    ports: Arc<Vec<UdpPort>>,
    index: usize,
    to_ike: mpsc::Sender<Incoming>,
) {
    let port = &ports[index];
    let mut batch = RecvBatch::new(8);
    loop {
        if let Err(e) = port.recv(&mut batch).await {
            tracing::debug!("receive on {}: {e}", port.bound());
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        if forward_ike(&batch, &to_ike).is_err() {
            return;
        }
    }
}

/// Forwards the IKE datagrams of a batch; `Err` when the IKE task is gone.
fn forward_ike(batch: &RecvBatch, to_ike: &mpsc::Sender<Incoming>) -> Result<(), ()> {
    for r in batch.iter().filter(|r| r.kind == Kind::Ike) {
        let d = Incoming {
            local: r.local,
            remote: r.remote,
            data: r.data.to_vec(),
        };
        if to_ike.try_send(d).is_err() && to_ike.is_closed() {
            return Err(());
        }
    }
    Ok(())
}

/// One NAT-T socket: ESP is decapsulated here and written to the tunnel's TUN device; IKE
/// goes to the IKE task.
async fn inbound_worker(
    ports: Arc<Vec<UdpPort>>,
    index: usize,
    mut updates: mpsc::UnboundedReceiver<InUpdate>,
    to_ike: mpsc::Sender<Incoming>,
) {
    let port = &ports[index];
    let mut batch = RecvBatch::new(32);
    let mut scratch = vec![0u8; MAX_ESP];
    let mut sad = InboundSad::new();
    let mut sas: BTreeMap<Spi, (Arc<SaCounters>, Tun)> = BTreeMap::new();
    loop {
        tokio::select! {
            r = port.recv(&mut batch) => {
                if let Err(e) = r {
                    tracing::debug!("receive on {}: {e}", port.bound());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                if forward_ike(&batch, &to_ike).is_err() {
                    return;
                }
                for r in batch.iter().filter(|r| r.kind == Kind::Esp) {
                    let Some(buf) = scratch.get_mut(..r.data.len()) else { continue };
                    buf.copy_from_slice(r.data);
                    let spi = Spi(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
                    match sad.decapsulate_in_place(buf) {
                        Ok(d) => {
                            if let Some((counters, tun)) = sas.get(&d.spi) {
                                let inner = &buf[d.inner.clone()];
                                counters.inbound(inner.len());
                                if tun.try_send(inner).is_err() {
                                    counters.drop_for("tun-full");
                                }
                            }
                        }
                        Err(reason) => {
                            if let Some((counters, _)) = sas.get(&spi) {
                                counters.drop_for(reason.name());
                            }
                        }
                    }
                }
            }
            u = updates.recv() => match u {
                Some(InUpdate::Add(sa, counters, tun)) => {
                    sas.insert(sa.spi(), (counters, tun));
                    sad.insert(*sa);
                }
                Some(InUpdate::Remove(spi)) => {
                    sas.remove(&spi);
                    sad.remove(spi);
                }
                None => return,
            },
        }
    }
}

/// One tunnel interface: packets read from its TUN device are encrypted with the SA whose
/// selectors match and sent as ESP in UDP. With no SA, negotiation starts on demand.
async fn outbound_worker(
    tun: Tun,
    ports: Arc<Vec<UdpPort>>,
    mut updates: mpsc::UnboundedReceiver<OutUpdate>,
    on_demand: mpsc::Sender<String>,
    tunnels: Vec<String>,
) {
    let mut inner = vec![0u8; MAX_PACKET];
    let mut out = vec![0u8; MAX_ESP];
    let mut sad = OutboundSad::new();
    let mut counters: BTreeMap<Spi, Arc<SaCounters>> = BTreeMap::new();
    let mut last_trigger: Option<Instant> = None;
    loop {
        tokio::select! {
            r = tun.recv(&mut inner) => {
                let n = match r {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::debug!("reading {}: {e}", tun.name());
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                match sad.encapsulate(&inner[..n], &mut out) {
                    Ok(t) => {
                        let c = counters.get(&t.spi);
                        let Some(udp) = t.path.udp else { continue };
                        let local = SocketAddr::new(t.path.local, udp.local_port);
                        let remote = SocketAddr::new(t.path.remote, udp.remote_port);
                        let sent = ports
                            .iter()
                            .find(|p| p.serves(local))
                            .map(|p| p.try_send(local, remote, t.packet));
                        match (sent, c) {
                            (Some(Ok(())), Some(c)) => c.outbound(n),
                            (_, Some(c)) => c.drop_for("send-failed"),
                            _ => {}
                        }
                    }
                    Err(ferrosec_esp::DropReason::NoSa) => {
                        // R-DP-6: the first packet without an SA starts the negotiation
                        // (at most once a second; the packet itself is dropped).
                        let now = Instant::now();
                        if last_trigger.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                            last_trigger = Some(now);
                            for t in &tunnels {
                                let _ = on_demand.try_send(t.clone());
                            }
                        }
                    }
                    Err(_) => {}
                }
            }
            u = updates.recv() => match u {
                Some(OutUpdate::Add(sa, c)) => {
                    counters.insert(sa.spi(), c);
                    sad.insert(*sa);
                }
                Some(OutUpdate::Remove(spi)) => {
                    counters.remove(&spi);
                    sad.remove(spi);
                }
                None => return,
            },
        }
    }
}
