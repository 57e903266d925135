//! The Configuration payload in IKE_AUTH (RFC 7296 §2.19, §3.15; R-V2-12), both roles.
//!
//! - **Initiator** ([`ConfigPayload::Request`]): IKE_AUTH carries CP(CFG_REQUEST) with the
//!   empty attributes of each family asked for (after a first answer, the address we had, so
//!   that a re-authentication or reconnect asks for it again); the CFG_REPLY becomes the SA's
//!   [`VirtualConfig`], in the [`IkeSaInfo`] the application gets.
//! - **Responder** ([`ConfigPayload::Serve`]): an address of each family asked for comes from
//!   the peer configuration's pool, leased to the peer's authenticated identity; DNS servers
//!   and subnets go with it. No address at all for a peer that asked for one is
//!   INTERNAL_ADDRESS_FAILURE; no CP from a peer when one is required is FAILED_CP_REQUIRED;
//!   either way the IKE SA comes up without its first Child SA (§3.10.1).
//!
//! Either way, the side of every Child SA that the addresses belong to (ours as initiator,
//! the peer's as responder) is narrowed to them ([`Core::policy_ts`]), as strongSwan narrows
//! its "dynamic" selectors to a virtual IP.
//!
//! # Leases
//!
//! A pool is deterministic and bounded: addresses are handed out in order; a lease belongs to
//! an identity and counts the IKE SAs that hold it (a make-before-break re-authentication
//! holds it twice for a moment; an IKE SA rekey hands its hold to the new SA). When the last
//! SA goes, the lease stays the identity's, offline, so that the same identity gets the same
//! address back on reconnect; only when no address was never handed out is the oldest offline
//! lease given to another identity. So leases never outnumber the pool's addresses (at most
//! [`MAX_POOL_ADDRESSES`] per family), whatever the number of identities seen.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ferrosec_wire::ikev2::{CfgAttrType, CfgAttribute, CfgType, CfgValue, Config, ipv4_netmask};

use super::*;
use crate::event::VirtualConfig;
use crate::ts::{AddrRange, TrafficSelector, TsPolicy};
use crate::v2::config::{AddressPools, ConfigPayload};

/// The most addresses one pool hands out per family (a longer prefix is used up to this).
pub const MAX_POOL_ADDRESSES: u128 = 65_536;
/// The most addresses, DNS servers and subnets each taken from a peer's CFG_REPLY.
const MAX_RECEIVED: usize = 16;

/// One family's pool: offsets from the prefix's first address.
#[derive(Debug)]
struct Family {
    base: u128,
    v6: bool,
    first: u128,
    last: u128,
    /// The next offset never handed out.
    next: u128,
    reserved: BTreeSet<u128>,
    leases: HashMap<u128, Lease>,
    by_id: HashMap<Identity, u128>,
    /// Offline leases in the order they went offline.
    offline: BTreeMap<u64, u128>,
    seq: u64,
    /// The prefix in words, for the log.
    name: String,
}

