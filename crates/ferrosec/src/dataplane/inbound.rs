//! The receive workers: ESP and AH from the WAN (raw sockets and UDP 4500), decrypted in
//! batches and written to the tunnel interfaces; IKE datagrams handed to the IKE task; ESP for
//! an SPI not installed yet parked until its SA comes.

use super::*;

/// A receive worker: the inbound SA databases (ESP and AH) of one local address and what
/// goes with each SA.
pub(super) struct Inbound {
    drops: Arc<GlobalDrops>,
    policy: PolicyView,
    /// Lifetime events to the IKE task.
    triggers: mpsc::Sender<Trigger>,
    sad: InboundSad,
    ah: InboundSad<AhInboundSa>,
    /// Per SA: its counters and its tunnel's device (an index into `devices`). 16 bytes: a
    /// responder holds thousands (issue 16).
    sas: BTreeMap<Spi, InSaEntry>,
    /// The tunnel devices the SAs deliver to (one per tunnel interface in use), with what
    /// the policy says of each.
    devices: Devices,
    scratch: Vec<u8>,
    /// Decrypted packets waiting to be written to `to_tun` (at the end of a receive batch,
    /// when full, or when a packet for another device comes).
    pending: TunWriteBatch,
    /// The device (index into `devices`) and the SA's counters of the pending packets.
    to_tun: Option<(u32, Arc<SaCounters>)>,
    /// When an unknown SPI was last reported to the IKE task.
    unknown_reported: Option<std::time::Instant>,
    /// ESP packets waiting for an SA that may be about to be installed (a rekey's new
    /// inbound SA, which the peer can start using before the IKE task has installed it).
    parked: Parked,
}

/// Length of the IPv6 header an AH packet from an IPv6 raw socket is given back.
const V6_HDR: usize = 40;

/// What the inbound worker keeps per SA beside the SA itself.
struct InSaEntry {
    counters: Arc<SaCounters>,
    /// Index into [`Devices`].
    device: u32,
}

/// One tunnel device of an inbound worker, with its zone and how it clamps the TCP MSS.
struct Device {
    tun: Tun,
    zone: Option<usize>,
    mss: MssClamp,
}

/// The tunnel devices of an inbound worker's SAs (one per tunnel interface in use).
type Devices = Slots<Device>;

/// A few shared values, each in a slot that keeps its index while any user holds it: the
/// slot is freed with its last user (so a device a reload removed goes with its last SA).
struct Slots<T>(Vec<Option<(T, usize)>>);

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots(Vec::new())
    }
}

impl<T> Slots<T> {
    /// The slot of the value `is` recognises, taken for one more user; a new slot with
    /// `make()` when there is none. A linear scan: there are as many as tunnel interfaces.
    fn acquire(&mut self, is: impl Fn(&T) -> bool, make: impl FnOnce() -> T) -> u32 {
        let i = match self
            .0
            .iter()
            .position(|s| s.as_ref().is_some_and(|(v, _)| is(v)))
        {
            Some(i) => i,
            None => {
                let free = self.0.iter().position(Option::is_none);
                let i = free.unwrap_or(self.0.len());
                if free.is_none() {
                    self.0.push(None);
                }
                self.0[i] = Some((make(), 0));
                i
            }
        };
        if let Some((_, users)) = &mut self.0[i] {
            *users += 1;
        }
        // As many slots as tunnel interfaces, far below u32::MAX.
        i as u32
    }

    /// One user less of slot `i`; the value goes with the last.
    fn release(&mut self, i: u32) {
        if let Some(slot) = self.0.get_mut(i as usize)
            && let Some((_, users)) = slot
        {
            *users -= 1;
            if *users == 0 {
                *slot = None;
            }
        }
    }

    fn get(&self, i: u32) -> Option<&T> {
        self.0.get(i as usize)?.as_ref().map(|(v, _)| v)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.0.iter_mut().flatten().map(|(v, _)| v)
    }
}

impl Inbound {
    /// Takes the policy a reload put in force, and the zones of the SAs' devices in it.
    fn refresh_policy(&mut self) {
        if self.policy.refresh() {
            let policy = self.policy.get();
            for d in self.devices.iter_mut() {
                d.zone = policy.tunnel_zone(d.tun.name());
                d.mss = policy.tunnel_mss(d.tun.name());
            }
        }
    }

