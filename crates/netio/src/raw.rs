//! Raw IP sockets for ESP and AH without NAT (IP protocols 50 and 51, RFC 4303 §2, RFC 4302).
//!
//! When neither peer is behind a NAT, ESP travels directly in IP. A [`RawIpsec`] is one
//! `socket(AF_INET|AF_INET6, SOCK_RAW, IPPROTO_ESP or IPPROTO_AH)`, optionally bound to one of
//! our addresses (a raw socket bound to an address only receives packets sent to it, and sends
//! from it).
//!
//! - ESP: the kernel builds the outer IP header on send. On receive an IPv4 raw socket hands
//!   over the whole datagram, IP header included, which [`RawBatch::iter`] strips.
//! - AH: its ICV covers the outer header, so the sender builds it (`IP_HDRINCL`,
//!   `IPV6_HDRINCL`) and an IPv4 receive keeps it. With `IP_HDRINCL` the kernel fills in only
//!   the checksum (and an ID of 0, which AH never sends) and does not fragment.
//! - An IPv6 raw socket hands over the payload only, for both (raw(7), ipv6(7)); the kernel
//!   reassembles fragments first.
//!
//! Receiving is batched with `recvmmsg(2)` into a reusable [`RawBatch`]; nothing is allocated
//! per packet.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use ferrosec_wire::ipv4::Ipv4Header;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use crate::udp::{NetError, SocketOptions, set_buffer};

/// IP protocol number of ESP.
pub const IPPROTO_ESP: i32 = 50;
/// IP protocol number of AH.
pub const IPPROTO_AH: i32 = 51;

/// Which IPsec protocol a raw socket carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpsecProtocol {
    /// ESP (IP protocol 50): packets are sent and received from the SPI on.
    Esp,
    /// AH (IP protocol 51): packets are sent whole, outer IP header included, and an IPv4
    /// receive keeps the header.
    Ah,
}

impl IpsecProtocol {
    fn number(self) -> i32 {
        match self {
            IpsecProtocol::Esp => IPPROTO_ESP,
            IpsecProtocol::Ah => IPPROTO_AH,
        }
    }

    fn name(self) -> &'static str {
        match self {
            IpsecProtocol::Esp => "ESP",
            IpsecProtocol::Ah => "AH",
        }
    }
}

/// Largest packet one receive buffer holds (a reassembled IPv4 datagram is at most 65535).
const RAW_BUFFER_BYTES: usize = 65536;
/// Most packets one `recvmmsg` call takes.
pub const RAW_BATCH: usize = 32;

/// One raw ESP or AH socket registered with tokio.
#[derive(Debug)]
pub struct RawIpsec {
    io: AsyncFd<Socket>,
    bound: IpAddr,
    protocol: IpsecProtocol,
    /// Sends ESP through a packet socket where it can ([`Self::with_packet_tx`]).
    packet_tx: Option<crate::EspPacketTx>,
}

