//! The send workers: packets read from the tunnel interfaces, matched to their SA, encrypted
//! in batches and sent (segmented UDP or raw); packets held while their SA is negotiated.

use super::*;

/// The sockets an outbound worker sends ESP and AH on.
pub(super) struct Senders {
    pub(super) udp: Arc<Vec<UdpPort>>,
    pub(super) raw: Arc<RawSenders>,
    /// Lifetime events to the IKE task.
    pub(super) triggers: mpsc::Sender<Trigger>,
    /// Where packets the outbound SAs refuse are counted (sequence numbers exhausted, hard
    /// lifetime reached, …), for the drop report and `/metrics`.
    pub(super) drops: Arc<GlobalDrops>,
    /// TCP encapsulation (RFC 9329): ESP of a UDP-encapsulated SA whose peer is on TCP goes
    /// on its stream.
    pub(super) tcp: Option<Arc<crate::tcpencap::TcpEncap>>,
}

impl Senders {
    /// Sends packets of `segment` bytes each (the last may be shorter), back to back in
    /// `data`, along `path` (AH: whole IP packets on a raw AH socket); returns how many were
    /// sent.
    fn send_segments(&self, ah: bool, path: &Path, data: &[u8], segment: usize) -> usize {
        let r = match path.udp {
            _ if ah => self
                .raw
                .ah
                .iter()
                .find(|r| r.serves(path.local))
                .map(|r| r.try_send_segments(path.remote, data, segment)),
            Some(_)
                if let Some(n) = self
                    .tcp
                    .as_ref()
                    .and_then(|t| t.send_esp_segments(path.remote, data, segment)) =>
            {
                Some(Ok(n))
            }
            Some(udp) => {
                let local = SocketAddr::new(path.local, udp.local_port);
                let remote = SocketAddr::new(path.remote, udp.remote_port);
                self.udp
                    .iter()
                    .find(|p| p.serves(local))
                    .map(|p| p.try_send_segments(local, remote, data, segment))
            }
            None => self
                .raw
                .esp
                .iter()
                .find(|r| r.serves(path.local))
                .map(|r| r.try_send_segments(path.remote, data, segment)),
        };
        match r {
            Some(Ok(n)) => n,
            _ => 0,
        }
    }
}

/// ESP (or AH) packets back to back in the outbound buffer with one path and SA, all
/// `segment` bytes long but the last (which may be shorter): sent with one system call.
pub(super) struct Run {
    /// The SA's counters, counted when the run is sent.
    counters: Option<Arc<SaCounters>>,
    ah: bool,
    path: Path,
    spi: Spi,
    start: usize,
    segment: usize,
    bytes: usize,
    packets: usize,
    inner_bytes: usize,
    closed: bool,
}

impl Run {
    fn new(sent: &Sent, start: usize, inner: usize, counters: Option<Arc<SaCounters>>) -> Self {
        let Sent {
            ah, path, spi, len, ..
        } = *sent;
        Run {
            counters,
            ah,
            path,
            spi,
            start,
            segment: len,
            bytes: len,
            packets: 1,
            inner_bytes: inner,
            closed: false,
        }
    }

    /// Whether the next packet can join the run (one SA, so one protocol and path).
    fn extends(&self, sent: &Sent) -> bool {
        !self.closed && sent.spi == self.spi && sent.path == self.path && sent.len <= self.segment
    }

    fn add(&mut self, len: usize, inner: usize) {
        self.bytes += len;
        self.packets += 1;
        self.inner_bytes += inner;
        self.closed = len < self.segment;
    }

    /// Sends the run out of `buf` and counts it.
    pub(super) fn send(&self, senders: &Senders, buf: &[u8]) {
        let data = &buf[self.start..self.start + self.bytes];
        let sent = senders.send_segments(self.ah, &self.path, data, self.segment);
        if let Some(c) = &self.counters {
            if sent == self.packets {
                c.outbound_many(self.packets, self.inner_bytes);
            } else {
                // Inner sizes of the lost ones are not kept; bytes counted pro rata.
                c.outbound_many(sent, self.inner_bytes * sent / self.packets);
                c.drops_for("send-failed", (self.packets - sent) as u64);
            }
        }
    }
}

#[cfg(test)]
impl Run {
    /// A run of `packets` ESP packets of `segment` bytes at the start of the buffer.
    pub(super) fn for_test(
        path: Path,
        counters: Option<Arc<SaCounters>>,
        segment: usize,
        packets: usize,
        inner_bytes: usize,
    ) -> Self {
        Run {
            counters,
            ah: false,
            path,
            spi: Spi(1),
            start: 0,
            segment,
            bytes: segment * packets,
            packets,
            inner_bytes,
            closed: true,
        }
    }
}

