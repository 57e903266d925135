//! What gives a virtual router a routing table of its own on a kernel without VRF devices
//! (R-CFG-8): policy routing rules (`ip rule`, `RTM_NEWRULE`) that send the packets arriving
//! on the router's members, and those the gateway sends bound to one, to the router's table,
//! and the `unreachable default` that ends the table, so that what it does not route is
//! refused rather than routed by the main table (as a Linux VRF device's table ends).
//!
//! Our rules carry protocol `static` and a fixed priority ([`RULE_PRIORITY`]); the delete names
//! the same match, table and priority, so it removes only the rule we added. Adding a rule
//! that is already there (left by a daemon that was killed) is not an error: the kernel
//! refuses the duplicate (`NLM_F_EXCL`) and the one there stays.

use std::fmt;
use std::io;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST};
use netlink_packet_route::route::{
    RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleHeader, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::route::{Rtnl, UNREACHABLE_METRIC, request};

/// The priority of our rules: after the `local` table's (0), before the main table's (32766).
pub const RULE_PRIORITY: u32 = 1000;

/// Which packets a rule picks by interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleMatch {
    /// Arriving on the interface (`iif`).
    Incoming,
    /// Sent by the host through a socket bound to the interface (`oif`).
    Outgoing,
}

/// A rule `iif|oif INTERFACE lookup TABLE`, for IPv4 or IPv6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The member interface.
    pub interface: String,
    /// Arriving on it or sent by it.
    pub matches: RuleMatch,
    /// IPv6 (else IPv4): the kernel keeps a rule list per family.
    pub v6: bool,
    /// The table it looks up.
    pub table: u32,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = match self.matches {
            RuleMatch::Incoming => "iif",
            RuleMatch::Outgoing => "oif",
        };
        let family = if self.v6 { "IPv6" } else { "IPv4" };
        write!(
            f,
            "{family} rule {m} {} lookup {}",
            self.interface, self.table
        )
    }
}

#[derive(Clone, Copy)]
enum Op {
    Add,
    Delete,
}

fn family(v6: bool) -> AddressFamily {
    if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    }
}

/// Tables past 255 go only in the attribute, as iproute2 sends them.
fn table_byte(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC)
}

fn rule_message(rule: &Rule, op: Op) -> netlink_packet_core::NetlinkMessage<RouteNetlinkMessage> {
    let mut msg = RuleMessage::default();
    msg.header = RuleHeader {
        family: family(rule.v6),
        table: table_byte(rule.table),
        action: RuleAction::ToTable,
        ..RuleHeader::default()
    };
    msg.attributes.push(match rule.matches {
        RuleMatch::Incoming => RuleAttribute::Iifname(rule.interface.clone()),
        RuleMatch::Outgoing => RuleAttribute::Oifname(rule.interface.clone()),
    });
    msg.attributes.push(RuleAttribute::Table(rule.table));
    msg.attributes.push(RuleAttribute::Priority(RULE_PRIORITY));
    msg.attributes
        .push(RuleAttribute::Protocol(RouteProtocol::Static));
    match op {
        Op::Add => request(
            RouteNetlinkMessage::NewRule(msg),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ),
        Op::Delete => request(RouteNetlinkMessage::DelRule(msg), NLM_F_REQUEST | NLM_F_ACK),
    }
}

/// Adds `rule`; one that is already there counts as added.
pub fn add_rule(rule: &Rule) -> io::Result<()> {
    match Rtnl::open()?.ack(rule_message(rule, Op::Add)) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
    .map_err(|e| io::Error::new(e.kind(), format!("cannot add {rule}: {e}")))
}

/// Removes `rule` (added by [`add_rule`]).
pub fn delete_rule(rule: &Rule) -> io::Result<()> {
    Rtnl::open()?
        .ack(rule_message(rule, Op::Delete))
        .map_err(|e| io::Error::new(e.kind(), format!("cannot remove {rule}: {e}")))
}

fn unreachable_message(
    table: u32,
    v6: bool,
    op: Op,
) -> netlink_packet_core::NetlinkMessage<RouteNetlinkMessage> {
    let mut msg = RouteMessage::default();
    msg.header = RouteHeader {
        address_family: family(v6),
        destination_prefix_length: 0,
        table: table_byte(table),
        protocol: RouteProtocol::Static,
        scope: match op {
            Op::Add => RouteScope::Link,
            Op::Delete => RouteScope::NoWhere,
        },
        kind: RouteType::Unreachable,
        ..RouteHeader::default()
    };
    msg.attributes.push(RouteAttribute::Table(table));
    msg.attributes
        .push(RouteAttribute::Priority(UNREACHABLE_METRIC));
    match op {
        Op::Add => request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        ),
        Op::Delete => request(
            RouteNetlinkMessage::DelRoute(msg),
            NLM_F_REQUEST | NLM_F_ACK,
        ),
    }
}

/// Ends `table` with `unreachable default metric 4278198272` (IPv4 or IPv6).
pub fn replace_unreachable_default(table: u32, v6: bool) -> io::Result<()> {
    Rtnl::open()?
        .ack(unreachable_message(table, v6, Op::Add))
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot end table {table} with an unreachable default: {e}"),
            )
        })
}

