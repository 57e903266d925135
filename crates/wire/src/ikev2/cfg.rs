//! Typed values of Configuration payload attributes (RFC 7296 §3.15.1, §3.15.2).
//!
//! [`crate::ikev2::Config`] keeps every attribute as a type and opaque bytes, so that unknown
//! attributes survive parsing. [`CfgValue`] reads the value of one attribute as its type
//! says, and writes it back:
//!
//! | attribute | value |
//! |---|---|
//! | INTERNAL_IP4_ADDRESS, _NETMASK, _DNS, _NBNS, _DHCP | 4 octets |
//! | INTERNAL_IP4_SUBNET | 8 octets: address, netmask |
//! | INTERNAL_IP6_ADDRESS, INTERNAL_IP6_SUBNET | 17 octets: address, prefix length |
//! | INTERNAL_IP6_DNS, _DHCP | 16 octets |
//!
//! Every attribute may also be empty (0 octets): a CFG_REQUEST asks for it that way, and a
//! CFG_ACK acknowledges it. Other attribute types are [`CfgValue::Other`].

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::{Error, Result};
use crate::ikev2::consts::CfgAttrType;

/// The value of one configuration attribute, read as its type says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CfgValue<'a> {
    /// No value (a request for the attribute, or an acknowledgement).
    Empty,
    /// An IPv4 address: INTERNAL_IP4_ADDRESS, _NETMASK, _DNS, _NBNS, _DHCP.
    Ip4(Ipv4Addr),
    /// INTERNAL_IP4_SUBNET: a protected sub-network as address and netmask.
    Ip4Subnet {
        /// The address.
        addr: Ipv4Addr,
        /// The netmask (as sent; see [`CfgValue::prefix_len`]).
        mask: Ipv4Addr,
    },
    /// An IPv6 address: INTERNAL_IP6_DNS, _DHCP.
    Ip6(Ipv6Addr),
    /// INTERNAL_IP6_ADDRESS or INTERNAL_IP6_SUBNET: an address with its prefix length.
    Ip6Prefix {
        /// The address.
        addr: Ipv6Addr,
        /// The prefix length, at most 128.
        prefix_len: u8,
    },
    /// An attribute type not typed here, with its value.
    Other(&'a [u8]),
}

/// How the value of an attribute type is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Ip4,
    Ip4Subnet,
    Ip6,
    Ip6Prefix,
    Other,
}

fn layout(ty: CfgAttrType) -> Layout {
    match ty {
        CfgAttrType::INTERNAL_IP4_ADDRESS
        | CfgAttrType::INTERNAL_IP4_NETMASK
        | CfgAttrType::INTERNAL_IP4_DNS
        | CfgAttrType::INTERNAL_IP4_NBNS
        | CfgAttrType::INTERNAL_IP4_DHCP => Layout::Ip4,
        CfgAttrType::INTERNAL_IP4_SUBNET => Layout::Ip4Subnet,
        CfgAttrType::INTERNAL_IP6_DNS | CfgAttrType::INTERNAL_IP6_DHCP => Layout::Ip6,
        CfgAttrType::INTERNAL_IP6_ADDRESS | CfgAttrType::INTERNAL_IP6_SUBNET => Layout::Ip6Prefix,
        _ => Layout::Other,
    }
}

impl<'a> CfgValue<'a> {
    /// Reads the value of an attribute of type `ty`. An empty value is [`CfgValue::Empty`]
    /// whatever the type; a value of the wrong length for its type (or an IPv6 prefix length
    /// above 128) is an error.
    pub fn parse(ty: CfgAttrType, value: &'a [u8]) -> Result<Self> {
        let l = layout(ty);
        if value.is_empty() && l != Layout::Other {
            return Ok(CfgValue::Empty);
        }
        let v4 = |b: &[u8]| -> Option<Ipv4Addr> { <[u8; 4]>::try_from(b).ok().map(Ipv4Addr::from) };
        let v6 =
            |b: &[u8]| -> Option<Ipv6Addr> { <[u8; 16]>::try_from(b).ok().map(Ipv6Addr::from) };
        match l {
            Layout::Ip4 => v4(value)
                .map(CfgValue::Ip4)
                .ok_or(Error::BadLength("CP attribute (IPv4 address)")),
            Layout::Ip4Subnet => match (value.get(..4).and_then(v4), value.get(4..).and_then(v4)) {
                (Some(addr), Some(mask)) => Ok(CfgValue::Ip4Subnet { addr, mask }),
                _ => Err(Error::BadLength("CP attribute (IPv4 subnet)")),
            },
            Layout::Ip6 => v6(value)
                .map(CfgValue::Ip6)
                .ok_or(Error::BadLength("CP attribute (IPv6 address)")),
            Layout::Ip6Prefix => {
                let (Some(addr), Some(&prefix_len), 17) =
                    (value.get(..16).and_then(v6), value.get(16), value.len())
                else {
                    return Err(Error::BadLength("CP attribute (IPv6 address and prefix)"));
                };
                if prefix_len > 128 {
                    return Err(Error::Malformed(
                        "CP attribute IPv6 prefix length above 128",
                    ));
                }
                Ok(CfgValue::Ip6Prefix { addr, prefix_len })
            }
            Layout::Other => Ok(CfgValue::Other(value)),
        }
    }

