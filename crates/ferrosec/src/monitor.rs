//! Tunnel monitoring (R-OPS-1, R-CFG-7): an ICMP echo request across the tunnel every
//! `interval`; after `threshold` unanswered ones in a row the tunnel is **down by monitor**.
//!
//! # What a probe is
//!
//! One ICMP echo request (IPv4 or IPv6, as the destination) from the monitor's `source` to its
//! `destination`, sent by the gateway itself through a raw socket bound to the tunnel's
//! interface (`SO_BINDTODEVICE`). The kernel hands it to the TUN device whatever the routing
//! table says (with the tunnel's routes withdrawn the lookup for that interface finds nothing
//! and the kernel sends on-link), the data plane reads it there like LAN traffic, encrypts it
//! with the tunnel's Child SA (or asks IKE for one on demand) and sends it to the peer. The
//! reply comes back decrypted into the host's stack and is read from a second raw socket bound
//! to `source` but to no interface: the peer answers along its own routes, which are its
//! backup tunnel while it has failed over too, and requiring the reply on the monitored
//! interface would keep two gateways that failed over at the same time from ever seeing each
//! other recover. The request, which always leaves through the monitored tunnel, is what the
//! probe proves. A reply counts when its identifier (fixed per monitor), sequence number (that
//! of the last request sent: a reply slower than one interval is a miss) and source address
//! match.
//!
//! # The state machine
//!
//! [`Machine`] is sans-IO: time comes in as a parameter, probes and [`Event`]s come out. Each
//! time a probe is due, the previous one is counted as a miss if it is still unanswered. After
//! `threshold` consecutive misses the tunnel goes down by monitor: the keys are
//! renegotiated ([`Event::Renegotiate`], again at most every [`RENEGOTIATE_HOLD`] or
//! `interval × threshold`, whichever is longer, while it stays down), and with `fail-over` its
//! routes are withdrawn ([`Event::WithdrawRoutes`]) so that the route with the next-higher
//! metric to the same destination carries the traffic. With `wait-recover` the first reply
//! brings it back up; with `fail-over` `threshold` consecutive replies do, and its routes are
//! restored ([`Event::RestoreRoutes`]).
//!
//! [`run`] is the IO around one machine: the sockets, the timer, the routes and the IKE task.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrosec_config::algo::MonitorAction;
use ferrosec_config::model::{IpsecTunnel, TunnelMonitor};
use ferrosec_config::value::AddressSpec;
use ferrosec_config::{Config, Keying};
use ferrosec_netio::IcmpProbe;
use ferrosec_wire::checksum::checksum;
use tokio::sync::{mpsc, oneshot};

use crate::ike::Command;
use crate::routes::RouteBook;
use crate::syslog::{Severity, SharedLog};

/// Shortest time between two renegotiations of a tunnel that stays down.
pub(crate) const RENEGOTIATE_HOLD: Duration = Duration::from_secs(30);

/// The payload of every probe after identifier and sequence number (recognisable in captures).
const PAYLOAD: &[u8; 16] = b"ferrosec-monitor";

/// Length of an echo request we send (ICMP header 8 + payload).
pub(crate) const ECHO_LEN: usize = 8 + PAYLOAD.len();

/// One echo request to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    /// The ICMP identifier.
    pub(crate) ident: u16,
    /// The ICMP sequence number.
    pub(crate) seq: u16,
}

/// What the machine decided; the caller acts and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// `misses` consecutive probes went unanswered: the tunnel is down by monitor.
    Down {
        /// Consecutive misses (the threshold).
        misses: u32,
    },
    /// Fail-over: take the tunnel's routes out of the routing table.
    WithdrawRoutes,
    /// Renegotiate the tunnel's SAs now.
    Renegotiate {
        /// 1 for the first renegotiation of this outage, then 2, 3 …
        round: u32,
    },
    /// Replies came back: the tunnel is up again (with `fail-over` after `replies` in a row).
    Up {
        /// Consecutive replies.
        replies: u32,
        /// How long it was down.
        after: Duration,
    },
    /// Fail-over: put the tunnel's routes back.
    RestoreRoutes,
}

/// The monitor's state as `show vpn tunnel` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Status {
    /// Down by monitor.
    pub(crate) down: bool,
    /// Consecutive unanswered probes.
    pub(crate) misses: u32,
    /// Consecutive answered probes.
    pub(crate) replies: u32,
    /// When the last reply came.
    pub(crate) last_reply: Option<Instant>,
    /// Whether the tunnel's routes should be in the routing table.
    pub(crate) routes_active: bool,
    /// Probes sent and replies matched since start.
    pub(crate) sent: u64,
    pub(crate) received: u64,
    /// The round-trip time of the last answered probe (from the machine's `now` at
    /// [`Machine::poll_probe`] to that at [`Machine::handle_reply`]).
    pub(crate) rtt: Option<Duration>,
}

