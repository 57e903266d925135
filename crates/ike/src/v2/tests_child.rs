//! Child SAs in the two-peer simulation: peer and policy ids, one Child SA per proxy id,
//! Child SA rekeys with and without PFS, a PFS mismatch, and queued commands.

use super::*;

#[test]
fn peer_and_policy_ids_are_assigned_once_and_name_the_sas() {
    // Another gateway first (peer 0, policy 0); then A's, added later: peer 1, policy 1. The
    // IKE SA and Child SA made with it carry those IDs, whatever the positions.
    let mut other = cfg(Side::A);
    other.name = "other".into();
    other.peer_addr = Some("192.0.2.99".parse().unwrap());
    let mut a = endpoint(50, EndpointConfig::default(), other);
    let id = a.add_peer(cfg(Side::A));
    assert_eq!(id, PeerId(1));
    let ids: Vec<(PeerId, Vec<PolicyId>)> = a
        .peers()
        .map(|(id, p)| (id, p.policies.iter().map(ChildPolicy::id).collect()))
        .collect();
    assert_eq!(
        ids,
        [
            (PeerId(0), vec![PolicyId(0)]),
            (PeerId(1), vec![PolicyId(1)])
        ]
    );
    assert_eq!(a.peer(id).unwrap().name, "to-b");
    assert_eq!(a.peer(PeerId(2)).map(|p| p.name.clone()), None);
    assert_eq!(
        a.set_lifetimes(PeerId(2), Lifetimes::default()),
        Err(CommandError::NoSuchPeer)
    );
    let mut p = pair(51);
    p.a.endpoint = a;
    let now = p.time;
    p.a.endpoint.initiate(now, id, addr(A), addr(B)).unwrap();
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let snap = p.a.endpoint.snapshot();
    assert_eq!(snap[0].peer, PeerId(1));
    assert_eq!(snap[0].children[0].policy, PolicyId(1));
    assert_eq!(child_ups(&p.a)[0].policy, "lan");
    // B's only peer and policy are the first ones.
    assert_eq!(p.b.endpoint.snapshot()[0].peer, PeerId(0));
    assert_eq!(p.b.endpoint.snapshot()[0].children[0].policy, PolicyId(0));
}

#[test]
fn one_child_sa_per_proxy_id() {
    let mut a = cfg(Side::A);
    let mut b = cfg(Side::B);
    a.policies.push(policy("dmz", "10.1.9.0/24", "10.2.9.0/24"));
    b.policies.push(policy("dmz", "10.2.9.0/24", "10.1.9.0/24"));
    let mut p = pair_with(30, a, b, EndpointConfig::default());
    initiate(&mut p);
    assert!(
        p.run_until(Duration::from_secs(5), |p| child_ups(&p.a).len() == 2
            && child_ups(&p.b).len() == 2)
    );
    assert_eq!(p.stats.sent, 6, "IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA");
    let (ca, cb) = (child_ups(&p.a), child_ups(&p.b));
    assert_eq!(ca[1].policy, "dmz");
    assert_eq!(cb[1].policy, "dmz");
    assert_eq!(
        ca[1].local_ts,
        TsSet::single(TrafficSelector::from_addrs(net("10.1.9.0/24")))
    );
    assert_mirrored(ca[0], cb[0]);
    assert_mirrored(ca[1], cb[1]);
    assert_ne!(
        ca[0].inbound.encr, ca[1].inbound.encr,
        "fresh nonces give fresh keys"
    );
    assert_eq!(ike_ups(&p.a).len(), 1);
}

fn rekey_once(p: &mut Pair<Endpoint>, h: IkeSaHandle) {
    let old = child_ups(&p.a)[0].clone();
    let now = p.time;
    p.a.endpoint
        .rekey_child_sa(now, h, old.inbound_spi)
        .unwrap();
    assert!(
        p.run_until(Duration::from_secs(300), |p| child_downs(&p.a).len() == 1
            && child_downs(&p.b).len() == 1)
    );
    p.run_for(Duration::from_secs(60));
    let (na, nb) = (child_ups(&p.a)[1], child_ups(&p.b)[1]);
    assert_mirrored(na, nb);
    assert_ne!(na.inbound_spi, old.inbound_spi);
    assert_ne!(na.inbound.encr, old.inbound.encr);
    assert_eq!(na.local_ts, old.local_ts);
    // The old pair went only after the new one was up (make-before-break), on both sides.
    let up_then_down = |n: &Node<Endpoint>| {
        let up = n
            .events
            .iter()
            .rposition(|e| matches!(e, Event::ChildSaUp(_)))
            .unwrap();
        let down = n
            .events
            .iter()
            .position(|e| matches!(e, Event::ChildSaDown { .. }))
            .unwrap();
        up < down
    };
    assert!(up_then_down(&p.a) && up_then_down(&p.b));
    assert_eq!(
        child_downs(&p.a),
        [(old.inbound_spi, old.outbound_spi, DownReason::LocalDelete)]
    );
    assert_eq!(
        child_downs(&p.b),
        [(old.outbound_spi, old.inbound_spi, DownReason::PeerDelete)]
    );
    assert_eq!(child_ups(&p.a).len(), 2);
    assert_eq!(child_ups(&p.b).len(), 2);
}

#[test]
fn child_rekey_without_pfs() {
    let mut p = pair(31);
    let h = initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    rekey_once(&mut p, h);
}

