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
            write_now(&self.dev, &[io::IoSlice::new(packet)])?;
        }
        Ok(())
    }

    /// Writes one packet without waiting (`WouldBlock` when the device queue is full), as
    /// [`Tun::send_batch`] does: straight to the device, whatever tokio has seen of its
    /// readiness (so a device just created takes it too). Returns the packet's length.
    pub fn try_send(&self, packet: &[u8]) -> io::Result<usize> {
        let hdr = [0u8; VNET_HDR_LEN];
        let n = write_now(
            &self.dev,
            &[io::IoSlice::new(&hdr), io::IoSlice::new(packet)],
        )?;
        Ok(n.saturating_sub(hdr.len()))
    }
}

/// One `writev(2)` of a packet (virtio header first, in `parts` as given) to the device,
/// whatever tokio last saw of its readiness (the descriptor is non-blocking: `WouldBlock`
/// when its queue is full). The device takes each write as one packet. Every write to a
/// device goes through here.
#[allow(unsafe_code)] // libc::writev: tun-rs has no public single write that skips readiness.
fn write_now(dev: &tun_rs::AsyncDevice, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let count = libc::c_int::try_from(parts.len()).map_err(|_| io::Error::other("iovec count"))?;
    // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix (its documented guarantee),
    // so `parts` is `count` live iovecs over live buffers, which the kernel only reads; the
    // descriptor is the device's, open while `dev` lives.
    let n = unsafe { libc::writev(dev.as_raw_fd(), parts.as_ptr().cast(), count) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosec_wire::checksum::checksum;

    /// An IPv4 UDP datagram from `src` to `dst`:`port` carrying `payload` (UDP checksum 0,
    /// which IPv4 allows).
    fn udp4(src: [u8; 4], dst: [u8; 4], port: u16, payload: &[u8]) -> Vec<u8> {
        let total = (28 + payload.len()) as u16;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 1, 0, 0, 64, 17, 0, 0]);
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        let c = checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(&40001u16.to_be_bytes());
        p.extend_from_slice(&port.to_be_bytes());
        p.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn a_fresh_device_takes_one_packet_at_once_as_root() {
        if !crate::testutil::is_root() {
            eprintln!("network namespaces and TUN devices need root; skipped");
            return;
        }
        crate::testutil::in_fresh_netns(|| {
            let local: IpAddr = "10.1.1.10".parse().unwrap();
            let tun = Tun::create("fstx0", 1500, &[(local, 24)]).expect("a TUN device");
            let rx = std::net::UdpSocket::bind((local, 0)).unwrap();
            rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            let port = rx.local_addr().unwrap().port();
            let pkt = udp4([10, 1, 1, 20], [10, 1, 1, 10], port, b"one packet");
            // Straight after creation, before the runtime has run at all: tokio has not yet
            // seen the device writable.
            assert_eq!(tun.try_send(&pkt).expect("written at once"), pkt.len());
            let mut buf = [0u8; 64];
            let (n, from) = rx.recv_from(&mut buf).expect("delivered within 2 s");
            assert_eq!(&buf[..n], b"one packet");
            assert_eq!(from, "10.1.1.20:40001".parse().unwrap());
        });
    }
}
