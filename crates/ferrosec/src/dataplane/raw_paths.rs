//! How raw ESP passes the host's kernel, address by address (IPv4 and IPv6): received through a
//! packet ring or the raw socket, what the ring has read dropped before IP input or not, sent
//! through a packet socket or the raw socket; from `[global]` `esp-packet-ring`,
//! `esp-packet-socket` and `esp-early-drop`, which the environment can turn off.

use std::net::IpAddr;

use ferrosec_config::RawEspPaths;
use ferrosec_netio::{EspEarlyDrop, EspPacketTx, EspRing, IpsecProtocol, RawIpsec};

use super::RawPair;

/// How raw ESP passes the kernel on one address, as `show system info` and
/// `/metrics` (`ferrosec_raw_esp_path`) say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEspPath {
    /// The address of the raw ESP socket.
    pub(crate) address: IpAddr,
    /// Received through a packet ring (else the raw socket).
    pub(crate) ring: bool,
    /// Sent through a packet socket (else the raw socket).
    pub(crate) packet_socket: bool,
    /// The nf_tables table that drops what the ring has read before IP input, if any.
    pub(crate) early_drop: Option<String>,
}

impl RawEspPath {
    /// `packet-ring` or `raw-socket`.
    pub(crate) fn receive(&self) -> &'static str {
        if self.ring {
            "packet-ring"
        } else {
            "raw-socket"
        }
    }

    /// `packet-socket` or `raw-socket`.
    pub(crate) fn send(&self) -> &'static str {
        if self.packet_socket {
            "packet-socket"
        } else {
            "raw-socket"
        }
    }
}

impl std::fmt::Display for RawEspPath {
    /// `192.0.2.1: in packet ring, out packet socket; dropped before IP input by nft table ip
    /// ferrosec_esp_812_0`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words = |fast: bool, name| if fast { name } else { "raw socket" };
        write!(
            f,
            "{}: in {}, out {}",
            self.address,
            words(self.ring, "packet ring"),
            words(self.packet_socket, "packet socket")
        )?;
        if let Some(t) = &self.early_drop {
            let family = if self.address.is_ipv6() { "ip6" } else { "ip" };
            write!(f, "; dropped before IP input by nft table {family} {t}")?;
        }
        Ok(())
    }
}

/// A packet ring for the raw ESP of one address ([`EspRing`]: the kernel writes each packet
/// into memory the inbound worker has mapped, without the raw socket's per-packet clone, queue
/// and copy), and over IPv4 the raw socket told to stop receiving. `None` where the address is
/// the wildcard (a ring filters on one address), where there is no raw ESP socket, where the
/// ring cannot be opened (the raw socket then receives, as before), or where `paths` has no
/// ring ([`with_switches`]). What it reads is dropped before IP input where `paths` says so
/// ([`with_early_drop`]). Over IPv6 the raw socket keeps receiving (the fragments the ring
/// leaves to the kernel, reassembled), so a ring there is kept only with its early drop
/// ([`ring_kept`]).
pub(super) fn open_ring(pair: &RawPair, paths: RawEspPaths) -> Option<EspRing> {
    // Over IPv6 a ring without its early drop would not be kept: not opened at all.
    let v6 = pair.esp.as_ref().is_some_and(|r| r.bound().is_ipv6());
    let wanted = paths.packet_ring && (paths.early_drop || !v6);
    let ring = open_ring_with(pair, wanted, EspRing::open)?;
    ring_kept(with_early_drop(
        ring,
        paths.early_drop,
        EspEarlyDrop::install,
    ))
}

/// `ring`, unless it is for an IPv6 address and has no early drop: the kernel would then hand
/// each packet the ring reads to the raw socket as well, and the worker would see it twice.
/// The raw socket alone receives instead.
fn ring_kept(ring: EspRing) -> Option<EspRing> {
    if ring.local().is_ipv6() && ring.early_drop().is_none() {
        tracing::info!(
            "raw ESP on {}: no packet ring over IPv6 without the early drop (the raw socket \
             would receive each packet too); the raw socket receives",
            ring.local()
        );
        return None;
    }
    Some(ring)
}

