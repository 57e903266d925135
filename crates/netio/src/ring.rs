//! A packet ring for inbound raw ESP over IPv4 or IPv6 (AF_PACKET, `TPACKET_V2`, packet(7)).
//!
//! A raw IP socket costs the receiving gateway, per ESP packet, the kernel's whole IP input
//! path to the socket: a clone of the packet for the socket, its queue, a wakeup, and a copy
//! out in `recvmmsg`. Measured on the benchmark's veth pair (1,440-byte ESP, one sender
//! saturating a core): a raw socket took 480,000 packets/s and 2.7 s of CPU for 5 s of them;
//! a packet ring took 560,000 and 0.06 s, the kernel writing each packet straight into memory
//! the daemon has mapped.
//!
//! An [`EspRing`] is one `socket(AF_PACKET, SOCK_DGRAM, ETH_P_IP)` (or `ETH_P_IPV6`) on every
//! interface, with a classic BPF filter that keeps only ESP (IP protocol 50; over IPv6, next
//! header 50 right after the IPv6 header) sent to one of our addresses, and a receive ring of [`FRAMES`] frames of [`FRAME_BYTES`] shared with the kernel. The
//! kernel fills a frame and marks it the user's; [`EspRing::drain`] hands its ESP payload to
//! the caller, who decrypts it where it lies, and gives the frame back. Nothing is copied or
//! allocated per packet.
//!
//! What the kernel's IP layer did for the raw socket, the ring does itself over IPv4:
//! - it checks the IPv4 header (version, lengths, checksum:
//!   [`ferrosec_wire::ipv4::Ipv4Header::parse`]) and ignores padding after the datagram;
//! - it reassembles fragmented ESP ([`ferrosec_wire::ipv4frag`], bounded: 16 datagrams in
//!   progress, 30 s);
//! - a packet larger than a frame (jumbo frames) is queued whole by the kernel as well
//!   (`PACKET_COPY_THRESH`) and read from there.
//!
//! The raw ESP socket stays open, for sending and so that the kernel does not answer ESP with
//! ICMP "protocol unreachable"; over IPv4 [`crate::RawIpsec::stop_receiving`] makes it drop
//! what it would have queued.
//!
//! Over IPv6 the ring takes only ESP right after the IPv6 header, and checks that header
//! (version, payload length, next header, destination). A fragment (next header 44) or a packet
//! with other extension headers goes on to the kernel, which reassembles it and hands it to the
//! raw socket; so the IPv6 raw socket keeps receiving, and a ring over IPv6 is only of use
//! with an [`crate::EspEarlyDrop`] that keeps what the ring has read from reaching it twice. The ring sees packets before netfilter: host firewall rules on ESP to
//! the gateway no longer apply to it (the SA lookup and the ICV check do). A ring may keep an
//! [`crate::EspEarlyDrop`] ([`EspRing::with_early_drop`]), so that the kernel drops what the
//! ring has read at prerouting instead of taking it through IP input to the raw socket.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use ferrosec_wire::ipv4::Ipv4Header;
use ferrosec_wire::ipv4frag::{Limits, Offer, Reassembler};
use tokio::io::unix::AsyncFd;

use crate::EspEarlyDrop;
use crate::raw::IPPROTO_ESP;

/// Bytes of one ring frame: the frame header (80 bytes with `SOCK_DGRAM`) and a packet of up
/// to 1,968 bytes, enough for a 1,500-byte MTU. Larger packets come through the socket queue.
pub const FRAME_BYTES: usize = 2048;
/// Frames in one ring (8 MiB, mapped into the daemon): as many 1,500-byte packets as the raw
/// socket's 8 MiB receive buffer held, and more. With 2,048 the benchmark's ring overflowed
/// now and then (568 packets in 20 s at 2.7 Gbit/s) while the worker waited for a core.
pub const FRAMES: usize = 4096;
/// Bytes of one ring block (a multiple of the page size holding whole frames).
const BLOCK_BYTES: usize = 1 << 16;
/// Room in the socket queue for packets larger than a frame (`SO_RCVBUF`).
const COPY_QUEUE_BYTES: usize = 8 << 20;
/// Largest packet read from the socket queue: an IPv4 datagram is at most 65,535 bytes, an
/// IPv6 packet (no jumbogram) 40 more.
const COPY_BYTES: usize = 65_535 + 40;

/// The reassembly's bounds: 16 datagrams in progress (at most 1 MiB), 30 s each.
const REASSEMBLY: Limits = Limits {
    datagrams: 16,
    max_bytes: 65535,
    timeout: std::time::Duration::from_secs(30),
};

/// `ETH_P_IP`, in network byte order as `socket(2)` and `sockaddr_ll` want it.
const ETH_P_IP_BE: u16 = (libc::ETH_P_IP as u16).to_be();
/// `ETH_P_IPV6`, in network byte order.
const ETH_P_IPV6_BE: u16 = (libc::ETH_P_IPV6 as u16).to_be();
/// Length of the IPv6 header.
const IPV6_HEADER: usize = 40;

