//! Parsers for the scalar values of the file: durations, sizes, addresses, ports, protocols,
//! SPIs and hex keys.
//!
//! Each parser takes the text as written and returns a typed value or a [`ValueError`] that says
//! what was expected (never echoing key material). Each typed value formats back to text that
//! parses to the same value (property-tested below).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;

/// A value that could not be parsed: what was wrong, in words, without the key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError(pub String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ValueError> {
    Err(ValueError(msg.into()))
}

/// Split `"123abc"` into the leading decimal digits and the rest.
fn split_number(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

// ---------------------------------------------------------------------------------------------
// Durations

/// Parse a duration: a whole number followed by `s`, `m`, `h` or `d` (`"30s"`, `"5m"`, `"8h"`,
/// `"1d"`), or a bare number of seconds (`"30"`). Compound forms (`"1h30m"`) are not accepted.
pub fn parse_duration(s: &str) -> Result<Duration, ValueError> {
    let t = s.trim();
    let (num, unit) = split_number(t);
    if num.is_empty() {
        return err(format!(
            "\"{s}\" is not a duration; write a whole number and a unit: \"30s\", \"5m\", \"8h\", \"1d\""
        ));
    }
    let n: u64 = match num.parse() {
        Ok(n) => n,
        Err(_) => return err(format!("duration \"{s}\" is too large")),
    };
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return err(format!(
                "unknown duration unit \"{other}\" in \"{s}\"; use s, m, h or d"
            ));
        }
    };
    match n.checked_mul(mult) {
        Some(secs) => Ok(Duration::from_secs(secs)),
        None => err(format!("duration \"{s}\" is too large")),
    }
}

/// Format a whole-second duration in the largest unit that divides it (`28800 s` → `"8h"`).
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs != 0 && secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else if secs != 0 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs != 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

// ---------------------------------------------------------------------------------------------
// Sizes

/// The multiplier of one unit step: sizes use binary multiples, as PAN-OS (lifesize in
/// KB/MB/GB/TB) and strongSwan (`life_bytes`) do: 1 KB = 1024 bytes.
pub const SIZE_STEP: u64 = 1024;

const SIZE_UNITS: [(&str, u32); 5] = [("B", 0), ("KB", 1), ("MB", 2), ("GB", 3), ("TB", 4)];

/// Parse a size in bytes: a whole number and a unit `B`, `KB`, `MB`, `GB` or `TB` (case does
/// not matter; multiples of 1024), e.g. `"512KB"`, `"50GB"`.
pub fn parse_size(s: &str) -> Result<u64, ValueError> {
    let t = s.trim();
    let (num, unit) = split_number(t);
    if num.is_empty() {
        return err(format!(
            "\"{s}\" is not a size; write a whole number and a unit: \"512KB\", \"50GB\""
        ));
    }
    let n: u64 = match num.parse() {
        Ok(n) => n,
        Err(_) => return err(format!("size \"{s}\" is too large")),
    };
    let unit = unit.trim();
    let Some(&(_, exp)) = SIZE_UNITS
        .iter()
        .find(|(u, _)| u.eq_ignore_ascii_case(unit))
    else {
        return err(format!(
            "unknown size unit \"{unit}\" in \"{s}\"; use KB, MB, GB or TB"
        ));
    };
    match n.checked_mul(SIZE_STEP.pow(exp)) {
        Some(bytes) => Ok(bytes),
        None => err(format!("size \"{s}\" is too large")),
    }
}

/// Format a size in the largest unit that divides it (`53687091200` → `"50GB"`).
pub fn format_size(bytes: u64) -> String {
    for &(unit, exp) in SIZE_UNITS.iter().rev() {
        let m = SIZE_STEP.pow(exp);
        if bytes != 0 && bytes.is_multiple_of(m) {
            return format!("{}{unit}", bytes / m);
        }
    }
    format!("{bytes}B")
}

// ---------------------------------------------------------------------------------------------
// Addresses