/// The sans-IO tunnel monitor of one tunnel.
#[derive(Debug)]
pub(crate) struct Machine {
    interval: Duration,
    threshold: u32,
    action: MonitorAction,
    ident: u16,
    next_seq: u16,
    /// The last probe sent, while unanswered, and when.
    outstanding: Option<u16>,
    sent_at: Instant,
    /// When the next probe is due.
    next_probe: Instant,
    status: Status,
    down_since: Option<Instant>,
    renegotiated: Option<Instant>,
    rounds: u32,
    events: VecDeque<Event>,
}

impl Machine {
    /// A monitor that sends its first probe at `now`. `threshold` 0 is taken as 1.
    pub(crate) fn new(
        now: Instant,
        interval: Duration,
        threshold: u32,
        action: MonitorAction,
        ident: u16,
    ) -> Self {
        Self {
            interval: interval.max(Duration::from_millis(1)),
            threshold: threshold.max(1),
            action,
            ident,
            next_seq: 0,
            outstanding: None,
            sent_at: now,
            next_probe: now,
            status: Status {
                down: false,
                misses: 0,
                replies: 0,
                last_reply: None,
                routes_active: true,
                sent: 0,
                received: 0,
                rtt: None,
            },
            down_since: None,
            renegotiated: None,
            rounds: 0,
            events: VecDeque::new(),
        }
    }

    /// Starts the sequence numbers at `seq` (tests of the wrap).
    #[cfg(test)]
    fn with_first_seq(mut self, seq: u16) -> Self {
        self.next_seq = seq;
        self
    }

    /// When [`Machine::poll_probe`] has the next probe.
    pub(crate) fn poll_timeout(&self) -> Instant {
        self.next_probe
    }

    /// The probe due at `now`, if one is; the previous one, if unanswered, is counted as a
    /// miss first.
    pub(crate) fn poll_probe(&mut self, now: Instant) -> Option<Probe> {
        if now < self.next_probe {
            return None;
        }
        if self.outstanding.take().is_some() {
            self.missed(now);
        }
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        self.outstanding = Some(seq);
        self.sent_at = now;
        self.status.sent += 1;
        // Keep the cadence; after a long stall (a suspended host) start it again from now.
        self.next_probe += self.interval;
        if self.next_probe <= now {
            self.next_probe = now + self.interval;
        }
        Some(Probe {
            ident: self.ident,
            seq,
        })
    }

    /// An echo reply with `ident` and `seq` arrived at `now`; true when it answers the
    /// outstanding probe (anything else is ignored).
    pub(crate) fn handle_reply(&mut self, now: Instant, ident: u16, seq: u16) -> bool {
        if ident != self.ident || self.outstanding != Some(seq) {
            return false;
        }
        self.outstanding = None;
        self.status.received += 1;
        self.status.rtt = Some(now.saturating_duration_since(self.sent_at));
        self.status.misses = 0;
        self.status.replies = self.status.replies.saturating_add(1);
        self.status.last_reply = Some(now);
        if self.status.down {
            let enough = match self.action {
                MonitorAction::WaitRecover => true,
                MonitorAction::FailOver => self.status.replies >= self.threshold,
            };
            if enough {
                self.status.down = false;
                let after = self
                    .down_since
                    .take()
                    .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
                self.renegotiated = None;
                self.rounds = 0;
                self.events.push_back(Event::Up {
                    replies: self.status.replies,
                    after,
                });
                if !self.status.routes_active {
                    self.status.routes_active = true;
                    self.events.push_back(Event::RestoreRoutes);
                }
            }
        }
        true
    }

    fn missed(&mut self, now: Instant) {
        self.status.misses = self.status.misses.saturating_add(1);
        self.status.replies = 0;
        if !self.status.down {
            if self.status.misses < self.threshold {
                return;
            }
            self.status.down = true;
            self.down_since = Some(now);
            self.events.push_back(Event::Down {
                misses: self.status.misses,
            });
            if self.action == MonitorAction::FailOver && self.status.routes_active {
                self.status.routes_active = false;
                self.events.push_back(Event::WithdrawRoutes);
            }
            self.renegotiate(now);
            return;
        }
        let hold = RENEGOTIATE_HOLD.max(self.interval.saturating_mul(self.threshold));
        if self
            .renegotiated
            .is_none_or(|t| now.saturating_duration_since(t) >= hold)
        {
            self.renegotiate(now);
        }
    }

