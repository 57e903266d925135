//! Inbound raw ESP dropped before the kernel's IP input, once the packet ring has read it.
//!
//! The packet ring ([`crate::EspRing`]) copies each ESP packet sent to its address as the
//! interface hands it to the network stack. The kernel then still takes the packet through its
//! IP input for nobody: a route lookup (protocol 50 has no early demultiplexing, so this is the
//! slow path every time), the local delivery, a clone for the raw ESP socket and that socket's
//! filter, which drops it. On the benchmark's two gateways this was the largest part of what
//! the receiving side still cost.
//!
//! An [`EspEarlyDrop`] ends it at the door: an nf_tables table of its own with one chain on the
//! prerouting hook at priority -500 (before connection tracking's defragmentation at -400, and
//! before the raw, mangle, nat and filter priorities a host's own rules use) and one rule:
//! over IPv4 (table family `ip`) `ip protocol esp ip daddr LOCAL counter drop`; over IPv6
//! (family `ip6`) `ip6 nexthdr esp ip6 daddr LOCAL counter drop`, which matches ESP right
//! after the IPv6 header, as the ring takes it, and lets fragments (next header 44) and other
//! extension headers through to the kernel, which reassembles them for the raw socket. `nft list ruleset` shows it, with the
//! packets it has counted and a comment saying what it is for.
//!
//! The table is the daemon's alone (`NFT_TABLE_F_OWNER`, kernel 5.12): no other process may
//! change it, and the kernel deletes it as soon as the netlink socket that made it is closed,
//! when the [`EspEarlyDrop`] is dropped or when the process ends however it ends. A daemon that
//! crashed or was killed leaves no rule that would drop ESP nobody reads.

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use netlink_packet_core::{Emitable, ErrorBuffer};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NLMSG_ERROR, NetlinkBuffer,
    NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, Cmp, DataAttribute, Expressions, Hook, Immediate, InetHookNumber,
    NfTablesMessage, Operator, Payload, Register, RuleAttribute, RuleMessage, TableAttribute,
    TableFlags, TableMessage, Verdict, VerdictAttribute,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use crate::raw::IPPROTO_ESP;
use crate::route::refusal;

/// The priority of the prerouting chain: before connection tracking's defragmentation (-400)
/// and the priorities hosts' rules use (raw -300 and above).
const PRIORITY: i32 = -500;
/// The chain's name in each table.
const CHAIN: &str = "raw-esp-in";
/// How long the kernel may take to answer the batch.
const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// `NFNL_SUBSYS_NFTABLES`: the batch's resource id.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NF_DROP`, the verdict.
const NF_DROP: u32 = 0;
/// `NF_ACCEPT`, the chain's policy.
const NF_ACCEPT: u32 = 1;
/// `NFT_PAYLOAD_NETWORK_HEADER`: offsets from the IP header.
const NETWORK_HEADER: u32 = 1;
/// `NFTNL_UDATA_TABLE_COMMENT`: the comment `nft list` prints with a table.
const UDATA_TABLE_COMMENT: u8 = 0;

/// Tables made by this process so far, to name each one apart.
static TABLES: AtomicU32 = AtomicU32::new(0);

/// The nf_tables table that drops raw ESP to one address before IP input, for as long as
/// this value lives (see the module's documentation).
pub struct EspEarlyDrop {
    /// The netlink socket that made the table: closing it deletes the table.
    _socket: Socket,
    table: String,
    local: IpAddr,
}

impl std::fmt::Debug for EspEarlyDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EspEarlyDrop")
            .field("table", &self.table)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl EspEarlyDrop {
    /// Makes the table that drops ESP sent to `local` at prerouting, in the network namespace
    /// of the calling thread. Needs CAP_NET_ADMIN and nf_tables. Only for an address whose
    /// ESP a packet ring already reads: whatever the table drops, nothing else receives.
    pub fn install(local: IpAddr) -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        socket2::SockRef::from(&socket).set_read_timeout(Some(ANSWER_WAIT))?;
        let n = TABLES.fetch_add(1, Ordering::Relaxed);
        let table = format!("ferrosec_esp_{}_{n}", std::process::id());
        let (bytes, acks) = batch(&table, local, std::process::id());
        socket.send_to(&bytes, &SocketAddr::new(0, 0), 0)?;
        await_acks(&socket, acks)?;
        Ok(EspEarlyDrop {
            _socket: socket,
            table,
            local,
        })
    }

    /// The table's name (in [`Self::family`]).
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The table's family as `nft` names it: `ip` or `ip6`.
    pub fn family(&self) -> &'static str {
        family_name(self.local)
    }

    /// The address whose ESP the table drops.
    pub fn local(&self) -> IpAddr {
        self.local
    }
}