#[derive(Debug)]
struct Lease {
    owner: Identity,
    /// IKE SAs holding it.
    online: u32,
    /// Its key in `offline` while no SA holds it.
    offline_at: Option<u64>,
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl Family {
    fn new(addr: IpAddr, prefix: u8, reserved: &[IpAddr]) -> Self {
        let v6 = addr.is_ipv6();
        let bits: u32 = if v6 { 128 } else { 32 };
        let prefix = u32::from(prefix).min(bits);
        let host_bits = bits - prefix;
        let span_minus_1 = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        let base = to_u128(addr) & !span_minus_1;
        // The network address of an IPv4 prefix shorter than /31, and the subnet-router
        // anycast address of an IPv6 prefix shorter than /127, are never handed out; nor the
        // IPv4 broadcast address.
        let first = u128::from(host_bits >= 2);
        let last = span_minus_1 - u128::from(!v6 && host_bits >= 2);
        let last = last.min(first + MAX_POOL_ADDRESSES - 1);
        let reserved = reserved
            .iter()
            .filter(|r| r.is_ipv6() == v6)
            .map(|r| to_u128(*r).wrapping_sub(base))
            .filter(|o| (first..=last).contains(o))
            .collect();
        Family {
            base,
            v6,
            first,
            last,
            next: first,
            reserved,
            leases: HashMap::new(),
            by_id: HashMap::new(),
            offline: BTreeMap::new(),
            seq: 0,
            name: format!("{addr}/{prefix}"),
        }
    }

    fn addr(&self, off: u128) -> IpAddr {
        let v = self.base.wrapping_add(off);
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(v))
        } else {
            IpAddr::V4(Ipv4Addr::from(v as u32))
        }
    }

    /// How many addresses it can hand out.
    fn capacity(&self) -> u128 {
        (self.last - self.first + 1) - self.reserved.len() as u128
    }

    fn acquire(&mut self, id: &Identity) -> Result<IpAddr, String> {
        if let Some(&off) = self.by_id.get(id)
            && let Some(l) = self.leases.get_mut(&off)
        {
            l.online += 1;
            if let Some(k) = l.offline_at.take() {
                self.offline.remove(&k);
            }
            return Ok(self.addr(off));
        }
        while self.next <= self.last {
            let off = self.next;
            self.next += 1;
            if self.reserved.contains(&off) {
                continue;
            }
            self.leases.insert(
                off,
                Lease {
                    owner: id.clone(),
                    online: 1,
                    offline_at: None,
                },
            );
            self.by_id.insert(id.clone(), off);
            return Ok(self.addr(off));
        }
        // Every address was handed out once: the one offline the longest changes hands.
        if let Some((_, off)) = self.offline.pop_first()
            && let Some(l) = self.leases.get_mut(&off)
        {
            self.by_id.remove(&l.owner);
            l.owner = id.clone();
            l.online = 1;
            l.offline_at = None;
            self.by_id.insert(id.clone(), off);
            return Ok(self.addr(off));
        }
        Err(format!(
            "pool {} is exhausted: all {} of its addresses are leased to connected peers",
            self.name,
            self.capacity()
        ))
    }

    fn release(&mut self, id: &Identity, addr: IpAddr) {
        if addr.is_ipv6() != self.v6 {
            return;
        }
        let off = to_u128(addr).wrapping_sub(self.base);
        let Some(l) = self.leases.get_mut(&off) else {
            return;
        };
        if l.owner != *id || l.online == 0 {
            return;
        }
        l.online -= 1;
        if l.online == 0 {
            l.offline_at = Some(self.seq);
            self.offline.insert(self.seq, off);
            self.seq += 1;
        }
    }
}

/// The pools of one peer configuration.
#[derive(Debug)]
pub(super) struct Pools {
    cfg: AddressPools,
    v4: Option<Family>,
    v6: Option<Family>,
}

/// The configuration payload of one peer configuration, with its state.
#[derive(Debug)]
pub(super) enum CpSetup {
    /// Initiator: the families to ask for, and the addresses we had last.
    Request {
        ipv4: bool,
        ipv6: bool,
        last: Vec<(IpAddr, u8)>,
    },
    /// Responder: the pools.
    Serve(Box<Pools>),
}

/// What a responder's CFG_REPLY carries: (type, value) pairs.
pub(super) type CpAttrs = Vec<(CfgAttrType, Vec<u8>)>;

/// The CP payload of `attrs`.
pub(super) fn cp_payload(cfg_type: CfgType, attrs: &CpAttrs) -> Payload<'_> {
    Payload::new(PayloadBody::Config(Config {
        cfg_type,
        attributes: attrs
            .iter()
            .map(|(ty, value)| CfgAttribute { ty: *ty, value })
            .collect(),
    }))
}

fn find_cp<'p, 'a>(inner: &'p [Payload<'a>], ty: CfgType) -> Option<&'p Config<'a>> {
    inner.iter().find_map(|p| match &p.body {
        PayloadBody::Config(c) if c.cfg_type == ty => Some(c),
        _ => None,
    })
}

fn value(v: CfgValue<'_>) -> Vec<u8> {
    v.to_vec().unwrap_or_default()
}

