//! Routes and addresses on the host through rtnetlink (`NETLINK_ROUTE`, rtnetlink(7)).
//!
//! The virtual router's static routes point remote prefixes at the tunnel interfaces (R-DP-5):
//! [`replace_route`] installs one (`RTM_NEWROUTE` with `NLM_F_CREATE | NLM_F_REPLACE`, so a
//! restart finds nothing in its way) and [`delete_route`] removes it again (`RTM_DELROUTE`).
//! The tunnel interfaces' IPv6 addresses are added the same way (`RTM_NEWADDR`).
//!
//! Every request is one synchronous exchange on a fresh `NETLINK_ROUTE` socket: the request
//! with `NLM_F_ACK`, then the kernel's answer read until its `NLMSG_ERROR` acknowledgement
//! (error 0) or refusal (a negative errno, with the kernel's extended-ack message when it gives
//! one). The kernel answers within the `sendmsg` call, so this takes microseconds; every wait
//! is bounded by [`ANSWER_WAIT`] all the same. The messages are built and parsed with
//! `netlink-packet-route`; this module holds no `unsafe`.
//!
//! Our routes carry protocol `static` (`RTPROT_STATIC`, "proto static" in `ip route`), sit in
//! the main table, have link scope and leave the device by index (`RTA_OIF`); the metric is
//! `RTA_PRIORITY`. The delete names the same destination, device, metric and protocol, so it
//! removes only the route we installed, never one of the same prefix that someone else added.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use netlink_packet_core::{
    ErrorBuffer, NLM_F_ACK, NLM_F_CAPPED, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NLMSG_DONE,
    NLMSG_ERROR, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, Parseable,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{LinkAttribute, LinkHeader, LinkLayerType, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol,
    RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::tun::TunError;

/// Longest the kernel's answer to one request is awaited.
const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// Receive buffer: a dump sends up to a page-sized datagram at a time; 32 KiB is plenty.
const RECV_BYTES: usize = 32 * 1024;
/// `RTM_NEWLINK`, the kernel's answer to `RTM_GETLINK`.
const RTM_NEWLINK: u16 = 16;
/// `RTM_NEWROUTE`, the kernel's answer to `RTM_GETROUTE`.
const RTM_NEWROUTE: u16 = 24;
/// `RTM_NEWNEIGH`, the kernel's answer to `RTM_GETNEIGH`.
const RTM_NEWNEIGH: u16 = 28;
/// `NLMSGERR_ATTR_MSG`: the extended-ack attribute with the kernel's message in words.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Length of `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;

/// A route of the virtual router on the host: `destination` through interface `interface`
/// with `metric`, in the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The destination prefix (host bits are ignored: `10.2.0.7/24` is `10.2.0.0/24`).
    pub destination: IpNet,
    /// The outgoing interface (a tunnel interface, `tunnel.1`, or a physical one).
    pub interface: String,
    /// The next hop (`RTA_GATEWAY`), for a route through a physical interface; `None`: the
    /// destination is on the link (always for a tunnel interface).
    pub next_hop: Option<IpAddr>,
    /// The metric (`RTA_PRIORITY`); the lowest wins.
    pub metric: u32,
    /// The preferred source address of packets that take it (`RTA_PREFSRC`), e.g. the
    /// address a configuration payload assigned, which the tunnel's selectors hold.
    pub source: Option<IpAddr>,
    /// The routing table (`RTA_TABLE`): [`MAIN_TABLE`] for the `default` virtual router, its
    /// own table for any other.
    pub table: u32,
}

/// The host's main routing table (`RT_TABLE_MAIN`).
pub const MAIN_TABLE: u32 = 254;

/// The metric of the `unreachable default` route that ends a virtual router's table (that of
/// Linux VRF devices): below it, every route of the table wins.
pub const UNREACHABLE_METRIC: u32 = 4_278_198_272;

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.next_hop {
            None => write!(
                f,
                "{} via {} metric {}",
                self.destination.trunc(),
                self.interface,
                self.metric
            )?,
            Some(gw) => write!(
                f,
                "{} via {gw} dev {} metric {}",
                self.destination.trunc(),
                self.interface,
                self.metric
            )?,
        }
        if self.table != MAIN_TABLE {
            write!(f, " table {}", self.table)?;
        }
        Ok(())
    }
}

/// Installs `route`, replacing a route to the same destination with the same metric (and, for
/// IPv4, the same table and type) if there is one.
pub fn replace_route(route: &Route) -> Result<(), TunError> {
    route_request(route, RouteOp::Replace).map_err(|e| TunError::Route {
        destination: route.destination.trunc().to_string(),
        name: route.interface.clone(),
        reason: e.to_string(),
    })
}

