//! The SA tables, the listen addresses and how a first message is told, without an engine.

use super::*;

pub(super) fn gw(local: Option<&str>, peer: Option<&str>) -> GatewayInfo {
    GatewayInfo {
        ikev1: None,
        ikev2_preferred: false,
        name: "g".into(),
        local_address: local.map(|a| a.parse().unwrap()),
        peer_address: peer.map(|a| a.parse().unwrap()),
        fqdn: None,
        may_initiate: true,
        ike_lifetime: Duration::from_secs(1),
        policies: Vec::new(),
        lifetimes: ferrosec_ike::v2::Lifetimes::default(),
        certificates: None,
        config_payload: None,
        tunnel_interface: None,
        routing_table: ferrosec_config::MAIN_TABLE,
        tcp: (ferrosec_config::algo::TcpEncapsulation::No, 4500),
    }
}

#[test]
fn listen_addresses_dedup_and_wildcards_cover_specifics() {
    let v = listen_addresses(&[
        gw(Some("198.51.100.1"), None),
        gw(Some("198.51.100.1"), None),
        gw(Some("2001:db8::1"), None),
    ]);
    assert_eq!(
        v,
        vec![
            "198.51.100.1".parse::<IpAddr>().unwrap(),
            "2001:db8::1".parse().unwrap()
        ]
    );
    let v = listen_addresses(&[
        gw(Some("198.51.100.1"), None),
        gw(None, Some("192.0.2.1")),
        gw(Some("2001:db8::1"), None),
    ]);
    assert_eq!(
        v,
        vec![
            "0.0.0.0".parse::<IpAddr>().unwrap(),
            "2001:db8::1".parse().unwrap()
        ]
    );
    let v = listen_addresses(&[gw(None, Some("2001:db8::2"))]);
    assert_eq!(v, vec!["::".parse::<IpAddr>().unwrap()]);
}

/// On a `dynamic` gateway all peers negotiate the same proxy ID: a new peer's first pair is
/// not a rekey of another peer's (it was, and its outbound SA then waited for a switch that
/// never comes); a second pair with the same peer is.
#[test]
fn a_pair_replaces_only_pairs_of_the_same_peer() {
    let slot = |port: u16, id: &str| Slot {
        peer: SocketAddr::from(([198, 51, 100, 101], port)),
        peer_id: Some(Arc::new(Identity::fqdn(id))),
        tunnel: "lg".into(),
        proxy_id: "lan".into(),
    };
    let pair = |slot: Slot| ChildEntry {
        ike: IkeSaHandle(ferrosec_wire::IkeSpi(7)),
        slot,
        outbound: Spi(2),
        encr: Some(Encryption::AesGcm {
            key_len: 32,
            icv_len: 16,
        }),
        integ: None,
        udp: true,
        ah: false,
        esn: false,
        manual: false,
        since: Instant::now(),
        lifetime: Duration::from_secs(3600),
        counters: Arc::default(),
        key_exchanges: KesTag::UNKNOWN,
    };
    let mut t = SaTables::default();
    t.insert_child(Spi(1), pair(slot(4500, "i1.bench.test")));
    // The same peer again (a re-authentication's new IKE SA has its own Identity value).
    assert!(t.slot_taken(&slot(4500, "i1.bench.test")));
    // Another peer: another port, or another identity on the same address and port.
    assert!(!t.slot_taken(&slot(4501, "i1.bench.test")));
    assert!(!t.slot_taken(&slot(4500, "i2.bench.test")));
    assert!(!t.slot_taken(&Slot {
        proxy_id: "other".into(),
        ..slot(4500, "i1.bench.test")
    }));
    // During a rekey two pairs share the slot: it is taken until both are gone.
    t.insert_child(Spi(3), pair(slot(4500, "i1.bench.test")));
    assert!(t.remove_child(&Spi(1)).is_some());
    assert!(t.slot_taken(&slot(4500, "i1.bench.test")));
    assert!(t.remove_child(&Spi(3)).is_some());
    assert!(!t.slot_taken(&slot(4500, "i1.bench.test")));
    assert!(t.child_slots.counts.is_empty());
}

