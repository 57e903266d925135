//! UDP sockets for IKE and UDP-encapsulated ESP.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use ferrosec_wire::natt::{Datagram, demux_4500};
use quinn_udp::{BATCH_SIZE, RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Socket buffer size asked for by default: 8 MiB each way, enough for bursts of ESP at
/// several Gbit/s (the namespace default of 208 KiB drops under load).
pub const DEFAULT_BUFFER_BYTES: usize = 8 << 20;

/// Largest datagram one receive buffer holds: with UDP GRO the kernel coalesces up to 64
/// segments into one buffer.
const RECV_BUFFER_BYTES: usize = 64 * 1024;

/// Why a socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// `socket(2)` or `bind(2)` failed.
    #[error("cannot listen on UDP {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// Registering with the async runtime or enabling packet info failed.
    #[error("cannot set up UDP {addr}: {source}")]
    Setup {
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        source: io::Error,
    },
}

/// Registers `socket` (set up for `addr`) with tokio for reading only. Its sends never wait
/// for readiness: interest in writability would wake the runtime each time the kernel frees a
/// packet the socket sent (`sock_wfree`, then write space), once per packet under load, with
/// nothing waiting to write (see [`UdpPort`] for what that cost).
#[allow(unsafe_code)] // AsyncFd::register_with_interest.
pub(crate) fn register_for_reading<T>(socket: T, addr: SocketAddr) -> Result<AsyncFd<T>, NetError>
where
    T: AsRawFd + Into<std::os::fd::OwnedFd>,
{
    // SAFETY: `socket` owns its descriptor (it converts into an `OwnedFd`) and the AsyncFd
    // takes ownership of it, so nothing else closes or replaces the descriptor while the
    // AsyncFd lives; the socket types passed here (std's and socket2's) return that same
    // descriptor from every `as_raw_fd`.
    unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }.map_err(|e| {
        NetError::Setup {
            addr,
            source: io::Error::other(e.to_string()),
        }
    })
}

/// How sockets are set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOptions {
    /// Receive buffer to ask for (`SO_RCVBUFFORCE`, else `SO_RCVBUF`); 0 = the OS default.
    pub recv_buffer: usize,
    /// Send buffer to ask for (`SO_SNDBUFFORCE`, else `SO_SNDBUF`); 0 = the OS default.
    pub send_buffer: usize,
    /// Bind even if the address is not (yet) configured on the host (`IP_FREEBIND`).
    pub freebind: bool,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            recv_buffer: DEFAULT_BUFFER_BYTES,
            send_buffer: DEFAULT_BUFFER_BYTES,
            freebind: false,
        }
    }
}

/// What a datagram is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An IKE message. On a NAT-T port it still starts with the 4-byte non-ESP marker: feed
    /// the datagram to the IKE engine unchanged.
    Ike,
    /// An ESP packet (UDP-encapsulated, RFC 3948), starting with its SPI.
    Esp,
    /// A NAT keepalive (one 0xff byte): nothing to do.
    Keepalive,
    /// Too short to be anything on a NAT-T port.
    Malformed,
}

/// Classifies a datagram: on the IKE port everything is IKE; on a NAT-T port (4500) the
/// non-ESP marker separates IKE from ESP (RFC 3948 §2).
pub fn classify(natt: bool, payload: &[u8]) -> Kind {
    if !natt {
        return Kind::Ike;
    }
    match demux_4500(payload) {
        Ok(Datagram::Ike(_)) => Kind::Ike,
        Ok(Datagram::Esp(_)) => Kind::Esp,
        Ok(Datagram::Keepalive) => Kind::Keepalive,
        Err(_) => Kind::Malformed,
    }
}

/// Sends that find the socket buffer full wait and try again this many times, the wait
/// doubling from [`SEND_RETRY_FIRST`] to at most [`SEND_RETRY_MAX`] (about 50 ms in all).
const SEND_TRIES: usize = 12;
const SEND_RETRY_FIRST: std::time::Duration = std::time::Duration::from_micros(100);
const SEND_RETRY_MAX: std::time::Duration = std::time::Duration::from_millis(10);

