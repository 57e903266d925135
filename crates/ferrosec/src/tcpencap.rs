//! TCP encapsulation of IKE and ESP (RFC 9329): the streams, their listener and connector.
//!
//! ```text
//!   IKE task (poll_transmit) ──┐                      ┌──> IKE task (Incoming, local port 4500)
//!   outbound workers (ESP) ────┼──> TcpEncap ─ stream ┤
//!                              │    (per peer IP)     └──> inbound worker of the local address
//!   TCP listener (tcp-port) ───┘                           (ESP, as if from UDP 4500)
//! ```
//!
//! One stream per peer address. The side whose gateway has `tcp-encapsulation` (and that
//! sends first) opens it, sends "IKETCP" and then frames; the other side accepts, checks the
//! prefix and answers on the stream (RFC 9329 §6.1, §4). Frames are exactly the UDP 4500
//! payloads (IKE with the non-ESP marker, ESP as is; the codec is
//! [`ferrosec_wire::tcpencap`]), so the engine and the data plane see a NAT-T path: IKE
//! from a stream reaches the engine as arriving on our port 4500 from the stream's peer
//! address and port, which the peer's NAT_DETECTION hashes (made for UDP ports) do not match,
//! so both ends take the path as NATed and frame ESP as UDP-encapsulated (RFC 9329 §6.5, §3.2: ESP
//! over TCP is the UDP-encapsulated packet without its UDP header).
//!
//! Bounds: at most [`MAX_STREAMS`] streams; per stream one read buffer of two largest frames
//! and a send queue of [`SEND_QUEUE`] entries, each an IKE message or a run of ESP frames
//! sent together by the data plane (a full queue drops, as a full socket buffer would drop a
//! datagram); a peer that does not send the prefix, stops in the middle of a
//! frame for [`STALL`] or does not read what we send for [`STALL`] is cut off, and a stream
//! idle for [`IDLE`] is closed. Each is counted (crate::counters::TCP_REASONS).
//!
//! When a stream is lost the SAs stay (RFC 9329 §6.1); the side that opened it opens a new
//! one on the next IKE message or ESP packet to the peer, at most once per
//! [`RECONNECT_EVERY`]. The engine still retransmits IKE requests on a stream (harmless
//! duplicates the peer answers from its cache), which is also what carries a request lost
//! with a broken stream across once the stream is back.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferrosec_wire::tcpencap::{self, Deframer, Frame, StreamError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

use crate::counters::GlobalDrops;
use crate::ike::Incoming;
use crate::syslog::{Severity, SharedLog};

/// At most this many streams at once (accepted ones count from the accept).
pub(crate) const MAX_STREAMS: usize = 256;
/// Entries queued for one stream's writer (an IKE frame, or a run of ESP frames).
const SEND_QUEUE: usize = 256;
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a peer may take to complete the prefix or a frame it began, or to take what we
/// write.
const STALL: Duration = Duration::from_secs(10);
/// A stream with nothing received for this long is closed (a live IKE SA sends liveness
/// checks far more often).
const IDLE: Duration = Duration::from_secs(300);
/// Why a stream ended when we dropped it.
const CLOSED_HERE: &str = "closed here";
/// The opener of a stream tries again at most this often.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// Where ESP from a stream goes: the inbound worker of the local address (its bound
/// NAT-T address, whether it is a wildcard, its queue).
pub(crate) type EspSink = (SocketAddr, bool, mpsc::Sender<(IpAddr, Vec<u8>)>);

/// The streams and who may have one.
pub(crate) struct TcpEncap {
    state: Mutex<State>,
    /// Whether any peer is on TCP (we open streams to it, or it has one to us): read without
    /// the lock on every run of ESP the data plane sends, which is over UDP unless this is set.
    in_use: std::sync::atomic::AtomicBool,
    to_ike: mpsc::Sender<Incoming>,
    esp: Mutex<Vec<EspSink>>,
    drops: Arc<GlobalDrops>,
    log: SharedLog,
    /// The peers on TCP, for `show vpn ike-sa` (crate::ike::Tables).
    shown: Arc<Mutex<BTreeSet<IpAddr>>>,
    /// [`STALL`] (shorter in tests).
    stall: Duration,
}