/// What came out of encapsulating one packet: enough to send it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sent {
    ah: bool,
    path: Path,
    spi: Spi,
    len: usize,
    event: Option<LifetimeEvent>,
}

impl Sent {
    fn of(t: &Transmit<'_>, ah: bool) -> Self {
        Sent {
            ah,
            path: t.path,
            spi: t.spi,
            len: t.packet.len(),
            event: t.event,
        }
    }
}

/// The outbound SAs of one tunnel interface: ESP, and AH for proxy IDs whose profile is AH.
#[derive(Debug, Default)]
pub(super) struct OutboundSads {
    esp: OutboundSad,
    ah: OutboundSad<AhOutboundSa>,
}

impl OutboundSads {
    fn insert(&mut self, sa: OutSa) -> Spi {
        match sa {
            OutSa::Esp(sa) => {
                let spi = sa.spi();
                self.esp.insert_boxed(sa);
                spi
            }
            OutSa::Ah(sa) => {
                let spi = sa.spi();
                self.ah.insert_boxed(sa);
                spi
            }
        }
    }

    fn remove(&mut self, spi: Spi) {
        self.esp.remove(spi);
        self.ah.remove(spi);
    }

    /// Protects `inner` into `out` with the SA that covers it: AH when an AH SA does (only
    /// looked up when there is one, on the one parse of the packet), else ESP.
    fn encapsulate(&mut self, inner: &[u8], out: &mut [u8]) -> Result<Sent, DropReason> {
        if !self.ah.is_empty()
            && let Ok(flow) = Flow::parse(inner)
            && let Some(r) = self.ah.encapsulate_flow(&flow, inner, out)
        {
            return r.map(|t| Sent::of(&t, true));
        }
        self.esp
            .encapsulate(inner, out)
            .map(|t| Sent::of(&t, false))
    }
}

/// The source address of an IPv4 or IPv6 packet.
pub(super) fn source_of(packet: &[u8]) -> Option<std::net::IpAddr> {
    match packet.first()? >> 4 {
        4 => {
            let b: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            Some(std::net::IpAddr::from(b))
        }
        6 => {
            let b: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            Some(std::net::IpAddr::from(b))
        }
        _ => None,
    }
}

/// One tunnel interface: packets read from its TUN device are encrypted with the SA whose
/// selectors match and sent as ESP (in UDP or raw). With no SA, a packet from inside a proxy
/// ID's local selectors starts the negotiation of that tunnel (R-DP-6).
/// At most this many packets wait for their tunnel's negotiation (R-DP-6)…
const HOLD_MAX: usize = 32;
/// …for at most this long.
const HOLD_FOR: Duration = Duration::from_secs(3);

/// Packets that found no SA while their tunnel is negotiated on demand (R-DP-6): a few, for a
/// few seconds, in buffers allocated once; sent as soon as an SA is installed, so the packet
/// that started the negotiation is not lost. When full, the oldest makes room.
pub(super) struct HeldPackets {
    bufs: Vec<Vec<u8>>,
    /// (buffer index, length, when held), oldest first.
    queue: std::collections::VecDeque<(usize, usize, Instant)>,
    free: Vec<usize>,
}

impl HeldPackets {
    fn new(slot: usize) -> Self {
        Self {
            bufs: (0..HOLD_MAX).map(|_| vec![0u8; slot]).collect(),
            queue: std::collections::VecDeque::with_capacity(HOLD_MAX),
            free: (0..HOLD_MAX).collect(),
        }
    }

    fn hold(&mut self, packet: &[u8], now: Instant) {
        let slot = match self.free.pop() {
            Some(i) => i,
            None => match self.queue.pop_front() {
                Some((i, _, _)) => i,
                None => return,
            },
        };
        let Some(dst) = self.bufs[slot].get_mut(..packet.len()) else {
            self.free.push(slot);
            return;
        };
        dst.copy_from_slice(packet);
        self.queue.push_back((slot, packet.len(), now));
    }