/// Parse an IP address (v4 or v6).
pub fn parse_ip(s: &str) -> Result<IpAddr, ValueError> {
    s.trim()
        .parse()
        .or_else(|_| err(format!("\"{s}\" is not an IPv4 or IPv6 address")))
}

/// Parse a prefix `"10.1.0.0/24"` or a host `"10.1.0.1"` (= /32 or /128). Host bits must be zero:
/// `"10.1.0.1/24"` is refused (write `10.1.0.0/24`), as a firewall commit would.
pub fn parse_prefix(s: &str) -> Result<IpNet, ValueError> {
    let t = s.trim();
    if t.contains('/') {
        let net: IpNet = t.parse().or_else(|_| {
            err(format!(
                "\"{s}\" is not an IPv4 or IPv6 prefix like 10.1.0.0/24"
            ))
        })?;
        if net.trunc() != net {
            return err(format!(
                "prefix \"{s}\" has host bits set; write {} instead",
                net.trunc()
            ));
        }
        Ok(net)
    } else {
        let ip = parse_ip(t)
            .or_else(|_| err(format!("\"{s}\" is not an IPv4 or IPv6 address or prefix")))?;
        Ok(IpNet::from(ip))
    }
}

/// Parse an interface address with its prefix length, host bits allowed: `"169.254.10.1/30"`.
pub fn parse_interface_address(s: &str) -> Result<IpNet, ValueError> {
    s.trim().parse().or_else(|_| {
        err(format!(
            "\"{s}\" is not an address with a prefix length like 169.254.10.1/30"
        ))
    })
}

/// A set of addresses: a prefix (a host is a /32 or /128 prefix), an inclusive range of one
/// family, or `any` (both families). Used by proxy IDs (traffic selectors) and security rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressSpec {
    /// Every address of both families (`"any"`).
    Any,
    /// A prefix, e.g. `10.1.0.0/24`; a host is `10.1.0.1/32`.
    Prefix(IpNet),
    /// An inclusive range of one family, start ≤ end: `"10.0.0.1-10.0.0.9"`.
    Range(IpAddr, IpAddr),
}

impl AddressSpec {
    /// Parse `any`, a prefix, a host or a range `a-b`.
    pub fn parse(s: &str) -> Result<AddressSpec, ValueError> {
        let t = s.trim();
        if t == "any" {
            return Ok(AddressSpec::Any);
        }
        if let Some((a, b)) = t.split_once('-') {
            let (a, b) = (parse_ip(a)?, parse_ip(b)?);
            if a.is_ipv4() != b.is_ipv4() {
                return err(format!("range \"{s}\" mixes IPv4 and IPv6"));
            }
            if a > b {
                return err(format!(
                    "range \"{s}\" ends before it starts; write {b}-{a}"
                ));
            }
            return Ok(AddressSpec::Range(a, b));
        }
        if t.contains('/') {
            return parse_prefix(t).map(AddressSpec::Prefix);
        }
        parse_prefix(t).map(AddressSpec::Prefix).or_else(|_| {
            err(format!(
                "\"{s}\" is not an address, prefix (10.1.0.0/24), range (10.0.0.1-10.0.0.9) or \"any\""
            ))
        })
    }

    /// `Some(true)` for IPv4, `Some(false)` for IPv6, `None` for `any`.
    pub fn is_ipv4(&self) -> Option<bool> {
        match self {
            AddressSpec::Any => None,
            AddressSpec::Prefix(n) => Some(matches!(n, IpNet::V4(_))),
            AddressSpec::Range(a, _) => Some(a.is_ipv4()),
        }
    }

    /// The first and last address of the set for one family (`any` needs the family).
    pub fn bounds(&self, v4: bool) -> Option<(IpAddr, IpAddr)> {
        match self {
            AddressSpec::Any if v4 => Some((
                IpAddr::from([0u8, 0, 0, 0]),
                IpAddr::from([255u8, 255, 255, 255]),
            )),
            AddressSpec::Any => Some((IpAddr::from([0u16; 8]), IpAddr::from([0xffffu16; 8]))),
            AddressSpec::Prefix(n) if matches!(n, IpNet::V4(_)) == v4 => {
                Some((n.network(), n.broadcast()))
            }
            AddressSpec::Range(a, b) if a.is_ipv4() == v4 => Some((*a, *b)),
            _ => None,
        }
    }
}