    /// Installs or removes an SA.
    fn update(&mut self, u: InUpdate) {
        match u {
            InUpdate::Add(sa, counters, tun) => {
                self.refresh_policy();
                let spi = match sa {
                    InSa::Esp(sa) => {
                        let spi = sa.spi();
                        self.sad.insert_boxed(sa);
                        spi
                    }
                    InSa::Ah(sa) => {
                        let spi = sa.spi();
                        self.ah.insert_boxed(sa);
                        spi
                    }
                };
                let policy = self.policy.get();
                let device = self.devices.acquire(
                    |d| d.tun.same(&tun),
                    || Device {
                        zone: policy.tunnel_zone(tun.name()),
                        mss: policy.tunnel_mss(tun.name()),
                        tun: tun.clone(),
                    },
                );
                if let Some(old) = self.sas.insert(spi, InSaEntry { counters, device }) {
                    // Its device's slot may be freed and taken by another device.
                    self.flush();
                    self.to_tun = None;
                    self.devices.release(old.device);
                }
                if self.parked.holds(spi) {
                    self.replay(spi);
                    self.flush();
                }
            }
            InUpdate::Remove(spi) => {
                self.flush();
                self.to_tun = None;
                if let Some(old) = self.sas.remove(&spi) {
                    self.devices.release(old.device);
                }
                self.sad.remove(spi);
                self.ah.remove(spi);
            }
        }
    }