/// One bound UDP socket registered with tokio, for reading only.
///
/// Registered for reading only ([`register_for_reading`]): without it, the kernel freeing each
/// datagram we sent woke the runtime: once per IKE message, and once per GSO send of ESP in
/// UDP. Measured with the scheduler's wakeup events during `bench/handshake.sh`: 4,661 of the
/// responder's 10,222 wakeups for 10,000 IKE SAs came from there. So sends are tried at once,
/// and [`UdpPort::send`] retries a full socket buffer after a pause.
#[derive(Debug)]
pub struct UdpPort {
    io: AsyncFd<std::net::UdpSocket>,
    state: UdpSocketState,
    bound: SocketAddr,
    natt: bool,
}

impl UdpPort {
    /// Binds `addr` (a wildcard address binds every local address of that family; an IPv6
    /// socket is then IPv6-only). `natt` marks a NAT-T port whose datagrams [`classify`]
    /// splits. Must be called inside a tokio runtime.
    pub fn bind(addr: SocketAddr, natt: bool, opts: &SocketOptions) -> Result<Self, NetError> {
        let bind_err = |source| NetError::Bind { addr, source };
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::DGRAM.nonblocking().cloexec(),
            Some(Protocol::UDP),
        )
        .map_err(bind_err)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true).map_err(bind_err)?;
        }
        if opts.freebind {
            let r = if addr.is_ipv6() {
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
        socket.bind(&addr.into()).map_err(bind_err)?;
        let setup_err = |source| NetError::Setup { addr, source };
        let bound = socket
            .local_addr()
            .map_err(setup_err)?
            .as_socket()
            .unwrap_or(addr);
        let std: std::net::UdpSocket = socket.into();
        let state = UdpSocketState::new((&std).into()).map_err(setup_err)?;
        // quinn-udp sets don't-fragment for QUIC's path-MTU probing; IKE needs IP
        // fragmentation for messages above the path MTU (an IKE_AUTH with certificates) unless
        // both sides do RFC 7383, so it is switched back off (as strongSwan leaves it).
        allow_fragments(&std, addr.is_ipv6()).map_err(setup_err)?;
        let io = register_for_reading(std, addr)?;
        Ok(UdpPort {
            io,
            state,
            bound,
            natt,
        })
    }

    /// The address the socket is bound to (the port filled in when 0 was asked for).
    pub fn bound(&self) -> SocketAddr {
        self.bound
    }

    /// Whether this is a NAT-T port.
    pub fn is_natt(&self) -> bool {
        self.natt
    }

    /// Whether the socket is bound to the wildcard address of its family.
    pub fn is_wildcard(&self) -> bool {
        self.bound.ip().is_unspecified()
    }

    /// Whether a datagram from local address `local` can be sent on this socket.
    pub fn serves(&self, local: SocketAddr) -> bool {
        local.port() == self.bound.port()
            && local.is_ipv4() == self.bound.is_ipv4()
            && (self.is_wildcard() || local.ip() == self.bound.ip())
    }

    /// The receive buffer the kernel granted, in bytes.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        self.state
            .recv_buffer_size(UdpSockRef::from(self.io.get_ref()))
    }

    /// Datagrams the kernel dropped for this socket since it was opened, mostly because its
    /// receive buffer was full (the daemon did not read fast enough): `SO_MEMINFO`'s drop
    /// count, so that a flood's losses before the daemon are counted too.
    pub fn kernel_drops(&self) -> io::Result<u64> {
        kernel_drops(self.io.get_ref())
    }

    /// Waits for datagrams and receives a batch of them into `batch` (replacing what it held).
    pub async fn recv(&self, batch: &mut RecvBatch) -> io::Result<()> {
        batch.filled = 0;
        let n = self
            .io
            .async_io(Interest::READABLE, |_| self.recv_now(batch))
            .await?;
        batch.filled = n;
        batch.bound = self.bound;
        batch.natt = self.natt;
        Ok(())
    }

    /// Receives what is queued without waiting (`WouldBlock` when nothing is).
    pub fn try_recv(&self, batch: &mut RecvBatch) -> io::Result<()> {
        batch.filled = 0;
        let n = self
            .io
            .try_io(Interest::READABLE, |_| self.recv_now(batch))?;
        batch.filled = n;
        batch.bound = self.bound;
        batch.natt = self.natt;
        Ok(())
    }

    fn recv_now(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        let count = batch.count;
        let mut chunks = batch.buf.chunks_exact_mut(RECV_BUFFER_BYTES);
        let mut slices: [IoSliceMut<'_>; BATCH_SIZE] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
        self.state.recv(
            UdpSockRef::from(self.io.get_ref()),
            &mut slices[..count],
            &mut batch.meta[..count],
        )
    }

    /// Sends one datagram from `local` (which this socket must [`serve`](Self::serves)) to
    /// `remote`. While the socket buffer is full it waits and tries again, a bounded number of
    /// times (about 50 ms in all), then gives up with `WouldBlock`.
    pub async fn send(&self, local: SocketAddr, remote: SocketAddr, data: &[u8]) -> io::Result<()> {
        let t = self.transmit(local, remote, data);
        let mut pause = SEND_RETRY_FIRST;
        for _ in 1..SEND_TRIES {
            match self.send_now(&t) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(SEND_RETRY_MAX);
                }
                r => return r,
            }
        }
        self.send_now(&t)
    }

    /// Sends one datagram without waiting (`WouldBlock` when the socket buffer is full).
    pub fn try_send(&self, local: SocketAddr, remote: SocketAddr, data: &[u8]) -> io::Result<()> {
        self.send_now(&self.transmit(local, remote, data))
    }

    fn send_now(&self, t: &Transmit<'_>) -> io::Result<()> {
        self.state.try_send(UdpSockRef::from(self.io.get_ref()), t)
    }

    /// Sends `data`, datagrams of `segment` bytes each (the last may be shorter), from
    /// `local` to `remote` without waiting: with UDP GSO (`UDP_SEGMENT`, one system call per
    /// up to 64 KiB) where the kernel has it, else one datagram at a time. Returns how many
    /// datagrams went out; an error only when none did.
    pub fn try_send_segments(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        segment: usize,
    ) -> io::Result<usize> {
        let segment = segment.max(1);
        let total = data.len().div_ceil(segment);
        let max = self.state.max_gso_segments().max(1);
        // The whole UDP payload of one GSO send must fit an IP datagram.
        let per_send = max.min((65535 - 8 - 40) / segment).max(1);
        let mut sent = 0;
        for chunk in data.chunks(per_send * segment) {
            let mut t = self.transmit(local, remote, chunk);
            if chunk.len() > segment {
                t.segment_size = Some(segment);
            }
            match self.send_now(&t) {
                Ok(()) => sent += chunk.len().div_ceil(segment),
                Err(e) if sent == 0 => return Err(e),
                Err(_) => break,
            }
        }
        debug_assert!(sent <= total);
        Ok(sent)
    }

    fn transmit<'a>(&self, local: SocketAddr, remote: SocketAddr, data: &'a [u8]) -> Transmit<'a> {
        Transmit {
            destination: remote,
            ecn: None,
            contents: data,
            segment_size: None,
            src_ip: self.is_wildcard().then_some(local.ip()),
        }
    }
}