    /// The length of the value in octets.
    pub fn buffer_len(&self) -> usize {
        match self {
            CfgValue::Empty => 0,
            CfgValue::Ip4(_) => 4,
            CfgValue::Ip4Subnet { .. } => 8,
            CfgValue::Ip6(_) => 16,
            CfgValue::Ip6Prefix { .. } => 17,
            CfgValue::Other(v) => v.len(),
        }
    }

    /// Writes the value into `buf`, which must be exactly [`CfgValue::buffer_len`] long.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() != self.buffer_len() {
            return Err(Error::BufferTooSmall);
        }
        match self {
            CfgValue::Empty => {}
            CfgValue::Ip4(a) => buf.copy_from_slice(&a.octets()),
            CfgValue::Ip4Subnet { addr, mask } => {
                buf[..4].copy_from_slice(&addr.octets());
                buf[4..].copy_from_slice(&mask.octets());
            }
            CfgValue::Ip6(a) => buf.copy_from_slice(&a.octets()),
            CfgValue::Ip6Prefix { addr, prefix_len } => {
                if *prefix_len > 128 {
                    return Err(Error::Malformed(
                        "CP attribute IPv6 prefix length above 128",
                    ));
                }
                buf[..16].copy_from_slice(&addr.octets());
                buf[16] = *prefix_len;
            }
            CfgValue::Other(v) => buf.copy_from_slice(v),
        }
        Ok(())
    }

    /// The value as bytes.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v)?;
        Ok(v)
    }

    /// Whether `ty` is an attribute type this value's layout belongs to (an empty value fits
    /// every type).
    pub fn fits(&self, ty: CfgAttrType) -> bool {
        matches!(
            (self, layout(ty)),
            (CfgValue::Empty, _)
                | (CfgValue::Ip4(_), Layout::Ip4)
                | (CfgValue::Ip4Subnet { .. }, Layout::Ip4Subnet)
                | (CfgValue::Ip6(_), Layout::Ip6)
                | (CfgValue::Ip6Prefix { .. }, Layout::Ip6Prefix)
                | (CfgValue::Other(_), Layout::Other)
        )
    }

    /// The prefix length of an IPv4 subnet whose netmask is contiguous (ones then zeros), or
    /// of an IPv6 address or subnet; `None` otherwise.
    pub fn prefix_len(&self) -> Option<u8> {
        match self {
            CfgValue::Ip4Subnet { mask, .. } => {
                let m = u32::from(*mask);
                let ones = m.leading_ones();
                (m.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
            }
            CfgValue::Ip6Prefix { prefix_len, .. } => Some(*prefix_len),
            _ => None,
        }
    }
}

/// The IPv4 netmask of a prefix length (at most 32).
pub fn ipv4_netmask(prefix_len: u8) -> Ipv4Addr {
    let n = u32::from(prefix_len.min(32));
    Ipv4Addr::from(u32::MAX.checked_shl(32 - n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_layout_reads_and_writes_back() {
        let cases: [(CfgAttrType, &[u8]); 7] = [
            (CfgAttrType::INTERNAL_IP4_ADDRESS, &[10, 9, 0, 7]),
            (CfgAttrType::INTERNAL_IP4_DNS, &[10, 1, 0, 53]),
            (
                CfgAttrType::INTERNAL_IP4_SUBNET,
                &[10, 1, 0, 0, 255, 255, 255, 0],
            ),
            (CfgAttrType::INTERNAL_IP6_DNS, &[0xfd; 16]),
            (
                CfgAttrType::INTERNAL_IP6_ADDRESS,
                &[0xfd, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 128],
            ),
            (CfgAttrType::APPLICATION_VERSION, b"ferrosec"),
            (CfgAttrType::INTERNAL_IP6_SUBNET, &[]),
        ];
        for (ty, bytes) in cases {
            let v = CfgValue::parse(ty, bytes).unwrap();
            assert!(v.fits(ty), "{ty:?}");
            assert_eq!(v.to_vec().unwrap(), bytes, "{ty:?}");
        }
    }

    #[test]
    fn wrong_lengths_and_prefixes_are_errors() {
        assert!(CfgValue::parse(CfgAttrType::INTERNAL_IP4_ADDRESS, &[1, 2, 3]).is_err());
        assert!(CfgValue::parse(CfgAttrType::INTERNAL_IP4_SUBNET, &[1, 2, 3, 4]).is_err());
        assert!(CfgValue::parse(CfgAttrType::INTERNAL_IP6_DNS, &[0; 17]).is_err());
        let mut v6 = [0u8; 17];
        v6[16] = 129;
        assert!(CfgValue::parse(CfgAttrType::INTERNAL_IP6_SUBNET, &v6).is_err());
        assert!(CfgValue::parse(CfgAttrType::INTERNAL_IP6_SUBNET, &v6[..16]).is_err());
    }

    #[test]
    fn netmasks_and_prefix_lengths() {
        assert_eq!(ipv4_netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(ipv4_netmask(0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(ipv4_netmask(32), Ipv4Addr::BROADCAST);
        for n in 0..=32 {
            let v = CfgValue::Ip4Subnet {
                addr: Ipv4Addr::UNSPECIFIED,
                mask: ipv4_netmask(n),
            };
            assert_eq!(v.prefix_len(), Some(n));
        }
        let holes = CfgValue::Ip4Subnet {
            addr: Ipv4Addr::UNSPECIFIED,
            mask: Ipv4Addr::new(255, 0, 255, 0),
        };
        assert_eq!(holes.prefix_len(), None);
    }
}
