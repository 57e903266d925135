//! TUN devices, one per tunnel interface (the routes that point at them are in `route`).

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use crate::gro::VNET_HDR_LEN;

/// A layer-3 TUN device registered with tokio: whole IPv4/IPv6 packets in and out, no
/// packet-information header.
///
/// The device is opened with offloads (`IFF_VNET_HDR`, TSO/USO): one read can return a TCP or
/// UDP super-packet of up to 64 KiB, which [`Tun::recv_batch`] splits into MTU-sized packets
/// (tun-rs does the segmentation and checksums), and [`Tun::send_batch`] coalesces the TCP
/// segments of a batch into super-packets (GRO, module `gro`) so that a batch costs a few
/// writes.
#[derive(Clone)]
pub struct Tun {
    dev: Arc<tun_rs::AsyncDevice>,
    name: String,
    mtu: u16,
    /// The MTU the device has now (at most `mtu`; lowered to what the SAs carry).
    current: Arc<std::sync::atomic::AtomicU16>,
}

/// Most packets one [`Tun::recv_batch`] returns.
pub const TUN_BATCH: usize = 256;
/// A super-packet splits into at most this many packets (64 KiB at the smallest MSS); more
/// reads in one batch are made only while this much room is left.
const SPLIT_ROOM: usize = 128;
/// Most packets one [`TunWriteBatch`] holds before it must be flushed.
pub const TUN_WRITE_BATCH: usize = 64;
/// Room in front of every packet of a [`TunWriteBatch`] for the virtio header.
const WRITE_OFFSET: usize = tun_rs::VIRTIO_NET_HDR_LEN;
const _: () = assert!(VNET_HDR_LEN == tun_rs::VIRTIO_NET_HDR_LEN);

/// Reusable buffers for reading a batch of packets from a TUN device.
pub struct TunBatch {
    original: Box<[u8]>,
    bufs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    filled: usize,
}

impl std::fmt::Debug for TunBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunBatch")
            .field("filled", &self.filled)
            .finish()
    }
}

impl TunBatch {
    /// Buffers for packets of up to `mtu` bytes.
    pub fn new(mtu: u16) -> Self {
        let size = usize::from(mtu).max(1500) + 64;
        TunBatch {
            original: vec![0u8; tun_rs::VIRTIO_NET_HDR_LEN + 65535].into_boxed_slice(),
            bufs: vec![vec![0u8; size]; TUN_BATCH],
            sizes: vec![0; TUN_BATCH],
            filled: 0,
        }
    }

    /// How many packets the last read returned.
    pub fn len(&self) -> usize {
        self.filled
    }

    /// Whether the last read returned nothing.
    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// The packets of the last read.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.bufs
            .iter()
            .zip(&self.sizes)
            .take(self.filled)
            .filter_map(|(b, n)| b.get(..*n))
    }

    /// The packets of the last read, to be changed in place (TCP MSS clamping).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut [u8]> + '_ {
        self.bufs
            .iter_mut()
            .zip(&self.sizes)
            .take(self.filled)
            .filter_map(|(b, n)| b.get_mut(..*n))
    }
}

/// Packets gathered for one TUN device, written by [`Tun::send_batch`].
pub struct TunWriteBatch {
    bufs: Vec<Vec<u8>>,
    count: usize,
    gro: crate::gro::Coalescer,
}

impl std::fmt::Debug for TunWriteBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunWriteBatch")
            .field("count", &self.count)
            .finish()
    }
}

impl Default for TunWriteBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl TunWriteBatch {
    /// Room for [`TUN_WRITE_BATCH`] packets.
    pub fn new() -> Self {
        TunWriteBatch {
            bufs: (0..TUN_WRITE_BATCH)
                .map(|_| Vec::with_capacity(WRITE_OFFSET + 65536))
                .collect(),
            count: 0,
            gro: crate::gro::Coalescer::default(),
        }
    }

    /// Adds a copy of `packet`; `false` (nothing added) when the batch is full or the packet
    /// is empty.
    pub fn push(&mut self, packet: &[u8]) -> bool {
        if packet.is_empty() {
            return false;
        }
        let Some(b) = self.bufs.get_mut(self.count) else {
            return false;
        };
        b.clear();
        b.resize(WRITE_OFFSET, 0);
        b.extend_from_slice(packet);
        self.count += 1;
        true
    }

    /// Whether no more packets fit.
    pub fn is_full(&self) -> bool {
        self.count >= self.bufs.len()
    }

    /// Whether the batch holds no packets.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Forgets the packets it holds.
    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// How many packets it holds.
    pub fn len(&self) -> usize {
        self.count
    }
}

impl std::fmt::Debug for Tun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tun").field("name", &self.name).finish()
    }
}

/// Why a TUN device or route could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    /// Creating or configuring the device failed (no CAP_NET_ADMIN, name taken, …).
    #[error("cannot create TUN device {name}: {source}")]
    Create {
        /// The interface name.
        name: String,
        /// What the OS said.
        source: io::Error,
    },
    /// Installing a route failed.
    #[error("cannot install route {destination} via {name}: {reason}")]
    Route {
        /// The prefix.
        destination: String,
        /// The interface.
        name: String,
        /// What the kernel said, in words.
        reason: String,
    },
    /// Removing a route failed.
    #[error("cannot remove route {destination} via {name}: {reason}")]
    RouteRemove {
        /// The prefix.
        destination: String,
        /// The interface.
        name: String,
        /// What the kernel said, in words.
        reason: String,
    },
}