    /// Encapsulates and sends every held packet that now has an SA; keeps the young ones that
    /// still have none; drops the old ones.
    fn release(
        &mut self,
        now: Instant,
        sad: &mut OutboundSads,
        out: &mut [u8],
        senders: &Senders,
        counters: &BTreeMap<Spi, Arc<SaCounters>>,
    ) {
        for _ in 0..self.queue.len() {
            let Some((slot, len, at)) = self.queue.pop_front() else {
                break;
            };
            if now.duration_since(at) > HOLD_FOR {
                self.free.push(slot);
                continue;
            }
            match sad.encapsulate(&self.bufs[slot][..len], out) {
                Ok(sent) => {
                    report(&senders.triggers, sent.event);
                    Run::new(&sent, 0, len, counters.get(&sent.spi).cloned()).send(senders, out);
                    self.free.push(slot);
                }
                Err(ferrosec_esp::DropReason::NoSa) => self.queue.push_back((slot, len, at)),
                Err(_) => self.free.push(slot),
            }
        }
    }
}

/// The lowest MTU the kernel lets an interface that carries IPv6 have (RFC 8200 §5): the
/// tunnel interface's MTU is never lowered below it, so that IPv6 stays on the device; an SA
/// that carries less has its outer packets fragmented instead.
const IPV6_MIN_MTU: u16 = 1280;

/// Per outbound SA, the largest inner packet it carries unfragmented (R-DP-8), with the
/// count of SAs per size, so that the least is found in O(log n) when an SA comes or goes
/// (a scan of every SA per install made 10,000 handshakes quadratic).
#[derive(Debug, Default)]
struct Carried {
    by_spi: std::collections::HashMap<Spi, u16>,
    sizes: BTreeMap<u16, u32>,
}

impl Carried {
    fn insert(&mut self, spi: Spi, size: u16) {
        if let Some(old) = self.by_spi.insert(spi, size) {
            self.forget(old);
        }
        *self.sizes.entry(size).or_default() += 1;
    }

    /// Whether `spi` was there.
    fn remove(&mut self, spi: Spi) -> bool {
        match self.by_spi.remove(&spi) {
            Some(size) => {
                self.forget(size);
                true
            }
            None => false,
        }
    }

    fn forget(&mut self, size: u16) {
        if let Some(n) = self.sizes.get_mut(&size) {
            *n -= 1;
            if *n == 0 {
                self.sizes.remove(&size);
            }
        }
    }

    /// The least that every SA carries; `None` without SAs.
    fn least(&self) -> Option<u16> {
        self.sizes.keys().next().copied()
    }
}

/// Sets the tunnel interface's MTU to what every outbound SA it has carries without
/// fragmenting the outer packet, at most the configured MTU (R-DP-8): a DF packet too big for
/// it is then answered by the kernel with ICMP "fragmentation needed" / "packet too big"
/// naming that MTU, as on any router interface. Without SAs the device keeps what it has.
fn fit_mtu(tun: &Tun, carried: &Carried) {
    let Some(least) = carried.least() else {
        return;
    };
    let mtu = least.max(IPV6_MIN_MTU.min(tun.mtu())).min(tun.mtu());
    if mtu != tun.current_mtu() {
        match tun.set_mtu(mtu) {
            Ok(()) => tracing::info!(
                "{}: MTU {mtu} (the outer packets of its SAs fit the path; configured {})",
                tun.name(),
                tun.mtu()
            ),
            Err(e) => tracing::warn!("{}: setting MTU {mtu}: {e}", tun.name()),
        }
    }
}