/// What the ring turned away, since it was opened.
#[derive(Debug, Default)]
struct Refused {
    /// Packets whose IPv4 or IPv6 header was broken (or, which the filter prevents, not ESP to us).
    malformed: AtomicU64,
    /// Fragments the reassembly refused, and datagrams it gave up (timed out, evicted).
    fragments: AtomicU64,
}

/// A handle on the ring's kernel drop count (frames the kernel found full), for the
/// daemon's drop counters; usable from another task while the ring is drained.
#[derive(Debug, Clone)]
pub struct RingDrops {
    fd: Arc<OwnedFd>,
    total: Arc<AtomicU64>,
    refused: Arc<Refused>,
}

impl RingDrops {
    /// Packets the kernel dropped because no frame was free, or because one larger than a
    /// frame found no room in the socket queue, since the ring was opened.
    #[allow(unsafe_code)] // getsockopt(PACKET_STATISTICS).
    pub fn kernel_drops(&self) -> io::Result<u64> {
        let mut stats = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `stats` is a live tpacket_stats and `len` its true size; the kernel writes
        // at most `len` bytes into it. The descriptor is open while `self.fd` lives.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut stats).cast(),
                &mut len,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // The kernel resets its counts on every read: keep the sum.
        let added = u64::from(stats.tp_drops);
        Ok(self.total.fetch_add(added, Ordering::Relaxed) + added)
    }

    /// Packets with a broken IPv4 or IPv6 header, since the ring was opened (the kernel's IP layer
    /// used to drop them before the raw socket).
    pub fn malformed(&self) -> u64 {
        self.refused.malformed.load(Ordering::Relaxed)
    }

    /// Fragments the reassembly refused (overlapping, duplicate, too big, broken) and
    /// datagrams it gave up (not complete within 30 s, or pushed out of its table of 16).
    pub fn fragments_dropped(&self) -> u64 {
        self.refused.fragments.load(Ordering::Relaxed)
    }
}

/// One AF_PACKET receive ring for ESP sent to one IPv4 or IPv6 address.
pub struct EspRing {
    /// The table that drops what the ring has read before the kernel's IP input, if any;
    /// first, so that it goes before the ring's socket closes.
    early_drop: Option<EspEarlyDrop>,
    io: AsyncFd<Arc<OwnedFd>>,
    map: NonNull<u8>,
    head: usize,
    local: IpAddr,
    copy: Box<[u8]>,
    reassembly: Reassembler,
    /// Datagrams the reassembly had given up when last looked at.
    given_up: u64,
    refused: Arc<Refused>,
    drops: RingDrops,
}

// SAFETY: `map` points at memory owned by this value alone (the ring mapped for its socket,
// unmapped in Drop); nothing else in the process holds the pointer, so the ring may move to
// another thread with its owner.
#[allow(unsafe_code)]
unsafe impl Send for EspRing {}
// SAFETY: through `&EspRing` the mapping is only read by atomic loads of frame status words
// (`ready`); every access that reads packets or writes the ring takes `&mut self`.
#[allow(unsafe_code)]
unsafe impl Sync for EspRing {}

impl std::fmt::Debug for EspRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EspRing")
            .field("local", &self.local)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