impl fmt::Display for AddressSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressSpec::Any => f.write_str("any"),
            AddressSpec::Prefix(n) => write!(f, "{n}"),
            AddressSpec::Range(a, b) => write!(f, "{a}-{b}"),
        }
    }
}

impl Serialize for AddressSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// ---------------------------------------------------------------------------------------------
// Ports and protocols

/// An inclusive port range; a single port is `start == end`; `0-65535` is any port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port.
    pub start: u16,
    /// Last port (≥ start).
    pub end: u16,
}

impl PortRange {
    /// Every port.
    pub const ANY: PortRange = PortRange {
        start: 0,
        end: 65535,
    };

    /// One port. Port 0 means any port, as in a PAN-OS proxy ID.
    pub fn single(port: u16) -> PortRange {
        if port == 0 {
            PortRange::ANY
        } else {
            PortRange {
                start: port,
                end: port,
            }
        }
    }

    /// Parse `"53"`, `"1000-2000"` or `"any"`.
    pub fn parse(s: &str) -> Result<PortRange, ValueError> {
        let t = s.trim();
        if t == "any" {
            return Ok(PortRange::ANY);
        }
        let port = |p: &str| -> Result<u16, ValueError> {
            p.trim()
                .parse::<u16>()
                .or_else(|_| err(format!("\"{p}\" is not a port number 0-65535")))
        };
        if let Some((a, b)) = t.split_once('-') {
            let (a, b) = (port(a)?, port(b)?);
            if a > b {
                return err(format!(
                    "port range \"{s}\" ends before it starts; write {b}-{a}"
                ));
            }
            Ok(PortRange { start: a, end: b })
        } else {
            port(t).map(PortRange::single)
        }
    }

    /// Whether this is every port.
    pub fn is_any(&self) -> bool {
        *self == PortRange::ANY
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            f.write_str("any")
        } else if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An IP protocol of a proxy ID: by name (`any`, `tcp`, `udp`, `icmp`, `icmpv6`) or by number
/// 0-255 (0 = any). Numbers of named protocols normalize to the name (`6` → `tcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Any protocol (number 0).
    Any,
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// ICMP (1).
    Icmp,
    /// ICMPv6 (58).
    Icmpv6,
    /// Another protocol number.
    Number(u8),
}