/// Removes what [`replace_unreachable_default`] added.
pub fn delete_unreachable_default(table: u32, v6: bool) -> io::Result<()> {
    Rtnl::open()?
        .ack(unreachable_message(table, v6, Op::Delete))
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot remove the unreachable default of table {table}: {e}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::NetlinkMessage;

    fn bytes(mut msg: NetlinkMessage<RouteNetlinkMessage>) -> Vec<u8> {
        msg.finalize();
        let mut b = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut b);
        b
    }

    fn rule(v6: bool, table: u32) -> Rule {
        Rule {
            interface: "eth2".into(),
            matches: RuleMatch::Incoming,
            v6,
            table,
        }
    }

    #[test]
    fn add_is_exclusive_and_carries_the_table_and_priority() {
        let b = bytes(rule_message(&rule(false, 1001), Op::Add));
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 32, "RTM_NEWRULE");
        let flags = u16::from_ne_bytes([b[6], b[7]]);
        assert_eq!(
            flags,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            "a duplicate is refused, not added twice"
        );
        let NetlinkMessage {
            payload:
                netlink_packet_core::NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRule(m)),
            ..
        } = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&b).unwrap()
        else {
            panic!("not a rule");
        };
        assert_eq!(m.header.family, AddressFamily::Inet);
        assert_eq!(m.header.table, 0, "1001 does not fit the header byte");
        assert_eq!(m.header.action, RuleAction::ToTable);
        assert!(m.attributes.contains(&RuleAttribute::Table(1001)));
        assert!(
            m.attributes
                .contains(&RuleAttribute::Priority(RULE_PRIORITY))
        );
        assert!(
            m.attributes
                .contains(&RuleAttribute::Iifname("eth2".into()))
        );
        assert!(
            m.attributes
                .contains(&RuleAttribute::Protocol(RouteProtocol::Static))
        );
        let out = Rule {
            matches: RuleMatch::Outgoing,
            ..rule(true, 200)
        };
        let b = bytes(rule_message(&out, Op::Delete));
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 33, "RTM_DELRULE");
        let NetlinkMessage {
            payload:
                netlink_packet_core::NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRule(m)),
            ..
        } = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&b).unwrap()
        else {
            panic!("not a rule");
        };
        assert_eq!(m.header.family, AddressFamily::Inet6);
        assert_eq!(m.header.table, 200);
        assert!(
            m.attributes
                .contains(&RuleAttribute::Oifname("eth2".into()))
        );
        assert_eq!(out.to_string(), "IPv6 rule oif eth2 lookup 200");
    }

    #[test]
    fn unreachable_default_ends_the_table() {
        let b = bytes(unreachable_message(70_000, true, Op::Add));
        let NetlinkMessage {
            payload:
                netlink_packet_core::NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)),
            ..
        } = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&b).unwrap()
        else {
            panic!("not a route");
        };
        assert_eq!(m.header.kind, RouteType::Unreachable);
        assert_eq!(m.header.destination_prefix_length, 0);
        assert_eq!(m.header.address_family, AddressFamily::Inet6);
        assert!(m.attributes.contains(&RouteAttribute::Table(70_000)));
        assert!(
            m.attributes
                .contains(&RouteAttribute::Priority(UNREACHABLE_METRIC))
        );
        assert!(
            !m.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Oif(_)))
        );
    }

    /// `ip ARGS` run in the calling thread's network namespace.
    fn ip(args: &[&str]) -> String {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Rules and the unreachable default in a network namespace of the test's own thread
    /// (a network namespace is per thread; `ip` started from it runs in it too). Root only
    /// (`FERROSEC_ROOT_TESTS=1`, as CI runs them).
    #[test]
    fn rules_and_unreachable_default_in_a_namespace_as_root() {
        if std::env::var_os("FERROSEC_ROOT_TESTS").is_none() {
            eprintln!("skipped: set FERROSEC_ROOT_TESTS=1 and run as root");
            return;
        }
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
            for v6 in [false, true] {
                let fam = if v6 { "-6" } else { "-4" };
                let r = Rule {
                    interface: "lo".into(),
                    ..rule(v6, 1234)
                };
                add_rule(&r).unwrap();
                add_rule(&r).expect("a rule already there counts as added");
                let shown = ip(&[fam, "rule", "show"]);
                assert_eq!(
                    shown
                        .matches("1000:\tfrom all iif lo lookup 1234 proto static")
                        .count(),
                    1,
                    "once, not twice:\n{shown}"
                );
                replace_unreachable_default(1234, v6).unwrap();
                replace_unreachable_default(1234, v6).expect("replaced, not doubled");
                let table = ip(&[fam, "route", "show", "table", "1234"]);
                assert_eq!(table.matches("unreachable default").count(), 1, "{table}");
                assert!(table.contains("metric 4278198272"), "{table}");
                delete_unreachable_default(1234, v6).unwrap();
                assert_eq!(ip(&[fam, "route", "show", "table", "1234"]), "");
                delete_rule(&r).unwrap();
                assert!(!ip(&[fam, "rule", "show"]).contains("lookup 1234"));
                let again = delete_rule(&r).expect_err("a rule that is gone cannot be removed");
                assert!(
                    again
                        .to_string()
                        .starts_with(&format!("cannot remove {r}: ")),
                    "{again}"
                );
            }
        })
        .join()
        .unwrap();
    }
}