/// The family of the table for ESP to `local`, as `nft` names it.
pub(crate) fn family_name(local: IpAddr) -> &'static str {
    match local {
        IpAddr::V4(_) => "ip",
        IpAddr::V6(_) => "ip6",
    }
}

/// The batch that makes the table, its chain and its rule, and the sequence numbers of the
/// messages the kernel acknowledges (1, 2, 3; the batch's begin and end are 0 and 4).
fn batch(table: &str, local: IpAddr, pid: u32) -> (Vec<u8>, [u32; 3]) {
    let comment = format!(
        "raw ESP to {local}: read by ferrosec's packet ring (pid {pid}), dropped here before IP input"
    );
    let control = |m: ControlMessage| {
        NetfilterMessage::new(
            NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, NFNL_SUBSYS_NFTABLES),
            m,
        )
    };
    let family = match local {
        IpAddr::V4(_) => NetfilterProtoFamily::IPv4,
        IpAddr::V6(_) => NetfilterProtoFamily::IPv6,
    };
    let nft = |m: NfTablesMessage| NetfilterMessage::new(NetfilterHeader::new(family, 0, 0), m);
    // Where the header says ESP follows, and the destination address.
    let (protocol, destination, address) = match local {
        IpAddr::V4(a) => ((9, 1), (16, 4), a.octets().to_vec()),
        IpAddr::V6(a) => ((6, 1), (24, 16), a.octets().to_vec()),
    };
    let payload = |offset, len| {
        Expressions::Payload(vec![
            Payload::DestinationRegister(Register::Reg1),
            Payload::Base(NETWORK_HEADER),
            Payload::Offset(offset),
            Payload::Len(len),
        ])
        .into()
    };
    let equals = |value: Vec<u8>| {
        Expressions::Cmp(vec![
            Cmp::SourceRegister(Register::Reg1),
            Cmp::Op(Operator::Equal),
            Cmp::Data(DataAttribute::Value(value)),
        ])
        .into()
    };
    let create = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
    let messages = [
        (control(ControlMessage::BatchBegin), NLM_F_REQUEST),
        (
            nft(NfTablesMessage::NewTable(TableMessage {
                attributes: vec![
                    TableAttribute::Name(table.to_owned()),
                    TableAttribute::Flags(TableFlags::Owner),
                    TableAttribute::UserData(comment_tlv(&comment)),
                ],
            })),
            create | NLM_F_EXCL,
        ),
        (
            nft(NfTablesMessage::NewChain(ChainMessage {
                attributes: vec![
                    ChainAttribute::Table(table.to_owned()),
                    ChainAttribute::Name(CHAIN.to_owned()),
                    ChainAttribute::Hook(vec![
                        Hook::Number(InetHookNumber::PreRouting.into()),
                        Hook::Priority(PRIORITY.cast_unsigned()),
                    ]),
                    ChainAttribute::Type("filter".to_owned()),
                    ChainAttribute::Policy(NF_ACCEPT),
                ],
            })),
            create,
        ),
        (
            nft(NfTablesMessage::NewRule(RuleMessage {
                attributes: vec![
                    RuleAttribute::Table(table.to_owned()),
                    RuleAttribute::Chain(CHAIN.to_owned()),
                    RuleAttribute::Expressions(vec![
                        payload(protocol.0, protocol.1), // protocol, next header
                        equals(vec![IPPROTO_ESP as u8]),
                        payload(destination.0, destination.1),
                        equals(address),
                        Expressions::Other {
                            expression_type: "counter".to_owned(),
                            attributes: Vec::new(),
                        }
                        .into(),
                        Expressions::Immediate(vec![
                            Immediate::DestinationRegister(Register::Verdict),
                            Immediate::Data(DataAttribute::Verdict(vec![VerdictAttribute::Code(
                                Verdict::Other(NF_DROP),
                            )])),
                        ])
                        .into(),
                    ]),
                ],
            })),
            create | NLM_F_APPEND,
        ),
        (control(ControlMessage::BatchEnd), NLM_F_REQUEST),
    ];
    let mut bytes = Vec::new();
    for (seq, (inner, flags)) in (0u32..).zip(messages) {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(inner));
        msg.finalize();
        let at = bytes.len();
        bytes.resize(at + msg.buffer_len(), 0);
        msg.emit(&mut bytes[at..]);
    }
    (bytes, [1, 2, 3])
}