/// The configuration's raw ESP paths (`[global]` `esp-packet-ring`, `esp-packet-socket`,
/// `esp-early-drop`) with the environment's switches applied: `FERROSEC_ESP_RING=off`,
/// `FERROSEC_ESP_PACKET_TX=off` and `FERROSEC_ESP_EARLY_DROP=off` turn a path off whatever the
/// file says (for comparisons and troubleshooting); no ring, no early drop. `var` reads one
/// variable.
pub(super) fn with_switches(
    paths: RawEspPaths,
    var: impl Fn(&str) -> Option<String>,
) -> RawEspPaths {
    let on = |name| switched_on(var(name).as_deref());
    let packet_ring = paths.packet_ring && on(RING_SWITCH);
    RawEspPaths {
        packet_ring,
        packet_socket: paths.packet_socket && on(PACKET_TX_SWITCH),
        early_drop: paths.early_drop && packet_ring && on(EARLY_DROP_SWITCH),
    }
}

/// The environment variable that keeps the kernel's IP input for raw ESP the ring has read
/// (value `off`: no nf_tables table is made).
const EARLY_DROP_SWITCH: &str = "FERROSEC_ESP_EARLY_DROP";

/// `ring`, with the ESP it reads dropped before the kernel's IP input where the table for
/// that can be made by `install` ([`EspEarlyDrop`]: an nf_tables table of the daemon's own,
/// deleted by the kernel when the ring goes or the process ends); unchanged when not
/// `switched_on` ([`with_switches`]) or when the table cannot be made (the kernel then takes
/// each packet through IP input to the raw socket, which discards it, as before).
fn with_early_drop(
    ring: EspRing,
    switched_on: bool,
    install: impl FnOnce(IpAddr) -> std::io::Result<EspEarlyDrop>,
) -> EspRing {
    if !switched_on {
        return ring;
    }
    let local = ring.local();
    match install(local) {
        Ok(drop) => {
            tracing::debug!(
                "raw ESP on {local}: dropped before IP input by nft table {} {}",
                drop.family(),
                drop.table()
            );
            ring.with_early_drop(drop)
        }
        Err(e) => {
            tracing::info!(
                "raw ESP on {local}: not dropped before IP input ({e}); the kernel's IP input \
                 takes each packet the ring has read to the raw socket, which discards it"
            );
            ring
        }
    }
}

/// The environment variable that turns the packet ring off (value `off`).
const RING_SWITCH: &str = "FERROSEC_ESP_RING";

/// Whether a switch ([`RING_SWITCH`], [`PACKET_TX_SWITCH`], [`EARLY_DROP_SWITCH`]) with
/// `value` (`None`: unset or not UTF-8) lets its path be used: anything but exactly `off`
/// does.
fn switched_on(value: Option<&str>) -> bool {
    value != Some("off")
}

/// The environment variable that turns sending raw ESP through a packet socket off (`off`).
const PACKET_TX_SWITCH: &str = "FERROSEC_ESP_PACKET_TX";

/// The raw ESP socket `raw`, sending through a packet socket where it can ([`EspPacketTx`]:
/// no IP output path per packet), for an IPv4 or IPv6 address other than the wildcard;
/// unchanged when not `switched_on` ([`with_switches`]) or when the packet socket cannot be
/// opened (the raw socket then sends everything, as before).
pub(super) fn with_packet_tx(raw: RawIpsec, switched_on: bool) -> RawIpsec {
    with_packet_tx_from(raw, switched_on, EspPacketTx::open)
}

/// [`with_packet_tx`] with the switch given and the packet socket opened by `open`, for the
/// tests.
fn with_packet_tx_from(
    raw: RawIpsec,
    switched_on: bool,
    open: impl FnOnce(IpAddr) -> std::io::Result<EspPacketTx>,
) -> RawIpsec {
    let local = raw.bound();
    if !switched_on || local.is_unspecified() || raw.protocol() != IpsecProtocol::Esp {
        return raw;
    }
    match open(local) {
        Ok(tx) => {
            tracing::debug!("raw ESP from {local}: sent through a packet socket");
            raw.with_packet_tx(tx)
        }
        Err(e) => {
            tracing::info!("raw ESP from {local}: no packet socket ({e}); the raw socket sends");
            raw
        }
    }
}