/// The source address the kernel's routing table picks for packets to `remote` (a UDP
/// socket is connected, which sends nothing, and asked for its local address).
pub fn source_address_for(remote: IpAddr) -> io::Result<IpAddr> {
    let any: SocketAddr = if remote.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let s = std::net::UdpSocket::bind(any)?;
    s.connect(SocketAddr::new(remote, 500))?;
    Ok(s.local_addr()?.ip())
}

/// Lets the kernel fragment datagrams above the path MTU (IP_MTU_DISCOVER /
/// IPV6_MTU_DISCOVER = PMTUDISC_DONT): the don't-fragment bit is not set.
#[allow(unsafe_code)] // socket2 has no IP_MTU_DISCOVER.
pub(crate) fn allow_fragments(socket: &std::net::UdpSocket, v6: bool) -> io::Result<()> {
    let (level, name, value) = if v6 {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DONT,
        )
    } else {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DONT,
        )
    };
    // SAFETY: `socket` is open for the whole call; `value` is a live c_int and the length
    // passed is exactly its size, as setsockopt(2) requires for these options.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The socket's path-MTU discovery mode (IP_MTU_DISCOVER or IPV6_MTU_DISCOVER), for tests.
#[cfg(test)]
#[allow(unsafe_code)]
pub(crate) fn mtu_discover(socket: &impl AsRawFd, v6: bool) -> io::Result<libc::c_int> {
    let (level, name) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER)
    } else {
        (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER)
    };
    let mut value: libc::c_int = -1;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `socket` is open; `value` and `len` are live and sized for a c_int.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `SO_MEMINFO` (asm-generic/socket.h; the value of every architecture Linux runs ferrosec
/// on: x86, arm, arm64, riscv, powerpc, s390). libc has the offsets but not the option.
const SO_MEMINFO: libc::c_int = 55;

/// The kernel's drop count of a socket (`sk_drops`: receive buffer full, and the socket
/// filter's and memory accounting's refusals), from `getsockopt(SO_MEMINFO)`.
#[allow(unsafe_code)] // socket2 has no SO_MEMINFO.
pub(crate) fn kernel_drops(socket: &impl AsRawFd) -> io::Result<u64> {
    let mut info = [0u32; 16];
    let mut len = size_of_val(&info) as libc::socklen_t;
    // SAFETY: `socket` is an open descriptor for the whole call; `info` is a live buffer of
    // `len` bytes, and the kernel writes at most `len` bytes and stores the length it wrote.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let at = libc::SK_MEMINFO_DROPS as usize;
    if (len as usize) < (at + 1) * size_of::<u32>() {
        return Err(io::Error::other("SO_MEMINFO has no drop count"));
    }
    Ok(u64::from(info[at]))
}

/// Asks for a socket buffer of `bytes`: the `*FORCE` option first (root may exceed
/// `net.core.*mem_max`), then the plain one; failures are not errors, the OS default stays.
#[allow(unsafe_code)] // socket2 has no SO_*BUFFORCE.
pub(crate) fn set_buffer(
    socket: &Socket,
    force: libc::c_int,
    bytes: usize,
    plain: impl Fn(&Socket, usize) -> io::Result<()>,
) {
    if bytes == 0 {
        return;
    }
    let value = libc::c_int::try_from(bytes / 2).unwrap_or(libc::c_int::MAX);
    // The kernel doubles the value it is given (socket(7)), hence `bytes / 2`.
    // SAFETY: `socket` is an open socket for the whole call; `value` is a live c_int and the
    // length passed is exactly its size, as setsockopt(2) requires for SO_*BUFFORCE.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            force,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0
        && let Err(e) = plain(socket, bytes / 2)
    {
        tracing::debug!("socket buffer of {bytes} bytes refused: {e}");
    }
}

/// Reusable receive buffers for one socket: up to [`quinn_udp::BATCH_SIZE`] buffers of 64 KiB.
pub struct RecvBatch {
    buf: Box<[u8]>,
    meta: [RecvMeta; BATCH_SIZE],
    count: usize,
    filled: usize,
    bound: SocketAddr,
    natt: bool,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("count", &self.count)
            .field("filled", &self.filled)
            .finish()
    }
}