/// A table comment as nft writes it in the table's user data: type, length, text with its NUL
/// (at most 128 bytes with the NUL, nft's own limit).
fn comment_tlv(comment: &str) -> Vec<u8> {
    let text = &comment.as_bytes()[..comment.len().min(127)];
    let mut tlv = vec![UDATA_TABLE_COMMENT, (text.len() + 1) as u8];
    tlv.extend_from_slice(text);
    tlv.push(0);
    tlv
}

/// Reads the kernel's answers until every message in `acks` is acknowledged, or one is refused.
fn await_acks(socket: &Socket, acks: [u32; 3]) -> io::Result<()> {
    let mut pending = acks.to_vec();
    let mut buf = Vec::with_capacity(16 * 1024);
    let deadline = Instant::now() + ANSWER_WAIT;
    while !pending.is_empty() && Instant::now() < deadline {
        buf.clear();
        let (n, from) = match socket.recv_from(&mut buf, 0) {
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break, // SO_RCVTIMEO
            Err(e) => return Err(e),
        };
        if from.port_number() != 0 {
            continue;
        }
        let mut rest = buf.get(..n).unwrap_or(&buf);
        while let Ok(msg) = NetlinkBuffer::new_checked(rest) {
            let len = usize::try_from(msg.length()).unwrap_or(usize::MAX);
            if msg.message_type() == NLMSG_ERROR
                && let Ok(err) = ErrorBuffer::new_checked(msg.payload())
            {
                if let Some(code) = err.code() {
                    return Err(refusal(code.get(), msg.flags(), err.payload()));
                }
                pending.retain(|s| *s != msg.sequence_number());
            }
            rest = rest.get(len.saturating_add(3) & !3..).unwrap_or_default();
        }
    }
    if pending.is_empty() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no answer from nf_tables within {} s",
                ANSWER_WAIT.as_secs()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testutil::{in_fresh_netns, ip, is_root};
    use crate::{EspRing, IpsecProtocol, RawIpsec, SocketOptions};
    use socket2::{Domain, Protocol, Socket as Raw, Type};

    use std::net::{Ipv4Addr, Ipv6Addr};

    const LOCAL: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 23);
    const OTHER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 24);

    /// A raw ESP socket bound to `addr` that receives, as the daemon's would without a ring.
    fn raw_receiver(addr: Ipv4Addr) -> Raw {
        let s = Raw::new(Domain::IPV4, Type::RAW, Some(Protocol::from(50))).unwrap();
        s.bind(&std::net::SocketAddr::from((addr, 0)).into())
            .unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }

    /// Datagrams waiting on `s` (after 100 ms, for the loopback's softirq).
    fn queued(s: &Raw) -> usize {
        std::thread::sleep(Duration::from_millis(100));
        let mut buf = [std::mem::MaybeUninit::new(0u8); 2048];
        std::iter::from_fn(|| s.recv(&mut buf).ok()).count()
    }

    /// Sends `n` ESP packets to `to` and waits (at most 2 s) for the ring to hand over as many
    /// for LOCAL; returns how many it did.
    fn send_and_drain(tx: &RawIpsec, ring: &mut EspRing, to: Ipv4Addr, n: usize) -> usize {
        for i in 0..n {
            tx.try_send(to.into(), &[0xfe, 0xc0, 0, 1, 0, 0, 0, i as u8])
                .unwrap();
        }
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            got += ring.drain(64, |_, _| {});
            if got >= n && to == LOCAL {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        got
    }

    /// In a fresh network namespace: ESP to the ring's address reaches the ring and no longer
    /// the IP input (a raw socket that receives sees none of it), ESP to another address is
    /// untouched, and the table is gone as soon as its value is dropped.
    #[test]
    fn esp_read_by_the_ring_is_dropped_before_ip_input_as_root() {
        if !is_root() {
            eprintln!("network namespaces, packet sockets and nf_tables need root; skipped");
            return;
        }
        in_fresh_netns(|| {
            ip("link set lo up");
            let mut ring = EspRing::open(LOCAL.into()).expect("a packet ring");
            let any = "0.0.0.0".parse().unwrap();
            let tx = RawIpsec::bind(any, IpsecProtocol::Esp, &SocketOptions::default()).unwrap();
            let (rx, other) = (raw_receiver(LOCAL), raw_receiver(OTHER));

            assert_eq!(send_and_drain(&tx, &mut ring, LOCAL, 3), 3);
            assert_eq!(queued(&rx), 3, "without the table, IP input delivers too");

            let first = EspEarlyDrop::install(LOCAL.into()).expect("the table");
            assert_eq!(first.local(), IpAddr::from(LOCAL));
            assert_eq!(first.family(), "ip");
            assert!(first.table().starts_with("ferrosec_esp_"));
            assert_eq!(
                send_and_drain(&tx, &mut ring, LOCAL, 4),
                4,
                "the ring reads on"
            );
            assert_eq!(queued(&rx), 0, "dropped before IP input");
            assert_eq!(send_and_drain(&tx, &mut ring, OTHER, 2), 0);
            assert_eq!(queued(&other), 2, "another address's ESP passes");
            // A second table (a reload's new ring) stands beside the first.
            let second = EspEarlyDrop::install(LOCAL.into()).expect("a second table");
            assert_ne!(second.table(), first.table());

            drop(first);
            drop(second);
            assert_eq!(send_and_drain(&tx, &mut ring, LOCAL, 2), 2);
            assert_eq!(queued(&rx), 2, "the tables left with their sockets");
        });
    }

    /// A raw IPv6 socket of protocol `proto` bound to `addr`, not blocking.
    fn raw6(addr: Ipv6Addr, proto: i32) -> Raw {
        let s = Raw::new(Domain::IPV6, Type::RAW, Some(Protocol::from(proto))).unwrap();
        s.bind(&std::net::SocketAddr::from((addr, 0)).into())
            .unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }

    /// Datagrams waiting on `s` (after 100 ms), and their lengths.
    fn queued_lengths(s: &Raw) -> Vec<usize> {
        std::thread::sleep(Duration::from_millis(100));
        let mut buf = [std::mem::MaybeUninit::new(0u8); 4096];
        std::iter::from_fn(|| s.recv(&mut buf).ok()).collect()
    }

    /// Waits (at most 2 s) for the ring to have handed over `n` packets, then 100 ms more;
    /// returns how many it did.
    fn drained(ring: &mut EspRing, n: usize) -> usize {
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(2);
        while got < n && Instant::now() < deadline {
            got += ring.drain(64, |_, _| {});
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        got + ring.drain(64, |_, _| {})
    }

    /// IPv6, in a fresh network namespace: ESP right after the IPv6 header to the ring's
    /// address reaches the ring and, once the table is made, no longer the raw socket; ESP
    /// fragmented on the way (next header 44) passes the table and the ring and reaches the raw
    /// socket whole, reassembled by the kernel; another address's ESP is untouched.
    #[test]
    fn ipv6_esp_read_by_the_ring_is_dropped_before_ip_input_and_fragments_pass_as_root() {
        if !is_root() {
            eprintln!("network namespaces, packet sockets and nf_tables need root; skipped");
            return;
        }
        in_fresh_netns(|| {
            let local: Ipv6Addr = "2001:db8::23".parse().unwrap();
            let other: Ipv6Addr = "2001:db8::24".parse().unwrap();
            ip("link set lo up");
            ip("addr add 2001:db8::23/128 dev lo nodad");
            ip("addr add 2001:db8::24/128 dev lo nodad");
            ip("addr add 2001:db8::25/128 dev lo nodad");
            let mut ring = EspRing::open(local.into()).expect("a packet ring");
            let (rx, rx_other) = (raw6(local, 50), raw6(other, 50));
            // From a third address, so that a rule comparing the source would not drop.
            let tx = raw6("2001:db8::25".parse().unwrap(), 50);
            let send = |to: Ipv6Addr, len: usize, n: usize| {
                let to = socket2::SockAddr::from(std::net::SocketAddr::from((to, 0)));
                let mut pkt = vec![0u8; len];
                pkt[..4].copy_from_slice(&[0xfe, 0xc0, 0, 1]);
                for _ in 0..n {
                    tx.send_to(&pkt, &to).unwrap();
                }
            };

            send(local, 64, 3);
            assert_eq!(drained(&mut ring, 3), 3);
            assert_eq!(
                queued_lengths(&rx).len(),
                3,
                "without the table, IP input too"
            );

            let table = EspEarlyDrop::install(local.into()).expect("the table");
            assert_eq!(table.family(), "ip6");
            send(local, 64, 4);
            assert_eq!(drained(&mut ring, 4), 4, "the ring reads on");
            assert_eq!(queued_lengths(&rx).len(), 0, "dropped before IP input");
            send(other, 64, 2);
            assert_eq!(drained(&mut ring, 0), 0);
            assert_eq!(
                queued_lengths(&rx_other).len(),
                2,
                "another address's ESP passes"
            );

            // Larger than a ring frame (a jumbo frame): through the socket queue, whole.
            send(local, 3000, 1);
            let deadline = Instant::now() + Duration::from_secs(2);
            let mut big = Vec::new();
            while big.is_empty() && Instant::now() < deadline {
                ring.drain(64, |src, p| big.push((src, p.len())));
                std::thread::sleep(Duration::from_millis(10));
            }
            let from: IpAddr = "2001:db8::25".parse().unwrap();
            assert_eq!(
                big,
                [(from, 3000)],
                "a jumbo packet, whole, with its sender"
            );
            assert_eq!(queued_lengths(&rx).len(), 0);

            // Fragmented by the sender on a 1,280-byte link: the ring and the table let the
            // fragments by; the kernel reassembles them for the raw socket.
            ip("link set lo mtu 1280");
            send(local, 2000, 1);
            assert_eq!(drained(&mut ring, 0), 0, "no fragment in the ring");
            assert_eq!(
                queued_lengths(&rx),
                [2000],
                "reassembled for the raw socket"
            );

            drop(table);
            send(local, 64, 2);
            assert_eq!(drained(&mut ring, 2), 2);
            assert_eq!(
                queued_lengths(&rx).len(),
                2,
                "the table left with its socket"
            );
        });
    }

    #[test]
    fn comment_is_a_tlv_with_its_nul() {
        assert_eq!(comment_tlv("ab"), vec![0, 3, b'a', b'b', 0]);
        let long = "x".repeat(400);
        let tlv = comment_tlv(&long);
        assert_eq!(tlv.len(), 130);
        assert_eq!(tlv[1], 128);
        assert_eq!(tlv.last(), Some(&0));
    }

    #[test]
    fn batch_is_five_messages_in_order() {
        let (bytes, acks) = batch("t", Ipv4Addr::new(192, 0, 2, 1).into(), 7);
        let mut rest = bytes.as_slice();
        let mut seen = Vec::new();
        while let Ok(msg) = NetlinkBuffer::new_checked(rest) {
            seen.push((msg.message_type(), msg.sequence_number(), msg.flags()));
            let len = msg.length() as usize;
            rest = &rest[(len + 3) & !3..];
        }
        assert!(rest.is_empty());
        let ack = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
        assert_eq!(
            seen,
            vec![
                (0x10, 0, NLM_F_REQUEST),             // batch begin
                (10 << 8, 1, ack | NLM_F_EXCL),       // NFT_MSG_NEWTABLE
                (10 << 8 | 3, 2, ack),                // NFT_MSG_NEWCHAIN
                (10 << 8 | 6, 3, ack | NLM_F_APPEND), // NFT_MSG_NEWRULE
                (0x11, 4, NLM_F_REQUEST),             // batch end
            ]
        );
        assert_eq!(acks, [1, 2, 3]);
    }
}