#[allow(unsafe_code)] // socket options, mmap and the frames shared with the kernel.
impl EspRing {
    /// Opens a ring that receives ESP sent to `local` on any interface. Needs CAP_NET_RAW.
    /// Must be called inside a tokio runtime.
    pub fn open(local: IpAddr) -> io::Result<Self> {
        // Protocol 0 until the filter and the ring are in place: the socket receives nothing
        // before `bind` names ETH_P_IP or ETH_P_IPV6.
        // SAFETY: plain system call with constant arguments.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        let fd = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        let raw = fd.as_raw_fd();
        // SAFETY: the AsyncFd owns a reference to the open descriptor; nothing closes or
        // replaces it while the AsyncFd lives, and `OwnedFd::as_raw_fd` always returns it.
        let io = unsafe {
            AsyncFd::register_with_interest(Arc::clone(&fd), tokio::io::Interest::READABLE)
        }
        .map_err(|e| io::Error::other(e.to_string()))?;
        match local {
            IpAddr::V4(a) => attach_filter(raw, &esp_to(a))?,
            IpAddr::V6(a) => attach_filter(raw, &esp_to6(a))?,
        }
        set_int(
            raw,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            libc::tpacket_versions::TPACKET_V2 as i32,
        )?;
        // Packets larger than a frame are also queued whole on the socket (TP_STATUS_COPY).
        set_int(raw, libc::SOL_PACKET, libc::PACKET_COPY_THRESH, 1)?;
        // Room in that queue as the raw socket has it (8 MiB);
        // a packet larger than a frame that finds the queue full is cut to the frame and
        // counted as dropped by `drain`.
        crate::udp::set_buffer(
            &socket2::SockRef::from(fd.as_ref()),
            libc::SO_RCVBUFFORCE,
            COPY_QUEUE_BYTES,
            |s, n| s.set_recv_buffer_size(n),
        );
        let req = libc::tpacket_req {
            tp_block_size: BLOCK_BYTES as u32,
            tp_block_nr: (FRAMES * FRAME_BYTES / BLOCK_BYTES) as u32,
            tp_frame_size: FRAME_BYTES as u32,
            tp_frame_nr: FRAMES as u32,
        };
        // SAFETY: `req` is a live tpacket_req of the size given.
        let r = unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_PACKET,
                libc::PACKET_RX_RING,
                (&raw const req).cast(),
                size_of::<libc::tpacket_req>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: maps the ring the kernel just allocated for this socket, its whole length,
        // shared; the result is checked before use and unmapped in Drop.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                FRAMES * FRAME_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                raw,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(map.cast::<u8>()).ok_or_else(|| io::Error::other("mmap"))?;
        let refused = Arc::new(Refused::default());
        let drops = RingDrops {
            fd: Arc::clone(&fd),
            total: Arc::default(),
            refused: Arc::clone(&refused),
        };
        // From here on, Drop unmaps the ring whatever fails.
        let ring = EspRing {
            early_drop: None,
            io,
            map,
            head: 0,
            local,
            copy: vec![0u8; COPY_BYTES].into_boxed_slice(),
            reassembly: Reassembler::new(REASSEMBLY),
            given_up: 0,
            refused,
            drops,
        };
        // SAFETY: an all-zero sockaddr_ll is valid; interface 0 is every interface.
        let mut ll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        ll.sll_family = libc::AF_PACKET as u16;
        ll.sll_protocol = match local {
            IpAddr::V4(_) => ETH_P_IP_BE,
            IpAddr::V6(_) => ETH_P_IPV6_BE,
        };
        // SAFETY: `ll` is a live sockaddr_ll of the size given.
        let r = unsafe {
            libc::bind(
                raw,
                (&raw const ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ring)
    }

    /// The address whose ESP the ring receives.
    pub fn local(&self) -> IpAddr {
        self.local
    }

    /// The ring, keeping `drop` (the table that drops ESP to the ring's address before IP
    /// input) for as long as it lives: the table goes with the ring. `drop` must be for the
    /// ring's address; one for another address is not kept.
    pub fn with_early_drop(mut self, drop: EspEarlyDrop) -> Self {
        if drop.local() == self.local {
            self.early_drop = Some(drop);
        }
        self
    }

    /// The table kept by [`EspRing::with_early_drop`], if any.
    pub fn early_drop(&self) -> Option<&EspEarlyDrop> {
        self.early_drop.as_ref()
    }

    /// A handle on the kernel's drop count for this ring.
    pub fn drops(&self) -> RingDrops {
        self.drops.clone()
    }

    /// Packets turned away since the ring opened: (broken IP header, fragments dropped).
    pub fn refused(&self) -> (u64, u64) {
        (self.drops.malformed(), self.drops.fragments_dropped())
    }

    /// The status word of frame `i` (which the kernel writes concurrently).
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: frame `i < FRAMES` lies inside the mapping, frames are 16-byte aligned
        // (FRAME_BYTES is a multiple of 16 and the mapping page-aligned), and its first four
        // bytes are `tp_status`, which the kernel and we only ever access atomically.
        unsafe { AtomicU32::from_ptr(self.map.as_ptr().add(i % FRAMES * FRAME_BYTES).cast()) }
    }

    /// Whether the next frame holds a packet.
    fn ready_now(&self) -> bool {
        self.status(self.head).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// Waits until at least one packet is in the ring.
    pub async fn ready(&self) -> io::Result<()> {
        loop {
            if self.ready_now() {
                return Ok(());
            }
            let mut guard = self.io.readable().await?;
            if self.ready_now() {
                return Ok(());
            }
            guard.clear_ready();
            // A packet that landed between the check and the clear raised no new event.
            if self.ready_now() {
                return Ok(());
            }
        }
    }

    /// Hands each waiting ESP packet (at most `limit`) to `f` with its sender and gives its
    /// frame back to the kernel. `f` gets the ESP packet, SPI first, writable in place.
    /// Returns how many frames were taken.
    pub fn drain<F: FnMut(IpAddr, &mut [u8])>(&mut self, limit: usize, mut f: F) -> usize {
        let mut taken = 0;
        let now = Instant::now();
        while taken < limit && self.ready_now() {
            let frame = self.frame(self.head);
            // SAFETY: the frame is ours until its status goes back to TP_STATUS_KERNEL (the
            // Acquire load in `ready_now` orders the kernel's writes of it before our reads);
            // its header is a tpacket2_hdr at its start (TPACKET_V2), read unaligned-safe.
            let hdr = unsafe { frame.as_ptr().cast::<libc::tpacket2_hdr>().read_unaligned() };
            let status = hdr.tp_status;
            if status & libc::TP_STATUS_COPY != 0 {
                // Larger than a frame: the whole packet waits in the socket's queue.
                if let Some(n) = self.recv_copy() {
                    let (local, copy) = (self.local, &mut self.copy[..]);
                    if let Some(pkt) = copy.get_mut(..n) {
                        dispatch(
                            local,
                            pkt,
                            now,
                            (&mut self.reassembly, &*self.refused),
                            &mut f,
                        );
                    }
                }
            } else if hdr.tp_len > hdr.tp_snaplen {
                // Larger than a frame and no room left in the socket queue: the kernel kept
                // only the frame's worth. Lost, like a packet that found the ring full.
                self.drops.total.fetch_add(1, Ordering::Relaxed);
            } else {
                let net = usize::from(hdr.tp_net);
                let len = hdr.tp_snaplen as usize;
                if net.checked_add(len).is_some_and(|end| end <= FRAME_BYTES) {
                    // SAFETY: `net..net + len` lies inside this frame (checked above), which
                    // is ours until it is given back below; nothing else aliases it meanwhile.
                    let pkt =
                        unsafe { std::slice::from_raw_parts_mut(frame.as_ptr().add(net), len) };
                    dispatch(
                        self.local,
                        pkt,
                        now,
                        (&mut self.reassembly, &*self.refused),
                        &mut f,
                    );
                } else {
                    self.refused.malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.status(self.head)
                .store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.head = (self.head + 1) % FRAMES;
            taken += 1;
        }
        if taken > 0 {
            self.reassembly.expire(now);
            let st = self.reassembly.stats();
            let given_up = st.timed_out + st.evicted;
            self.refused
                .fragments
                .fetch_add(given_up - self.given_up, Ordering::Relaxed);
            self.given_up = given_up;
        }
        taken
    }

    /// The start of frame `i`.
    fn frame(&self, i: usize) -> NonNull<u8> {
        // SAFETY: `i % FRAMES * FRAME_BYTES` is inside the mapping of FRAMES * FRAME_BYTES.
        unsafe { self.map.add(i % FRAMES * FRAME_BYTES) }
    }

    /// Reads the packet queued for a TP_STATUS_COPY frame into `self.copy`.
    fn recv_copy(&mut self) -> Option<usize> {
        // SAFETY: `self.copy` is a live buffer of the length given; MSG_DONTWAIT never blocks.
        let n = unsafe {
            libc::recv(
                self.io.get_ref().as_raw_fd(),
                self.copy.as_mut_ptr().cast(),
                self.copy.len(),
                libc::MSG_DONTWAIT,
            )
        };
        usize::try_from(n).ok()
    }
}

#[allow(unsafe_code)] // munmap of the ring.
impl Drop for EspRing {
    fn drop(&mut self) {
        // SAFETY: `map` is the mapping of FRAMES * FRAME_BYTES made in `open`, unmapped once;
        // no slice into it outlives `drain`.
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), FRAMES * FRAME_BYTES);
        }
    }
}

/// Checks one packet from the ring for `local` and hands its ESP payload to `f` with its
/// sender: [`deliver`] over IPv4, [`deliver6`] over IPv6.
fn dispatch<F: FnMut(IpAddr, &mut [u8])>(
    local: IpAddr,
    pkt: &mut [u8],
    now: Instant,
    (reassembly, refused): (&mut Reassembler, &Refused),
    f: &mut F,
) {
    match local {
        IpAddr::V4(l) => deliver(l, pkt, now, (reassembly, refused), &mut |src, p| {
            f(src.into(), p)
        }),
        IpAddr::V6(l) => deliver6(l, pkt, refused, f),
    }
}

/// Checks one IPv6 packet from the ring (ESP right after the header: the filter takes no
/// other) and hands its ESP payload to `f`; padding after the payload is left out.
fn deliver6<F: FnMut(IpAddr, &mut [u8])>(
    local: Ipv6Addr,
    pkt: &mut [u8],
    refused: &Refused,
    f: &mut F,
) {
    let fields = pkt.get(..IPV6_HEADER).and_then(|h| {
        let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
        let src: [u8; 16] = h[8..24].try_into().ok()?;
        let ours = h[0] >> 4 == 6 && h[6] == IPPROTO_ESP as u8 && h[24..40] == local.octets();
        (ours && len > 0).then_some((len, src))
    });
    match fields.and_then(|(len, src)| Some((pkt.get_mut(IPV6_HEADER..IPV6_HEADER + len)?, src))) {
        Some((payload, src)) => f(Ipv6Addr::from(src).into(), payload),
        // Not ours (the filter lets nothing else through), or its lengths do not hold.
        None => {
            refused.malformed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Checks one IPv4 packet from the ring and hands its ESP payload to `f` (a fragment only
/// once its datagram is complete).
fn deliver<F: FnMut(Ipv4Addr, &mut [u8])>(
    local: Ipv4Addr,
    pkt: &mut [u8],
    now: Instant,
    (reassembly, refused): (&mut Reassembler, &Refused),
    f: &mut F,
) {
    let Ok(h) = Ipv4Header::parse(pkt) else {
        refused.malformed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if h.protocol != IPPROTO_ESP as u8 || h.dst != local {
        // The filter lets nothing else through; a packet that gets here anyway is not ours.
        refused.malformed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if !h.is_fragment() {
        if let Some(payload) = pkt.get_mut(h.payload_range()) {
            f(h.src, payload);
        }
        return;
    }
    match reassembly.offer(now, pkt.get(..h.total_len).unwrap_or_default()) {
        Offer::Complete {
            src,
            protocol,
            payload,
            ..
        } if protocol == IPPROTO_ESP as u8 => f(src, payload),
        Offer::Held => {}
        _ => {
            refused.fragments.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A classic BPF program for a `SOCK_DGRAM` packet socket (offsets from the IP header) that
/// keeps IPv4 packets of protocol ESP sent to `local`, whole, and drops everything else.
fn esp_to(local: Ipv4Addr) -> [libc::sock_filter; 6] {
    const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    [
        op(LD_B_ABS, 0, 0, 9),                    // protocol
        op(JEQ_K, 0, 3, IPPROTO_ESP as u32),      // not ESP: drop
        op(LD_W_ABS, 0, 0, 16),                   // destination address
        op(JEQ_K, 0, 1, u32::from(local)),        // not ours: drop
        op(RET_K, 0, 0, u32::from(u16::MAX) + 1), // keep it whole
        op(RET_K, 0, 0, 0),                       // drop
    ]
}

/// A classic BPF program for a `SOCK_DGRAM` packet socket (offsets from the IPv6 header) that
/// keeps IPv6 packets whose next header is ESP sent to `local`, whole, and drops everything
/// else (fragments and other extension headers included: the kernel takes those).
fn esp_to6(local: Ipv6Addr) -> [libc::sock_filter; 12] {
    const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let o = local.octets();
    let word = |i: usize| u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]);
    [
        op(LD_B_ABS, 0, 0, 6),               // next header
        op(JEQ_K, 0, 9, IPPROTO_ESP as u32), // not ESP: drop
        op(LD_W_ABS, 0, 0, 24),              // destination address, four words
        op(JEQ_K, 0, 7, word(0)),            // not ours: drop
        op(LD_W_ABS, 0, 0, 28),
        op(JEQ_K, 0, 5, word(1)),
        op(LD_W_ABS, 0, 0, 32),
        op(JEQ_K, 0, 3, word(2)),
        op(LD_W_ABS, 0, 0, 36),
        op(JEQ_K, 0, 1, word(3)),
        op(RET_K, 0, 0, u32::from(u16::MAX) + 1), // keep it whole
        op(RET_K, 0, 0, 0),                       // drop
    ]
}

/// Attaches a classic BPF program to a socket (`SO_ATTACH_FILTER`).
#[allow(unsafe_code)] // setsockopt with a pointer to the program.
pub(crate) fn attach_filter(fd: i32, program: &[libc::sock_filter]) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: u16::try_from(program.len()).map_err(|_| io::Error::other("BPF program too long"))?,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `program`, live for the call, with its true length; the kernel
    // copies the program and only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&raw const prog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets an integer socket option.
#[allow(unsafe_code)] // setsockopt with a pointer to an int.
pub(crate) fn set_int(fd: i32, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: `value` is a live int of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IpsecProtocol, RawBatch, RawIpsec, SocketOptions};
    use ferrosec_wire::checksum::checksum;
    use std::net::IpAddr;
    use std::time::Duration;

    /// An IPv4 header (20 bytes, checksum filled in) for `payload_len` bytes of ESP.
    fn header(src: [u8; 4], dst: [u8; 4], payload_len: usize, flags_offset: u16) -> Vec<u8> {
        let total = (20 + payload_len) as u16;
        let mut h = vec![0x45, 0];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&[0x12, 0x34]);
        h.extend_from_slice(&flags_offset.to_be_bytes());
        h.extend_from_slice(&[64, 50, 0, 0]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn deliver_hands_over_the_esp_payload_of_our_packets_only() {
        let local = Ipv4Addr::new(192, 0, 2, 2);
        let mut reassembly = Reassembler::new(Limits::default());
        let refused = Refused::default();
        let mut got = Vec::new();
        let mut ours = header([192, 0, 2, 1], [192, 0, 2, 2], 8, 0);
        ours.extend_from_slice(&[9; 8]);
        let mut theirs = header([192, 0, 2, 1], [192, 0, 2, 3], 8, 0);
        theirs.extend_from_slice(&[9; 8]);
        for pkt in [&mut ours, &mut theirs] {
            deliver(
                local,
                pkt,
                Instant::now(),
                (&mut reassembly, &refused),
                &mut |src, p: &mut [u8]| {
                    p[0] = 7; // writable in place
                    got.push((src, p.to_vec()));
                },
            );
        }
        assert_eq!(
            got,
            vec![(Ipv4Addr::new(192, 0, 2, 1), {
                let mut v = vec![9; 8];
                v[0] = 7;
                v
            })]
        );
        assert_eq!(ours[20], 7, "the payload was written where it lay");
        assert_eq!(refused.malformed.load(Ordering::Relaxed), 1);
    }

    /// An IPv6 header from `src` to `dst` for `payload_len` bytes after it, next header `next`.
    fn header6(src: Ipv6Addr, dst: Ipv6Addr, payload_len: u16, next: u8) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&payload_len.to_be_bytes());
        h.extend_from_slice(&[next, 64]);
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&dst.octets());
        h
    }

    #[test]
    fn deliver6_hands_over_the_esp_payload_of_our_packets_only() {
        let (peer, local, other): (Ipv6Addr, Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            "2001:db8::3".parse().unwrap(),
        );
        let refused = Refused::default();
        let mut got = Vec::new();
        let with = |mut h: Vec<u8>, body: &[u8]| {
            h.extend_from_slice(body);
            h
        };
        let mut ours = with(header6(peer, local, 8, 50), &[9; 8]);
        // Ethernet padding after the payload is left out.
        let mut padded = with(header6(peer, local, 8, 50), &[5; 14]);
        let mut theirs = with(header6(peer, other, 8, 50), &[9; 8]);
        let mut fragment = with(header6(peer, local, 8, 44), &[9; 8]);
        let mut short = with(header6(peer, local, 9, 50), &[9; 8]);
        let mut empty = header6(peer, local, 0, 50);
        let mut v4 = with(header6(peer, local, 8, 50), &[9; 8]);
        v4[0] = 0x45;
        let mut cut = ours[..30].to_vec();
        for pkt in [
            &mut ours,
            &mut padded,
            &mut theirs,
            &mut fragment,
            &mut short,
            &mut empty,
            &mut v4,
            &mut cut,
        ] {
            deliver6(local, pkt, &refused, &mut |src, p: &mut [u8]| {
                p[0] = 7; // writable in place
                got.push((src, p.to_vec()));
            });
        }
        let mut first = vec![9; 8];
        first[0] = 7;
        let mut second = vec![5; 8];
        second[0] = 7;
        assert_eq!(
            got,
            vec![(IpAddr::from(peer), first), (peer.into(), second)]
        );
        assert_eq!(ours[40], 7, "the payload was written where it lay");
        assert_eq!(refused.malformed.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn deliver6_never_panics_on_garbage() {
        let local: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let refused = Refused::default();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut delivered = 0u64;
        for n in 0..20_000u32 {
            let len = (next() % 120) as usize;
            let mut pkt = if n % 2 == 0 {
                (0..len).map(|_| next() as u8).collect::<Vec<u8>>()
            } else {
                let mut p = header6(
                    "2001:db8::1".parse().unwrap(),
                    local,
                    next() as u16 % 90,
                    50,
                );
                p.extend((0..len).map(|_| next() as u8));
                p
            };
            deliver6(local, &mut pkt, &refused, &mut |_, p: &mut [u8]| {
                assert!(!p.is_empty() && p.len() <= 65535);
                delivered += 1;
            });
        }
        let counted = refused.malformed.load(Ordering::Relaxed);
        assert!(delivered > 0 && counted > 0, "both outcomes reached");
        assert_eq!(delivered + counted, 20_000);
    }

    #[test]
    fn the_ipv6_filter_compares_next_header_and_all_four_words_of_the_address() {
        let local: Ipv6Addr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let prog = esp_to6(local);
        assert_eq!((prog[0].k, prog[1].k), (6, 50));
        let words: Vec<u32> = prog[2..10].chunks(2).map(|p| p[1].k).collect();
        assert_eq!(words, [0x2001_0db8, 0x0001_0002, 0x0003_0004, 0x0005_0006]);
        let offsets: Vec<u32> = prog[2..10].chunks(2).map(|p| p[0].k).collect();
        assert_eq!(offsets, [24, 28, 32, 36]);
        // Every failed comparison jumps to the last instruction, which drops.
        for (i, op) in prog.iter().enumerate().filter(|(_, op)| op.jf > 0) {
            assert_eq!(i + 1 + usize::from(op.jf), prog.len() - 1, "{i}");
        }
        assert_eq!(prog[prog.len() - 1].k, 0);
    }

    #[test]
    fn deliver_checks_the_header() {
        // Ethernet padding after the datagram is not handed over; a header that fails the
        // check (here its checksum) is counted and not handed over either.
        let local = Ipv4Addr::new(192, 0, 2, 2);
        let mut reassembly = Reassembler::new(Limits::default());
        let refused = Refused::default();
        let mut got = Vec::new();
        let mut padded = header([192, 0, 2, 1], [192, 0, 2, 2], 8, 0x4000);
        padded.extend_from_slice(&[9; 8]);
        padded.extend_from_slice(&[0; 6]);
        let mut bad_sum = padded.clone();
        bad_sum[8] = 63; // TTL changed, checksum not
        for pkt in [&mut padded, &mut bad_sum] {
            deliver(
                local,
                pkt,
                Instant::now(),
                (&mut reassembly, &refused),
                &mut |src, p: &mut [u8]| got.push((src, p.to_vec())),
            );
        }
        assert_eq!(got, vec![(Ipv4Addr::new(192, 0, 2, 1), vec![9; 8])]);
        assert_eq!(refused.malformed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn garbage_never_panics_and_is_counted() {
        // Random bytes, and sound headers with random flags, offsets and lengths: nothing may
        // panic, and every packet either reaches `f`, waits in the reassembly or is counted.
        let local = Ipv4Addr::new(192, 0, 2, 2);
        let mut reassembly = Reassembler::new(REASSEMBLY);
        let refused = Refused::default();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut delivered, mut sent) = (0u64, 0u64);
        let t0 = Instant::now();
        for n in 0..20_000u32 {
            let len = (next() % 120) as usize;
            let mut pkt = if n % 2 == 0 {
                (0..len).map(|_| next() as u8).collect::<Vec<u8>>()
            } else {
                let flags = (next() as u16) & 0x3fff & if next() % 4 == 0 { 0 } else { 0x2007 };
                let mut p = header([192, 0, 2, 1], [192, 0, 2, 2], len, flags);
                p.extend((0..len).map(|_| next() as u8));
                if next() % 5 == 0 {
                    p.truncate((next() as usize) % (p.len() + 1));
                }
                p
            };
            sent += 1;
            let now = t0 + Duration::from_millis(u64::from(n));
            deliver(
                local,
                &mut pkt,
                now,
                (&mut reassembly, &refused),
                &mut |_, p: &mut [u8]| {
                    assert!(p.len() <= 65535);
                    delivered += 1;
                },
            );
        }
        let counted =
            refused.malformed.load(Ordering::Relaxed) + refused.fragments.load(Ordering::Relaxed);
        assert!(delivered > 0 && counted > 0, "both outcomes reached");
        assert!(delivered + counted <= sent);
        assert!(reassembly.in_progress() <= REASSEMBLY.datagrams);
    }

    /// Runs `check` in a runtime with a ring for `local` (a loopback address of its own, so
    /// that tests running at once do not see each other's packets); skips without root.
    fn with_ring(local: Ipv4Addr, check: impl AsyncFnOnce(EspRing)) {
        crate::testutil::block_on_as_root("packet sockets", async {
            let ring = EspRing::open(local.into()).expect("a packet ring as root");
            check(ring).await;
        });
    }

    /// Waits (at most 5 s) until the ring has handed over `n` packets; returns them.
    pub(crate) async fn take(ring: &mut EspRing, n: usize) -> Vec<(IpAddr, Vec<u8>)> {
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), async {
            while got.len() < n {
                ring.ready().await.unwrap();
                ring.drain(64, |src, p| got.push((src, p.to_vec())));
            }
        })
        .await
        .expect("the packets within 5 s");
        got
    }

    #[test]
    fn esp_to_our_address_arrives_in_the_ring_as_root() {
        let local = Ipv4Addr::new(127, 0, 0, 23);
        with_ring(local, async |mut ring| {
            assert_eq!(ring.local(), IpAddr::from(local));
            let any: IpAddr = "0.0.0.0".parse().unwrap();
            let tx = RawIpsec::bind(any, IpsecProtocol::Esp, &SocketOptions::default()).unwrap();
            // A raw socket on the same address that has stopped receiving.
            let rx = RawIpsec::bind(local.into(), IpsecProtocol::Esp, &SocketOptions::default())
                .unwrap();
            rx.stop_receiving().unwrap();
            // Another address's ESP is not ours.
            tx.try_send(
                "127.0.0.24".parse().unwrap(),
                &[0xfe, 0xc0, 0, 1, 0, 0, 0, 1],
            )
            .unwrap();
            let small: Vec<u8> = (0..64u8).collect();
            // Larger than a frame: comes through the socket queue.
            let big: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
            for pkt in [&small, &big, &small] {
                tx.try_send(local.into(), pkt).unwrap();
            }
            let got = take(&mut ring, 3).await;
            let lo = IpAddr::from(Ipv4Addr::new(127, 0, 0, 1));
            assert_eq!(got, vec![(lo, small.clone()), (lo, big), (lo, small)]);
            assert_eq!(ring.refused(), (0, 0));
            assert_eq!(ring.drops().kernel_drops().unwrap(), 0);
            // Nothing more: the other address's packet never came.
            assert_eq!(ring.drain(64, |_, _| panic!("not ours")), 0);
            // The raw socket queued none of it.
            let mut batch = RawBatch::new(4);
            let r = tokio::time::timeout(Duration::from_millis(200), rx.recv(&mut batch)).await;
            assert!(r.is_err(), "the raw socket received nothing");
        });
    }

    #[test]
    fn fragmented_esp_is_reassembled_as_root() {
        let local = Ipv4Addr::new(127, 0, 0, 26);
        with_ring(local, async |mut ring| {
            // IPPROTO_RAW: we write the IPv4 header, fragment flags included, and the kernel
            // sends it as it is.
            let tx = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::RAW,
                Some(socket2::Protocol::from(libc::IPPROTO_RAW)),
            )
            .unwrap();
            let to = socket2::SockAddr::from(std::net::SocketAddr::new(local.into(), 0));
            let payload: Vec<u8> = (0..64u8).collect();
            let src = [127, 0, 0, 1];
            let dst = local.octets();
            // Sent last piece first: the order does not matter.
            let mut second = header(src, dst, 32, 4); // offset 32 bytes, last
            second.extend_from_slice(&payload[32..]);
            let mut first = header(src, dst, 32, 0x2000); // more fragments
            first.extend_from_slice(&payload[..32]);
            tx.send_to(&second, &to).unwrap();
            tx.send_to(&first, &to).unwrap();
            let got = take(&mut ring, 1).await;
            assert_eq!(got, vec![(Ipv4Addr::new(127, 0, 0, 1).into(), payload)]);
            assert_eq!(ring.refused(), (0, 0));
            // A fragment that overlaps the held one drops it: counted, nothing delivered.
            let mut a = header(src, dst, 32, 0x2000);
            a.extend_from_slice(&[1; 32]);
            let mut b = header(src, dst, 32, 0x2002); // 16 bytes in: overlaps `a`
            b.extend_from_slice(&[2; 32]);
            tx.send_to(&a, &to).unwrap();
            tx.send_to(&b, &to).unwrap();
            tokio::time::timeout(Duration::from_secs(5), async {
                while ring.refused().1 == 0 {
                    ring.ready().await.unwrap();
                    ring.drain(64, |_, _| panic!("nothing is complete"));
                }
            })
            .await
            .expect("the overlap counted within 5 s");
            assert_eq!(ring.refused(), (0, 1));
            assert_eq!(ring.drops().fragments_dropped(), 1);
        });
    }

    #[test]
    fn packets_larger_than_a_frame_without_room_in_the_queue_are_counted_as_dropped_as_root() {
        let local = Ipv4Addr::new(127, 0, 0, 27);
        with_ring(local, async |mut ring| {
            // The smallest queue the kernel allows (about 4.5 KiB): room for one.
            set_int(
                ring.io.get_ref().as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                1,
            )
            .unwrap();
            let any: IpAddr = "0.0.0.0".parse().unwrap();
            let tx = RawIpsec::bind(any, IpsecProtocol::Esp, &SocketOptions::default()).unwrap();
            let big: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
            for _ in 0..4 {
                tx.try_send(local.into(), &big).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut whole = Vec::new();
            assert_eq!(
                ring.drain(64, |_, p| whole.push(p.to_vec())),
                4,
                "four frames"
            );
            assert_eq!(whole, [big], "the first, whole; no other");
            assert_eq!(
                ring.drops().kernel_drops().unwrap(),
                3,
                "the others dropped"
            );
            assert_eq!(ring.refused(), (0, 0), "not counted as broken headers");
        });
    }

    #[test]
    fn the_ring_goes_round_as_root() {
        let local = Ipv4Addr::new(127, 0, 0, 25);
        with_ring(local, async |mut ring| {
            let any: IpAddr = "0.0.0.0".parse().unwrap();
            let tx = RawIpsec::bind(any, IpsecProtocol::Esp, &SocketOptions::default()).unwrap();
            // More packets than frames, in rounds the ring can hold: every frame is used
            // and given back more than once.
            let mut seen = 0u32;
            for round in 0..5u32 {
                for i in 0..1000u32 {
                    let n = round * 1000 + i;
                    let mut pkt = [0xfe, 0xc0, 0, 2, 0, 0, 0, 0];
                    pkt[4..].copy_from_slice(&n.to_be_bytes());
                    tx.try_send(local.into(), &pkt).unwrap();
                }
                for (_, p) in take(&mut ring, 1000).await {
                    assert_eq!(p[4..8], seen.to_be_bytes(), "in order, none lost");
                    seen += 1;
                }
            }
            assert_eq!(seen, 5000);
        });
    }
}