/// [`open_ring`] with the switch given and the ring opened by `open`, so that the tests can
/// turn it off or make the opening fail without touching the environment.
fn open_ring_with(
    pair: &RawPair,
    switched_on: bool,
    open: impl FnOnce(IpAddr) -> std::io::Result<EspRing>,
) -> Option<EspRing> {
    if !switched_on {
        return None;
    }
    let raw = pair.esp.as_ref()?;
    let local = raw.bound();
    if local.is_unspecified() {
        return None;
    }
    let ring = match open(local) {
        Ok(r) => r,
        Err(e) => {
            tracing::info!("raw ESP on {local}: no packet ring ({e}); the raw socket receives");
            return None;
        }
    };
    // Over IPv6 the raw socket receives on: what the ring leaves to the kernel (fragments).
    if local.is_ipv4()
        && let Err(e) = raw.stop_receiving()
    {
        tracing::info!(
            "raw ESP on {local}: the raw socket cannot stop receiving ({e}); no packet ring"
        );
        return None;
    }
    tracing::debug!("raw ESP on {local}: received through a packet ring");
    Some(ring)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosec_netio::RawBatch;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn only_off_turns_the_ring_off() {
        assert!(!switched_on(Some("off")));
        for on in [
            None,
            Some(""),
            Some("on"),
            Some("OFF"),
            Some("off "),
            Some("0"),
        ] {
            assert!(switched_on(on), "{on:?}");
        }
    }

    /// A runtime for a test of raw and packet sockets; `None`, said so, without root.
    fn root_runtime() -> Option<tokio::runtime::Runtime> {
        if !is_root() {
            eprintln!("raw and packet sockets need root; skipped");
            return None;
        }
        Some(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        )
    }

    /// Whether the tests run as root (raw and packet sockets).
    fn is_root() -> bool {
        std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
    }

    /// As root, in a runtime: a raw ESP socket bound to `local` (a loopback address no other
    /// test uses) as the daemon has it, what [`open_ring_with`] made of it with `switched_on`
    /// and `open`, then `keep`, and whether the raw socket and the ring then receive ESP sent
    /// to `local` (each within 1 s). Skips without root.
    fn receivers(
        local: IpAddr,
        switched_on: bool,
        open: impl FnOnce(IpAddr) -> std::io::Result<EspRing>,
        keep: impl FnOnce(EspRing) -> Option<EspRing>,
    ) -> Option<(bool, bool)> {
        root_runtime()?.block_on(async {
            let opts = ferrosec_netio::SocketOptions::default();
            let rx = RawIpsec::bind(local, IpsecProtocol::Esp, &opts).unwrap();
            let pair = RawPair {
                esp: Some(Arc::new(rx)),
                ah: None,
            };
            let mut ring = open_ring_with(&pair, switched_on, open).and_then(keep);
            let any: IpAddr = match local {
                IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
                IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
            };
            let tx = RawIpsec::bind(any, IpsecProtocol::Esp, &opts).unwrap();
            // An ESP-shaped packet with an SPI of its own.
            let last = match local {
                IpAddr::V4(a) => a.octets()[3],
                IpAddr::V6(a) => a.octets()[15] ^ 0x60,
            };
            let pkt = [0xfe, 0xc0, 0x5e, last, 0, 0, 0, 1, 9, 9, 9, 9];
            tx.try_send(local, &pkt).unwrap();
            let raw = pair.esp.as_deref().unwrap();
            let by_raw = tokio::time::timeout(Duration::from_secs(1), async {
                let mut batch = RawBatch::new(4);
                loop {
                    raw.recv(&mut batch).await.unwrap();
                    if batch.iter().any(|r| r.data == pkt) {
                        return;
                    }
                }
            })
            .await
            .is_ok();
            let by_ring = match ring.as_mut() {
                None => false,
                Some(ring) => tokio::time::timeout(Duration::from_secs(1), async {
                    loop {
                        ring.ready().await.unwrap();
                        let mut ours = false;
                        ring.drain(64, |_, p| ours |= p == pkt);
                        if ours {
                            return;
                        }
                    }
                })
                .await
                .is_ok(),
            };
            Some((by_raw, by_ring))
        })
    }

    #[test]
    fn with_the_ring_on_the_ring_receives_and_the_raw_socket_not_as_root() {
        // The other tests' control: here the raw socket must not see the packet.
        let local = std::net::Ipv4Addr::new(127, 0, 0, 41);
        if let Some(seen) = receivers(local.into(), true, EspRing::open, Some) {
            assert_eq!(seen, (false, true), "(raw socket, ring)");
        }
    }

    #[test]
    fn over_ipv6_the_ring_is_kept_with_its_early_drop_only_as_root() {
        let local: IpAddr = std::net::Ipv6Addr::LOCALHOST.into();
        let with = |r| ring_kept(with_early_drop(r, true, EspEarlyDrop::install));
        if let Some(seen) = receivers(local, true, EspRing::open, with) {
            assert_eq!(
                seen,
                (false, true),
                "(raw socket, ring) with the early drop"
            );
        }
        let never = |_| -> std::io::Result<EspEarlyDrop> { panic!("not made when off") };
        let without = |r| ring_kept(with_early_drop(r, false, never));
        if let Some(seen) = receivers(local, true, EspRing::open, without) {
            assert_eq!(seen, (true, false), "(raw socket, ring) without: not kept");
        }
    }

    #[test]
    fn with_the_ring_switched_off_the_raw_socket_receives_as_root() {
        let local = std::net::Ipv4Addr::new(127, 0, 0, 42);
        let open = |_| -> std::io::Result<EspRing> { panic!("no ring is opened when off") };
        if let Some(seen) = receivers(local.into(), switched_on(Some("off")), open, Some) {
            assert_eq!(seen, (true, false), "(raw socket, ring)");
        }
    }

    #[test]
    fn when_the_ring_cannot_be_opened_the_raw_socket_receives_as_root() {
        let local = std::net::Ipv4Addr::new(127, 0, 0, 43);
        let open = |_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "no packet sockets here",
            ))
        };
        if let Some(seen) = receivers(local.into(), true, open, Some) {
            assert_eq!(seen, (true, false), "(raw socket, ring)");
        }
    }

    #[test]
    fn a_path_in_words_and_labels() {
        let fast = RawEspPath {
            address: "192.0.2.1".parse().unwrap(),
            ring: true,
            packet_socket: true,
            early_drop: Some("ferrosec_esp_812_0".to_owned()),
        };
        assert_eq!(
            fast.to_string(),
            "192.0.2.1: in packet ring, out packet socket; dropped before IP input by nft table ip ferrosec_esp_812_0"
        );
        assert_eq!(
            (fast.receive(), fast.send()),
            ("packet-ring", "packet-socket")
        );
        let v6 = RawEspPath {
            address: "2001:db8::2".parse().unwrap(),
            ring: true,
            packet_socket: true,
            early_drop: Some("ferrosec_esp_812_1".to_owned()),
        };
        assert_eq!(
            v6.to_string(),
            "2001:db8::2: in packet ring, out packet socket; dropped before IP input by nft table ip6 ferrosec_esp_812_1"
        );
        let kernel = RawEspPath {
            address: "2001:db8::1".parse().unwrap(),
            ring: false,
            packet_socket: false,
            early_drop: None,
        };
        assert_eq!(
            kernel.to_string(),
            "2001:db8::1: in raw socket, out raw socket"
        );
        assert_eq!(
            (kernel.receive(), kernel.send()),
            ("raw-socket", "raw-socket")
        );
    }

    #[test]
    fn the_environment_turns_paths_off_and_never_on() {
        let all = RawEspPaths::default();
        let none = RawEspPaths {
            packet_ring: false,
            packet_socket: false,
            early_drop: false,
        };
        let unset = |_: &str| None;
        assert_eq!(with_switches(all, unset), all);
        assert_eq!(with_switches(none, unset), none);
        let off = |name: &str| (name == EARLY_DROP_SWITCH).then(|| "off".to_owned());
        assert_eq!(
            with_switches(all, off),
            RawEspPaths {
                early_drop: false,
                ..all
            }
        );
        let all_off = |_: &str| Some("off".to_owned());
        assert_eq!(with_switches(all, all_off), none);
        // "on" in the environment does not override the file.
        let on = |_: &str| Some("on".to_owned());
        assert_eq!(with_switches(none, on), none);
        // Without the ring, no early drop.
        let no_ring = |name: &str| (name == RING_SWITCH).then(|| "off".to_owned());
        assert_eq!(
            with_switches(all, no_ring),
            RawEspPaths {
                packet_ring: false,
                packet_socket: true,
                early_drop: false
            }
        );
    }

    #[test]
    fn the_ring_drops_before_ip_input_unless_switched_off_or_refused_as_root() {
        let local = std::net::Ipv4Addr::new(127, 0, 0, 45);
        let Some(rt) = root_runtime() else {
            return;
        };
        rt.block_on(async {
            let ring = || EspRing::open(local.into()).expect("a packet ring as root");
            let on = with_early_drop(ring(), true, EspEarlyDrop::install);
            let table = on.early_drop().expect("the control: switched on, made");
            assert_eq!(table.local(), IpAddr::from(local));
            let never = |_| -> std::io::Result<EspEarlyDrop> { panic!("not made when off") };
            let off = with_early_drop(ring(), switched_on(Some("off")), never);
            assert!(off.early_drop().is_none());
            let refused = |_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "no nf_tables here",
                ))
            };
            assert!(
                with_early_drop(ring(), true, refused)
                    .early_drop()
                    .is_none()
            );
            // A table for another address is not kept.
            let elsewhere =
                |_| EspEarlyDrop::install(std::net::Ipv4Addr::new(127, 0, 0, 46).into());
            assert!(
                with_early_drop(ring(), true, elsewhere)
                    .early_drop()
                    .is_none()
            );
        });
    }

    /// What [`with_packet_tx_from`] makes of a raw socket bound to `local` as root, with
    /// `switched_on` and `open`: whether it sends through a packet socket.
    fn packet_tx_attached(
        local: std::net::IpAddr,
        protocol: IpsecProtocol,
        switched_on: bool,
        open: impl FnOnce(IpAddr) -> std::io::Result<EspPacketTx>,
    ) -> Option<bool> {
        root_runtime()?.block_on(async {
            let opts = ferrosec_netio::SocketOptions::default();
            let raw = RawIpsec::bind(local, protocol, &opts).unwrap();
            Some(with_packet_tx_from(raw, switched_on, open).has_packet_tx())
        })
    }

    #[test]
    fn raw_esp_is_sent_through_a_packet_socket_unless_switched_off_or_refused_as_root() {
        let local = std::net::Ipv4Addr::new(127, 0, 0, 44);
        let Some(on) =
            packet_tx_attached(local.into(), IpsecProtocol::Esp, true, EspPacketTx::open)
        else {
            return;
        };
        assert!(on, "the control: switched on, it is used");
        let never = |_| -> std::io::Result<EspPacketTx> { panic!("not opened when off") };
        let off = packet_tx_attached(
            local.into(),
            IpsecProtocol::Esp,
            switched_on(Some("off")),
            never,
        );
        assert_eq!(off, Some(false));
        let refused = |_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "no packet sockets here",
            ))
        };
        let failed = packet_tx_attached(local.into(), IpsecProtocol::Esp, true, refused);
        assert_eq!(failed, Some(false));
        // AH, and the wildcard address, keep their raw socket alone.
        let ah = packet_tx_attached(local.into(), IpsecProtocol::Ah, true, EspPacketTx::open);
        assert_eq!(ah, Some(false));
        let any = packet_tx_attached([0, 0, 0, 0].into(), IpsecProtocol::Esp, true, never);
        assert_eq!(any, Some(false));
        // IPv6 addresses send through one too; not the IPv6 wildcard.
        let v6 = packet_tx_attached(
            std::net::Ipv6Addr::LOCALHOST.into(),
            IpsecProtocol::Esp,
            true,
            EspPacketTx::open,
        );
        assert_eq!(v6, Some(true));
        let any6 = packet_tx_attached(
            std::net::Ipv6Addr::UNSPECIFIED.into(),
            IpsecProtocol::Esp,
            true,
            never,
        );
        assert_eq!(any6, Some(false));
    }
}