impl RecvBatch {
    /// Room for `count` receive buffers (clamped to 1..=[`quinn_udp::BATCH_SIZE`]).
    pub fn new(count: usize) -> Self {
        let count = count.clamp(1, BATCH_SIZE);
        RecvBatch {
            buf: vec![0u8; count * RECV_BUFFER_BYTES].into_boxed_slice(),
            meta: [RecvMeta::default(); BATCH_SIZE],
            count,
            filled: 0,
            bound: SocketAddr::from(([0, 0, 0, 0], 0)),
            natt: false,
        }
    }

    /// Whether the last receive was on a NAT-T port (IKE there starts with the non-ESP marker).
    pub fn is_natt(&self) -> bool {
        self.natt
    }

    /// The datagrams of the last receive, GRO-coalesced buffers split into their segments.
    pub fn iter(&self) -> impl Iterator<Item = Received<'_>> + '_ {
        let bound = self.bound;
        let natt = self.natt;
        self.buf
            .chunks_exact(RECV_BUFFER_BYTES)
            .zip(&self.meta)
            .take(self.filled)
            .flat_map(move |(buf, meta)| {
                let (local, remote, stride, len) = origin(meta, bound, buf.len());
                buf[..len].chunks(stride).map(move |data| Received {
                    local,
                    remote,
                    data,
                    kind: classify(natt, data),
                })
            })
    }
}