    fn renegotiate(&mut self, now: Instant) {
        self.renegotiated = Some(now);
        self.rounds += 1;
        self.events
            .push_back(Event::Renegotiate { round: self.rounds });
    }

    /// The next decision to act on.
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The state now.
    pub(crate) fn status(&self) -> Status {
        self.status
    }
}

/// The echo request `probe` as ICMP (`v6` false) or ICMPv6 message, into `buf` (at least
/// [`ECHO_LEN`] bytes); returns its length. The ICMPv6 checksum is left 0: the kernel fills it
/// in for raw ICMPv6 sockets (RFC 3542 §3.1).
pub(crate) fn echo_request(v6: bool, probe: Probe, buf: &mut [u8]) -> usize {
    let Some(out) = buf.get_mut(..ECHO_LEN) else {
        return 0;
    };
    out[0] = if v6 { 128 } else { 8 };
    out[1] = 0;
    out[2..4].fill(0);
    out[4..6].copy_from_slice(&probe.ident.to_be_bytes());
    out[6..8].copy_from_slice(&probe.seq.to_be_bytes());
    out[8..].copy_from_slice(PAYLOAD);
    if !v6 {
        let sum = checksum(out);
        out[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    ECHO_LEN
}

/// An echo reply read from a raw socket: (source, identifier, sequence). IPv4 raw sockets hand
/// over the IP header too (`v6` false), IPv6 ones the ICMPv6 message only, with the source from
/// `recvfrom`. Anything else (other ICMP types, fragments, short or malformed packets) is None.
pub(crate) fn parse_reply(v6: bool, packet: &[u8], from: IpAddr) -> Option<(IpAddr, u16, u16)> {
    let (src, icmp) = if v6 {
        (from, packet)
    } else {
        let first = *packet.first()?;
        if first >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(first & 0x0f) * 4;
        if ihl < 20 || *packet.get(9)? != 1 {
            return None;
        }
        // A fragment other than the first has no ICMP header.
        let frag = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]);
        if frag & 0x1fff != 0 {
            return None;
        }
        let s: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
        (IpAddr::from(s), packet.get(ihl..)?)
    };
    let reply_type = if v6 { 129 } else { 0 };
    if *icmp.first()? != reply_type || *icmp.get(1)? != 0 {
        return None;
    }
    let ident = u16::from_be_bytes([*icmp.get(4)?, *icmp.get(5)?]);
    let seq = u16::from_be_bytes([*icmp.get(6)?, *icmp.get(7)?]);
    Some((src, ident, seq))
}

/// One monitored tunnel, as the daemon serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The IPsec tunnel.
    pub(crate) tunnel: String,
    /// Its tunnel interface (a TUN device of the data plane).
    pub(crate) interface: String,
    /// Its IKE gateway (auto-key).
    pub(crate) gateway: Option<String>,
    /// The monitor, with its profile.
    pub(crate) monitor: TunnelMonitor,
}

/// What the monitor tasks share with the daemon.
#[derive(Debug, Clone)]
pub(crate) struct Links {
    pub(crate) log: SharedLog,
    pub(crate) routes: RouteBook,
    pub(crate) board: Board,
    /// Commands to the IKE task (renegotiation).
    pub(crate) ike: mpsc::Sender<Command>,
}

/// Whether the probes of `tunnel`'s monitor are outside every proxy ID of the tunnel (no
/// proxy ID has the source on its local side and the destination on its remote side): they
/// would never cross the tunnel, and the monitor would take a working tunnel down. Such a
/// monitor does not run (crate::served names it).
pub(crate) fn outside_proxy_ids(tunnel: &IpsecTunnel) -> bool {
    let Some(m) = &tunnel.monitor else {
        return false;
    };
    !tunnel
        .effective_proxy_ids()
        .iter()
        .any(|p| holds(&p.local, m.source) && holds(&p.remote, m.destination))
}

fn holds(spec: &AddressSpec, ip: IpAddr) -> bool {
    match spec {
        AddressSpec::Any => true,
        AddressSpec::Prefix(net) => net.contains(&ip),
        AddressSpec::Range(a, b) => a.is_ipv4() == ip.is_ipv4() && *a <= ip && ip <= *b,
    }
}