/// Removes `route` (installed by [`replace_route`]). A route that is already gone is an
/// error too (`No such process`, the kernel's ESRCH), so the caller can say so.
pub fn delete_route(route: &Route) -> Result<(), TunError> {
    route_request(route, RouteOp::Delete).map_err(|e| TunError::RouteRemove {
        destination: route.destination.trunc().to_string(),
        name: route.interface.clone(),
        reason: e.to_string(),
    })
}

/// Adds `addr`/`prefix_len` to interface `name` (`RTM_NEWADDR`); IPv6 addresses skip duplicate
/// address detection, as there is no one else on a tunnel interface.
pub(crate) fn add_address(name: &str, addr: IpAddr, prefix_len: u8) -> io::Result<()> {
    let mut nl = Rtnl::open()?;
    let index = nl.ifindex(name)?;
    nl.ack(new_address(index, addr, prefix_len))
}

/// The MTU of the path to `remote` as this host routes it (R-DP-8): the route's own `mtu`
/// when it has one (`ip route … mtu 1400`), else the MTU of the interface the route leaves by.
/// Asked as `ip route get` asks (`RTM_GETROUTE` for the address), then `RTM_GETLINK` for the
/// interface.
pub fn path_mtu(remote: IpAddr) -> io::Result<u32> {
    let mut nl = Rtnl::open()?;
    let route = nl.route_to(remote, None)?;
    if let Some(mtu) = route.mtu {
        return Ok(mtu);
    }
    let index = route.oif.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("the kernel named no interface for the route to {remote}"),
        )
    })?;
    nl.link(index)?.mtu.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("interface {index}: the kernel did not say its MTU"),
        )
    })
}

/// The kernel's answer to `ip route get`: what the route is and where it leaves.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RouteAnswer {
    /// A unicast route (not local, broadcast, unreachable …).
    pub(crate) unicast: bool,
    /// The interface it leaves by.
    pub(crate) oif: Option<u32>,
    /// Its next hop, when not on the link.
    pub(crate) gateway: Option<IpAddr>,
    /// Its own MTU (`mtu` on the route, or a path MTU learnt from ICMP).
    pub(crate) mtu: Option<u32>,
}

/// The kernel's answer to `RTM_GETLINK` for one interface.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LinkAnswer {
    /// An Ethernet interface (`ARPHRD_ETHER`).
    pub(crate) ethernet: bool,
    /// Its MTU.
    pub(crate) mtu: Option<u32>,
}

/// Whether a neighbour entry in `state` holds an address the kernel would send to.
fn usable(state: NeighbourState) -> bool {
    matches!(
        state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
    )
}

/// `IFLA_MTU` of an `RTM_NEWLINK` payload (`struct ifinfomsg`, then the attributes), read
/// straight from the attributes: the whole message (statistics, per-family data …) parsed
/// by `LinkMessage` cost more than the rest of a Child SA's installation.
fn link_mtu(payload: &[u8]) -> Option<u32> {
    const IFINFOMSG_LEN: usize = 16;
    const IFLA_MTU: u16 = 4;
    let mut rest = payload.get(IFINFOMSG_LEN..)?;
    while rest.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let ty = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff; // without NLA_F_* flags
        if len < 4 || len > rest.len() {
            return None;
        }
        if ty == IFLA_MTU && len >= 8 {
            return Some(u32::from_ne_bytes([rest[4], rest[5], rest[6], rest[7]]));
        }
        rest = rest.get((len + 3) & !3..).unwrap_or_default();
    }
    None
}

/// Adds `addr`/`prefix_len` to interface `name` (an address a configuration payload
/// assigned, on a tunnel interface); an address that is there already is replaced.
pub fn add_interface_address(name: &str, addr: IpAddr, prefix_len: u8) -> io::Result<()> {
    add_address(name, addr, prefix_len)
}