impl RawIpsec {
    /// Opens a raw socket for `protocol` in the family of `local`, bound to it unless it is
    /// the wildcard address. Needs CAP_NET_RAW. Must be called inside a tokio runtime.
    pub fn bind(
        local: IpAddr,
        protocol: IpsecProtocol,
        opts: &SocketOptions,
    ) -> Result<Self, NetError> {
        let addr = SocketAddr::new(local, 0);
        let bind_err = |source| NetError::Bind { addr, source };
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::RAW.nonblocking().cloexec(),
            Some(Protocol::from(protocol.number())),
        )
        .map_err(bind_err)?;
        if protocol == IpsecProtocol::Ah {
            let r = if local.is_ipv6() {
                socket.set_header_included_v6(true)
            } else {
                socket.set_header_included_v4(true)
            };
            r.map_err(bind_err)?;
        }
        if opts.freebind && !local.is_unspecified() {
            let r = if local.is_ipv6() {
                socket.set_freebind_v6(true)
            } else {
                socket.set_freebind_v4(true)
            };
            r.map_err(bind_err)?;
        }
        set_buffer(&socket, libc::SO_RCVBUFFORCE, opts.recv_buffer, |s, n| {
            s.set_recv_buffer_size(n)
        });
        set_buffer(&socket, libc::SO_SNDBUFFORCE, opts.send_buffer, |s, n| {
            s.set_send_buffer_size(n)
        });
        if !local.is_unspecified() {
            socket.bind(&addr.into()).map_err(bind_err)?;
        }
        // Registered for reading only: sends never wait for readiness (`try_send*`).
        let io = crate::udp::register_for_reading(socket, addr)?;
        Ok(RawIpsec {
            io,
            bound: local,
            protocol,
            packet_tx: None,
        })
    }

    /// Sends ESP through `tx` (a packet socket, [`crate::EspPacketTx`]) where it can carry
    /// it, and through this socket where it cannot. For an ESP socket bound to the address
    /// `tx` sends from; anything else keeps sending through this socket alone.
    ///
    /// Over IPv6 this socket then stops choosing flow labels of its own
    /// (`IPV6_AUTOFLOWLABEL` off, as `net.ipv6.auto_flowlabels` would have it on): the
    /// packet socket writes 0, and the packets of one SA must not carry two labels, which
    /// routers hashing the label for multipath would send two ways. Where that cannot be
    /// set, `tx` is not used.
    pub fn with_packet_tx(mut self, tx: crate::EspPacketTx) -> Self {
        if self.protocol != IpsecProtocol::Esp || self.bound != tx.local() {
            return self;
        }
        if self.bound.is_ipv6()
            && crate::ring::set_int(
                self.io.get_ref().as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_AUTOFLOWLABEL,
                0,
            )
            .is_err()
        {
            return self;
        }
        self.packet_tx = Some(tx);
        self
    }

    /// Whether ESP goes through a packet socket where it can ([`Self::with_packet_tx`]).
    pub fn has_packet_tx(&self) -> bool {
        self.packet_tx.is_some()
    }

    /// The address the socket is bound to (the wildcard of its family when unbound).
    pub fn bound(&self) -> IpAddr {
        self.bound
    }

    /// The protocol it carries.
    pub fn protocol(&self) -> IpsecProtocol {
        self.protocol
    }

    /// "ESP" or "AH", for messages.
    pub fn protocol_name(&self) -> &'static str {
        self.protocol.name()
    }

    /// Whether packets from our address `local` can be sent on this socket.
    pub fn serves(&self, local: IpAddr) -> bool {
        local.is_ipv4() == self.bound.is_ipv4()
            && (self.bound.is_unspecified() || local == self.bound)
    }

    /// Makes the socket drop every packet it would receive (a BPF filter that keeps
    /// nothing), for when an [`crate::EspRing`] receives its ESP instead. The socket still
    /// sends, and its presence keeps the kernel from answering ESP with ICMP "protocol
    /// unreachable".
    pub fn stop_receiving(&self) -> io::Result<()> {
        let drop_all = [libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        }];
        crate::ring::attach_filter(self.io.get_ref().as_raw_fd(), &drop_all)
    }

    /// Packets the kernel dropped for this socket since it was opened (its receive buffer
    /// full): `SO_MEMINFO`'s drop count, as [`crate::UdpPort::kernel_drops`].
    pub fn kernel_drops(&self) -> io::Result<u64> {
        crate::udp::kernel_drops(self.io.get_ref())
    }

    /// Waits for packets and receives a batch of them into `batch`.
    pub async fn recv(&self, batch: &mut RawBatch) -> io::Result<()> {
        batch.filled = 0;
        loop {
            let mut guard = self.io.readable().await?;
            match guard.try_io(|s| recv_batch(s.get_ref(), batch)) {
                Ok(r) => {
                    batch.filled = r?;
                    batch.strip_v4 = self.bound.is_ipv4() && self.protocol == IpsecProtocol::Esp;
                    return Ok(());
                }
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one packet to `remote` without waiting (`WouldBlock` when the socket buffer is
    /// full): ESP from the SPI on (the kernel adds the IP header), AH whole.
    pub fn try_send(&self, remote: IpAddr, packet: &[u8]) -> io::Result<()> {
        let to = SockAddr::from(SocketAddr::new(remote, 0));
        self.io.get_ref().send_to(packet, &to).map(|_| ())
    }
}

#[allow(unsafe_code)] // libc::sendmmsg: socket2 has no batched send.
impl RawIpsec {
    /// Sends the packets of `data`, `segment` bytes each (the last may be shorter), to
    /// `remote` with `sendmmsg(2)`, without waiting. Returns how many went out; an error only
    /// when none did.
    pub fn try_send_segments(
        &self,
        remote: IpAddr,
        data: &[u8],
        segment: usize,
    ) -> io::Result<usize> {
        if let Some(tx) = &self.packet_tx
            && let Some(sent) = tx.try_send_segments(remote, data, segment)
        {
            return sent;
        }
        let segment = segment.max(1);
        let to = SockAddr::from(SocketAddr::new(remote, 0));
        let mut sent = 0;
        let mut chunks = data.chunks(segment).peekable();
        while chunks.peek().is_some() {
            let mut iov: [MaybeUninit<libc::iovec>; RAW_BATCH] = [MaybeUninit::uninit(); RAW_BATCH];
            // SAFETY: an all-zero mmsghdr is valid (null pointers, zero lengths); the fields
            // used are filled in below before the call.
            let mut msgs: [libc::mmsghdr; RAW_BATCH] = unsafe { std::mem::zeroed() };
            let mut n = 0;
            for (i, chunk) in chunks.by_ref().take(RAW_BATCH).enumerate() {
                iov[i].write(libc::iovec {
                    iov_base: chunk.as_ptr().cast_mut().cast(),
                    iov_len: chunk.len(),
                });
                msgs[i].msg_hdr.msg_iov = iov[i].as_mut_ptr();
                msgs[i].msg_hdr.msg_iovlen = 1;
                msgs[i].msg_hdr.msg_name = to.as_ptr().cast_mut().cast();
                msgs[i].msg_hdr.msg_namelen = to.len();
                n = i + 1;
            }
            // SAFETY: `msgs[..n]` each point at one initialised iovec over a live chunk of
            // `data` (only read by the kernel despite the `*mut`) and at the live sockaddr
            // `to` with its true length; all outlive the call; the socket is open;
            // MSG_DONTWAIT never blocks.
            let r = unsafe {
                libc::sendmmsg(
                    self.io.get_ref().as_raw_fd(),
                    msgs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if sent == 0 {
                    return Err(e);
                }
                break;
            }
            let r = r as usize;
            sent += r;
            if r < n {
                break;
            }
        }
        Ok(sent)
    }
}

/// `recvmmsg(2)` of up to `batch.buffers` packets, without waiting.
#[allow(unsafe_code)] // libc::recvmmsg: socket2 has no batched receive.
fn recv_batch(socket: &Socket, batch: &mut RawBatch) -> io::Result<usize> {
    let count = batch.count;
    let mut iov: [MaybeUninit<libc::iovec>; RAW_BATCH] = [MaybeUninit::uninit(); RAW_BATCH];
    // SAFETY: an all-zero mmsghdr is valid (null pointers, zero lengths); the fields used are
    // filled in below before the call.
    let mut msgs: [libc::mmsghdr; RAW_BATCH] = unsafe { std::mem::zeroed() };
    for (i, chunk) in batch
        .buf
        .chunks_exact_mut(RAW_BUFFER_BYTES)
        .take(count)
        .enumerate()
    {
        iov[i].write(libc::iovec {
            iov_base: chunk.as_mut_ptr().cast(),
            iov_len: chunk.len(),
        });
        msgs[i].msg_hdr.msg_iov = iov[i].as_mut_ptr();
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = (&raw mut batch.from[i]).cast();
        msgs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    }
    // SAFETY: `msgs[..count]` each point at one initialised iovec over a distinct live chunk
    // of `batch.buf` and at a live sockaddr_storage of `batch.from`, with their true lengths;
    // all of them outlive the call; the socket is open; MSG_DONTWAIT never blocks.
    let n = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            msgs.as_mut_ptr(),
            count as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    for (len, m) in batch.len.iter_mut().zip(&msgs).take(n) {
        *len = (m.msg_len as usize).min(RAW_BUFFER_BYTES);
    }
    Ok(n)
}

/// Reusable receive buffers for one raw socket.
pub struct RawBatch {
    buf: Box<[u8]>,
    from: Box<[libc::sockaddr_storage; RAW_BATCH]>,
    len: [usize; RAW_BATCH],
    count: usize,
    filled: usize,
    /// Whether the packets start with an IPv4 header to strip (ESP on an IPv4 socket).
    strip_v4: bool,
}

impl std::fmt::Debug for RawBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawBatch")
            .field("count", &self.count)
            .field("filled", &self.filled)
            .finish()
    }
}

/// One packet received on a raw socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawReceived<'a> {
    /// The sender's address.
    pub remote: IpAddr,
    /// ESP: the ESP packet, SPI first (an IPv4 header stripped). AH: over IPv4 the whole
    /// datagram, over IPv6 what follows the IPv6 header.
    pub data: &'a [u8],
}

impl RawBatch {
    /// Room for `count` packets (clamped to 1..=[`RAW_BATCH`]).
    pub fn new(count: usize) -> Self {
        let count = count.clamp(1, RAW_BATCH);
        RawBatch {
            buf: vec![0u8; count * RAW_BUFFER_BYTES].into_boxed_slice(),
            from: Box::new([zeroed_storage(); RAW_BATCH]),
            len: [0; RAW_BATCH],
            count,
            filled: 0,
            strip_v4: true,
        }
    }

    /// The packets of the last receive; IPv4 ESP packets whose header is broken are skipped.
    pub fn iter(&self) -> impl Iterator<Item = RawReceived<'_>> + '_ {
        let v4 = self.strip_v4;
        self.buf
            .chunks_exact(RAW_BUFFER_BYTES)
            .zip(self.len.iter().zip(self.from.iter()))
            .take(self.filled)
            .filter_map(move |(buf, (len, from))| {
                let (remote, range) = locate(buf, *len, from, v4)?;
                Some(RawReceived {
                    remote,
                    data: &buf[range],
                })
            })
    }
}

/// One packet received on a raw socket, writable: ESP is decrypted where it was received.
#[derive(Debug, PartialEq, Eq)]
pub struct RawReceivedMut<'a> {
    /// The sender's address.
    pub remote: IpAddr,
    /// As [`RawReceived::data`].
    pub data: &'a mut [u8],
}