/// RFC 7296 §2.17: a Child SA's keys and selectors are oriented by the roles in the exchange
/// that creates it. A rekey started by the IKE SA's responder must leave each side's own
/// selectors local (an engine that used the IKE SA's roles swapped them, and the keys with
/// them, which two ferrosecs do not notice but strongSwan does: ICV failures after its rekey).
#[test]
fn child_rekey_started_by_the_ike_responder_keeps_each_side_oriented() {
    let mut p = pair(33);
    initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let (a_old, b_old) = (child_ups(&p.a)[0].clone(), child_ups(&p.b)[0].clone());
    let hb = ike_ups(&p.b)[0].handle;
    assert!(!ike_ups(&p.b)[0].initiator);
    let now = p.time;
    p.b.endpoint
        .rekey_child_sa(now, hb, b_old.inbound_spi)
        .unwrap();
    assert!(
        p.run_until(Duration::from_secs(300), |p| child_downs(&p.a).len() == 1
            && child_downs(&p.b).len() == 1)
    );
    let (na, nb) = (child_ups(&p.a)[1], child_ups(&p.b)[1]);
    assert_mirrored(na, nb);
    assert_eq!(na.local_ts, a_old.local_ts, "A's selectors swapped");
    assert_eq!(na.remote_ts, a_old.remote_ts, "A's selectors swapped");
    assert_eq!(nb.local_ts, b_old.local_ts, "B's selectors swapped");
    assert_eq!(nb.remote_ts, b_old.remote_ts, "B's selectors swapped");
    assert_ne!(nb.inbound.encr, b_old.inbound.encr);
}

#[test]
fn child_rekey_with_pfs() {
    let a = with_pfs(cfg(Side::A), DhGroup::ECP_256);
    let b = with_pfs(cfg(Side::B), DhGroup::ECP_256);
    let mut p = pair_with(32, a, b, EndpointConfig::default());
    let sizes = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let s2 = sizes.clone();
    p.faults.hook = Some(Box::new(move |_, data| {
        if Packet::new_checked(&data[..]).is_ok_and(|pk| pk.exchange_type().0 == 36) {
            s2.borrow_mut().push(data.len());
        }
        Verdict::Deliver
    }));
    let h = initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    rekey_once(&mut p, h);
    // Both CREATE_CHILD_SA messages carry a 65-byte P-256 public value.
    assert!(
        sizes.borrow().iter().all(|&n| n > 65 + 100),
        "{:?}",
        sizes.borrow()
    );
}

#[test]
fn child_rekey_under_loss_and_reordering() {
    for seed in 100..115 {
        let mut p = pair(seed);
        let h = initiate(&mut p);
        assert!(p.run_until(Duration::from_secs(5), both_up));
        p.faults.loss = 0.2;
        p.faults.duplicate = 0.2;
        p.faults.reorder = 0.3;
        p.faults.reorder_delay = Duration::from_secs(2);
        rekey_once(&mut p, h);
        assert!(
            failures(&p.a).is_empty() && failures(&p.b).is_empty(),
            "seed {seed}"
        );
    }
}

#[test]
fn pfs_mismatch_is_no_proposal_chosen_for_the_child_only() {
    let a = with_pfs(cfg(Side::A), DhGroup::ECP_256);
    let mut p = pair_with(33, a, cfg(Side::B), EndpointConfig::default());
    let h = initiate(&mut p);
    // IKE_AUTH ignores KE transforms, so the first Child SA comes up.
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let now = p.time;
    p.a.endpoint.create_child_sa(now, h, PolicyId(0)).unwrap();
    p.run_for(Duration::from_secs(5));
    let fb = failures(&p.b);
    assert_eq!(fb.len(), 1);
    assert!(fb[0].1);
    assert!(fb[0].0.to_string().contains("ECP_256"), "{}", fb[0].0);
    // The initiator names its own offer: the peer's notify says nothing more.
    let fa = failures(&p.a);
    assert_eq!(fa.len(), 1);
    assert!(fa[0].1, "the IKE SA survives");
    assert!(
        matches!(
            fa[0].0,
            Failure::ChildRefused {
                notify: NotifyType::NO_PROPOSAL_CHOSEN,
                ..
            }
        ),
        "{:?}",
        fa[0].0
    );
    assert!(
        fa[0].0.to_string().contains("we offered ESP: "),
        "{}",
        fa[0].0
    );
    assert_eq!(p.a.endpoint.established().len(), 1);
}

#[test]
fn queued_commands_run_one_at_a_time() {
    let mut p = pair(34);
    let h = initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let now = p.time;
    p.a.endpoint.create_child_sa(now, h, PolicyId(0)).unwrap();
    p.a.endpoint.check_liveness(now, h).unwrap();
    p.a.endpoint.create_child_sa(now, h, PolicyId(0)).unwrap();
    p.a.endpoint.delete_ike_sa(now, h).unwrap();
    p.run_for(Duration::from_secs(5));
    assert_eq!(child_ups(&p.a).len(), 3);
    assert_eq!(child_ups(&p.b).len(), 3);
    assert_eq!(child_downs(&p.a).len(), 3);
    assert_eq!(child_downs(&p.b).len(), 3);
    assert_eq!(p.a.endpoint.ike_sa_count() + p.b.endpoint.ike_sa_count(), 0);
    assert_eq!(p.stats.sent, 4 + 2 * 4);
}
