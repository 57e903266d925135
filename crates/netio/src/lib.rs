//! The only crate of ferrosec that does IO: UDP sockets for IKE (500) and NAT-T (4500), TUN
//! devices, and raw ESP and AH sockets (IP protocols 50 and 51, see [`RawIpsec`]) for peers
//! without a NAT.
//!
//! # UDP
//!
//! A [`UdpPort`] is one bound UDP socket, registered with tokio. It receives in batches
//! (`recvmmsg`, and UDP GRO where the kernel has it, through `quinn-udp`) and reports for each
//! datagram the *local* address it arrived on (`IP_PKTINFO` / `IPV6_RECVPKTINFO`), so a socket
//! bound to the wildcard address still tells the IKE engine which of our addresses the peer
//! used — the engine needs it for NAT detection (RFC 7296 §2.23). Sending can pick the source
//! address the same way.
//!
//! [`classify`] splits what arrives on port 4500 into IKE (non-ESP marker), ESP and NAT
//! keepalives (RFC 3948 §2), using [`ferrosec_wire::natt::demux_4500`].
//!
//! Socket buffers are made large with `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE` (which work for root
//! even when `net.core.rmem_max` cannot be raised, as inside a network namespace) and fall back
//! quietly to `SO_RCVBUF`/`SO_SNDBUF`.
//!
//! # Raw ESP
//!
//! Over IPv4 and IPv6, received through a packet ring ([`EspRing`]: the kernel writes each
//! packet into memory the daemon has mapped) and sent through a packet socket
//! ([`EspPacketTx`]: our own IP header, the next hop from the kernel's route and neighbour
//! tables), each with the raw socket as its fallback. What the ring has read, the kernel drops
//! at prerouting ([`EspEarlyDrop`]: an nf_tables table owned by the daemon) instead of taking
//! it through IP input for nobody. Over IPv6 the ring leaves fragments to the kernel, which
//! reassembles them for the raw socket.
//!
//! # ICMP
//!
//! An [`IcmpProbe`] sends the tunnel monitor's echo requests through one tunnel interface and
//! receives the replies (raw ICMP/ICMPv6 sockets, module `icmp`).
//!
//! # Routes
//!
//! The virtual router's static routes go onto the host through rtnetlink: [`replace_route`]
//! and [`delete_route`] (module `route`), one synchronous request and acknowledgement each;
//! the tunnel interfaces' IPv6 addresses are added the same way by [`Tun::create`].
//!
//! # The process
//!
//! [`clock_ticks_per_second`]: the unit of the CPU times and start time in `/proc/self/stat`,
//! for the daemon's process metrics.

mod esp_drop;
mod gro;
mod icmp;
mod packet_tx;
mod raw;
mod ring;
mod route;
mod rule;
mod tun;
mod udp;

#[cfg(test)]
mod testutil;

pub use esp_drop::EspEarlyDrop;
pub use icmp::IcmpProbe;
pub use packet_tx::EspPacketTx;
pub use raw::{
    IPPROTO_AH, IPPROTO_ESP, IpsecProtocol, RAW_BATCH, RawBatch, RawIpsec, RawReceived,
    RawReceivedMut,
};
pub use ring::{EspRing, FRAME_BYTES, FRAMES, RingDrops};
pub use route::{
    MAIN_TABLE, Route, UNREACHABLE_METRIC, add_interface_address, delete_route, path_mtu,
    remove_interface_address, replace_route,
};
pub use rule::{
    RULE_PRIORITY, Rule, RuleMatch, add_rule, delete_rule, delete_unreachable_default,
    replace_unreachable_default,
};
pub use tun::{TUN_BATCH, TUN_WRITE_BATCH, Tun, TunBatch, TunError, TunWriteBatch};

pub use udp::{
    DEFAULT_BUFFER_BYTES, Kind, NetError, Received, ReceivedMut, RecvBatch, SocketOptions, UdpPort,
    classify, source_address_for,
};

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, `USER_HZ`): the unit of the CPU times and
/// the start time in `/proc/<pid>/stat`. 100 if the system does not say.
#[allow(unsafe_code)] // sysconf reads a system constant; it takes no pointers.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: no pointers, no state: any argument is sound.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(n).ok().filter(|n| *n > 0).unwrap_or(100)
}