impl RecvBatch {
    /// The datagrams of the last receive, as [`RecvBatch::iter`], writable in place (ESP is
    /// decrypted where it was received).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = ReceivedMut<'_>> + '_ {
        let bound = self.bound;
        let natt = self.natt;
        self.buf
            .chunks_exact_mut(RECV_BUFFER_BYTES)
            .zip(&self.meta)
            .take(self.filled)
            .flat_map(move |(buf, meta)| {
                let (local, remote, stride, len) = origin(meta, bound, buf.len());
                buf[..len].chunks_mut(stride).map(move |data| ReceivedMut {
                    local,
                    remote,
                    kind: classify(natt, data),
                    data,
                })
            })
    }
}

/// Where the datagrams of one receive buffer come from and how they lie in it: our address
/// (the real one, also on a wildcard socket), the sender, the segment size (GRO) and the
/// bytes filled (at most `room`).
fn origin(
    meta: &RecvMeta,
    bound: SocketAddr,
    room: usize,
) -> (SocketAddr, SocketAddr, usize, usize) {
    let local = SocketAddr::new(meta.dst_ip.unwrap_or(bound.ip()), bound.port());
    (
        unmap(local),
        unmap(meta.addr),
        meta.stride.max(1),
        meta.len.min(room),
    )
}

/// One received datagram, writable.
#[derive(Debug, PartialEq, Eq)]
pub struct ReceivedMut<'a> {
    /// Our address it was sent to.
    pub local: SocketAddr,
    /// The sender.
    pub remote: SocketAddr,
    /// The payload.
    pub data: &'a mut [u8],
    /// What it is.
    pub kind: Kind,
}

/// IPv4-mapped IPv6 addresses back to IPv4.
fn unmap(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    }
}