impl std::fmt::Debug for TcpEncap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpEncap").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// The stream to each peer that has one (the newest, if the peer opened several).
    streams: HashMap<IpAddr, Stream>,
    /// Peers we open streams to: (our address to bind, the peer's TCP port).
    outgoing: HashMap<IpAddr, (Option<IpAddr>, u16)>,
    /// When we last tried to open a stream to each peer.
    last_try: HashMap<IpAddr, Instant>,
    /// Peers whose last attempt failed (logged once until one succeeds).
    failing: HashSet<IpAddr>,
    /// Streams alive, registered or not.
    live: usize,
    next_id: u64,
    /// Who may open a stream to us: `None` = anyone (a gateway with a dynamic peer).
    allowed: Option<HashSet<IpAddr>>,
}

struct Stream {
    id: u64,
    tx: mpsc::Sender<Vec<u8>>,
}

/// One stream's ends, as its task needs them.
struct Ends {
    local: SocketAddr,
    peer: SocketAddr,
    /// We opened it (we sent the prefix).
    opened: bool,
}

/// Starts TCP encapsulation when a gateway enables it: the streams, and a listener on each
/// of `addresses` at each gateway's `tcp-port`. Only the peers of those gateways may connect
/// (anyone, when one of them has a dynamic peer).
pub(crate) fn start(
    gateways: &[crate::ikecfg::GatewayInfo],
    addresses: &[IpAddr],
    to_ike: &mpsc::Sender<Incoming>,
    drops: Arc<GlobalDrops>,
    log: &SharedLog,
    shown: Arc<Mutex<BTreeSet<IpAddr>>>,
) -> Option<Arc<TcpEncap>> {
    use ferrosec_config::algo::TcpEncapsulation as Mode;
    let on: Vec<_> = gateways.iter().filter(|g| g.tcp.0 != Mode::No).collect();
    if on.is_empty() {
        return None;
    }
    let tcp = TcpEncap::new(to_ike.clone(), drops, log.clone(), shown);
    let allowed = on
        .iter()
        .map(|g| g.peer_address)
        .collect::<Option<HashSet<IpAddr>>>();
    tcp.set_allowed(allowed);
    let ports: BTreeSet<u16> = on.iter().map(|g| g.tcp.1).collect();
    for ip in addresses {
        for port in &ports {
            tokio::spawn(Arc::clone(&tcp).listen(SocketAddr::new(*ip, *port)));
        }
    }
    Some(tcp)
}