/// Removes `addr`/`prefix_len` from interface `name` (`RTM_DELADDR`).
pub fn remove_interface_address(name: &str, addr: IpAddr, prefix_len: u8) -> io::Result<()> {
    let mut nl = Rtnl::open()?;
    let index = nl.ifindex(name)?;
    let mut msg = AddressMessage::default();
    msg.header.family = family(addr);
    msg.header.prefix_len = prefix_len;
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(addr));
    msg.attributes.push(AddressAttribute::Address(addr));
    nl.ack(request(
        RouteNetlinkMessage::DelAddress(msg),
        NLM_F_REQUEST | NLM_F_ACK,
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouteOp {
    Replace,
    Delete,
}

fn route_request(route: &Route, op: RouteOp) -> io::Result<()> {
    let mut nl = Rtnl::open()?;
    let index = nl.ifindex(&route.interface)?;
    nl.ack(route_message(route, index, op))
}

/// The `RTM_NEWROUTE` (replace) or `RTM_DELROUTE` (delete) request for `route` leaving by
/// interface `index`.
fn route_message(route: &Route, index: u32, op: RouteOp) -> NetlinkMessage<RouteNetlinkMessage> {
    let dest = route.destination.trunc();
    let mut msg = RouteMessage::default();
    msg.header = RouteHeader {
        address_family: family(dest.addr()),
        destination_prefix_length: dest.prefix_len(),
        // Tables past 255 are only in RTA_TABLE (below), as `ip route … table N` sends them.
        table: u8::try_from(route.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC),
        protocol: RouteProtocol::Static,
        // A delete matches any scope and type (what `ip route del` asks for too).
        scope: match op {
            RouteOp::Replace if route.next_hop.is_some() => RouteScope::Universe,
            RouteOp::Replace => RouteScope::Link,
            RouteOp::Delete => RouteScope::NoWhere,
        },
        kind: match op {
            RouteOp::Replace => RouteType::Unicast,
            RouteOp::Delete => RouteType::Unspec,
        },
        ..RouteHeader::default()
    };
    if dest.prefix_len() > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dest.addr())));
    }
    msg.attributes.push(RouteAttribute::Table(route.table));
    msg.attributes.push(RouteAttribute::Oif(index));
    if let Some(gw) = route.next_hop {
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
    }
    msg.attributes.push(RouteAttribute::Priority(route.metric));
    if let (RouteOp::Replace, Some(src)) = (op, route.source) {
        msg.attributes
            .push(RouteAttribute::PrefSource(RouteAddress::from(src)));
    }
    let (payload, flags) = match op {
        RouteOp::Replace => (
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        ),
        RouteOp::Delete => (
            RouteNetlinkMessage::DelRoute(msg),
            NLM_F_REQUEST | NLM_F_ACK,
        ),
    };
    request(payload, flags)
}

/// The `RTM_NEWADDR` request for `addr`/`prefix_len` on interface `index`.
fn new_address(index: u32, addr: IpAddr, prefix_len: u8) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut msg = AddressMessage::default();
    msg.header.family = family(addr);
    msg.header.prefix_len = prefix_len;
    msg.header.index = index;
    msg.header.scope = AddressScope::Universe;
    if addr.is_ipv6() {
        msg.header.flags = AddressHeaderFlags::Nodad;
    }
    msg.attributes.push(AddressAttribute::Local(addr));
    msg.attributes.push(AddressAttribute::Address(addr));
    request(
        RouteNetlinkMessage::NewAddress(msg),
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// The `RTM_GETLINK` request for the interface called `name` (`if_nametoindex` through
/// netlink: it answers for the network namespace of the socket, and needs no `unsafe`).
fn get_link(name: &str) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
    request(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST | NLM_F_ACK)
}

pub(crate) fn request(
    payload: RouteNetlinkMessage,
    flags: u16,
) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    NetlinkMessage::new(header, NetlinkPayload::from(payload))
}

fn family(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// What one message of the kernel's answer means for the exchange.
#[derive(Debug)]
enum Answer<'a> {
    /// An answer that is not ours (another sequence number): skipped.
    Other,
    /// A message of the reply (`RTM_NEWLINK`, a dumped route …): its type and payload.
    Message(u16, &'a [u8]),
    /// The end: the acknowledgement, or the end of a dump.
    Done,
    /// The kernel refused the request.
    Refused(io::Error),
}

/// Reads one netlink message at the front of `buf` (the answer to request `seq`); returns what
/// it means and its aligned length (0 when `buf` holds no whole message).
fn parse_answer(buf: &[u8], seq: u32) -> (Answer<'_>, usize) {
    let Ok(msg) = NetlinkBuffer::new_checked(buf) else {
        return (Answer::Other, 0);
    };
    let len = usize::try_from(msg.length()).unwrap_or(usize::MAX);
    let aligned = len.saturating_add(3) & !3;
    if msg.sequence_number() != seq {
        return (Answer::Other, aligned);
    }
    let answer = match msg.message_type() {
        NLMSG_ERROR => match ErrorBuffer::new_checked(msg.payload()) {
            Ok(err) => match err.code() {
                None => Answer::Done,
                Some(code) => Answer::Refused(refusal(code.get(), msg.flags(), err.payload())),
            },
            Err(e) => Answer::Refused(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("malformed netlink error message: {e}"),
            )),
        },
        NLMSG_DONE => match msg
            .payload()
            .first_chunk::<4>()
            .map(|c| i32::from_ne_bytes(*c))
        {
            Some(code) if code < 0 => Answer::Refused(io::Error::from_raw_os_error(-code)),
            _ => Answer::Done,
        },
        kind => Answer::Message(kind, msg.payload()),
    };
    (answer, aligned)
}

