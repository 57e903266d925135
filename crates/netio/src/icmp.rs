//! Raw ICMP and ICMPv6 sockets for the tunnel monitor's echo requests.
//!
//! An [`IcmpProbe`] is two sockets of one family: one bound to the monitor's source address
//! and to the tunnel interface (`SO_BINDTODEVICE`), which only sends, so that every request
//! leaves through that tunnel whatever the routing table says; and one bound to the source
//! address only, which receives the replies on whichever interface they come back. The sending
//! socket's receive buffer is made as small as the kernel allows: it is never read.
//!
//! An IPv4 raw socket hands over received datagrams with their IP header; an IPv6 one the
//! ICMPv6 message only (raw(7), ipv6(7)). For ICMPv6 the kernel computes the checksum of what
//! we send.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use crate::udp::NetError;

/// The sending and receiving raw sockets of one tunnel monitor.
#[derive(Debug)]
pub struct IcmpProbe {
    send: Socket,
    recv: AsyncFd<Socket>,
    source: IpAddr,
}

#[allow(unsafe_code)] // recv_from into an initialised buffer.
impl IcmpProbe {
    /// Opens the sockets for echo requests from `source` through interface `device`.
    pub fn open(source: IpAddr, device: &str) -> Result<Self, NetError> {
        let addr = SocketAddr::new(source, 0);
        let err = |source| NetError::Bind { addr, source };
        let protocol = if source.is_ipv6() {
            Protocol::ICMPV6
        } else {
            Protocol::ICMPV4
        };
        let open = || {
            let s = Socket::new(
                Domain::for_address(addr),
                Type::RAW.nonblocking().cloexec(),
                Some(protocol),
            )?;
            // The source may be an address the host does not hold yet (a LAN interface
            // that comes up later): bind anyway.
            if source.is_ipv6() {
                s.set_freebind_v6(true)?;
            } else {
                s.set_freebind_v4(true)?;
            }
            s.bind(&addr.into())?;
            Ok::<_, io::Error>(s)
        };
        let send = open().map_err(err)?;
        send.bind_device(Some(device.as_bytes())).map_err(err)?;
        // Never read: keep what queues there small (the kernel rounds up to its minimum).
        let _ = send.set_recv_buffer_size(0);
        let recv = open().map_err(err)?;
        let recv = crate::udp::register_for_reading(recv, addr)?;
        Ok(Self { send, recv, source })
    }

    /// The source address.
    pub fn source(&self) -> IpAddr {
        self.source
    }

    /// Sends one ICMP (or ICMPv6) message to `to`; never waits.
    pub fn try_send(&self, to: IpAddr, message: &[u8]) -> io::Result<()> {
        let to = SockAddr::from(SocketAddr::new(to, 0));
        self.send.send_to(message, &to).map(|_| ())
    }

    /// Waits for the next datagram: its length in `buf` (IPv4: with the IP header) and the
    /// address it came from.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, IpAddr)> {
        loop {
            let mut guard = self.recv.readable().await?;
            // SAFETY: `buf` is initialised memory; viewing it as `MaybeUninit<u8>` is sound,
            // and recv_from only writes bytes into it.
            let uninit =
                unsafe { &mut *(std::ptr::from_mut::<[u8]>(buf) as *mut [MaybeUninit<u8>]) };
            match guard.try_io(|s| s.get_ref().recv_from(uninit)) {
                Ok(Ok((n, from))) => {
                    let from = from.as_socket().map_or(self.source, |a| a.ip());
                    return Ok((n.min(buf.len()), from));
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}