pub(super) async fn outbound_worker(
    tun: Tun,
    senders: Senders,
    mut updates: mpsc::UnboundedReceiver<OutUpdate>,
    on_demand: mpsc::Sender<Trigger>,
    mut tunnels: Vec<(String, Vec<TsSet>)>,
    policy: Arc<LivePolicy>,
) {
    let senders = Arc::new(senders);
    let mut policy = PolicyView::new(&policy);
    let mut zone = policy.get().tunnel_zone(tun.name());
    let mut mss = policy.get().tunnel_mss(tun.name());
    let mut batch = TunBatch::new(tun.mtu());
    // ESP packets of one batch, back to back: runs of one path and size go out in one
    // system call (UDP GSO or sendmmsg), from the interface's send thread.
    let room = usize::from(tun.mtu()).max(1500) + 64 + 512;
    let mut tx = Transmitter::start(tun.name(), Arc::clone(&senders), TUN_BATCH * room);
    // Held packets are sent from here, one at a time, when their SA comes.
    let mut held_out = vec![0u8; room];
    let mut sad = OutboundSads::default();
    let mut counters: BTreeMap<Spi, Arc<SaCounters>> = BTreeMap::new();
    let mut last_trigger: Option<Instant> = None;
    let mut held = HeldPackets::new(usize::from(tun.mtu()).max(1500) + 64);
    // Per outbound SA: the largest inner packet it carries unfragmented (R-DP-8).
    let mut carried = Carried::default();
    loop {
        tokio::select! {
            // SA changes first: an activated outbound SA carries the very next batch.
            biased;
            u = updates.recv() => match u {
                Some(OutUpdate::Add(sa, c, inner_mtu)) => {
                    let spi = sad.insert(sa);
                    counters.insert(spi, c);
                    carried.insert(spi, inner_mtu);
                    fit_mtu(&tun, &carried);
                    held.release(Instant::now(), &mut sad, &mut held_out, &senders, &counters);
                }
                Some(OutUpdate::Remove(spi)) => {
                    counters.remove(&spi);
                    sad.remove(spi);
                    if carried.remove(spi) {
                        fit_mtu(&tun, &carried);
                    }
                }
                Some(OutUpdate::Demand(t)) => tunnels = t,
                None => return,
            },
            r = tun.recv_batch(&mut batch) => {
                if let Err(e) = r {
                    tracing::debug!("reading {}: {e}", tun.name());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                if policy.refresh() {
                    zone = policy.get().tunnel_zone(tun.name());
                    mss = policy.get().tunnel_mss(tun.name());
                }
                let Some(mut out) = tx.take().await else { return };
                let clamp_to = mss::limits(mss, tun.current_mtu());
                let mut run: Option<Run> = None;
                let mut pos = 0;
                for inner in batch.iter_mut() {
                    let n = inner.len();
                    if !policy.get().check(zone, Way::Leaving, inner) {
                        continue;
                    }
                    if let Some((v4, v6)) = clamp_to {
                        mss::clamp(inner, v4, v6);
                    }
                    let inner = &*inner;
                    if out.buf.len() - pos < room {
                        out.runs.extend(run.take());
                        tx.send(out);
                        out = match tx.take().await {
                            Some(b) => b,
                            None => return,
                        };
                        pos = 0;
                    }
                    match sad.encapsulate(inner, &mut out.buf[pos..]) {
                        Ok(sent) => {
                            report(&senders.triggers, sent.event);
                            if let Some(r) = run.as_mut().filter(|r| r.extends(&sent)) {
                                r.add(sent.len, n);
                            } else {
                                out.runs.extend(run.take());
                                run = Some(Run::new(&sent, pos, n, counters.get(&sent.spi).cloned()));
                            }
                            pos += sent.len;
                        }
                        Err(ferrosec_esp::DropReason::NoSa) => {
                            // R-DP-6: the first packet without an SA starts the negotiation
                            // (at most once a second) and waits for it in `held`. Only
                            // packets from our side of a proxy ID count: not the kernel's own
                            // IPv6 router solicitations and the like.
                            let now = Instant::now();
                            let Some(src) = source_of(inner) else { continue };
                            let mut matched = false;
                            let may_fire = last_trigger
                                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
                            for (t, local) in &tunnels {
                                if local.iter().any(|s| s.iter().any(|ts| ts.addrs.contains_addr(src))) {
                                    matched = true;
                                    if may_fire {
                                        let _ = on_demand.try_send(Trigger::OnDemand(t.clone()));
                                    }
                                }
                            }
                            if matched {
                                held.hold(inner, now);
                                if may_fire {
                                    last_trigger = Some(now);
                                }
                            }
                        }
                        Err(reason) => senders.drops.esp(reason),
                    }
                }
                out.runs.extend(run.take());
                tx.send(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_carried_size_follows_sas_coming_and_going() {
        let mut c = Carried::default();
        let spi = Spi;
        assert_eq!(c.least(), None);
        c.insert(spi(1), 1438);
        c.insert(spi(2), 1446);
        c.insert(spi(3), 1438);
        assert_eq!(c.least(), Some(1438));
        assert!(c.remove(spi(1)));
        assert_eq!(c.least(), Some(1438), "another SA still carries 1438");
        assert!(c.remove(spi(3)));
        assert_eq!(c.least(), Some(1446));
        assert!(!c.remove(spi(3)), "gone already");
        // The same SPI again with another size replaces its size.
        c.insert(spi(2), 1300);
        assert_eq!(c.least(), Some(1300));
        c.insert(spi(2), 1400);
        assert_eq!(c.least(), Some(1400));
        assert!(c.remove(spi(2)));
        assert_eq!(c.least(), None);
        assert!(c.sizes.is_empty() && c.by_spi.is_empty());
    }
}