/// The kernel's refusal in words: the errno, and the extended-ack message when there is one
/// ("Nexthop device is not up").
pub(crate) fn refusal(code: i32, flags: u16, after_code: &[u8]) -> io::Error {
    let os = io::Error::from_raw_os_error(code.saturating_abs());
    match ext_ack_message(flags, after_code) {
        Some(words) => io::Error::new(os.kind(), format!("{os}: {words}")),
        None => os,
    }
}

/// The `NLMSGERR_ATTR_MSG` of an extended acknowledgement: `after_code` is what follows the
/// error code, the request's header (and its payload unless `NLM_F_CAPPED`), then the TLVs
/// when `NLM_F_ACK_TLVS` is set.
fn ext_ack_message(flags: u16, after_code: &[u8]) -> Option<String> {
    const NLM_F_ACK_TLVS: u16 = 0x200;
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let request_len = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let len = u32::from_ne_bytes(*after_code.first_chunk::<4>()?);
        usize::try_from(len).ok()?
    };
    let mut tlvs = after_code.get(request_len.checked_add(3)? & !3..)?;
    while let Some(head) = tlvs.first_chunk::<4>() {
        let len = usize::from(u16::from_ne_bytes([head[0], head[1]]));
        let kind = u16::from_ne_bytes([head[2], head[3]]) & 0x3fff;
        let value = tlvs.get(4..len)?;
        if kind == NLMSGERR_ATTR_MSG {
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            let text = String::from_utf8_lossy(text).trim().to_owned();
            return (!text.is_empty()).then_some(text);
        }
        tlvs = tlvs.get(len.checked_add(3)? & !3..).unwrap_or_default();
    }
    None
}

/// One `NETLINK_ROUTE` socket and its sequence numbers.
pub(crate) struct Rtnl {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    pub(crate) fn open() -> io::Result<Self> {
        let socket = Socket::new(NETLINK_ROUTE)?;
        // The kernel's textual reason with an error, and no copy of our request in it.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        socket2::SockRef::from(&socket).set_read_timeout(Some(ANSWER_WAIT))?;
        Ok(Rtnl {
            socket,
            seq: 0,
            buf: Vec::with_capacity(RECV_BYTES),
        })
    }