impl Tun {
    /// Creates (and brings up) TUN device `name` with `mtu` and optional addresses (address,
    /// prefix length), IPv4 and IPv6. Must be called inside a tokio runtime.
    pub fn create(name: &str, mtu: u16, addrs: &[(IpAddr, u8)]) -> Result<Self, TunError> {
        let err = |source| TunError::Create {
            name: name.to_owned(),
            source,
        };
        let mut b = tun_rs::DeviceBuilder::new()
            .name(name)
            .mtu(mtu)
            .packet_information(false)
            .offload(true)
            .enable(true);
        for (addr, len) in addrs {
            if let IpAddr::V4(a) = addr {
                b = b.ipv4(*a, *len, None);
            }
        }
        let dev = b.build_async().map_err(err)?;
        // IPv6 addresses through rtnetlink (the device goes away with `dev` on an error).
        for (addr, len) in addrs.iter().filter(|(a, _)| a.is_ipv6()) {
            crate::route::add_address(name, *addr, *len).map_err(|e| {
                err(io::Error::new(
                    e.kind(),
                    format!("adding address {addr}/{len}: {e}"),
                ))
            })?;
        }
        Ok(Tun {
            dev: Arc::new(dev),
            name: name.to_owned(),
            mtu,
            current: Arc::new(std::sync::atomic::AtomicU16::new(mtu)),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `other` is a handle on the same device.
    pub fn same(&self, other: &Tun) -> bool {
        Arc::ptr_eq(&self.dev, &other.dev)
    }

    /// The device's configured MTU: the largest it ever has (buffers are sized for it).
    pub fn mtu(&self) -> u16 {
        self.mtu
    }

    /// The MTU the device has now.
    pub fn current_mtu(&self) -> u16 {
        self.current.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets the device's MTU (`SIOCSIFMTU`), at most the configured one: the kernel then
    /// answers a DF packet too big for it with ICMP "fragmentation needed" (IPv6: "packet too
    /// big") with this MTU, as for any other interface.
    pub fn set_mtu(&self, mtu: u16) -> io::Result<()> {
        let mtu = mtu.min(self.mtu);
        self.dev.set_mtu(mtu)?;
        self.current
            .store(mtu, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Waits for packets and reads a batch of them into `batch`: one read, then more reads
    /// without waiting while they fit (super-packets are split into MTU-sized packets).
    pub async fn recv_batch(&self, batch: &mut TunBatch) -> io::Result<()> {
        batch.filled = 0;
        let n = self
            .dev
            .recv_multiple(&mut batch.original, &mut batch.bufs, &mut batch.sizes, 0)
            .await?;
        batch.filled = n;
        while TUN_BATCH - batch.filled >= SPLIT_ROOM {
            let from = batch.filled;
            match self.dev.try_recv_multiple(
                &mut batch.original,
                &mut batch.bufs[from..],
                &mut batch.sizes[from..],
                0,
            ) {
                Ok(n) => batch.filled += n,
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Writes the packets of `batch` without waiting (TCP segments of one connection
    /// coalesced into super-packets, module `gro`) and empties it. An error (the device queue
    /// full, …) means some packets were not written.
    pub fn send_batch(&self, batch: &mut TunWriteBatch) -> io::Result<()> {
        let n = batch.count;
        batch.count = 0;
        if n == 0 {
            return Ok(());
        }
        // TCP segments merged into GSO super-packets, every virtio header filled in (gro).
        let bufs = &mut batch.bufs[..n];
        batch.gro.coalesce(bufs, WRITE_OFFSET);
        for &i in &batch.gro.out {
            let Some(packet) = bufs
                .get(i)
                .and_then(|b| b.get(WRITE_OFFSET - VNET_HDR_LEN..))
            else {
                continue;
            };
            // The device's descriptor is non-blocking: a write never waits. A full device
            // queue fails the rest of the batch too.
            write_now(&self.dev, packet)?;
        }
        Ok(())
    }

    /// Writes one packet without waiting (`WouldBlock` when the device queue is full).
    pub fn try_send(&self, packet: &[u8]) -> io::Result<usize> {
        let hdr = [0u8; tun_rs::VIRTIO_NET_HDR_LEN];
        let iov = [io::IoSlice::new(&hdr), io::IoSlice::new(packet)];
        self.dev
            .try_send_vectored(&iov)
            .map(|n| n.saturating_sub(hdr.len()))
    }
}

/// One `write(2)` of `packet` (virtio header first) to the device, whatever tokio last saw of
/// its readiness (the descriptor is non-blocking: `WouldBlock` when its queue is full).
#[allow(unsafe_code)] // libc::write: tun-rs has no public single write of a prepared buffer.
fn write_now(dev: &tun_rs::AsyncDevice, packet: &[u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: `packet` is a live buffer of the length given, only read; the descriptor is the
    // device's, open while `dev` lives.
    let n = unsafe { libc::write(dev.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}
