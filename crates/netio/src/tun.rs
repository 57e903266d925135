//! TUN devices (one per tunnel interface) and the routes that point at them.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

/// A layer-3 TUN device registered with tokio: whole IPv4/IPv6 packets in and out, no
/// packet-information header.
#[derive(Clone)]
pub struct Tun {
    dev: Arc<tun_rs::AsyncDevice>,
    name: String,
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
        /// What `ip route` said.
        reason: String,
    },
}

impl Tun {
    /// Creates (and brings up) TUN device `name` with `mtu` and optional IPv4 addresses
    /// (address, prefix length). Must be called inside a tokio runtime.
    pub fn create(name: &str, mtu: u16, v4: &[(IpAddr, u8)]) -> Result<Self, TunError> {
        let err = |source| TunError::Create {
            name: name.to_owned(),
            source,
        };
        let mut b = tun_rs::DeviceBuilder::new()
            .name(name)
            .mtu(mtu)
            .packet_information(false)
            .enable(true);
        for (addr, len) in v4 {
            if let IpAddr::V4(a) = addr {
                b = b.ipv4(*a, *len, None);
            }
        }
        let dev = b.build_async().map_err(err)?;
        Ok(Tun {
            dev: Arc::new(dev),
            name: name.to_owned(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for one packet; returns its length in `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.dev.recv(buf).await
    }

    /// Writes one packet without waiting (`WouldBlock` when the device queue is full).
    pub fn try_send(&self, packet: &[u8]) -> io::Result<usize> {
        self.dev.try_send(packet)
    }
}

/// Installs (or replaces) a route to `destination` (a prefix, `10.2.0.0/24`) through
/// interface `name` with `metric`. Uses `ip route replace` (iproute2) for now.
pub fn replace_route(destination: &str, name: &str, metric: u32) -> Result<(), TunError> {
    let out = std::process::Command::new("ip")
        .args(["route", "replace", destination, "dev", name, "metric"])
        .arg(metric.to_string())
        .output();
    let fail = |reason: String| TunError::Route {
        destination: destination.to_owned(),
        name: name.to_owned(),
        reason,
    };
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(fail(String::from_utf8_lossy(&o.stderr).trim().to_owned())),
        Err(e) => Err(fail(e.to_string())),
    }
}