impl RawBatch {
    /// The packets of the last receive, as [`RawBatch::iter`], writable in place.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = RawReceivedMut<'_>> + '_ {
        let v4 = self.strip_v4;
        self.buf
            .chunks_exact_mut(RAW_BUFFER_BYTES)
            .zip(self.len.iter().zip(self.from.iter()))
            .take(self.filled)
            .filter_map(move |(buf, (len, from))| {
                let (remote, range) = locate(buf, *len, from, v4)?;
                Some(RawReceivedMut {
                    remote,
                    data: &mut buf[range],
                })
            })
    }
}

/// The sender of a received packet of `len` bytes in `buf`, and where its data is (after the
/// IPv4 header when `v4`); `None` for a broken header or an unknown address family.
fn locate(
    buf: &[u8],
    len: usize,
    from: &libc::sockaddr_storage,
    v4: bool,
) -> Option<(IpAddr, std::ops::Range<usize>)> {
    let pkt = buf.get(..len)?;
    let range = if v4 {
        payload_range(pkt)?
    } else {
        0..pkt.len()
    };
    Some((sockaddr_ip(from)?, range))
}

/// The payload of an IPv4 datagram (header length from IHL, total length respected).
#[cfg(test)]
fn strip_ipv4(pkt: &[u8]) -> Option<&[u8]> {
    pkt.get(payload_range(pkt)?)
}