/// The monitored tunnels of `config` among `served` (the tunnels with a TUN device), without
/// those whose probes are outside the proxy IDs.
pub(crate) fn targets<'a>(config: &Config, served: impl Fn(&str) -> bool + 'a) -> Vec<Target> {
    config
        .ipsec_tunnels
        .values()
        .filter(|t| served(&t.name) && !outside_proxy_ids(t))
        .filter_map(|t| {
            Some(Target {
                tunnel: t.name.clone(),
                interface: t.tunnel_interface.clone(),
                gateway: match &t.keying {
                    Keying::AutoKey { ike_gateway, .. } => Some(ike_gateway.clone()),
                    Keying::ManualKey(_) => None,
                },
                monitor: t.monitor.clone()?,
            })
        })
        .collect()
}

/// Starts one task per target, numbered from `first` (each monitor of the daemon's life
/// gets its own number, so its own ICMP identifier); returns each tunnel's task.
pub(crate) fn spawn(
    targets: Vec<Target>,
    first: usize,
    links: &Links,
) -> Vec<(String, tokio::task::AbortHandle)> {
    let mut tasks = Vec::new();
    for (i, t) in targets.into_iter().enumerate() {
        // Distinct per monitor of this daemon (an odd multiplier is a bijection mod 2^16),
        // and likely distinct from another process's probes.
        let ident = (std::process::id() as u16) ^ ((first + i) as u16).wrapping_mul(0x9e37);
        let tunnel = t.tunnel.clone();
        tasks.push((
            tunnel,
            tokio::spawn(run(t, ident, links.clone())).abort_handle(),
        ));
    }
    tasks
}