    /// The index of interface `name` in the socket's network namespace.
    fn ifindex(&mut self, name: &str) -> io::Result<u32> {
        let mut index = None;
        self.exchange(get_link(name), |kind, payload| {
            if kind == RTM_NEWLINK
                && let Ok(h) = LinkHeader::parse(payload)
            {
                index = Some(h.index);
            }
        })?;
        index.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("interface {name}: the kernel did not say its index"),
            )
        })
    }

    /// The route to `remote` (from `local`, when given), as `ip route get REMOTE [from LOCAL]`.
    pub(crate) fn route_to(
        &mut self,
        remote: IpAddr,
        local: Option<IpAddr>,
    ) -> io::Result<RouteAnswer> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(remote);
        let full = if remote.is_ipv4() { 32 } else { 128 };
        msg.header.destination_prefix_length = full;
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(remote)));
        if let Some(local) = local {
            msg.header.source_prefix_length = full;
            msg.attributes
                .push(RouteAttribute::Source(RouteAddress::from(local)));
        }
        let mut answer = RouteAnswer::default();
        self.ask(RouteNetlinkMessage::GetRoute(msg), |kind, payload| {
            if kind != RTM_NEWROUTE {
                return;
            }
            let Ok(r) = RouteMessage::parse(payload) else {
                return;
            };
            answer.unicast = r.header.kind == RouteType::Unicast;
            for a in r.attributes {
                match a {
                    RouteAttribute::Oif(i) => answer.oif = Some(i),
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => {
                        answer.gateway = Some(g.into())
                    }
                    RouteAttribute::Gateway(RouteAddress::Inet6(g)) => {
                        answer.gateway = Some(g.into())
                    }
                    RouteAttribute::Metrics(m) => {
                        answer.mtu = m.iter().find_map(|x| match x {
                            RouteMetric::Mtu(v) if *v > 0 => Some(*v),
                            _ => None,
                        })
                    }
                    _ => {}
                }
            }
        })?;
        Ok(answer)
    }

    /// Interface `index`: whether it is Ethernet, and its MTU.
    pub(crate) fn link(&mut self, index: u32) -> io::Result<LinkAnswer> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        let mut answer = LinkAnswer::default();
        self.ask(RouteNetlinkMessage::GetLink(link), |kind, payload| {
            if kind == RTM_NEWLINK {
                answer.ethernet = LinkHeader::parse(payload)
                    .is_ok_and(|h| h.link_layer_type == LinkLayerType::Ether);
                answer.mtu = link_mtu(payload);
            }
        })?;
        Ok(answer)
    }

    /// The link-layer (Ethernet) address of neighbour `addr` on interface `index`, as `ip
    /// neigh get` answers: `None` when there is no entry, or none the kernel would send to
    /// (incomplete, failed, no ARP).
    pub(crate) fn neighbour(&mut self, index: u32, addr: IpAddr) -> io::Result<Option<[u8; 6]>> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family(addr);
        msg.header.ifindex = index;
        msg.attributes
            .push(NeighbourAttribute::Destination(match addr {
                IpAddr::V4(a) => NeighbourAddress::Inet(a),
                IpAddr::V6(a) => NeighbourAddress::Inet6(a),
            }));
        let mut mac = None;
        let asked = self.ask(RouteNetlinkMessage::GetNeighbour(msg), |kind, payload| {
            if kind != RTM_NEWNEIGH {
                return;
            }
            let Ok(n) = NeighbourMessage::parse(payload) else {
                return;
            };
            if !usable(n.header.state) {
                return;
            }
            mac = n.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::LinkLayerAddress(m) => <[u8; 6]>::try_from(&m[..]).ok(),
                _ => None,
            });
        });
        match asked {
            // No entry (yet): the kernel resolves it when it sends.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            r => r.map(|()| mac),
        }
    }

    /// Asks the kernel `question` (a `GET` request, acknowledged) and hands each message of
    /// the answer to `on_message`.
    fn ask(
        &mut self,
        question: RouteNetlinkMessage,
        on_message: impl FnMut(u16, &[u8]),
    ) -> io::Result<()> {
        self.exchange(request(question, NLM_F_REQUEST | NLM_F_ACK), on_message)
    }

    /// Sends `msg` and waits for the acknowledgement.
    pub(crate) fn ack(&mut self, msg: NetlinkMessage<RouteNetlinkMessage>) -> io::Result<()> {
        self.exchange(msg, |_, _| {})
    }

    /// Sends `msg` and reads the answer up to its end (acknowledgement, end of dump or
    /// refusal), handing every other message of the answer to `on_message`.
    fn exchange(
        &mut self,
        mut msg: NetlinkMessage<RouteNetlinkMessage>,
        mut on_message: impl FnMut(u16, &[u8]),
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        msg.header.sequence_number = self.seq;
        msg.finalize();
        let mut bytes = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut bytes);
        let kernel = SocketAddr::new(0, 0);
        self.socket.send_to(&bytes, &kernel, 0)?;
        let deadline = Instant::now() + ANSWER_WAIT;
        while Instant::now() < deadline {
            self.buf.clear();
            // MSG_TRUNC: the datagram's real length, to tell a truncated one.
            let (n, from) = match self.socket.recv_from(&mut self.buf, libc::MSG_TRUNC) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break, // SO_RCVTIMEO
                Err(e) => return Err(e),
            };
            if from.port_number() != 0 {
                continue; // not from the kernel
            }
            if n > self.buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "netlink answer larger than the receive buffer",
                ));
            }
            let mut rest = self.buf.as_slice();
            while !rest.is_empty() {
                let (answer, len) = parse_answer(rest, self.seq);
                match answer {
                    Answer::Done => return Ok(()),
                    Answer::Refused(e) => return Err(e),
                    Answer::Message(kind, payload) => on_message(kind, payload),
                    Answer::Other => {}
                }
                if len == 0 {
                    break;
                }
                rest = rest.get(len..).unwrap_or_default();
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no answer from the kernel (netlink) within {} s",
                ANSWER_WAIT.as_secs()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use netlink_packet_core::{Emitable, NLM_F_DUMP};

    fn bytes(mut msg: NetlinkMessage<RouteNetlinkMessage>) -> Vec<u8> {
        msg.finalize();
        let mut b = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut b);
        b
    }

    fn route(dest: &str, metric: u32) -> Route {
        Route {
            destination: dest.parse().unwrap(),
            interface: "tunnel.1".to_owned(),
            metric,
            source: None,
            next_hop: None,
            table: MAIN_TABLE,
        }
    }

    /// The attributes of a serialized route request, parsed back.
    fn route_of(b: &[u8]) -> (u16, u16, RouteMessage) {
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(b).unwrap();
        let kind = msg.payload.message_type();
        let flags = msg.header.flags;
        match msg.payload {
            NetlinkPayload::InnerMessage(
                RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r),
            ) => (kind, flags, r),
            other => panic!("not a route message: {other:?}"),
        }
    }

    #[test]
    fn replace_ipv4_route_message() {
        let b = bytes(route_message(
            &route("10.2.0.7/24", 20),
            7,
            RouteOp::Replace,
        ));
        // struct nlmsghdr, then struct rtmsg at 16: family, dst_len, src_len, tos, table,
        // protocol, scope, type.
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 24, "RTM_NEWROUTE");
        assert_eq!(
            u16::from_ne_bytes([b[6], b[7]]),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
        );
        assert_eq!(&b[16..24], &[2, 24, 0, 0, 254, 4, 253, 1]);
        let (_, _, r) = route_of(&b);
        assert_eq!(
            r.attributes,
            vec![
                RouteAttribute::Destination(RouteAddress::Inet("10.2.0.0".parse().unwrap())),
                RouteAttribute::Table(254),
                RouteAttribute::Oif(7),
                RouteAttribute::Priority(20),
            ]
        );
    }

    /// A virtual router's own table: past 255 it is only in RTA_TABLE (the header says
    /// RT_TABLE_UNSPEC), below 256 in both, as `ip route … table N` sends it.
    #[test]
    fn a_routers_table_goes_in_the_attribute() {
        for (table, header) in [(1001, 0), (200, 200)] {
            let r = Route {
                table,
                ..route("10.2.0.0/24", 10)
            };
            let b = bytes(route_message(&r, 7, RouteOp::Replace));
            let (_, _, m) = route_of(&b);
            assert_eq!(m.header.table, header);
            assert!(m.attributes.contains(&RouteAttribute::Table(table)));
            let b = bytes(route_message(&r, 7, RouteOp::Delete));
            let (_, _, m) = route_of(&b);
            assert!(
                m.attributes.contains(&RouteAttribute::Table(table)),
                "the delete names it too"
            );
        }
        let r = Route {
            table: 1001,
            ..route("10.2.0.0/24", 10)
        };
        assert_eq!(
            r.to_string(),
            "10.2.0.0/24 via tunnel.1 metric 10 table 1001"
        );
    }

    #[test]
    fn delete_ipv6_route_message() {
        let b = bytes(route_message(&route("fd00:2::/64", 10), 3, RouteOp::Delete));
        let (kind, flags, r) = route_of(&b);
        assert_eq!(kind, 25, "RTM_DELROUTE");
        assert_eq!(
            flags,
            NLM_F_REQUEST | NLM_F_ACK,
            "no create or replace in a delete"
        );
        assert_eq!(r.header.address_family, AddressFamily::Inet6);
        assert_eq!(r.header.destination_prefix_length, 64);
        assert_eq!(r.header.protocol, RouteProtocol::Static);
        assert_eq!(r.header.scope, RouteScope::NoWhere);
        assert_eq!(r.header.kind, RouteType::Unspec);
        assert_eq!(
            r.attributes,
            vec![
                RouteAttribute::Destination(RouteAddress::Inet6("fd00:2::".parse().unwrap())),
                RouteAttribute::Table(254),
                RouteAttribute::Oif(3),
                RouteAttribute::Priority(10),
            ]
        );
    }

    #[test]
    fn default_route_has_no_destination_attribute() {
        let b = bytes(route_message(&route("0.0.0.0/0", 1), 2, RouteOp::Replace));
        let (_, _, r) = route_of(&b);
        assert_eq!(r.header.destination_prefix_length, 0);
        assert!(
            !r.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Destination(_)))
        );
    }

    #[test]
    fn ipv6_address_message_skips_dad() {
        let a: IpAddr = "fd00:99::1".parse().unwrap();
        let b = bytes(new_address(5, a, 64));
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 20, "RTM_NEWADDR");
        // struct ifaddrmsg at 16: family, prefixlen, flags, scope, index.
        assert_eq!(&b[16..20], &[10, 64, 2, 0]);
        assert_eq!(u32::from_ne_bytes([b[20], b[21], b[22], b[23]]), 5);
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&b).unwrap();
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(m)) = msg.payload else {
            panic!("not an address message");
        };
        assert!(m.attributes.contains(&AddressAttribute::Address(a)));
        assert!(m.attributes.contains(&AddressAttribute::Local(a)));
    }

    #[test]
    fn get_link_names_the_interface() {
        let b = bytes(get_link("tunnel.7"));
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 18, "RTM_GETLINK");
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&b).unwrap();
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetLink(m)) = msg.payload else {
            panic!("not a link message");
        };
        assert_eq!(m.attributes, vec![LinkAttribute::IfName("tunnel.7".into())]);
    }

    /// An `NLMSG_ERROR` answer to request `seq` with `code`, capped, with an extended-ack
    /// message when `words` is given.
    fn error_answer(seq: u32, code: i32, words: Option<&str>) -> Vec<u8> {
        let mut payload = code.to_ne_bytes().to_vec();
        let mut request = vec![0u8; NLMSG_HDRLEN]; // the request's header (capped)
        request[..4].copy_from_slice(&44u32.to_ne_bytes());
        payload.extend_from_slice(&request);
        let mut flags = NLM_F_CAPPED;
        if let Some(w) = words {
            flags |= 0x200;
            let value = [w.as_bytes(), &[0]].concat();
            let len = u16::try_from(4 + value.len()).unwrap();
            payload.extend_from_slice(&len.to_ne_bytes());
            payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
            payload.extend_from_slice(&value);
            while !payload.len().is_multiple_of(4) {
                payload.push(0);
            }
        }
        let len = u32::try_from(NLMSG_HDRLEN + payload.len()).unwrap();
        let mut b = Vec::new();
        b.extend_from_slice(&len.to_ne_bytes());
        b.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&payload);
        b
    }

    #[test]
    fn acknowledgement_ends_the_exchange() {
        let b = error_answer(9, 0, None);
        let (answer, len) = parse_answer(&b, 9);
        assert!(matches!(answer, Answer::Done), "{answer:?}");
        assert_eq!(len, b.len());
        let (answer, len) = parse_answer(&b, 8);
        assert!(
            matches!(answer, Answer::Other),
            "another request's: {answer:?}"
        );
        assert_eq!(len, b.len());
    }

    #[test]
    fn refusal_in_words() {
        let b = error_answer(3, -libc::ENODEV, None);
        let (Answer::Refused(e), _) = parse_answer(&b, 3) else {
            panic!("not a refusal");
        };
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
        assert!(e.to_string().contains("No such device"), "{e}");

        let b = error_answer(4, -libc::ENETDOWN, Some("Nexthop device is not up"));
        let (Answer::Refused(e), _) = parse_answer(&b, 4) else {
            panic!("not a refusal");
        };
        let text = e.to_string();
        assert!(text.contains("Network is down"), "{text}");
        assert!(text.ends_with(": Nexthop device is not up"), "{text}");
    }

    #[test]
    fn truncated_answers_do_not_panic() {
        let b = error_answer(
            4,
            -libc::EINVAL,
            Some("Invalid prefix for given prefix length"),
        );
        for n in 0..b.len() {
            let _ = parse_answer(&b[..n], 4);
            let _ = ext_ack_message(0x200, &b[20..n.max(20)]);
        }
        let (answer, len) = parse_answer(&b[..3], 4);
        assert!(
            matches!(answer, Answer::Other) && len == 0,
            "{answer:?} {len}"
        );
    }

    #[test]
    fn the_mtu_is_read_from_a_link_answer() {
        let mut m = LinkMessage::default();
        m.header.index = 7;
        m.attributes.push(LinkAttribute::IfName("wan0".into()));
        m.attributes.push(LinkAttribute::TxQueueLen(1000));
        m.attributes.push(LinkAttribute::Mtu(1438));
        let mut b = vec![0u8; m.buffer_len()];
        m.emit(&mut b);
        assert_eq!(link_mtu(&b), Some(1438));
        // Without it, truncated, or with a length that lies: none, and no panic.
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName("wan0".into()));
        let mut c = vec![0u8; m.buffer_len()];
        m.emit(&mut c);
        assert_eq!(link_mtu(&c), None);
        for n in 0..b.len() {
            let _ = link_mtu(&b[..n]);
        }
        let mut lie = b.clone();
        lie[16] = 0xff;
        assert_eq!(link_mtu(&lie), None);
    }

    #[test]
    fn display_names_prefix_interface_and_metric() {
        assert_eq!(
            route("10.2.0.9/24", 15).to_string(),
            "10.2.0.0/24 via tunnel.1 metric 15"
        );
    }

    // ---- as root, in a network namespace of its own --------------------------------------

    /// The routes of the main table through interface `index` that carry protocol static:
    /// (destination, metric).
    fn our_routes(nl: &mut Rtnl, index: u32) -> Vec<(IpNet, u32)> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut msg = RouteMessage::default();
            msg.header.address_family = family;
            let req = request(
                RouteNetlinkMessage::GetRoute(msg),
                NLM_F_REQUEST | NLM_F_DUMP,
            );
            nl.exchange(req, |kind, payload| {
                if kind != 24 {
                    return;
                }
                let r = RouteMessage::parse(payload).expect("a route the crate can parse");
                let has = |a: &RouteAttribute| r.attributes.contains(a);
                if r.header.table != RouteHeader::RT_TABLE_MAIN
                    || r.header.protocol != RouteProtocol::Static
                    || !has(&RouteAttribute::Oif(index))
                {
                    return;
                }
                let dest = r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
                    RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
                    _ => None,
                });
                let metric = r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Priority(m) => Some(*m),
                    _ => None,
                });
                if let (Some(d), Some(m)) = (dest, metric) {
                    out.push((
                        IpNet::new(d, r.header.destination_prefix_length).unwrap(),
                        m,
                    ));
                }
            })
            .expect("route dump");
        }
        out.sort();
        out
    }

    /// The addresses of interface `index` (any family).
    fn addresses(nl: &mut Rtnl, index: u32) -> Vec<IpAddr> {
        let req = request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_REQUEST | NLM_F_DUMP,
        );
        let mut out = Vec::new();
        nl.exchange(req, |kind, payload| {
            if kind != 20 {
                return;
            }
            let Ok(m) = AddressMessage::parse(payload) else {
                return;
            };
            if m.header.index == index {
                out.extend(m.attributes.iter().filter_map(|a| match a {
                    AddressAttribute::Address(a) => Some(*a),
                    _ => None,
                }));
            }
        })
        .expect("address dump");
        out
    }

    /// Creates a TUN device with an IPv4 and an IPv6 address inside a fresh network namespace
    /// (on a thread of its own: the namespace, the device and the routes vanish with it),
    /// installs an IPv4 and an IPv6 route through it, reads them back, replaces one, deletes
    /// both and checks they are gone.
    #[test]
    fn routes_through_a_tun_device_as_root() {
        if !crate::testutil::is_root() {
            eprintln!("creating network namespaces and TUN devices needs root; skipped");
            return;
        }
        crate::testutil::in_fresh_netns(|| {
            let v4: IpAddr = "10.99.0.1".parse().unwrap();
            let v6: IpAddr = "fd00:99::1".parse().unwrap();
            let tun = crate::Tun::create("fstest0", 1400, &[(v4, 24), (v6, 64)])
                .expect("a TUN device in the new namespace");
            let mut nl = Rtnl::open().unwrap();
            let index = nl.ifindex(tun.name()).unwrap();
            let addrs = addresses(&mut nl, index);
            assert!(addrs.contains(&v4), "IPv4 address on the device: {addrs:?}");
            assert!(addrs.contains(&v6), "IPv6 address on the device: {addrs:?}");

            // The path MTU follows the device's MTU, which never exceeds the configured one.
            let peer4: IpAddr = "10.99.0.2".parse().unwrap();
            let peer6: IpAddr = "fd00:99::2".parse().unwrap();
            assert_eq!(path_mtu(peer4).unwrap(), 1400);
            tun.set_mtu(1300).unwrap();
            assert_eq!((path_mtu(peer4).unwrap(), tun.current_mtu()), (1300, 1300));
            assert_eq!(path_mtu(peer6).unwrap(), 1300);
            tun.set_mtu(9000).unwrap();
            assert_eq!((path_mtu(peer4).unwrap(), tun.current_mtu()), (1400, 1400));
            assert!(
                path_mtu("203.0.113.9".parse().unwrap()).is_err(),
                "no route, no MTU"
            );

            let r4 = Route {
                destination: "10.2.0.0/24".parse().unwrap(),
                interface: "fstest0".into(),
                metric: 20,
                source: None,
                next_hop: None,
                table: MAIN_TABLE,
            };
            let r6 = Route {
                destination: "fd00:2::/64".parse().unwrap(),
                interface: "fstest0".into(),
                metric: 30,
                source: None,
                next_hop: None,
                table: MAIN_TABLE,
            };
            assert_eq!(our_routes(&mut nl, index), vec![], "nothing before");
            replace_route(&r4).unwrap();
            replace_route(&r6).unwrap();
            let want = vec![(r4.destination, 20), (r6.destination, 30)];
            assert_eq!(our_routes(&mut nl, index), want);
            // Installing again (a restart) replaces rather than fails.
            replace_route(&r4).unwrap();
            replace_route(&r6).unwrap();
            assert_eq!(our_routes(&mut nl, index), want, "replaced, not doubled");

            delete_route(&r4).unwrap();
            delete_route(&r6).unwrap();
            assert_eq!(our_routes(&mut nl, index), vec![], "both gone");
            let again = delete_route(&r4).expect_err("a route that is gone cannot be deleted");
            assert!(
                again
                    .to_string()
                    .starts_with("cannot remove route 10.2.0.0/24 via fstest0: "),
                "{again}"
            );
            let err = replace_route(&Route {
                interface: "fsnothere0".into(),
                ..r4.clone()
            })
            .expect_err("no such interface");
            assert!(
                err.to_string()
                    .starts_with("cannot install route 10.2.0.0/24 via fsnothere0: No such device"),
                "{err}"
            );
            drop(tun);
        });
    }
}