/// A re-authentication is a second established IKE SA of the same gateway, address and
/// port, and identity; a connecting entry or another identity is not one.
#[test]
fn an_ike_sa_replaces_only_one_of_the_same_peer() {
    let remote = SocketAddr::from(([198, 51, 100, 101], 4500));
    let (i1, i2) = (
        Identity::fqdn("i1.bench.test"),
        Identity::fqdn("i2.bench.test"),
    );
    let entry = |state, id: Option<&Identity>| IkeEntry {
        gateway: "lg".into(),
        state,
        version: super::IkeVersionTag::V2,
        initiator: false,
        local: SocketAddr::from(([198, 51, 100, 1], 4500)),
        remote,
        nat: (false, true),
        algos: None,
        peer_id: id.cloned().map(Arc::new),
        auth: None,
        since: Instant::now(),
        lifetime: 3600,
        reauth_after: None,
    };
    let h = |n| IkeSaHandle(ferrosec_wire::IkeSpi(n));
    let mut t = SaTables::default();
    t.insert_ike(h(1), entry(IkeState::Connecting, None));
    assert!(!t.peer_established(("lg", remote, Some(&i1)), None));
    // The connecting entry becomes established (same handle): counted once.
    t.insert_ike(h(1), entry(IkeState::Established, Some(&i1)));
    assert!(t.peer_established(("lg", remote, Some(&i1)), None));
    assert!(!t.peer_established(("lg", remote, Some(&i1)), Some(h(1))));
    assert!(!t.peer_established(("lg", remote, Some(&i2)), None));
    assert!(!t.peer_established(("other", remote, Some(&i1)), None));
    assert!(t.remove_ike(&h(1)).is_some());
    assert!(!t.peer_established(("lg", remote, Some(&i1)), None));
    assert!(t.ike_peers.counts.is_empty());
}

/// Every SA costs an entry in these tables: names are shared, not copied per SA.
#[test]
fn table_entries_share_names_and_stay_small() {
    let mut names = Names::default();
    let a = names.get("tunnel-1");
    assert!(Arc::ptr_eq(&a, &names.get("tunnel-1")));
    assert!(!Arc::ptr_eq(&a, &names.get("tunnel-2")));
    // 152 (with the next re-authentication time) and 136 bytes; they were 192 and 152,
    // plus six small allocations between them.
    assert!(std::mem::size_of::<IkeEntry>() <= 152);
    assert!(std::mem::size_of::<ChildEntry>() <= 136);
}

#[test]
fn remaining_lifetime_counts_down_and_stops_at_zero() {
    let t0 = Instant::now();
    assert_eq!(
        remaining(t0, Duration::from_secs(100), t0 + Duration::from_secs(30)),
        70
    );
    assert_eq!(
        remaining(t0, Duration::from_secs(10), t0 + Duration::from_secs(30)),
        0
    );
}

/// The first message of a negotiation is told by its header alone: IKEv2 IKE_SA_INIT and
/// IKEv1 main or aggressive mode with a zero responder SPI, after the non-ESP marker on 4500.
#[test]
fn first_messages_are_told_by_their_header() {
    const S: u64 = 0x1122_3344_5566_7788;
    let header = |spi_i: u64, spi_r: u64, version: u8, exchange: u8| {
        let mut h = Vec::new();
        h.extend_from_slice(&spi_i.to_be_bytes());
        h.extend_from_slice(&spi_r.to_be_bytes());
        h.extend_from_slice(&[33, version, exchange, 0x08, 0, 0, 0, 0, 0, 0, 0, 28]);
        h
    };
    assert_eq!(
        first_message_spi(500, &header(S, 0, 0x20, 34)),
        Some((S, "ikev2"))
    );
    assert_eq!(
        first_message_spi(500, &header(S, 0, 0x10, 2)),
        Some((S, "ikev1"))
    );
    assert_eq!(
        first_message_spi(500, &header(S, 0, 0x10, 4)),
        Some((S, "ikev1"))
    );
    // The answer (responder SPI set), IKE_AUTH, quick mode, no SPI, another version: no.
    assert_eq!(first_message_spi(500, &header(S, 9, 0x20, 34)), None);
    assert_eq!(first_message_spi(500, &header(S, 0, 0x20, 35)), None);
    assert_eq!(first_message_spi(500, &header(S, 0, 0x10, 32)), None);
    assert_eq!(first_message_spi(500, &header(0, 0, 0x20, 34)), None);
    assert_eq!(first_message_spi(500, &header(S, 0, 0x30, 34)), None);
    // Short; on 4500 only after the marker.
    assert_eq!(first_message_spi(500, &header(S, 0, 0x20, 34)[..27]), None);
    let mut marked = vec![0u8; 4];
    marked.extend(header(S, 0, 0x20, 34));
    assert_eq!(first_message_spi(4500, &marked), Some((S, "ikev2")));
    assert_eq!(first_message_spi(4500, &header(S, 0, 0x20, 34)), None);
}