fn host_set(addrs: &[(IpAddr, u8)]) -> TsSet {
    TsSet(
        addrs
            .iter()
            .map(|(a, _)| TrafficSelector::from_addrs(AddrRange::host(*a)))
            .collect(),
    )
}

impl Endpoint {
    /// Sets the configuration payload of peer configuration `peer` (R-V2-12): ask for an
    /// address as initiator, or hand them out from pools as responder (see
    /// [`ConfigPayload`]). Applies to IKE SAs made from now on; a responder's leases start
    /// empty.
    pub fn set_config_payload(
        &mut self,
        peer: PeerId,
        cp: ConfigPayload,
    ) -> Result<(), CommandError> {
        if !self.peers.contains_key(&peer) {
            return Err(CommandError::NoSuchPeer);
        }
        let setup = match cp {
            ConfigPayload::Request { ipv4, ipv6 } => CpSetup::Request {
                ipv4,
                ipv6,
                last: Vec::new(),
            },
            ConfigPayload::Serve(cfg) => CpSetup::Serve(Box::new(Pools {
                v4: cfg
                    .ipv4
                    .map(|(a, l)| Family::new(IpAddr::V4(a), l, &cfg.reserved)),
                v6: cfg
                    .ipv6
                    .map(|(a, l)| Family::new(IpAddr::V6(a), l, &cfg.reserved)),
                cfg,
            })),
        };
        self.cp.insert(peer, setup);
        Ok(())
    }

    /// Addresses leased from peer configuration `peer`'s pools: (address, identity, IKE SAs
    /// holding it; 0 = offline, kept for the identity's return), in address order.
    pub fn address_leases(&self, peer: PeerId) -> Vec<(IpAddr, Identity, u32)> {
        let Some(CpSetup::Serve(p)) = self.cp.get(&peer) else {
            return Vec::new();
        };
        let mut v: Vec<(IpAddr, Identity, u32)> = [&p.v4, &p.v6]
            .into_iter()
            .flatten()
            .flat_map(|f| {
                f.leases
                    .iter()
                    .map(|(off, l)| (f.addr(*off), l.owner.clone(), l.online))
            })
            .collect();
        v.sort_by_key(|a| a.0);
        v
    }
}

impl Core {
    /// Initiator: the CP(CFG_REQUEST) attributes for IKE_AUTH, if this peer asks for an
    /// address.
    pub(super) fn cp_request(&self, peer: PeerId) -> Option<CpAttrs> {
        let Some(CpSetup::Request { ipv4, ipv6, last }) = self.cp.get(&peer) else {
            return None;
        };
        let mut attrs = Vec::new();
        //= https://www.rfc-editor.org/rfc/rfc7296#section-2.19
        //# the initiator can request a specific address (e.g., its previous address) by
        //# including that address in its request
        if *ipv4 {
            let had = last.iter().find_map(|(a, _)| match a {
                IpAddr::V4(a) => Some(CfgValue::Ip4(*a)),
                IpAddr::V6(_) => None,
            });
            attrs.push((
                CfgAttrType::INTERNAL_IP4_ADDRESS,
                value(had.unwrap_or(CfgValue::Empty)),
            ));
            attrs.push((CfgAttrType::INTERNAL_IP4_DNS, Vec::new()));
            attrs.push((CfgAttrType::INTERNAL_IP4_SUBNET, Vec::new()));
        }
        if *ipv6 {
            let had = last.iter().find_map(|(a, l)| match a {
                IpAddr::V6(a) => Some(CfgValue::Ip6Prefix {
                    addr: *a,
                    prefix_len: *l,
                }),
                IpAddr::V4(_) => None,
            });
            attrs.push((
                CfgAttrType::INTERNAL_IP6_ADDRESS,
                value(had.unwrap_or(CfgValue::Empty)),
            ));
            attrs.push((CfgAttrType::INTERNAL_IP6_DNS, Vec::new()));
            attrs.push((CfgAttrType::INTERNAL_IP6_SUBNET, Vec::new()));
        }
        Some(attrs)
    }