/// `1 s`, `1.5 s`.
fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// The IO around one [`Machine`]: sockets, timer, routes, IKE task, log; runs until the
/// daemon stops.
async fn run(t: Target, ident: u16, links: Links) {
    let object = format!("ipsec-tunnel {}", t.tunnel);
    let m = &t.monitor;
    let p = &m.profile;
    let sockets = match IcmpProbe::open(m.source, &t.interface) {
        Ok(s) => s,
        Err(e) => {
            links.log.record(
                Severity::Error,
                &object,
                format!(
                    "tunnel monitor not started: {e}; no probes, no {}",
                    p.action
                ),
            );
            return;
        }
    };
    links.log.record(
        Severity::Info,
        &object,
        format!(
            "tunnel monitor started: an echo request to {} from {} through {} every {}; {} \
             unanswered in a row take the tunnel down by monitor (profile {}, action {})",
            m.destination,
            m.source,
            t.interface,
            secs(p.interval),
            p.threshold,
            p.name,
            p.action
        ),
    );
    // The first probe one interval after start: a tunnel brought up by the operator or by LAN
    // traffic meanwhile is negotiated by the side that was asked, not raced by the probes.
    let first = Instant::now() + p.interval;
    let mut machine = Machine::new(first, p.interval, p.threshold, p.action, ident);
    links.board.set(&t.tunnel, machine.status());
    let v6 = m.destination.is_ipv6();
    let mut buf = vec![0u8; 2048];
    let mut out = [0u8; ECHO_LEN];
    let mut send_failed = false;
    // Until the daemon stops (its routes are being removed: no more probes, nothing logged).
    while !links.routes.is_closed() {
        let deadline = tokio::time::Instant::from_std(machine.poll_timeout());
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                if let Some(probe) = machine.poll_probe(Instant::now()) {
                    let n = echo_request(v6, probe, &mut out);
                    match sockets.try_send(m.destination, &out[..n]) {
                        Ok(()) => send_failed = false,
                        // Counted as a miss when the next one is due; logged once per run
                        // of failures.
                        Err(e) if !send_failed => {
                            send_failed = true;
                            links.log.record(
                                Severity::Warning,
                                &object,
                                format!("tunnel monitor: cannot send an echo request to {} \
                                         through {}: {e}", m.destination, t.interface),
                            );
                        }
                        Err(_) => {}
                    }
                }
            }
            r = sockets.recv(&mut buf) => match r {
                Ok((n, from)) => {
                    if let Some((src, id, seq)) = buf.get(..n).and_then(|b| parse_reply(v6, b, from))
                        && src == m.destination
                    {
                        machine.handle_reply(Instant::now(), id, seq);
                    }
                }
                Err(e) => {
                    tracing::warn!("tunnel monitor of {}: receive: {e}", t.tunnel);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
        let events: Vec<Event> = std::iter::from_fn(|| machine.poll_event()).collect();
        if !events.is_empty() {
            act(&t, &links, &machine, &events).await;
        }
        links.board.set(&t.tunnel, machine.status());
    }
}

/// Carries out the machine's decisions and says so in the system log, one line per move.
async fn act(t: &Target, links: &Links, machine: &Machine, events: &[Event]) {
    let object = format!("ipsec-tunnel {}", t.tunnel);
    let m = &t.monitor;
    let p = &m.profile;
    let mut parts = Vec::new();
    let mut head = None;
    for e in events {
        match *e {
            Event::Down { misses } => {
                head = Some((
                    Severity::Error,
                    format!(
                        "down by tunnel monitor: {misses} echo requests to {} from {} \
                         unanswered (interval {}, threshold {}); action {}",
                        m.destination,
                        m.source,
                        secs(p.interval),
                        p.threshold,
                        p.action
                    ),
                ));
            }
            Event::WithdrawRoutes => {
                // IPv6 has no on-link fallback for probes bound to the interface: they keep
                // a host route through it (crate::routes).
                let pin = m.destination.is_ipv6().then_some(m.destination);
                let (done, pinned) = links.routes.withdraw(&t.interface, pin, &links.log);
                parts.push(if done.is_empty() {
                    format!(
                        "no route through {} to withdraw, traffic does not move",
                        t.interface
                    )
                } else {
                    format!(
                        "its routes withdrawn ({}), traffic to their destinations takes the \
                         route with the next-higher metric",
                        done.join(", ")
                    )
                });
                if let Some(p) = pinned {
                    parts.push(format!("the host route {p} keeps the probes on the tunnel"));
                }
            }
            Event::Renegotiate { round } => {
                if head.is_none() {
                    head = Some((
                        Severity::Warning,
                        format!(
                            "still down by tunnel monitor: {} echo requests to {} unanswered in \
                             a row",
                            machine.status().misses,
                            m.destination
                        ),
                    ));
                }
                parts.push(renegotiate(t, links, round).await);
            }
            Event::Up { replies, after } => {
                head = Some((
                    Severity::Info,
                    format!(
                        "up again by tunnel monitor: {replies} echo {} in a row from {} after \
                         {} down by monitor",
                        if replies == 1 { "reply" } else { "replies" },
                        m.destination,
                        secs(Duration::from_secs(after.as_secs()))
                    ),
                ));
            }
            Event::RestoreRoutes => {
                let done = links.routes.restore(&t.interface, &links.log);
                if !done.is_empty() {
                    parts.push(format!("its routes restored ({})", done.join(", ")));
                }
            }
        }
    }
    if let Some((severity, head)) = head {
        let line = if parts.is_empty() {
            head
        } else {
            format!("{head}: {}", parts.join("; "))
        };
        links.log.record(severity, &object, line);
    }
}

/// Asks the IKE task to renegotiate the tunnel. Round 1 rekeys its Child SAs (as `request vpn
/// rekey ipsec-sa`: make-before-break, so the old pair carries traffic until the new one is
/// up, also when the path comes back before the exchange ends; with no pair at all the probes
/// bring one up on demand). Later rounds of the same outage delete the IKE SA of its gateway
/// (as `clear vpn ike-sa gateway G`: it is silent), so that a new one is negotiated. Returns
/// what was done, for the log line.
async fn renegotiate(t: &Target, links: &Links, round: u32) -> String {
    let Some(gateway) = &t.gateway else {
        return "a manual-key tunnel has nothing to renegotiate".to_owned();
    };
    let (tx, rx) = oneshot::channel();
    let (command, what, after) = if round <= 1 {
        (
            Command::RekeyIpsecSa {
                tunnel: t.tunnel.clone(),
                reply: tx,
            },
            "renegotiating its IPsec SAs",
            "make-before-break",
        )
    } else {
        (
            Command::ClearIkeSa {
                gateway: Some(gateway.clone()),
                reply: tx,
            },
            "renegotiating the IKE SA of its ike-gateway",
            "a new one is negotiated on demand",
        )
    };
    if links.ike.try_send(command).is_err() {
        return format!("{what}: the IKE task did not take the request");
    }
    match tokio::time::timeout(Duration::from_secs(2), rx).await {
        Ok(Ok(Ok(done))) => format!("{what} ({done}, {after})"),
        Ok(Ok(Err(why))) => format!("{what}: {why}; the probes ask for new ones on demand"),
        _ => format!("{what}: the IKE task did not answer"),
    }
}

/// The monitors' states by tunnel name, for `show vpn tunnel`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Board(Arc<Mutex<BTreeMap<String, Status>>>);

impl Board {
    pub(crate) fn set(&self, tunnel: &str, status: Status) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(tunnel.to_owned(), status);
    }

    /// Forgets `tunnel`'s monitor (stopped by a reload).
    pub(crate) fn remove(&self, tunnel: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(tunnel);
    }

    /// The state of `tunnel`'s monitor, if it runs.
    pub(crate) fn get(&self, tunnel: &str) -> Option<Status> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(tunnel).copied()
    }

    /// Every running monitor's state by tunnel (for the metrics: one lock per scrape).
    pub(crate) fn all(&self) -> Vec<(String, Status)> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(t, s)| (t.clone(), *s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    /// Runs the machine from `t` for `probes` probes, answering each when `answer` is true;
    /// returns the events in order and the time after the last probe's interval.
    fn step(m: &mut Machine, t: &mut Instant, probes: u32, answer: bool) -> Vec<Event> {
        let mut events = Vec::new();
        for _ in 0..probes {
            let p = m.poll_probe(*t).expect("a probe is due");
            if answer {
                assert!(m.handle_reply(*t + Duration::from_millis(30), p.ident, p.seq));
            }
            *t += m.interval;
            events.extend(std::iter::from_fn(|| m.poll_event()));
        }
        events
    }

    fn machine(action: MonitorAction, threshold: u32) -> (Machine, Instant) {
        let t0 = Instant::now();
        (Machine::new(t0, SEC, threshold, action, 0x4242), t0)
    }

    #[test]
    fn probes_are_due_once_per_interval() {
        let (mut m, t0) = machine(MonitorAction::WaitRecover, 3);
        assert_eq!(m.poll_timeout(), t0);
        assert_eq!(m.poll_probe(t0).map(|p| p.seq), Some(0));
        assert_eq!(m.poll_probe(t0 + SEC / 2), None);
        assert_eq!(m.poll_timeout(), t0 + SEC);
        assert_eq!(m.poll_probe(t0 + SEC).map(|p| p.seq), Some(1));
        // The cadence holds when the timer fires late.
        assert_eq!(
            m.poll_probe(t0 + 2 * SEC + SEC / 10).map(|p| p.seq),
            Some(2)
        );
        assert_eq!(m.poll_timeout(), t0 + 3 * SEC);
        // After a long stall it restarts from now.
        assert!(m.poll_probe(t0 + 100 * SEC).is_some());
        assert_eq!(m.poll_timeout(), t0 + 101 * SEC);
    }

    #[test]
    fn threshold_misses_take_it_down_and_renegotiate() {
        let (mut m, mut t) = machine(MonitorAction::WaitRecover, 5);
        assert_eq!(step(&mut m, &mut t, 3, true), vec![]);
        // Probes 4..8 unanswered: the 5th miss is counted when probe 9 is due.
        assert_eq!(step(&mut m, &mut t, 5, false), vec![]);
        assert_eq!(m.status().misses, 4);
        assert!(!m.status().down);
        m.poll_probe(t);
        let ev: Vec<Event> = std::iter::from_fn(|| m.poll_event()).collect();
        assert_eq!(
            ev,
            vec![Event::Down { misses: 5 }, Event::Renegotiate { round: 1 }]
        );
        let s = m.status();
        assert!(s.down);
        assert!(s.routes_active, "wait-recover keeps the routes");
        assert_eq!(s.sent, 9);
        assert_eq!(s.received, 3);
    }

    #[test]
    fn wait_recover_is_up_at_the_first_reply() {
        let (mut m, mut t) = machine(MonitorAction::WaitRecover, 3);
        step(&mut m, &mut t, 4, false);
        assert!(m.status().down);
        let down_at = t - SEC;
        // The reply to the probe sent after the threshold is a reply: up again.
        let p = m.poll_probe(t).unwrap();
        assert!(m.handle_reply(t, p.ident, p.seq));
        let ev: Vec<Event> = std::iter::from_fn(|| m.poll_event()).collect();
        assert_eq!(
            ev,
            vec![Event::Up {
                replies: 1,
                after: t - down_at
            }]
        );
        assert!(!m.status().down);
        assert_eq!(m.status().misses, 0);
        assert_eq!(m.status().last_reply, Some(t));
    }

    #[test]
    fn fail_over_withdraws_and_restores_after_threshold_replies() {
        let (mut m, mut t) = machine(MonitorAction::FailOver, 3);
        step(&mut m, &mut t, 2, true);
        let ev = step(&mut m, &mut t, 4, false);
        assert_eq!(
            ev,
            vec![
                Event::Down { misses: 3 },
                Event::WithdrawRoutes,
                Event::Renegotiate { round: 1 }
            ]
        );
        assert!(!m.status().routes_active);
        // Two replies are not enough, and a miss in between starts the count again.
        assert_eq!(step(&mut m, &mut t, 2, true), vec![]);
        assert_eq!(m.status().replies, 2);
        assert_eq!(step(&mut m, &mut t, 1, false), vec![]);
        assert_eq!(step(&mut m, &mut t, 2, true), vec![]);
        assert!(m.status().down);
        assert!(!m.status().routes_active);
        let ev = step(&mut m, &mut t, 1, true);
        assert!(matches!(
            ev[..],
            [Event::Up { replies: 3, .. }, Event::RestoreRoutes]
        ));
        assert!(m.status().routes_active);
        assert!(!m.status().down);
        // And it can fail over again.
        let ev = step(&mut m, &mut t, 4, false);
        assert_eq!(ev[1], Event::WithdrawRoutes);
    }

    #[test]
    fn a_late_or_foreign_reply_does_not_count() {
        let (mut m, t0) = machine(MonitorAction::WaitRecover, 2);
        let p0 = m.poll_probe(t0).unwrap();
        let p1 = m.poll_probe(t0 + SEC).unwrap();
        // The answer to probe 0 after probe 1 left: too late (probe 0 is already a miss).
        assert!(!m.handle_reply(t0 + SEC, p0.ident, p0.seq));
        assert_eq!(m.status().misses, 1);
        // Another monitor's identifier.
        assert!(!m.handle_reply(t0 + SEC, p1.ident ^ 1, p1.seq));
        // Twice the same answer counts once.
        assert!(m.handle_reply(t0 + SEC, p1.ident, p1.seq));
        assert!(!m.handle_reply(t0 + SEC, p1.ident, p1.seq));
        assert_eq!(m.status().received, 1);
        assert_eq!(m.status().misses, 0);
    }

    /// The round-trip time is that of the last answered probe; a miss keeps the last one.
    #[test]
    fn the_round_trip_time_is_that_of_the_last_answer() {
        let (mut m, t0) = machine(MonitorAction::WaitRecover, 3);
        assert_eq!(m.status().rtt, None);
        let p = m.poll_probe(t0).unwrap();
        assert!(m.handle_reply(t0 + Duration::from_millis(42), p.ident, p.seq));
        assert_eq!(m.status().rtt, Some(Duration::from_millis(42)));
        let p = m.poll_probe(t0 + SEC).unwrap();
        // A foreign reply does not change it.
        assert!(!m.handle_reply(t0 + SEC, p.ident ^ 1, p.seq));
        assert_eq!(m.status().rtt, Some(Duration::from_millis(42)));
        assert!(m.handle_reply(t0 + SEC + Duration::from_millis(7), p.ident, p.seq));
        assert_eq!(m.status().rtt, Some(Duration::from_millis(7)));
        // Unanswered: counted as a miss at the next probe, the time stays the last measured.
        m.poll_probe(t0 + 2 * SEC).unwrap();
        m.poll_probe(t0 + 3 * SEC).unwrap();
        assert_eq!(m.status().misses, 1);
        assert_eq!(m.status().rtt, Some(Duration::from_millis(7)));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let t0 = Instant::now();
        let mut m =
            Machine::new(t0, SEC, 2, MonitorAction::FailOver, 7).with_first_seq(u16::MAX - 1);
        let mut t = t0;
        let seqs: Vec<u16> = (0..4)
            .map(|_| {
                let p = m.poll_probe(t).unwrap();
                assert!(m.handle_reply(t, p.ident, p.seq), "seq {}", p.seq);
                t += SEC;
                p.seq
            })
            .collect();
        assert_eq!(seqs, vec![u16::MAX - 1, u16::MAX, 0, 1]);
        assert_eq!(m.status().received, 4);
    }

    #[test]
    fn renegotiation_repeats_while_down_but_not_too_often() {
        let (mut m, mut t) = machine(MonitorAction::WaitRecover, 2);
        let ev = step(&mut m, &mut t, 3, false);
        assert_eq!(ev.last(), Some(&Event::Renegotiate { round: 1 }));
        // interval 1 s × threshold 2 < RENEGOTIATE_HOLD (30 s): the next round 30 misses on.
        let ev = step(&mut m, &mut t, 29, false);
        assert_eq!(ev, vec![]);
        let ev = step(&mut m, &mut t, 1, false);
        assert_eq!(ev, vec![Event::Renegotiate { round: 2 }]);
    }

    #[test]
    fn probes_outside_the_proxy_ids_are_found() {
        let check = |monitor: &str, proxy: &str| {
            let text = format!(
                r#"
[ike-gateway.gw]
local-address = "192.0.2.1"
peer-address = "192.0.2.2"
pre-shared-key = "0123456789abcdef0123"

[tunnel-interface."tunnel.1"]
address = "169.254.10.1/30"
zone = "vpn"

[ipsec-tunnel.t]
tunnel-interface = "tunnel.1"
ike-gateway = "gw"
{proxy}
tunnel-monitor = {{ {monitor} }}

[zone.vpn]
"#
            );
            let loaded =
                ferrosec_config::load_str(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
            outside_proxy_ids(&loaded.config.ipsec_tunnels["t"])
        };
        let lan = r#"proxy-id = [ { name = "l", local = "10.1.0.0/24", remote = "10.2.0.0/24" } ]"#;
        let range =
            r#"proxy-id = [ { name = "l", local = "10.1.0.1-10.1.0.9", remote = "10.2.0.0/24" } ]"#;
        let lans = r#"destination = "10.2.0.1", source = "10.1.0.1""#;
        let tunnel_addresses = r#"destination = "169.254.10.2", source = "169.254.10.1""#;
        assert!(!check(lans, lan));
        assert!(
            check(tunnel_addresses, lan),
            "the tunnel addresses are not in it"
        );
        assert!(
            !check(tunnel_addresses, ""),
            "no proxy ID: 0.0.0.0/0 both ways"
        );
        assert!(!check(lans, range));
        assert!(check(
            r#"destination = "10.2.0.1", source = "10.1.0.10""#,
            range
        ));
        // The source must be on the local side.
        assert!(check(
            r#"destination = "10.1.0.1", source = "10.2.0.1""#,
            lan
        ));
    }

    #[test]
    fn an_icmp_echo_request_is_pinned() {
        // Type 8, code 0, identifier 0xbeef, sequence 0x0102, then the 16-byte payload: the
        // checksum 0x149d was worked out by hand from those twelve words.
        let mut buf = [0u8; ECHO_LEN];
        let probe = Probe {
            ident: 0xbeef,
            seq: 0x0102,
        };
        assert_eq!(echo_request(false, probe, &mut buf), ECHO_LEN);
        assert_eq!(buf[..8], [8, 0, 0x14, 0x9d, 0xbe, 0xef, 0x01, 0x02]);
        assert_eq!(&buf[8..], PAYLOAD);
        // ICMPv6: type 128, the checksum left to the kernel.
        assert_eq!(echo_request(true, probe, &mut buf), ECHO_LEN);
        assert_eq!(buf[..8], [128, 0, 0, 0, 0xbe, 0xef, 0x01, 0x02]);
    }

    #[test]
    fn echo_request_round_trips_through_a_reply() {
        let mut buf = [0u8; 64];
        let probe = Probe {
            ident: 0xbeef,
            seq: 0x0102,
        };
        let n = echo_request(false, probe, &mut buf);
        assert_eq!(n, ECHO_LEN);
        assert_eq!(checksum(&buf[..n]), 0, "a valid checksum sums to 0");
        // The reply as an IPv4 raw socket hands it over: a 20-byte header, type 0.
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 10, 2, 0, 1, 10, 1, 0, 1,
        ];
        let mut icmp = buf[..n].to_vec();
        icmp[0] = 0;
        ip.extend_from_slice(&icmp);
        let any = IpAddr::from([0, 0, 0, 0]);
        assert_eq!(
            parse_reply(false, &ip, any),
            Some((IpAddr::from([10, 2, 0, 1]), 0xbeef, 0x0102))
        );
        // Our own request (type 8), a later fragment and every truncation are not replies.
        ip[20] = 8;
        assert_eq!(parse_reply(false, &ip, any), None);
        ip[20] = 0;
        ip[7] = 1;
        assert_eq!(parse_reply(false, &ip, any), None);
        ip[7] = 0;
        for len in 0..28 {
            assert_eq!(parse_reply(false, &ip[..len], any), None, "length {len}");
        }
        // IPv6: type 128 out, 129 back, the source from recvfrom.
        let n = echo_request(true, probe, &mut buf);
        assert_eq!(buf[0], 128);
        let mut reply = buf[..n].to_vec();
        reply[0] = 129;
        let from: IpAddr = "fd00:2::1".parse().unwrap();
        assert_eq!(
            parse_reply(true, &reply, from),
            Some((from, 0xbeef, 0x0102))
        );
        assert_eq!(parse_reply(true, &reply[..7], from), None);
        // A buffer too small gets nothing written.
        assert_eq!(echo_request(false, probe, &mut [0u8; 8]), 0);
    }
}