impl Protocol {
    /// Every protocol name accepted.
    pub const NAMES: &'static [&'static str] = &["any", "tcp", "udp", "icmp", "icmpv6"];

    /// The protocol for a number.
    pub fn from_number(n: u8) -> Protocol {
        match n {
            0 => Protocol::Any,
            1 => Protocol::Icmp,
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            58 => Protocol::Icmpv6,
            n => Protocol::Number(n),
        }
    }

    /// The IP protocol number (0 = any).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Any => 0,
            Protocol::Icmp => 1,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Icmpv6 => 58,
            Protocol::Number(n) => n,
        }
    }

    /// Whether the protocol has ports (TCP, UDP, and SCTP 132 / UDP-Lite 136 by number).
    pub fn has_ports(self) -> bool {
        matches!(
            self,
            Protocol::Tcp | Protocol::Udp | Protocol::Number(132) | Protocol::Number(136)
        )
    }

    /// Parse a name or a decimal number.
    pub fn parse(s: &str) -> Result<Protocol, ValueError> {
        let t = s.trim();
        match t {
            "any" => Ok(Protocol::Any),
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "icmp" => Ok(Protocol::Icmp),
            "icmpv6" => Ok(Protocol::Icmpv6),
            _ => match t.parse::<u8>() {
                Ok(n) => Ok(Protocol::from_number(n)),
                Err(_) => err(format!(
                    "\"{s}\" is not a protocol; use any, tcp, udp, icmp, icmpv6 or a number 0-255"
                )),
            },
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Any => f.write_str("any"),
            Protocol::Tcp => f.write_str("tcp"),
            Protocol::Udp => f.write_str("udp"),
            Protocol::Icmp => f.write_str("icmp"),
            Protocol::Icmpv6 => f.write_str("icmpv6"),
            Protocol::Number(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Protocol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The service of a security rule: `any`, or TCP/UDP with destination ports
/// (`"tcp/443"`, `"udp/53"`, `"tcp/8000-8080"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Any protocol, any port.
    Any,
    /// TCP to these destination ports.
    Tcp(PortRange),
    /// UDP to these destination ports.
    Udp(PortRange),
}

impl Service {
    /// Parse `any`, `tcp/PORTS` or `udp/PORTS`.
    pub fn parse(s: &str) -> Result<Service, ValueError> {
        let t = s.trim();
        if t == "any" {
            return Ok(Service::Any);
        }
        let bad = || {
            err(format!(
                "\"{s}\" is not a service; use \"any\", \"tcp/443\", \"udp/53\" or \"tcp/8000-8080\""
            ))
        };
        let Some((proto, ports)) = t.split_once('/') else {
            return bad();
        };
        let ports = PortRange::parse(ports)?;
        match proto {
            "tcp" => Ok(Service::Tcp(ports)),
            "udp" => Ok(Service::Udp(ports)),
            _ => bad(),
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Service::Any => f.write_str("any"),
            Service::Tcp(p) => write!(f, "tcp/{p}"),
            Service::Udp(p) => write!(f, "udp/{p}"),
        }
    }
}

impl Serialize for Service {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// ---------------------------------------------------------------------------------------------
// SPIs and hex keys

/// A manual-key Security Parameter Index. Values 1-255 are reserved by IANA (RFC 4303 §2.1) and
/// 0 is never used, so the accepted range is 256 (0x100) to 0xFFFFFFFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Spi(pub u32);

impl Spi {
    /// The lowest SPI that may be configured.
    pub const MIN: u32 = 256;

    /// Parse `"0x1000"` (hex) or `"4096"` (decimal).
    pub fn parse(s: &str) -> Result<Spi, ValueError> {
        let t = s.trim();
        let v = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            u32::from_str_radix(hex, 16)
        } else {
            t.parse::<u32>()
        };
        match v {
            Ok(v) => Spi::from_u64(u64::from(v)),
            Err(_) => err(format!(
                "\"{s}\" is not an SPI; write hex like \"0x1000\" or decimal, 256 to 4294967295"
            )),
        }
    }

    /// Check the range of a number.
    pub fn from_u64(v: u64) -> Result<Spi, ValueError> {
        match u32::try_from(v) {
            Ok(v) if v >= Spi::MIN => Ok(Spi(v)),
            Ok(v) => err(format!(
                "SPI {v} is reserved (0-255 are not for use, RFC 4303); use 0x100 or above"
            )),
            Err(_) => err(format!("SPI {v} is larger than 32 bits")),
        }
    }
}

impl fmt::Display for Spi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

impl Serialize for Spi {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Decode a hex key (`"0x00112233…"` or without `0x`; `:` separators allowed). The error never
/// contains the key.
pub fn parse_hex_key(s: &str) -> Result<Vec<u8>, ValueError> {
    let t = s.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let digits: Vec<u8> = t.bytes().filter(|b| *b != b':').collect();
    if digits.is_empty() {
        return err("the key is empty; write it in hex like \"0x00112233…\"");
    }
    if !digits.len().is_multiple_of(2) {
        return err(format!(
            "the key has an odd number of hex digits ({}); write whole bytes",
            digits.len()
        ));
    }
    let nibble = |b: u8| -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    };
    let mut out = Vec::with_capacity(digits.len() / 2);
    for pair in digits.chunks(2) {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(h), Some(l)) => out.push(h << 4 | l),
            _ => {
                return err("the key contains a character that is not a hex digit (0-9, a-f)");
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("8h").unwrap(), Duration::from_secs(28_800));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert!(parse_duration("8 hours").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert_eq!(format_duration(Duration::from_secs(28_800)), "8h");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    }

    #[test]
    fn sizes_are_binary_multiples() {
        assert_eq!(parse_size("512KB").unwrap(), 512 * 1024);
        assert_eq!(parse_size("50GB").unwrap(), 50 * 1024 * 1024 * 1024);
        assert_eq!(parse_size("1tb").unwrap(), 1 << 40);
        assert_eq!(parse_size("10MB").unwrap(), 10 << 20);
        assert!(parse_size("10").is_err());
        assert!(parse_size("10PB").is_err());
        assert!(parse_size("20000000TB").is_err());
        assert_eq!(format_size(50 << 30), "50GB");
        assert_eq!(format_size(1536), "1536B");
    }

    #[test]
    fn address_specs() {
        assert_eq!(AddressSpec::parse("any").unwrap(), AddressSpec::Any);
        assert_eq!(
            AddressSpec::parse("10.1.0.0/24").unwrap().to_string(),
            "10.1.0.0/24"
        );
        assert_eq!(
            AddressSpec::parse("10.1.0.5").unwrap().to_string(),
            "10.1.0.5/32"
        );
        assert_eq!(
            AddressSpec::parse("2001:db8::/32").unwrap().is_ipv4(),
            Some(false)
        );
        assert_eq!(
            AddressSpec::parse("10.0.0.1-10.0.0.9").unwrap(),
            AddressSpec::Range("10.0.0.1".parse().unwrap(), "10.0.0.9".parse().unwrap())
        );
        assert!(AddressSpec::parse("10.0.0.9-10.0.0.1").is_err());
        assert!(AddressSpec::parse("10.0.0.1-::1").is_err());
        let e = AddressSpec::parse("10.1.0.1/24").unwrap_err();
        assert!(e.0.contains("10.1.0.0/24"), "{e}");
        assert!(AddressSpec::parse("10.1.0.0/33").is_err());
    }

    #[test]
    fn ports_protocols_services() {
        assert_eq!(
            PortRange::parse("53").unwrap(),
            PortRange { start: 53, end: 53 }
        );
        assert_eq!(PortRange::parse("0").unwrap(), PortRange::ANY);
        assert!(PortRange::parse("70000").is_err());
        assert!(PortRange::parse("20-10").is_err());
        assert_eq!(Protocol::parse("17").unwrap(), Protocol::Udp);
        assert_eq!(Protocol::parse("47").unwrap(), Protocol::Number(47));
        assert!(Protocol::parse("256").is_err());
        assert!(Protocol::parse("gre").is_err());
        assert_eq!(
            Service::parse("tcp/443").unwrap(),
            Service::Tcp(PortRange::single(443))
        );
        assert!(Service::parse("icmp/1").is_err());
        assert!(Service::parse("tcp").is_err());
    }

    #[test]
    fn spis_and_keys() {
        assert_eq!(Spi::parse("0x1000").unwrap(), Spi(0x1000));
        assert_eq!(Spi::parse("4096").unwrap(), Spi(4096));
        assert!(Spi::parse("0xff").is_err());
        assert!(Spi::parse("0x100000000").is_err());
        assert_eq!(parse_hex_key("0x00ff:10").unwrap(), vec![0, 255, 16]);
        assert!(parse_hex_key("0x123").is_err());
        let e = parse_hex_key("0xsecretsecret").unwrap_err();
        assert!(!e.0.contains("secret"), "{e}");
    }

    fn arb_ipv4() -> impl Strategy<Value = std::net::Ipv4Addr> {
        any::<u32>().prop_map(std::net::Ipv4Addr::from)
    }

    fn arb_ipv6() -> impl Strategy<Value = std::net::Ipv6Addr> {
        any::<u128>().prop_map(std::net::Ipv6Addr::from)
    }

    proptest! {
        #[test]
        fn duration_round_trip(secs in 0u64..=10_000_000_000) {
            let d = Duration::from_secs(secs);
            prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }

        #[test]
        fn duration_with_unit(n in 0u64..=1_000_000, unit in prop::sample::select(vec![("s", 1u64), ("m", 60), ("h", 3600), ("d", 86400)])) {
            prop_assert_eq!(parse_duration(&format!("{n}{}", unit.0)).unwrap(), Duration::from_secs(n * unit.1));
        }

        #[test]
        fn size_round_trip(bytes in any::<u64>()) {
            prop_assert_eq!(parse_size(&format_size(bytes)).unwrap(), bytes);
        }

        #[test]
        fn size_with_unit(n in 0u64..=1_000_000, exp in 0u32..=4) {
            let unit = ["B", "KB", "MB", "GB", "TB"][exp as usize];
            prop_assert_eq!(parse_size(&format!("{n}{unit}")).unwrap(), n * 1024u64.pow(exp));
        }

        #[test]
        fn prefix_v4_round_trip(ip in arb_ipv4(), len in 0u8..=32) {
            let net = IpNet::V4(ipnet::Ipv4Net::new(ip, len).unwrap().trunc());
            let spec = AddressSpec::parse(&net.to_string()).unwrap();
            prop_assert_eq!(spec, AddressSpec::Prefix(net));
            prop_assert_eq!(AddressSpec::parse(&spec.to_string()).unwrap(), spec);
        }

        #[test]
        fn prefix_v6_round_trip(ip in arb_ipv6(), len in 0u8..=128) {
            let net = IpNet::V6(ipnet::Ipv6Net::new(ip, len).unwrap().trunc());
            let spec = AddressSpec::parse(&net.to_string()).unwrap();
            prop_assert_eq!(spec, AddressSpec::Prefix(net));
        }

        #[test]
        fn range_round_trip(a in arb_ipv4(), b in arb_ipv4()) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let text = format!("{lo}-{hi}");
            let spec = AddressSpec::parse(&text).unwrap();
            prop_assert_eq!(spec, AddressSpec::Range(lo.into(), hi.into()));
            prop_assert_eq!(spec.to_string(), text);
            if lo != hi {
                let reversed = format!("{hi}-{lo}");
                prop_assert!(AddressSpec::parse(&reversed).is_err());
            }
        }

        #[test]
        fn range_v6_round_trip(a in arb_ipv6(), b in arb_ipv6()) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let spec = AddressSpec::parse(&format!("{lo}-{hi}")).unwrap();
            prop_assert_eq!(AddressSpec::parse(&spec.to_string()).unwrap(), spec);
        }

        #[test]
        fn port_and_spi_round_trip(a in any::<u16>(), b in any::<u16>(), spi in 256u32..) {
            let r = PortRange { start: a.min(b), end: a.max(b) };
            prop_assert_eq!(PortRange::parse(&r.to_string()).unwrap(), r);
            prop_assert_eq!(Spi::parse(&Spi(spi).to_string()).unwrap(), Spi(spi));
            let p = Protocol::from_number(a as u8);
            prop_assert_eq!(Protocol::parse(&p.to_string()).unwrap(), p);
        }

        #[test]
        fn hex_key_round_trip(bytes in prop::collection::vec(any::<u8>(), 1..64)) {
            let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(parse_hex_key(&format!("0x{text}")).unwrap(), bytes);
        }

        #[test]
        fn parsers_never_panic(s in ".*") {
            let _ = parse_duration(&s);
            let _ = parse_size(&s);
            let _ = parse_prefix(&s);
            let _ = parse_interface_address(&s);
            let _ = AddressSpec::parse(&s);
            let _ = PortRange::parse(&s);
            let _ = Protocol::parse(&s);
            let _ = Service::parse(&s);
            let _ = Spi::parse(&s);
            let _ = parse_hex_key(&s);
        }

        #[test]
        fn hex_key_errors_never_echo_input(s in "[g-z]{8,20}") {
            let e = parse_hex_key(&s).unwrap_err();
            prop_assert!(!e.0.contains(&s));
        }
    }
}