/// Where the payload of an IPv4 datagram is (header length from IHL, total length
/// respected). The kernel has checked the header; only what is needed to find the payload
/// safely is looked at again ([`Ipv4Header::read`]).
fn payload_range(pkt: &[u8]) -> Option<std::ops::Range<usize>> {
    let h = Ipv4Header::read(pkt).ok()?;
    // Padding after the datagram (if any) is not ESP; a length field that does not fit the
    // buffer is not trusted.
    let end = if h.total_len >= h.header_len && h.total_len <= pkt.len() {
        h.total_len
    } else {
        pkt.len()
    };
    Some(h.header_len..end)
}

fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is a plain C struct for which all-zero bytes are valid.
    #[allow(unsafe_code)]
    unsafe {
        std::mem::zeroed()
    }
}

/// The IP address in a sockaddr the kernel filled in.
#[allow(unsafe_code)] // reading sockaddr_in/sockaddr_in6 out of a sockaddr_storage.
fn sockaddr_ip(s: &libc::sockaddr_storage) -> Option<IpAddr> {
    match i32::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which is smaller than
            // and alignment-compatible with sockaddr_storage.
            let a = unsafe { &*(std::ptr::from_ref(s).cast::<libc::sockaddr_in>()) };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(std::ptr::from_ref(s).cast::<libc::sockaddr_in6>()) };
            Some(IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_is_stripped() {
        let mut p = vec![
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 50, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        p.extend_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd, 0, 0, 0, 1]);
        assert_eq!(
            strip_ipv4(&p),
            Some(&[0xaa, 0xbb, 0xcc, 0xdd, 0, 0, 0, 1][..])
        );
        // With options (IHL 6).
        let mut q = vec![
            0x46, 0, 0, 28, 0, 0, 0, 0, 64, 50, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        q.extend_from_slice(&[1, 1, 1, 1, 9, 9, 9, 9]);
        assert_eq!(strip_ipv4(&q), Some(&[9, 9, 9, 9][..]));
        // The kernel checked the header: padding after the Total Length is cut off, and a
        // Total Length that does not fit the buffer is not trusted (the rest is taken).
        let mut padded = p.clone();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(strip_ipv4(&padded), strip_ipv4(&p));
        for total in [0u16, 19, 29, 65535] {
            let mut r = p.clone();
            r[2..4].copy_from_slice(&total.to_be_bytes());
            assert_eq!(strip_ipv4(&r), Some(&p[20..]), "total length {total}");
        }
        let mut beyond = q.clone();
        beyond[0] = 0x4f; // 60 bytes of header in 28
        assert_eq!(strip_ipv4(&beyond), None);
        assert_eq!(strip_ipv4(&[0x45, 0, 0]), None);
        assert_eq!(strip_ipv4(&[0x60; 40]), None);
        assert_eq!(strip_ipv4(&[0x44; 40]), None);
    }

    #[test]
    #[allow(unsafe_code)] // Writes a sockaddr_in into the storage, as recvmmsg does.
    fn the_writable_view_strips_as_the_other() {
        let mut b = RawBatch::new(2);
        let first = [
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 50, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0xaa, 0xbb, 0xcc,
            0xdd, 0, 0, 0, 1,
        ];
        b.buf[..first.len()].copy_from_slice(&first);
        b.len[0] = first.len();
        b.len[1] = 3; // broken: skipped by both
        b.filled = 2;
        for f in b.from.iter_mut() {
            let sin = f as *mut libc::sockaddr_storage as *mut libc::sockaddr_in;
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            unsafe {
                (*sin).sin_family = libc::AF_INET as libc::sa_family_t;
                (*sin).sin_addr.s_addr = u32::from_ne_bytes([192, 0, 2, 7]);
            }
        }
        let seen: Vec<_> = b.iter().map(|r| (r.remote, r.data.to_vec())).collect();
        assert_eq!(
            seen,
            vec![(
                IpAddr::from([192, 0, 2, 7]),
                vec![0xaa, 0xbb, 0xcc, 0xdd, 0, 0, 0, 1]
            )]
        );
        for r in b.iter_mut() {
            r.data[7] = 2;
        }
        let now: Vec<_> = b.iter().map(|r| r.data.to_vec()).collect();
        assert_eq!(now, vec![vec![0xaa, 0xbb, 0xcc, 0xdd, 0, 0, 0, 2]]);
        assert_eq!(b.buf[27], 2, "written in the receive buffer itself");
    }

    /// Binds `proto` on 127.0.0.1 and runs `check` with the socket inside a runtime; skips
    /// (with a message) without root or raw sockets.
    fn on_loopback(proto: IpsecProtocol, check: impl AsyncFnOnce(RawIpsec, IpAddr)) {
        crate::testutil::block_on_as_root("raw sockets", async {
            let lo: IpAddr = "127.0.0.1".parse().unwrap();
            let Ok(rx) = RawIpsec::bind(lo, proto, &SocketOptions::default()) else {
                eprintln!("no raw sockets here; skipped");
                return;
            };
            check(rx, lo).await;
        });
    }

    /// The first packet `rx` receives that `wanted` picks, as (sender, data); at most 5 s.
    async fn receive(rx: &RawIpsec, wanted: impl Fn(&[u8]) -> bool) -> (IpAddr, Vec<u8>) {
        let mut batch = RawBatch::new(8);
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                rx.recv(&mut batch).await.unwrap();
                if let Some(r) = batch.iter().find(|r| wanted(r.data)) {
                    return (r.remote, r.data.to_vec());
                }
            }
        })
        .await
        .expect("our packet within 5 s")
    }

    #[test]
    fn esp_over_loopback_as_root() {
        on_loopback(IpsecProtocol::Esp, async |rx, lo| {
            let any = "0.0.0.0".parse().unwrap();
            let tx = RawIpsec::bind(any, IpsecProtocol::Esp, &SocketOptions::default()).unwrap();
            assert!(tx.serves(lo) && rx.serves(lo));
            assert!(!rx.serves("127.0.0.2".parse().unwrap()));
            // A fake ESP packet with an SPI nobody else uses.
            let pkt = [0xfe, 0xc0, 0x53, 0x01, 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8];
            tx.try_send(lo, &pkt).unwrap();
            let (from, _) = receive(&rx, |d| d == pkt).await;
            assert_eq!(from, lo);
        });
    }

    #[test]
    fn ah_over_loopback_keeps_the_ipv4_header_as_root() {
        on_loopback(IpsecProtocol::Ah, async |rx, lo| {
            assert_eq!(rx.protocol_name(), "AH");
            // A whole IPv4 datagram (IP_HDRINCL): header with ID 0x5151, protocol 51, then
            // an AH-shaped payload with an SPI nobody else uses.
            let mut pkt = vec![
                0x45, 0, 0, 32, 0x51, 0x51, 0, 0, 64, 51, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
            ];
            pkt.extend_from_slice(&[4, 1, 0, 0, 0xfe, 0xc0, 0x53, 0x02, 0, 0, 0, 9]);
            rx.try_send(lo, &pkt).unwrap();
            let (_, got) = receive(&rx, |d| d.get(24..28) == Some(&pkt[24..28])).await;
            // The header is kept, our ID with it, and the payload follows it.
            assert_eq!(got.len(), pkt.len());
            assert_eq!(got[0], 0x45);
            assert_eq!(&got[4..6], &[0x51, 0x51]);
            assert_eq!(got[9], 51);
            assert_eq!(&got[20..], &pkt[20..]);
        });
    }
}