    /// Decrypts one ESP packet (SPI first) where it was received and writes the inner packet
    /// to its tunnel's TUN. A packet for an SPI not installed is parked unchanged (the SA
    /// database finds no SA before it touches the packet).
    fn packet(&mut self, data: &mut [u8], remote: std::net::IpAddr) {
        let spi = match data.get(..4) {
            Some(b) => Spi(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            None => Spi(0),
        };
        let r = self.sad.decapsulate_in_place(data);
        if matches!(r, Err(DropReason::UnknownSpi)) && !self.sas.contains_key(&spi) {
            if let Some(g) = self.parked.park(spi, remote, data, Instant::now()) {
                self.give_up(g);
            }
            return;
        }
        self.deliver(r, spi, remote, data);
    }

    /// Delivers the packets parked for `spi`, now that an SA with it is installed.
    fn replay(&mut self, spi: Spi) {
        let mut scratch = std::mem::take(&mut self.scratch);
        while let Some((len, from)) = self.parked.take(spi, &mut scratch) {
            let r = self.sad.decapsulate_in_place(&mut scratch[..len]);
            self.deliver(r, spi, from, &mut scratch);
        }
        self.scratch = scratch;
    }

    /// Drops the parked packets whose SA did not come in time.
    fn expire_parked(&mut self) {
        let mut parked = std::mem::take(&mut self.parked);
        parked.expire(Instant::now(), |g| self.give_up(g));
        self.parked = parked;
    }

    /// Counts a packet nobody claimed as an unknown SPI.
    fn give_up(&mut self, g: GivenUp) {
        self.drops.esp(DropReason::UnknownSpi);
        self.unknown_spi(g.spi, g.from);
    }

    /// Verifies one AH packet from a raw AH socket (IPv4: the whole datagram; IPv6: what
    /// follows the IPv6 header, which is rebuilt first) and writes the inner packet to its
    /// tunnel's TUN.
    fn ah_packet(&mut self, data: &[u8], remote: std::net::IpAddr, v6: bool) {
        let spi_at = if v6 {
            0
        } else {
            usize::from(data.first().map_or(0, |b| b & 0x0f)) * 4
        };
        let spi = data.get(spi_at + 4..spi_at + 8).map_or(Spi(0), |b| {
            Spi(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        });
        let len = if v6 {
            // The ICV covers the IPv6 header: rebuilt from the sender's address and the
            // address the SA's packets are sent to (the socket may be a wildcard).
            let header = match (remote, self.ah.get(spi).map(|sa| sa.path().local)) {
                (std::net::IpAddr::V6(src), Some(std::net::IpAddr::V6(dst))) => {
                    ferrosec_esp::ipv6_outer_header(src, dst, data.len())
                }
                _ => None,
            };
            let (Some(header), Some(buf)) = (header, self.scratch.get_mut(..V6_HDR + data.len()))
            else {
                self.drops.esp(DropReason::UnknownSpi);
                return;
            };
            buf[..V6_HDR].copy_from_slice(&header);
            buf[V6_HDR..].copy_from_slice(data);
            V6_HDR + data.len()
        } else {
            let Some(buf) = self.scratch.get_mut(..data.len()) else {
                return;
            };
            buf.copy_from_slice(data);
            data.len()
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = self.ah.decapsulate_in_place(&mut scratch[..len]);
        self.deliver(r, spi, remote, &mut scratch);
        self.scratch = scratch;
    }

    /// Counts a verified packet (now at `buf[d.inner]`) and queues it for its TUN device, or
    /// counts why it was dropped: per SA when the SPI is ours, else globally.
    fn deliver(
        &mut self,
        r: Result<Decapsulated, DropReason>,
        spi: Spi,
        remote: std::net::IpAddr,
        buf: &mut [u8],
    ) {
        match r {
            Ok(d) => {
                report(&self.triggers, d.event);
                if let Some(InSaEntry { counters, device }) = self.sas.get(&d.spi)
                    && let Some(dev) = self.devices.get(*device)
                {
                    let Some(inner) = buf.get_mut(d.inner.clone()) else {
                        return;
                    };
                    counters.inbound(inner.len());
                    if !self.policy.get().check(dev.zone, Way::Entering, inner) {
                        counters.drop_for("policy-deny");
                        return;
                    }
                    if let Some((v4, v6)) = mss::limits(dev.mss, dev.tun.current_mtu()) {
                        mss::clamp(inner, v4, v6);
                    }
                    let inner = &*inner;
                    let same = self
                        .to_tun
                        .as_ref()
                        .is_some_and(|(t, c)| t == device && Arc::ptr_eq(c, counters));
                    if !same || self.pending.is_full() {
                        let next = (!same).then(|| (*device, Arc::clone(counters)));
                        Self::flush_to(&mut self.pending, &self.devices, self.to_tun.as_ref());
                        if let Some(next) = next {
                            self.to_tun = Some(next);
                        }
                    }
                    if !self.pending.push(inner) {
                        counters.drop_for("tun-full");
                    }
                }
            }
            Err(reason) => match self.sas.get(&spi) {
                Some(e) => e.counters.drop_for(reason.name()),
                None => {
                    self.drops.esp(reason);
                    if reason == DropReason::UnknownSpi {
                        self.unknown_spi(spi, remote);
                    }
                }
            },
        }
    }

    /// Reports an unknown SPI to the IKE task, at most once per [`UNKNOWN_SPI_REPORT`] (RFC
    /// 4303 §3.4.2 calls it an auditable event; the IKE task tells the peer and logs it).
    fn unknown_spi(&mut self, spi: Spi, from: std::net::IpAddr) {
        let now = std::time::Instant::now();
        if self
            .unknown_reported
            .is_some_and(|t| now.duration_since(t) < UNKNOWN_SPI_REPORT)
        {
            return;
        }
        self.unknown_reported = Some(now);
        let _ = self.triggers.try_send(Trigger::UnknownSpi { spi, from });
    }

    /// Writes the pending packets to their TUN device.
    fn flush(&mut self) {
        Self::flush_to(&mut self.pending, &self.devices, self.to_tun.as_ref());
    }

    fn flush_to(
        pending: &mut TunWriteBatch,
        devices: &Devices,
        to: Option<&(u32, Arc<SaCounters>)>,
    ) {
        if pending.is_empty() {
            return;
        }
        match to.and_then(|(d, c)| Some((devices.get(*d)?, c))) {
            // Which packets of the batch were lost is not known: counted once.
            Some((dev, counters)) => {
                if dev.tun.send_batch(pending).is_err() {
                    counters.drop_for("tun-full");
                }
            }
            None => pending.clear(),
        }
    }
}

/// What an inbound worker passes to the IKE task: IKE datagrams, and lifetime events.
pub(super) struct ToIke {
    pub(super) datagrams: mpsc::Sender<Incoming>,
    pub(super) triggers: mpsc::Sender<Trigger>,
}

/// Sleeps until the oldest parked packet is due (forever when none is parked).
async fn parked_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Waits for a batch on an optional raw socket (forever when there is none).
async fn raw_recv(socket: Option<&RawIpsec>, batch: &mut RawBatch) -> std::io::Result<()> {
    match socket {
        Some(r) => r.recv(batch).await,
        None => std::future::pending().await,
    }
}

/// Waits for packets in an optional ESP ring (forever when there is none).
async fn ring_ready(ring: Option<&EspRing>) -> std::io::Result<()> {
    match ring {
        Some(r) => r.ready().await,
        None => std::future::pending().await,
    }
}

/// Most packets taken from an ESP ring per wakeup, so that the other sockets get their turn.
const RING_BATCH: usize = 64;

/// One NAT-T socket and the raw ESP and AH sockets of the same address: ESP and AH are
/// verified here and written to the tunnel's TUN device; IKE goes to the IKE task.
pub(super) async fn inbound_worker(
    ports: Arc<Vec<UdpPort>>,
    index: usize,
    (raw, mut ring): (RawPair, Option<EspRing>),
    (mut updates, mut from_tcp): (
        mpsc::UnboundedReceiver<InUpdate>,
        mpsc::Receiver<(std::net::IpAddr, Vec<u8>)>,
    ),
    ToIke {
        datagrams: to_ike,
        triggers,
    }: ToIke,
    drops: Arc<GlobalDrops>,
    policy: Arc<LivePolicy>,
) {
    let port = &ports[index];
    let mut batch = RecvBatch::new(32);
    let mut esp_batch = RawBatch::new(if raw.esp.is_some() { 32 } else { 1 });
    // The same batch as ESP: with one receive per wakeup and socket, a smaller one would
    // leave an AH socket under a flood behind the others.
    let mut ah_batch = RawBatch::new(if raw.ah.is_some() { 32 } else { 1 });
    let ah_v6 = raw.ah.as_ref().is_some_and(|r| r.bound().is_ipv6());
    let mut db = Inbound {
        drops: Arc::clone(&drops),
        policy: PolicyView::new(&policy),
        triggers,
        sad: InboundSad::new(),
        ah: InboundSad::new(),
        sas: BTreeMap::new(),
        devices: Devices::default(),
        scratch: vec![0u8; MAX_ESP],
        pending: TunWriteBatch::new(),
        to_tun: None,
        unknown_reported: None,
        parked: Parked::default(),
    };
    loop {
        // SA changes first: a batch read after an SA was installed must find it.
        loop {
            match updates.try_recv() {
                Ok(u) => db.update(u),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
        // Not `biased`: each wakeup serves a ready branch picked at random, so that a socket
        // flooded with bad input (always ready) cannot starve the others: with a fixed order,
        // a flood on UDP 4500 kept the raw ESP socket, and the tunnels on it, from being read
        // (interop 54 measured 3 % of the raw AH socket read under a flood of all three).
        tokio::select! {
            u = updates.recv() => match u {
                Some(u) => db.update(u),
                None => return,
            },
            () = parked_until(db.parked.next_expiry()) => db.expire_parked(),
            // ESP from TCP streams (crate::tcpencap): a bounded batch per wakeup.
            Some((from, packet)) = from_tcp.recv() => {
                db.refresh_policy();
                let mut packet = packet;
                db.packet(&mut packet, from);
                for _ in 0..31 {
                    let Ok((from, mut packet)) = from_tcp.try_recv() else { break };
                    db.packet(&mut packet, from);
                }
                db.flush();
            }
            r = port.recv(&mut batch) => {
                if let Err(e) = r {
                    tracing::debug!("receive on {}: {e}", port.bound());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                if forward_ike(&batch, &to_ike, &drops).is_err() {
                    return;
                }
                db.refresh_policy();
                for r in batch.iter_mut().filter(|r| r.kind == Kind::Esp) {
                    db.packet(r.data, r.remote.ip());
                }
                db.flush();
            }
            r = raw_recv(raw.esp.as_deref(), &mut esp_batch) => {
                if let Err(e) = r {
                    tracing::debug!("raw ESP receive on {}: {e}", port.bound().ip());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                db.refresh_policy();
                for r in esp_batch.iter_mut() {
                    db.packet(r.data, r.remote);
                }
                db.flush();
            }
            r = ring_ready(ring.as_ref()) => {
                if let Err(e) = r {
                    tracing::debug!("ESP ring receive on {}: {e}", port.bound().ip());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                db.refresh_policy();
                if let Some(ring) = ring.as_mut() {
                    ring.drain(RING_BATCH, |src, p| db.packet(p, src));
                }
                db.flush();
            }
            r = raw_recv(raw.ah.as_deref(), &mut ah_batch) => {
                if let Err(e) = r {
                    tracing::debug!("raw AH receive on {}: {e}", port.bound().ip());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                db.refresh_policy();
                for r in ah_batch.iter() {
                    db.ah_packet(r.data, r.remote, ah_v6);
                }
                db.flush();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;

    #[test]
    fn slots_are_shared_kept_while_used_and_reused_when_freed() {
        let mut s: Slots<&str> = Slots::default();
        let a = s.acquire(|v| *v == "a", || "a");
        let b = s.acquire(|v| *v == "b", || "b");
        assert_ne!(a, b);
        // A second user of "a" gets its slot; no new value is made.
        assert_eq!(s.acquire(|v| *v == "a", || unreachable!()), a);
        s.release(a);
        assert_eq!(s.get(a), Some(&"a"), "one user left");
        s.release(a);
        assert_eq!(s.get(a), None, "freed with its last user");
        assert_eq!(s.get(b), Some(&"b"), "other slots keep their index");
        // The free slot is taken again before the table grows.
        assert_eq!(s.acquire(|v| *v == "c", || "c"), a);
        assert_eq!(s.0.len(), 2);
        assert_eq!(s.iter_mut().count(), 2);
        // Releasing what is not there changes nothing.
        s.release(99);
        assert_eq!(s.get(99), None);
    }
}