    /// Responder, in IKE_AUTH after the peer authenticated as `peer_id`: leases the addresses
    /// its CP(CFG_REQUEST) asks for and gives the CFG_REPLY attributes (`None`: no CP to
    /// send). `Err`: no Child SA, the failure names the notify (INTERNAL_ADDRESS_FAILURE,
    /// FAILED_CP_REQUIRED).
    pub(super) fn cp_serve(
        &mut self,
        sa: &mut IkeSa,
        peer_id: &Identity,
        inner: &[Payload<'_>],
    ) -> Result<Option<CpAttrs>, Failure> {
        let Some(CpSetup::Serve(pools)) = self.cp.get_mut(&sa.peer) else {
            // Not configured: a CP is ignored (§3.15: "MAY be ignored"), none is sent.
            return Ok(None);
        };
        let Some(req) = find_cp(inner, CfgType::CFG_REQUEST) else {
            if pools.cfg.required {
                //= https://www.rfc-editor.org/rfc/rfc7296#section-3.10.1
                //# FAILED_CP_REQUIRED ... Indicates that the responder requires a CP but it
                //# is absent
                return Err(Failure::CpRequired {
                    peer_id: peer_id.clone(),
                });
            }
            return Ok(None);
        };
        let asks = |ty: CfgAttrType| req.attributes.iter().any(|a| a.ty == ty);
        let (want4, want6) = (
            asks(CfgAttrType::INTERNAL_IP4_ADDRESS),
            asks(CfgAttrType::INTERNAL_IP6_ADDRESS),
        );
        let mut addresses: Vec<(IpAddr, u8)> = Vec::new();
        let mut why: Vec<String> = Vec::new();
        for (want, fam, v6) in [(want4, &mut pools.v4, false), (want6, &mut pools.v6, true)] {
            if !want {
                continue;
            }
            match fam {
                Some(f) => match f.acquire(peer_id) {
                    Ok(a) => addresses.push((a, if v6 { 128 } else { 32 })),
                    Err(e) => why.push(e),
                },
                None => why.push(format!(
                    "it asked for an IPv{} address and config-payload has no IPv{} pool",
                    if v6 { 6 } else { 4 },
                    if v6 { 6 } else { 4 }
                )),
            }
        }
        //= https://www.rfc-editor.org/rfc/rfc7296#section-3.10.1
        //# INTERNAL_ADDRESS_FAILURE ... Indicates an error assigning an internal address
        //# ... If this error is generated within an IKE_AUTH exchange, no Child SA will be
        //# created.
        if (want4 || want6) && addresses.is_empty() {
            return Err(Failure::AddressFailure {
                peer_id: peer_id.clone(),
                why: why.join("; "),
            });
        }
        let info = VirtualConfig {
            assigned_by_us: true,
            addresses,
            dns: pools.cfg.dns.clone(),
            subnets: pools.cfg.subnets.clone(),
        };
        let mut attrs: CpAttrs = Vec::new();
        for (a, l) in &info.addresses {
            attrs.push(match *a {
                IpAddr::V4(a) => (CfgAttrType::INTERNAL_IP4_ADDRESS, value(CfgValue::Ip4(a))),
                IpAddr::V6(a) => (
                    CfgAttrType::INTERNAL_IP6_ADDRESS,
                    value(CfgValue::Ip6Prefix {
                        addr: a,
                        prefix_len: *l,
                    }),
                ),
            });
        }
        for d in &info.dns {
            attrs.push(match *d {
                IpAddr::V4(a) => (CfgAttrType::INTERNAL_IP4_DNS, value(CfgValue::Ip4(a))),
                IpAddr::V6(a) => (CfgAttrType::INTERNAL_IP6_DNS, value(CfgValue::Ip6(a))),
            });
        }
        for (a, l) in &info.subnets {
            attrs.push(match *a {
                IpAddr::V4(a) => (
                    CfgAttrType::INTERNAL_IP4_SUBNET,
                    value(CfgValue::Ip4Subnet {
                        addr: a,
                        mask: ipv4_netmask(*l),
                    }),
                ),
                IpAddr::V6(a) => (
                    CfgAttrType::INTERNAL_IP6_SUBNET,
                    value(CfgValue::Ip6Prefix {
                        addr: a,
                        prefix_len: *l,
                    }),
                ),
            });
        }
        sa.cp = Some(Arc::new(info));
        Ok(Some(attrs))
    }

    /// Initiator, in the IKE_AUTH response: takes what the CFG_REPLY assigned (bounded) into
    /// the SA, and keeps the addresses to ask for them again next time.
    pub(super) fn cp_received(&mut self, sa: &mut IkeSa, inner: &[Payload<'_>]) {
        let Some(CpSetup::Request { last, .. }) = self.cp.get_mut(&sa.peer) else {
            return;
        };
        let Some(reply) = find_cp(inner, CfgType::CFG_REPLY) else {
            return;
        };
        let mut info = VirtualConfig::default();
        for a in &reply.attributes {
            let Ok(v) = CfgValue::parse(a.ty, a.value) else {
                continue;
            };
            match (a.ty, v) {
                (CfgAttrType::INTERNAL_IP4_ADDRESS, CfgValue::Ip4(x))
                    if !x.is_unspecified() && info.addresses.len() < MAX_RECEIVED =>
                {
                    info.addresses.push((IpAddr::V4(x), 32));
                }
                (CfgAttrType::INTERNAL_IP6_ADDRESS, CfgValue::Ip6Prefix { addr, prefix_len })
                    if !addr.is_unspecified() && info.addresses.len() < MAX_RECEIVED =>
                {
                    info.addresses.push((IpAddr::V6(addr), prefix_len));
                }
                (
                    CfgAttrType::INTERNAL_IP4_DNS | CfgAttrType::INTERNAL_IP6_DNS,
                    CfgValue::Ip4(_) | CfgValue::Ip6(_),
                ) if info.dns.len() < MAX_RECEIVED => info.dns.push(match v {
                    CfgValue::Ip4(x) => IpAddr::V4(x),
                    CfgValue::Ip6(x) => IpAddr::V6(x),
                    _ => continue,
                }),
                (CfgAttrType::INTERNAL_IP4_SUBNET, CfgValue::Ip4Subnet { addr, .. })
                    if info.subnets.len() < MAX_RECEIVED =>
                {
                    // A netmask with holes describes no prefix: skipped.
                    if let Some(l) = v.prefix_len() {
                        let net = u32::from(addr) & u32::from(ipv4_netmask(l));
                        info.subnets.push((IpAddr::V4(Ipv4Addr::from(net)), l));
                    }
                }
                (CfgAttrType::INTERNAL_IP6_SUBNET, CfgValue::Ip6Prefix { addr, prefix_len })
                    if info.subnets.len() < MAX_RECEIVED =>
                {
                    let mask = u128::MAX
                        .checked_shl(128 - u32::from(prefix_len))
                        .unwrap_or(0);
                    let net = Ipv6Addr::from(u128::from(addr) & mask);
                    info.subnets.push((IpAddr::V6(net), prefix_len));
                }
                _ => {}
            }
        }
        *last = info.addresses.clone();
        sa.cp = Some(Arc::new(info));
    }

    /// The addresses leased to the peer of an SA that goes back to the pool (kept offline
    /// for the identity). Called once per SA, where it is forgotten.
    pub(super) fn cp_release(&mut self, sa: &mut IkeSa) {
        let Some(info) = sa.cp.take() else {
            return;
        };
        let (true, Some(id)) = (info.assigned_by_us, sa.peer_id.as_ref()) else {
            return;
        };
        let Some(CpSetup::Serve(pools)) = self.cp.get_mut(&sa.peer) else {
            return;
        };
        for (a, _) in &info.addresses {
            let fam = if a.is_ipv6() {
                &mut pools.v6
            } else {
                &mut pools.v4
            };
            if let Some(f) = fam {
                f.release(id, *a);
            }
        }
    }

    /// The selectors of policy `p` for a Child SA of `sa`: with addresses a CP assigned, the
    /// side they belong to narrowed to them (ours as initiator, the peer's as responder).
    pub(super) fn policy_ts<'p>(sa: &IkeSa, p: &'p TsPolicy) -> Cow<'p, TsPolicy> {
        let Some(info) = &sa.cp else {
            return Cow::Borrowed(p);
        };
        if info.addresses.is_empty() {
            return Cow::Borrowed(p);
        }
        let hosts = host_set(&info.addresses);
        let mut t = p.clone();
        if info.assigned_by_us {
            t.remote = p.remote.intersect(&hosts);
        } else {
            t.local = p.local.intersect(&hosts);
        }
        Cow::Owned(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Identity {
        Identity::fqdn(&format!("client{n}.example"))
    }

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_slash_24_hands_out_1_to_254_in_order_then_is_exhausted() {
        let mut f = Family::new(v4("10.9.0.77"), 24, &[v4("10.9.0.2")]);
        assert_eq!(f.capacity(), 253);
        assert_eq!(f.acquire(&id(0)).unwrap(), v4("10.9.0.1"));
        // .2 is reserved.
        assert_eq!(f.acquire(&id(1)).unwrap(), v4("10.9.0.3"));
        for n in 2..253 {
            f.acquire(&id(n)).unwrap();
        }
        assert_eq!(f.leases.len(), 253);
        let e = f.acquire(&id(253)).unwrap_err();
        assert!(e.contains("pool 10.9.0.77/24 is exhausted: all 253"), "{e}");
    }

    #[test]
    fn the_same_identity_gets_the_same_address_online_or_offline() {
        let mut f = Family::new(v4("10.9.0.0"), 30, &[]);
        assert_eq!(f.capacity(), 2);
        let a = f.acquire(&id(1)).unwrap();
        // A second SA of the same identity (re-authentication): the same address, held twice.
        assert_eq!(f.acquire(&id(1)).unwrap(), a);
        f.release(&id(1), a);
        f.release(&id(1), a);
        assert_eq!(f.offline.len(), 1);
        // A reconnect: still its address, although another identity came meanwhile.
        let b = f.acquire(&id(2)).unwrap();
        assert_ne!(a, b);
        assert_eq!(f.acquire(&id(1)).unwrap(), a);
        assert!(f.offline.is_empty());
    }

    #[test]
    fn offline_leases_change_hands_oldest_first_and_never_outnumber_the_pool() {
        let mut f = Family::new(v4("10.9.0.0"), 30, &[]);
        let a = f.acquire(&id(1)).unwrap();
        let b = f.acquire(&id(2)).unwrap();
        f.release(&id(2), b);
        f.release(&id(1), a);
        // Identity 2 went offline first: its address goes first.
        assert_eq!(f.acquire(&id(3)).unwrap(), b);
        assert_eq!(f.acquire(&id(4)).unwrap(), a);
        assert!(f.acquire(&id(5)).is_err());
        for n in 6..200 {
            let x = f.acquire(&id(n));
            if let Ok(x) = x {
                f.release(&id(n), x);
            }
        }
        assert_eq!(f.leases.len(), 2);
        assert!(f.by_id.len() <= 2);
        // A release by someone who does not hold it changes nothing.
        f.release(&id(1), a);
        assert_eq!(f.leases[&(to_u128(a) - f.base)].online, 1);
    }

    #[test]
    fn ipv6_pools_skip_the_anycast_address_and_are_capped() {
        let mut f = Family::new("fd09::".parse().unwrap(), 64, &[]);
        assert_eq!(f.capacity(), MAX_POOL_ADDRESSES);
        assert_eq!(
            f.acquire(&id(1)).unwrap(),
            "fd09::1".parse::<IpAddr>().unwrap()
        );
        let one = Family::new(v4("192.0.2.7"), 32, &[]);
        assert_eq!(one.capacity(), 1);
        assert_eq!(one.addr(one.first), v4("192.0.2.7"));
        let all = Family::new("::".parse().unwrap(), 0, &[]);
        assert_eq!(all.capacity(), MAX_POOL_ADDRESSES);
    }
}