/// One received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    /// Our address it arrived on (the real one, also on a wildcard socket).
    pub local: SocketAddr,
    /// The sender.
    pub remote: SocketAddr,
    /// The UDP payload.
    pub data: &'a [u8],
    /// What it is.
    pub kind: Kind,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// IKE sockets leave the don't-fragment bit off (quinn-udp turns it on), so that an
    /// IKE message above the path MTU is fragmented by IP instead of dropped; both families.
    #[test]
    fn ike_sockets_let_ip_fragment() {
        rt().block_on(async {
            let opts = SocketOptions::default();
            let v4 = UdpPort::bind("127.0.0.1:0".parse().unwrap(), false, &opts).unwrap();
            assert_eq!(mtu_discover(&v4.io, false).unwrap(), libc::IP_PMTUDISC_DONT);
            if let Ok(v6) = UdpPort::bind("[::1]:0".parse().unwrap(), true, &opts) {
                assert_eq!(
                    mtu_discover(&v6.io, true).unwrap(),
                    libc::IPV6_PMTUDISC_DONT
                );
            }
        });
    }

    /// Voluntary context switches of thread `tid` of this process so far.
    fn switches(tid: i32) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    }

    /// A runtime waiting on a port is not woken by what the port sends: the kernel freeing a
    /// sent datagram signals write space, which the port does not ask for (once per
    /// datagram when it did: 4,661 of 10,222 wakeups in the handshake benchmark). 2,000
    /// datagrams sent from another thread wake the waiting runtime thread at most a few
    /// times (each send waking it, as before the change, fails this).
    #[test]
    fn sending_does_not_wake_a_runtime_waiting_to_receive() {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let waiter = std::thread::spawn(move || {
            rt().block_on(async move {
                let opts = SocketOptions::default();
                let port = std::sync::Arc::new(
                    UdpPort::bind("127.0.0.1:0".parse().unwrap(), false, &opts).unwrap(),
                );
                // SAFETY: gettid has no preconditions.
                #[allow(unsafe_code)]
                let tid = unsafe { libc::gettid() };
                ready_tx.send((std::sync::Arc::clone(&port), tid)).unwrap();
                let mut batch = RecvBatch::new(1);
                tokio::select! {
                    _ = port.recv(&mut batch) => panic!("nothing is sent to the port"),
                    _ = stop_rx => {}
                }
            })
        });
        let (port, tid) = ready_rx.recv().unwrap();
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = sink.local_addr().unwrap();
        // Let the runtime park in epoll after its first events.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let before = switches(tid);
        let mut sent = 0;
        for i in 0..2_000u32 {
            if port.try_send(port.bound(), to, &i.to_be_bytes()).is_ok() {
                sent += 1;
            }
            if i % 100 == 0 {
                // Let the kernel free what was sent while the waiter sleeps.
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        let woken = switches(tid) - before;
        stop_tx.send(()).unwrap();
        waiter.join().unwrap();
        assert!(sent > 1_000, "{sent} of 2,000 sent");
        assert!(
            woken <= 5,
            "the waiting runtime was woken {woken} times by {sent} sends"
        );
    }

    #[test]
    fn classify_splits_natt_traffic() {
        assert_eq!(classify(false, &[1, 2, 3]), Kind::Ike);
        assert_eq!(classify(true, &[0xff]), Kind::Keepalive);
        assert_eq!(classify(true, &[0, 0, 0, 0, 1, 2, 3]), Kind::Ike);
        assert_eq!(classify(true, &[0, 0, 1, 0, 0, 0, 0, 1]), Kind::Esp);
        assert_eq!(classify(true, &[0, 0, 1]), Kind::Malformed);
    }

    #[test]
    fn specific_socket_reports_local_and_remote_and_sends_back() {
        rt().block_on(async {
            let opts = SocketOptions::default();
            let a = UdpPort::bind("127.0.0.1:0".parse().unwrap(), true, &opts).unwrap();
            let b = UdpPort::bind("127.0.0.1:0".parse().unwrap(), true, &opts).unwrap();
            assert!(!a.is_wildcard());
            assert!(a.serves(a.bound()));
            assert!(!a.serves(b.bound()));
            a.send(a.bound(), b.bound(), &[0, 0, 0, 0, 42])
                .await
                .unwrap();
            a.send(a.bound(), b.bound(), &[0xff]).await.unwrap();
            a.send(a.bound(), b.bound(), &[0, 0, 0, 7, 0, 0, 0, 1, 9])
                .await
                .unwrap();
            let mut batch = RecvBatch::new(8);
            let mut got = Vec::new();
            for _ in 0..3 {
                if got.len() == 3 {
                    break;
                }
                tokio::time::timeout(std::time::Duration::from_secs(5), b.recv(&mut batch))
                    .await
                    .expect("datagrams within 5 s")
                    .unwrap();
                let seen: Vec<_> = batch
                    .iter()
                    .map(|r| (r.local, r.remote, r.data.to_vec(), r.kind))
                    .collect();
                // The writable view is the same datagrams, and what is written stays.
                for r in batch.iter_mut() {
                    r.data[0] ^= 0x80;
                }
                let flipped: Vec<_> = batch
                    .iter_mut()
                    .map(|r| (r.local, r.remote, r.data.to_vec(), r.kind))
                    .collect();
                assert_eq!(seen.len(), flipped.len());
                for (s, f) in seen.iter().zip(&flipped) {
                    assert_eq!((s.0, s.1), (f.0, f.1));
                    assert_eq!(s.2[1..], f.2[1..]);
                    assert_eq!(s.2[0] ^ 0x80, f.2[0]);
                }
                got.extend(seen);
            }
            assert_eq!(got.len(), 3, "{got:?}");
            assert!(got.iter().all(|g| g.0 == b.bound() && g.1 == a.bound()));
            assert_eq!(got[0].3, Kind::Ike);
            assert_eq!(got[0].2, vec![0, 0, 0, 0, 42]);
            assert_eq!(got[1].3, Kind::Keepalive);
            assert_eq!(got[2].3, Kind::Esp);
        });
    }

    #[test]
    fn wildcard_socket_learns_the_local_address() {
        rt().block_on(async {
            let opts = SocketOptions::default();
            let w = UdpPort::bind("0.0.0.0:0".parse().unwrap(), false, &opts).unwrap();
            assert!(w.is_wildcard());
            let port = w.bound().port();
            let to: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
            let c = UdpPort::bind("127.0.0.1:0".parse().unwrap(), false, &opts).unwrap();
            c.send(c.bound(), to, b"hello").await.unwrap();
            let mut batch = RecvBatch::new(4);
            tokio::time::timeout(std::time::Duration::from_secs(5), w.recv(&mut batch))
                .await
                .expect("a datagram within 5 s")
                .unwrap();
            let r = batch.iter().next().unwrap();
            assert_eq!(
                r.local, to,
                "IP_PKTINFO gives the address the datagram was sent to"
            );
            assert_eq!(r.remote, c.bound());
            assert_eq!(r.kind, Kind::Ike);
            // And the answer leaves from that address.
            assert!(w.serves(to));
            w.send(to, c.bound(), b"back").await.unwrap();
            tokio::time::timeout(std::time::Duration::from_secs(5), c.recv(&mut batch))
                .await
                .expect("the answer within 5 s")
                .unwrap();
            let r = batch.iter().next().unwrap();
            assert_eq!(r.remote, to);
            assert_eq!(r.data, b"back");
        });
    }

    #[test]
    fn ipv6_loopback_when_available() {
        rt().block_on(async {
            let opts = SocketOptions::default();
            let Ok(a) = UdpPort::bind("[::1]:0".parse().unwrap(), false, &opts) else {
                eprintln!("no IPv6 loopback here; skipped");
                return;
            };
            let w = UdpPort::bind("[::]:0".parse().unwrap(), false, &opts).unwrap();
            let to = SocketAddr::new("::1".parse().unwrap(), w.bound().port());
            a.send(a.bound(), to, b"six").await.unwrap();
            let mut batch = RecvBatch::new(1);
            tokio::time::timeout(std::time::Duration::from_secs(5), w.recv(&mut batch))
                .await
                .expect("a datagram within 5 s")
                .unwrap();
            let r = batch.iter().next().unwrap();
            assert_eq!(r.local, to);
            assert_eq!(r.data, b"six");
        });
    }

    #[test]
    fn source_address_of_loopback_is_loopback() {
        let ip = source_address_for("127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(ip, "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn bind_error_names_the_address() {
        rt().block_on(async {
            let opts = SocketOptions::default();
            let a = UdpPort::bind("127.0.0.1:0".parse().unwrap(), false, &opts).unwrap();
            let err = UdpPort::bind(a.bound(), false, &opts).unwrap_err();
            assert!(err.to_string().contains(&a.bound().to_string()), "{err}");
        });
    }

    /// A socket that is not read while datagrams pour in: the kernel drops what its small
    /// receive buffer cannot hold, and `kernel_drops` counts every one of them.
    #[test]
    fn kernel_drops_count_what_a_full_receive_buffer_lost() {
        rt().block_on(async {
            let opts = SocketOptions {
                recv_buffer: 4096,
                ..SocketOptions::default()
            };
            let port = UdpPort::bind("127.0.0.1:0".parse().unwrap(), false, &opts).unwrap();
            assert_eq!(port.kernel_drops().unwrap(), 0);
            let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            for _ in 0..500 {
                tx.send_to(&[7u8; 1000], port.bound()).unwrap();
            }
            let mut batch = RecvBatch::new(32);
            let mut received = 0;
            while let Ok(Ok(())) =
                tokio::time::timeout(std::time::Duration::from_millis(200), port.recv(&mut batch))
                    .await
            {
                received += batch.iter().count();
            }
            let dropped = port.kernel_drops().unwrap();
            assert!(dropped > 0, "a 4 KiB buffer cannot hold 500 datagrams");
            assert_eq!(
                received as u64 + dropped,
                500,
                "received {received}, dropped {dropped}"
            );
        });
    }

    #[test]
    fn buffers_are_enlarged() {
        rt().block_on(async {
            let opts = SocketOptions {
                recv_buffer: 4 << 20,
                ..SocketOptions::default()
            };
            let a = UdpPort::bind("127.0.0.1:0".parse().unwrap(), false, &opts).unwrap();
            let granted = a.recv_buffer_size().unwrap();
            // As root SO_RCVBUFFORCE grants the size; otherwise rmem_max caps it.
            let is_root = std::fs::read_to_string("/proc/self/status")
                .map(|s| {
                    s.lines()
                        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
                })
                .unwrap_or(false);
            if is_root {
                assert!(granted >= 4 << 20, "granted {granted}");
            } else {
                assert!(granted > 0);
            }
        });
    }
}