impl TcpEncap {
    /// Streams that hand IKE to `to_ike` and count their drops in `drops`.
    pub(crate) fn new(
        to_ike: mpsc::Sender<Incoming>,
        drops: Arc<GlobalDrops>,
        log: SharedLog,
        shown: Arc<Mutex<BTreeSet<IpAddr>>>,
    ) -> Arc<Self> {
        Arc::new(TcpEncap {
            state: Mutex::new(State::default()),
            in_use: std::sync::atomic::AtomicBool::new(false),
            to_ike,
            esp: Mutex::new(Vec::new()),
            drops,
            log,
            shown,
            stall: STALL,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where ESP from the streams goes (the data plane's inbound workers).
    pub(crate) fn set_esp_sinks(&self, sinks: Vec<EspSink>) {
        *self.esp.lock().unwrap_or_else(|p| p.into_inner()) = sinks;
    }

    /// Who may open a stream to us (`None` = anyone).
    pub(crate) fn set_allowed(&self, allowed: Option<HashSet<IpAddr>>) {
        self.lock().allowed = allowed;
    }

    fn show(&self, peer: IpAddr, on: bool) {
        let mut s = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        if on {
            s.insert(peer);
        } else {
            s.remove(&peer);
        }
    }

    /// From now on IKE and ESP to `peer` go over a stream we open to its `port` (from
    /// `local`, if given).
    pub(crate) fn open_to(&self, peer: IpAddr, local: Option<IpAddr>, port: u16) {
        let mut s = self.lock();
        let local = local.filter(|a| !a.is_unspecified());
        let changed = s.outgoing.insert(peer, (local, port)) != Some((local, port));
        self.note_use(&s);
        if changed {
            drop(s);
            self.show(peer, true);
        }
    }

    /// Back to UDP for `peer` (a new negotiation of a `fallback` gateway tries UDP first);
    /// its stream, if any, is closed.
    pub(crate) fn stop(&self, peer: IpAddr) {
        let mut s = self.lock();
        let was = s.outgoing.remove(&peer).is_some();
        s.streams.remove(&peer);
        self.note_use(&s);
        drop(s);
        if was {
            self.show(peer, false);
        }
    }

    /// Whether `peer` is reached over TCP: we open streams to it, or it has one to us.
    pub(crate) fn carries(&self, peer: IpAddr) -> bool {
        if !self.in_use.load(std::sync::atomic::Ordering::Acquire) {
            return false;
        }
        let s = self.lock();
        s.outgoing.contains_key(&peer) || s.streams.contains_key(&peer)
    }

    /// Sets [`TcpEncap::in_use`] from the state; called (under the lock) after each change to
    /// the peers we open streams to or the streams.
    fn note_use(&self, s: &State) {
        let used = !s.outgoing.is_empty() || !s.streams.is_empty();
        self.in_use
            .store(used, std::sync::atomic::Ordering::Release);
    }

    /// Sends an IKE datagram the engine queued for `remote` over TCP, if the peer is on TCP
    /// (`false`: send it by UDP). On port 4500 it carries the non-ESP marker already; from
    /// port 500 the marker is added.
    pub(crate) fn send_ike(
        self: &Arc<Self>,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> bool {
        if !self.carries(remote.ip()) {
            return false;
        }
        let mut frame = Vec::with_capacity(data.len() + 6);
        let natt = ferrosec_ike::v2::NATT_PORT;
        let r = if local.port() == natt || remote.port() == natt {
            tcpencap::encode(data, &mut frame)
        } else {
            tcpencap::encode_ike(data, &mut frame)
        };
        match r {
            Ok(()) => {
                self.send_frame(remote.ip(), frame);
            }
            Err(e) => tracing::debug!("IKE to {remote} not sent over TCP: {e}"),
        }
        true
    }

    /// Sends ESP packets of `segment` bytes each (the last may be shorter), back to back in
    /// `data`, over the stream to `peer`; `None` if the peer is not on TCP, else how many were
    /// queued.
    pub(crate) fn send_esp_segments(
        self: &Arc<Self>,
        peer: IpAddr,
        data: &[u8],
        segment: usize,
    ) -> Option<usize> {
        if !self.carries(peer) {
            return None;
        }
        // The whole run in one buffer of frames back to back (one allocation and one queue
        // slot per run, not per packet; the writer writes it at once).
        let segment = segment.max(1);
        let mut frames = Vec::with_capacity(data.len() + 2 * data.len().div_ceil(segment));
        let mut n = 0;
        for p in data.chunks(segment) {
            if tcpencap::encode(p, &mut frames).is_ok() {
                n += 1;
            }
        }
        if n == 0 || !self.send_frame(peer, frames) {
            return Some(0);
        }
        Some(n)
    }

    /// Queues a frame on the stream to `peer`, opening one if we may; `false` if dropped.
    fn send_frame(self: &Arc<Self>, peer: IpAddr, frame: Vec<u8>) -> bool {
        let mut s = self.lock();
        if let Some(st) = s.streams.get(&peer) {
            match st.tx.try_send(frame) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.drops.tcp("tcp-send-full");
                    return false;
                }
                Err(mpsc::error::TrySendError::Closed(f)) => {
                    s.streams.remove(&peer);
                    self.note_use(&s);
                    return self.connect(s, peer, f);
                }
            }
        }
        self.connect(s, peer, frame)
    }

    /// Opens a stream to `peer` (if we are its opener, not too soon after the last try, and
    /// below [`MAX_STREAMS`]) with `first` queued on it.
    fn connect(
        self: &Arc<Self>,
        mut s: MutexGuard<'_, State>,
        peer: IpAddr,
        first: Vec<u8>,
    ) -> bool {
        let Some(&(local, port)) = s.outgoing.get(&peer) else {
            return false;
        };
        let now = Instant::now();
        if s.last_try
            .get(&peer)
            .is_some_and(|t| now.duration_since(*t) < RECONNECT_EVERY)
        {
            return false;
        }
        if s.live >= MAX_STREAMS {
            self.drops.tcp("tcp-refused-full");
            return false;
        }
        s.last_try.insert(peer, now);
        s.live += 1;
        s.next_id += 1;
        let id = s.next_id;
        let (tx, rx) = mpsc::channel(SEND_QUEUE);
        let _ = tx.try_send(first);
        s.streams.insert(peer, Stream { id, tx });
        self.note_use(&s);
        drop(s);
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let to = SocketAddr::new(peer, port);
            let why = match me.open(local, to).await {
                Ok(sock) => {
                    let local = sock
                        .local_addr()
                        .unwrap_or_else(|_| SocketAddr::new(peer, 0));
                    me.opened(peer, to);
                    let ends = Ends {
                        local,
                        peer: to,
                        opened: true,
                    };
                    Arc::clone(&me).run(sock, ends, rx, None).await
                }
                Err(e) => {
                    me.failed(peer, to, &e);
                    String::new()
                }
            };
            me.closed(peer, id, to, true, &why);
        });
        true
    }

    async fn open(&self, local: Option<IpAddr>, to: SocketAddr) -> std::io::Result<TcpStream> {
        let sock = if to.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(l) = local {
            sock.bind(SocketAddr::new(l, 0))?;
        }
        let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, sock.connect(to))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 5 s"))??;
        let _ = stream.set_nodelay(true);
        // RFC 9329 §4: the initiator of the stream first sends the six bytes "IKETCP".
        tokio::time::timeout(STALL, stream.write_all(&tcpencap::STREAM_PREFIX))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "prefix not taken"))??;
        Ok(stream)
    }

    fn opened(&self, peer: IpAddr, to: SocketAddr) {
        let was_failing = self.lock().failing.remove(&peer);
        let again = if was_failing { " again" } else { "" };
        self.log.record(
            Severity::Info,
            &format!("peer {peer}"),
            format!("TCP encapsulation: stream to {to} open{again} (RFC 9329)"),
        );
    }

    fn failed(&self, peer: IpAddr, to: SocketAddr, e: &std::io::Error) {
        if self.lock().failing.insert(peer) {
            self.log.record(
                Severity::Warning,
                &format!("peer {peer}"),
                format!(
                    "TCP encapsulation: cannot open a stream to {to}: {e}; tried again on the \
                     next packet (is TCP {} open on the peer, with tcp-encapsulation on its \
                     gateway?)",
                    to.port()
                ),
            );
        }
    }

    /// A stream ended: forgotten (if it is still the peer's) and logged.
    fn closed(&self, peer: IpAddr, id: u64, addr: SocketAddr, opened: bool, why: &str) {
        let mut s = self.lock();
        s.live = s.live.saturating_sub(1);
        let current = s.streams.get(&peer).is_some_and(|st| st.id == id);
        if current {
            s.streams.remove(&peer);
            self.note_use(&s);
        }
        let outgoing = s.outgoing.contains_key(&peer);
        drop(s);
        if current && !outgoing {
            self.show(peer, false);
        }
        if why.is_empty() {
            return;
        }
        if why == CLOSED_HERE {
            // Replaced by a newer stream from the peer, or the peer went back to UDP.
            self.log.record(
                Severity::Info,
                &format!("peer {peer}"),
                format!("TCP encapsulation: stream with {addr} closed, no longer used"),
            );
            return;
        }
        let next = if opened {
            "; reopened on the next packet to the peer, the SAs stay"
        } else {
            "; the peer reopens it, the SAs stay"
        };
        self.log.record(
            Severity::Warning,
            &format!("peer {peer}"),
            format!("TCP encapsulation: stream with {addr} closed: {why}{next}"),
        );
    }

    /// Accepts streams on `addr` until the listener fails.
    pub(crate) async fn listen(self: Arc<Self>, addr: SocketAddr) {
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                self.log.record(
                    Severity::Error,
                    "daemon",
                    format!("TCP encapsulation: cannot listen on {addr}: {e}; peers cannot reach us over TCP"),
                );
                return;
            }
        };
        loop {
            let (sock, from) = match listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!("accept on TCP {addr}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let mut s = self.lock();
            if s.allowed.as_ref().is_some_and(|a| !a.contains(&from.ip())) {
                drop(s);
                self.drops.tcp("tcp-not-a-peer");
                continue;
            }
            if s.live >= MAX_STREAMS {
                drop(s);
                self.drops.tcp("tcp-refused-full");
                continue;
            }
            s.live += 1;
            s.next_id += 1;
            let id = s.next_id;
            drop(s);
            let _ = sock.set_nodelay(true);
            let local = sock.local_addr().unwrap_or(addr);
            let me = Arc::clone(&self);
            tokio::spawn(async move {
                let (tx, rx) = mpsc::channel(SEND_QUEUE);
                let ends = Ends {
                    local,
                    peer: from,
                    opened: false,
                };
                // Registered once its prefix has come (see `run`).
                let pending = Some(Stream { id, tx });
                let why = Arc::clone(&me).run(sock, ends, rx, pending).await;
                me.closed(from.ip(), id, from, false, &why);
            });
        }
    }

    /// Reads and writes one stream until it ends; returns why, in words (empty: a peer that
    /// never sent the prefix, which is only counted).
    async fn run(
        self: Arc<Self>,
        sock: TcpStream,
        ends: Ends,
        mut rx: mpsc::Receiver<Vec<u8>>,
        mut pending: Option<Stream>,
    ) -> String {
        let (mut rd, mut wr) = sock.into_split();
        let drops = Arc::clone(&self.drops);
        let stall = self.stall;
        let writer = async move {
            while let Some(f) = rx.recv().await {
                match tokio::time::timeout(stall, wr.write_all(&f)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return format!("write failed: {e}"),
                    Err(_) => {
                        drops.tcp("tcp-stalled");
                        return format!("the peer took nothing we sent for {} s", stall.as_secs());
                    }
                }
            }
            CLOSED_HERE.to_owned()
        };
        let reader = async {
            let mut d = Deframer::new(!ends.opened);
            let mut partial_since: Option<Instant> = None;
            loop {
                let stalling = d.pending() > 0 || !d.prefix_seen();
                let wait = match partial_since {
                    Some(t) if stalling => stall.saturating_sub(t.elapsed()),
                    _ if stalling => stall,
                    _ => IDLE,
                };
                match tokio::time::timeout(wait, rd.read(d.unfilled())).await {
                    Ok(Ok(0)) => return "closed by the peer".to_owned(),
                    Ok(Ok(n)) => d.filled(n),
                    Ok(Err(e)) => return format!("read failed: {e}"),
                    Err(_) if !d.prefix_seen() => {
                        self.drops.tcp("tcp-stalled");
                        return String::new();
                    }
                    Err(_) if stalling => {
                        self.drops.tcp("tcp-stalled");
                        return format!(
                            "the peer stopped in the middle of a frame for {} s",
                            stall.as_secs()
                        );
                    }
                    Err(_) => return format!("nothing received for {} s", IDLE.as_secs()),
                }
                loop {
                    match d.next_frame() {
                        Ok(Some(f)) => self.deliver(f, &ends),
                        Ok(None) => break,
                        Err(e) => {
                            let seen = d.prefix_seen();
                            return self.broken(e, seen);
                        }
                    }
                }
                if d.prefix_seen()
                    && let Some(st) = pending.take()
                    && let Some(st) = self.register(ends.peer, st)
                {
                    // Not used for sending (yet): kept, so its writer stays open.
                    pending = Some(st);
                }
                partial_since = if d.pending() > 0 {
                    Some(partial_since.unwrap_or_else(Instant::now))
                } else {
                    None
                };
            }
        };
        tokio::select! {
            why = reader => why,
            why = writer => why,
        }
    }

    /// A stream that cannot be framed: counted; in words if it had begun well.
    fn broken(&self, e: StreamError, prefix_seen: bool) -> String {
        match e {
            StreamError::BadPrefix => {
                self.drops.tcp("tcp-bad-prefix");
                String::new()
            }
            _ => {
                self.drops.tcp("tcp-bad-length");
                if prefix_seen {
                    e.to_string()
                } else {
                    String::new()
                }
            }
        }
    }

    /// An accepted stream has sent its prefix: IKE and ESP to its peer go on it now.
    /// Both sides may open a stream (two `always` gateways that both initiate): a side that
    /// opens its own keeps sending on it and only reads the peer's, else each new stream would
    /// close the other side's. Gives the stream back when it is not used for sending.
    fn register(&self, peer: SocketAddr, st: Stream) -> Option<Stream> {
        let mut s = self.lock();
        let ours_up = s.outgoing.contains_key(&peer.ip())
            && s.streams.get(&peer.ip()).is_some_and(|o| !o.tx.is_closed());
        if ours_up {
            return Some(st);
        }
        s.streams.insert(peer.ip(), st);
        self.note_use(&s);
        drop(s);
        self.show(peer.ip(), true);
        self.log.record(
            Severity::Info,
            &format!("peer {}", peer.ip()),
            format!("TCP encapsulation: stream from {peer} accepted (RFC 9329)"),
        );
        None
    }

    /// Hands a frame to the IKE task or to the data plane.
    fn deliver(&self, f: Frame<'_>, ends: &Ends) {
        match f {
            Frame::Ike(b) => {
                let d = Incoming {
                    local: SocketAddr::new(ends.local.ip(), ferrosec_ike::v2::NATT_PORT),
                    remote: ends.peer,
                    data: b.to_vec(),
                };
                if let Err(mpsc::error::TrySendError::Full(_)) = self.to_ike.try_send(d) {
                    self.drops.ike_queue_full();
                }
            }
            Frame::Esp(b) => {
                let sinks = self.esp.lock().unwrap_or_else(|p| p.into_inner());
                let local = ends.local.ip();
                let sink = sinks.iter().find(|(bound, wild, _)| {
                    bound.is_ipv4() == local.is_ipv4() && (*wild || bound.ip() == local)
                });
                match sink {
                    Some((_, _, tx)) => {
                        if tx.try_send((ends.peer.ip(), b.to_vec())).is_err() {
                            self.drops.tcp("tcp-esp-queue-full");
                        }
                    }
                    None => self.drops.tcp("tcp-esp-queue-full"),
                }
            }
            Frame::Keepalive => {}
            Frame::Invalid(_) => self.drops.tcp("tcp-bad-frame"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Setup {
        tcp: Arc<TcpEncap>,
        ike: mpsc::Receiver<Incoming>,
        esp: mpsc::Receiver<(IpAddr, Vec<u8>)>,
        drops: Arc<GlobalDrops>,
        log: SharedLog,
    }

    fn setup() -> Setup {
        let (to_ike, ike) = mpsc::channel(16);
        let (esp_tx, esp) = mpsc::channel(16);
        let drops = Arc::new(GlobalDrops::default());
        let log = SharedLog::new(crate::syslog::SystemLog::open(None).unwrap());
        let tcp = TcpEncap::new(
            to_ike,
            Arc::clone(&drops),
            log.clone(),
            Arc::new(Mutex::new(BTreeSet::new())),
        );
        tcp.set_esp_sinks(vec![("0.0.0.0:4500".parse().unwrap(), true, esp_tx)]);
        Setup {
            tcp,
            ike,
            esp,
            drops,
            log,
        }
    }

    /// The data plane asks about every run of ESP; with no peer on TCP the answer comes from
    /// the flag, which follows the peers we open streams to.
    #[tokio::test]
    async fn in_use_follows_the_peers_on_tcp() {
        let a = setup();
        let peer: IpAddr = [192, 0, 2, 7].into();
        let used = |t: &TcpEncap| t.in_use.load(std::sync::atomic::Ordering::Acquire);
        assert!(!used(&a.tcp));
        assert_eq!(a.tcp.send_esp_segments(peer, &[0u8; 64], 32), None);
        a.tcp.open_to(peer, None, 4500);
        assert!(used(&a.tcp) && a.tcp.carries(peer));
        assert!(!a.tcp.carries([192, 0, 2, 8].into()));
        a.tcp.stop(peer);
        assert!(!used(&a.tcp) && !a.tcp.carries(peer));
    }

    /// A free loopback port with a listener of `s` on it.
    async fn listening(s: &Setup) -> u16 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        tokio::spawn(Arc::clone(&s.tcp).listen(SocketAddr::from(([127, 0, 0, 1], port))));
        tokio::time::sleep(Duration::from_millis(50)).await;
        port
    }

    fn ike_message() -> Vec<u8> {
        let mut m = vec![0x11u8; 28];
        m[17] = 0x20;
        m
    }

    fn dropped(d: &GlobalDrops, reason: &str) -> u64 {
        d.snapshot().get(reason).copied().unwrap_or(0)
    }

    #[tokio::test]
    async fn ike_and_esp_cross_a_stream_both_ways() {
        let a = setup();
        let mut b = setup();
        let port = listening(&b).await;
        let lo: IpAddr = [127, 0, 0, 1].into();
        // Site A opens the stream on its first IKE datagram (from port 500: marker added).
        a.tcp.open_to(lo, None, port);
        let from = SocketAddr::new(lo, 500);
        assert!(
            a.tcp
                .send_ike(from, SocketAddr::new(lo, 500), &ike_message())
        );
        let got = tokio::time::timeout(Duration::from_secs(5), b.ike.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got.data[..4], [0, 0, 0, 0], "the non-ESP marker");
        assert_eq!(&got.data[4..], ike_message());
        assert_eq!(
            got.local.port(),
            4500,
            "IKE from a stream arrives as on port 4500"
        );
        assert_ne!(got.remote.port(), port, "from the stream's source port");
        assert!(b.tcp.carries(lo), "the responder answers on the stream");
        // ESP from site B goes back on the same stream, to site A's inbound worker.
        let mut esp = vec![0u8; 2 * 60];
        esp[..4].copy_from_slice(&0x1000u32.to_be_bytes());
        esp[60..64].copy_from_slice(&0x1000u32.to_be_bytes());
        assert_eq!(b.tcp.send_esp_segments(lo, &esp, 60), Some(2));
        let mut a = a;
        for _ in 0..2 {
            let (peer, p) = tokio::time::timeout(Duration::from_secs(5), a.esp.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(peer, lo);
            assert_eq!(p.len(), 60);
        }
        // A peer not on TCP is left to UDP.
        assert_eq!(
            a.tcp.send_esp_segments([127, 0, 0, 9].into(), &esp, 60),
            None
        );
        assert!(
            !a.tcp
                .send_ike(from, SocketAddr::new([127, 0, 0, 9].into(), 500), &[1])
        );
        b.ike.close();
    }

    #[tokio::test]
    async fn a_lost_stream_is_reopened_on_the_next_packet() {
        let a = setup();
        let mut b = setup();
        let port = listening(&b).await;
        let lo: IpAddr = [127, 0, 0, 1].into();
        a.tcp.open_to(lo, None, port);
        let l = SocketAddr::new(lo, 4500);
        let mut msg = vec![0u8; 4];
        msg.extend(ike_message());
        a.tcp.send_ike(l, l, &msg);
        tokio::time::timeout(Duration::from_secs(5), b.ike.recv())
            .await
            .unwrap()
            .unwrap();
        // Site B goes away: its end of the stream closes.
        let old = b.tcp.lock().streams.remove(&lo).unwrap();
        drop(old);
        tokio::time::timeout(Duration::from_secs(5), async {
            while a.tcp.lock().streams.contains_key(&lo) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("site A notices the closed stream");
        assert!(a.tcp.carries(lo), "still on TCP: the SAs stay");
        // Not sooner than RECONNECT_EVERY after the last try, then the next datagram reopens.
        tokio::time::sleep(RECONNECT_EVERY).await;
        a.tcp.send_ike(l, l, &msg);
        let again = tokio::time::timeout(Duration::from_secs(5), b.ike.recv()).await;
        assert!(again.unwrap().is_some(), "delivered on a new stream");
        let lines = a.log.tail(None);
        assert!(
            lines.iter().any(|l| l.message.contains("closed")),
            "the loss is logged"
        );
    }

    #[tokio::test]
    async fn garbage_and_strangers_are_closed_and_counted() {
        let b = setup();
        let port = listening(&b).await;
        let to = SocketAddr::from(([127, 0, 0, 1], port));
        // No prefix.
        let mut s = TcpStream::connect(to).await.unwrap();
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "closed: {n:?}");
        assert_eq!(dropped(&b.drops, "tcp-bad-prefix"), 1);
        // A length below 2.
        let mut s = TcpStream::connect(to).await.unwrap();
        s.write_all(b"IKETCP\x00\x01").await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "closed: {n:?}");
        assert_eq!(dropped(&b.drops, "tcp-bad-length"), 1);
        // A frame too short for IKE or ESP: counted, the stream stays.
        let mut s = TcpStream::connect(to).await.unwrap();
        s.write_all(b"IKETCP\x00\x05\x01\x02\x03").await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(dropped(&b.drops, "tcp-bad-frame"), 1);
        assert!(b.tcp.carries([127, 0, 0, 1].into()));
        drop(s);
        // Only peers of gateways with TCP encapsulation may connect.
        b.tcp
            .set_allowed(Some(HashSet::from([IpAddr::from([192, 0, 2, 1])])));
        let mut s = TcpStream::connect(to).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "closed: {n:?}");
        assert_eq!(dropped(&b.drops, "tcp-not-a-peer"), 1);
    }

    #[tokio::test]
    async fn a_peer_that_stalls_mid_frame_is_cut_off() {
        let mut b = setup();
        Arc::get_mut(&mut b.tcp).unwrap().stall = Duration::from_millis(300);
        let port = listening(&b).await;
        let to = SocketAddr::from(([127, 0, 0, 1], port));
        let mut s = TcpStream::connect(to).await.unwrap();
        // Half a frame, then nothing.
        s.write_all(b"IKETCP\x00\x40\x00\x00").await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "closed: {n:?}");
        assert_eq!(dropped(&b.drops, "tcp-stalled"), 1);
        assert_eq!(b.tcp.lock().live, 0, "the stream is gone");
    }

    #[tokio::test]
    async fn two_openers_keep_their_own_streams_and_do_not_flap() {
        let mut a = setup();
        let mut b = setup();
        let (pa, pb) = (listening(&a).await, listening(&b).await);
        let lo: IpAddr = [127, 0, 0, 1].into();
        a.tcp.open_to(lo, None, pb);
        b.tcp.open_to(lo, None, pa);
        let l = SocketAddr::new(lo, 4500);
        let mut msg = vec![0u8; 4];
        msg.extend(ike_message());
        for round in 0..3 {
            a.tcp.send_ike(l, l, &msg);
            b.tcp.send_ike(l, l, &msg);
            for (who, rx) in [("b", &mut b.ike), ("a", &mut a.ike)] {
                let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
                assert!(
                    matches!(got, Ok(Some(_))),
                    "round {round}: {who} got nothing"
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let closed = |s: &Setup| {
            s.log
                .tail(None)
                .iter()
                .filter(|l| l.message.contains("closed"))
                .count()
        };
        assert_eq!((closed(&a), closed(&b)), (0, 0), "no stream was closed");
        assert_eq!(a.tcp.lock().live, 2, "its own stream and the peer's");
    }

    #[tokio::test]
    async fn stream_count_is_bounded() {
        let b = setup();
        b.tcp.lock().live = MAX_STREAMS;
        let port = listening(&b).await;
        let mut s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap();
        let mut buf = [0u8; 4];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "closed: {n:?}");
        assert_eq!(dropped(&b.drops, "tcp-refused-full"), 1);
        // And we open none either.
        let lo: IpAddr = [127, 0, 0, 1].into();
        b.tcp.open_to(lo, None, port);
        assert!(!b.tcp.send_frame(lo, vec![0, 2]));
        assert_eq!(dropped(&b.drops, "tcp-refused-full"), 2);
    }
}
