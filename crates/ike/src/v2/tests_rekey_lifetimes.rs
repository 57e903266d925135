//! Lifetimes and re-authentication, per-tunnel crypto profiles and lifetimes (issue 11), and
//! timers at scale, in the two-peer simulation.

use std::time::Instant;

use super::*;

// ---------------------------------------------------------------------------------------
// Lifetimes, re-authentication

/// Sets the IKE SA lifetime and re-authentication of peer 0, and the Child SA lifetime of
/// each of its policies (seconds).
fn set_lifetimes(ep: &mut Endpoint, ike: Option<u64>, child: Option<u64>, reauth: Option<u32>) {
    ep.set_lifetimes(
        PeerId(0),
        Lifetimes {
            ike: ike.map(|s| SaLifetime::new(Duration::from_secs(s))),
            reauth_multiple: reauth,
        },
    )
    .unwrap();
    for pol in &mut std::sync::Arc::make_mut(ep.peers.get_mut(&PeerId(0)).unwrap()).policies {
        pol.lifetime = child.map(|s| SaLifetime::new(Duration::from_secs(s)));
    }
}

fn rekeys_by(n: &Node<Endpoint>) -> (usize, usize) {
    let ike = ike_rekeyed(n).iter().filter(|(_, i)| i.initiator).count();
    let child = n
        .events
        .iter()
        .filter(|e| matches!(e, Event::ChildSaRekeyed { .. }))
        .count();
    (ike, child)
}

#[test]
fn lifetimes_rekey_before_expiry_and_the_shorter_side_starts() {
    // A: IKE 1 h, Child 20 min; B: IKE 2 h, Child 40 min. Over 3 hours A starts every
    // rekey, nothing expires, and make-before-break keeps a Child SA installed throughout.
    let mut p = pair(60);
    set_lifetimes(&mut p.a.endpoint, Some(3600), Some(1200), None);
    set_lifetimes(&mut p.b.endpoint, Some(7200), Some(2400), None);
    initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let t0 = p.time;
    let snap = p.a.endpoint.snapshot();
    let soft = snap[0].children[0].rekey_at.unwrap() - t0;
    // lifetime − margin − jitter ≤ soft ≤ lifetime − margin (10 % each).
    assert!(
        soft >= Duration::from_secs(960) && soft <= Duration::from_secs(1080),
        "{soft:?}"
    );
    assert_eq!(snap[0].expires_at.unwrap() - t0, Duration::from_secs(3600));
    for _ in 0..(3 * 3600 / 60) {
        p.run_for(Duration::from_secs(60));
        assert!(
            p.a.endpoint
                .snapshot()
                .iter()
                .any(|s| !s.children.is_empty()),
            "a Child SA is always installed"
        );
    }
    p.run_for(Duration::from_secs(5));
    assert_eq!(assert_converged(&p), (1, 1));
    let (ike_a, child_a) = rekeys_by(&p.a);
    assert!(ike_a >= 3, "A rekeyed the IKE SA {ike_a} times");
    assert!(child_a >= 9, "A's Child SA rekeys {child_a}");
    // B never started one: its new SAs always came from A first.
    assert_eq!(
        ike_rekeyed(&p.b)
            .iter()
            .filter(|(_, i)| i.initiator)
            .count(),
        0
    );
    for n in [&p.a, &p.b] {
        assert!(
            !n.events
                .iter()
                .any(|e| matches!(e, Event::ChildSaExpired { .. } | Event::IkeSaDown { .. })),
            "nothing expired"
        );
    }
    // Every rekey: the new pair is up before the old one goes (make-before-break).
    for n in [&p.a, &p.b] {
        for (i, e) in n.events.iter().enumerate() {
            if let Event::ChildSaDown { inbound_spi, .. } = e {
                let rekeyed_at = n.events.iter().position(|x| {
                    matches!(x, Event::ChildSaRekeyed { old_inbound_spi, .. } if old_inbound_spi == inbound_spi)
                });
                assert!(
                    rekeyed_at.is_some_and(|r| r < i),
                    "{e:?} before its replacement"
                );
            }
        }
    }
}

#[test]
fn lifetime_jitter_comes_from_the_rng() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..8 {
        let mut p = pair(70 + seed);
        set_lifetimes(&mut p.a.endpoint, Some(3600), Some(1200), None);
        initiate(&mut p);
        assert!(p.run_until(Duration::from_secs(5), both_up));
        let s = p.a.endpoint.snapshot();
        seen.insert(s[0].rekey_at.unwrap() - p.time);
    }
    assert!(seen.len() >= 7, "{seen:?}");
}

#[test]
fn child_hard_lifetime_expires_when_rekey_is_refused() {
    // B refuses every CREATE_CHILD_SA (PFS mismatch), so A's Child SA reaches its hard
    // limit: the data plane is told at once, then the pair is deleted on both sides.
    let a = with_pfs(cfg(Side::A), DhGroup::ECP_256);
    let mut p = pair_with(61, a, cfg(Side::B), EndpointConfig::default());
    set_lifetimes(&mut p.a.endpoint, None, Some(600), None);
    initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    let c = child_ups(&p.a)[0].clone();
    p.run_for(Duration::from_secs(599));
    assert!(
        !p.a.events
            .iter()
            .any(|e| matches!(e, Event::ChildSaExpired { .. }))
    );
    p.run_for(Duration::from_secs(10));
    let expired = p.a.events.iter().position(
        |e| matches!(e, Event::ChildSaExpired { inbound_spi, .. } if *inbound_spi == c.inbound_spi),
    );
    let down =
        p.a.events
            .iter()
            .position(|e| matches!(e, Event::ChildSaDown { .. }));
    assert!(
        expired.is_some() && down.is_some() && expired < down,
        "{:?}",
        p.a.events
    );
    assert_eq!(child_downs(&p.b).len(), 1);
    assert_eq!(assert_converged(&p), (1, 0));
}

#[test]
fn ike_hard_lifetime_deletes_the_ike_sa() {
    // No margin: the rekey deadline is the hard one, which wins: the SA is deleted.
    let mut p = pair(62);
    p.a.endpoint
        .set_lifetimes(
            PeerId(0),
            Lifetimes {
                ike: Some(SaLifetime {
                    lifetime: Duration::from_secs(100),
                    margin: Duration::ZERO,
                    jitter: Duration::ZERO,
                }),
                ..Lifetimes::default()
            },
        )
        .unwrap();
    initiate(&mut p);
    assert!(p.run_until(Duration::from_secs(5), both_up));
    // soft == hard: the hard limit wins and the SA is deleted rather than rekeyed.
    p.run_for(Duration::from_secs(110));
    assert_eq!(assert_converged(&p), (0, 0));
    assert!(ike_rekeyed(&p.a).is_empty());
}

#[test]
fn reauthentication_makes_a_new_ike_sa_then_deletes_the_old() {
    let mut a = cfg(Side::A);
    let mut b = cfg(Side::B);
    a.policies.push(policy("dmz", "10.1.9.0/24", "10.2.9.0/24"));
    b.policies.push(policy("dmz", "10.2.9.0/24", "10.1.9.0/24"));
    let mut p = pair_with(63, a, b, EndpointConfig::default());
    // Re-authenticate at every second IKE lifetime: rekey once, then re-authenticate.
    set_lifetimes(&mut p.a.endpoint, Some(3600), None, Some(2));
    initiate(&mut p);
    assert!(
        p.run_until(Duration::from_secs(5), |p| child_ups(&p.a).len() == 2
            && child_ups(&p.b).len() == 2)
    );
    let first = ike_ups(&p.a)[0].clone();
    p.run_for(Duration::from_secs(3600));
    assert_eq!(ike_rekeyed(&p.a).len(), 1, "first a rekey");
    assert_eq!(ike_ups(&p.a).len(), 1);
    p.run_for(Duration::from_secs(3600));
    assert_eq!(assert_converged(&p), (1, 2));
    // A second IKE_SA_INIT/IKE_AUTH: new IKE SA and new Child SAs for both policies, the
    // old IKE SA deleted after them.
    let ups = ike_ups(&p.a);
    assert_eq!(ups.len(), 2);
    assert_ne!(ups[1].spi_i, first.spi_i);
    assert_eq!(child_ups(&p.a).len(), 4);
    let idx =
        |n: &Node<Endpoint>, f: &dyn Fn(&Event) -> bool| n.events.iter().rposition(f).unwrap();
    for n in [&p.a, &p.b] {
        let last_up = idx(n, &|e| matches!(e, Event::ChildSaUp(_)));
        let old_down = idx(n, &|e| matches!(e, Event::IkeSaDown { .. }));
        assert!(
            last_up < old_down,
            "new Child SAs before the old IKE SA goes"
        );
    }
    // No INITIAL_CONTACT on a re-authentication: B did not tear anything down early.
    assert_eq!(
        downs(&p.b)
            .iter()
            .filter(|e| matches!(
                e,
                Event::IkeSaDown {
                    reason: DownReason::PeerDelete,
                    ..
                }
            ))
            .count(),
        1
    );
}

// ---------------------------------------------------------------------------------------
// Per-tunnel crypto (issue 11): each policy's Child SAs use its own proposals and lifetime

/// ESP AES-128-CBC with HMAC-SHA2-256-128 and PFS with P-256.
fn cbc_pfs() -> Proposal {
    let mut x = esp_proposal_cbc(128);
    x.transforms.push(Transform::ke(DhGroup::ECP_256));
    x
}

/// Two tunnels of one gateway: `cbc` (10.x.9.0/24) and `gcm` (10.x.0.0/24), in that order.
/// `strict`: each with its own IPSec crypto profile, AES-128-CBC/SHA-256 with PFS for 30 min
/// and AES-256-GCM for 1 h; otherwise both accept either, with no lifetime.
fn two_tunnels(side: Side, strict: bool) -> PeerConfig {
    let mut c = cfg(side);
    let (l, r) = match side {
        Side::A => ("10.1", "10.2"),
        Side::B => ("10.2", "10.1"),
    };
    let ts = |name: &str, net: &str| {
        ts_policy(name, &format!("{l}.{net}.0/24"), &format!("{r}.{net}.0/24"))
    };
    let lenient = vec![esp_proposal_gcm(), cbc_pfs()];
    let life = |m: u64| Some(SaLifetime::new(Duration::from_secs(m * 60)));
    c.policies = if strict {
        vec![
            ChildPolicy::new(ts("cbc", "9"), vec![cbc_pfs()]).with_lifetime(life(30)),
            ChildPolicy::new(ts("gcm", "0"), vec![esp_proposal_gcm()]).with_lifetime(life(60)),
        ]
    } else {
        vec![
            ChildPolicy::new(ts("cbc", "9"), lenient.clone()),
            ChildPolicy::new(ts("gcm", "0"), lenient),
        ]
    };
    c
}

/// Every Child SA came up with the algorithms of its own tunnel's profile.
fn assert_own_algorithms(n: &Node<Endpoint>) {
    for c in child_ups(n) {
        let want = match c.policy.as_str() {
            "cbc" => (
                Some(Encryption::AesCbc { key_len: 16 }),
                Some(Integrity::HmacSha256_128),
            ),
            "gcm" => (
                Some(Encryption::AesGcm {
                    key_len: 32,
                    icv_len: 16,
                }),
                None,
            ),
            other => panic!("policy {other}"),
        };
        assert_eq!((c.encr, c.integ), want, "Child SA of {}", c.policy);
    }
}

/// The policy name of the Child SA pair with this inbound SPI.
fn policy_of(n: &Node<Endpoint>, inbound: Spi) -> String {
    child_ups(n)
        .iter()
        .find(|c| c.inbound_spi == inbound)
        .map(|c| c.policy.clone())
        .unwrap()
}

/// Policies whose Child SA `n` rekeyed (in order).
fn rekeyed_policies(n: &Node<Endpoint>) -> Vec<String> {
    n.events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaRekeyed {
                old_inbound_spi, ..
            } => Some(policy_of(n, *old_inbound_spi)),
            _ => None,
        })
        .collect()
}

#[test]
fn each_tunnel_uses_its_own_ipsec_profile_and_lifetime() {
    // A has a profile per tunnel; B accepts either profile on both tunnels. With one set of
    // proposals per gateway (the profiles merged, the shortest lifetime taken), the gcm
    // tunnel came up with CBC when A initiated (A offered CBC first for it) and the cbc
    // tunnel with GCM when B did (A selected from every tunnel's proposals), and both
    // tunnels were rekeyed every 30 minutes.
    for a_initiates in [true, false] {
        let role = if a_initiates {
            "A initiates"
        } else {
            "B initiates"
        };
        let mut p = pair_with(
            90,
            two_tunnels(Side::A, true),
            two_tunnels(Side::B, false),
            EndpointConfig::default(),
        );
        let now = p.time;
        if a_initiates {
            p.a.endpoint
                .initiate(now, PeerId(0), addr(A), addr(B))
                .unwrap();
        } else {
            p.b.endpoint
                .initiate(now, PeerId(0), addr(B), addr(A))
                .unwrap();
        }
        assert!(
            p.run_until(Duration::from_secs(5), |p| child_ups(&p.a).len() == 2
                && child_ups(&p.b).len() == 2),
            "{role}: {:?}",
            failures(&p.a)
        );
        for n in [&p.a, &p.b] {
            assert_own_algorithms(n);
        }
        let mut policies: Vec<String> = child_ups(&p.a).iter().map(|c| c.policy.clone()).collect();
        policies.sort();
        assert_eq!(policies, ["cbc", "gcm"], "{role}");
        // A's Child SAs expire by their own tunnel's lifetime, on the virtual clock.
        let snap = p.a.endpoint.snapshot();
        for c in &snap[0].children {
            let (name, life) = [("cbc", 1800), ("gcm", 3600)][c.policy.0 as usize];
            let left = c.expires_at.unwrap() - p.time;
            assert!(
                left <= Duration::from_secs(life) && left > Duration::from_secs(life - 5),
                "{role}: {name} expires in {left:?}"
            );
            let soft = c.rekey_at.unwrap() - p.time;
            assert!(
                soft <= Duration::from_secs(life * 9 / 10)
                    && soft > Duration::from_secs(life * 8 / 10 - 5),
                "{role}: {name} rekeyed in {soft:?}"
            );
        }
        // 35 minutes: only the cbc tunnel was rekeyed (by A), still with CBC and PFS.
        p.run_for(Duration::from_secs(35 * 60));
        assert_eq!(rekeyed_policies(&p.a), ["cbc"], "{role}");
        // 65 minutes: the gcm tunnel too, with GCM; the cbc one once more (the two fall due
        // between 48 and 54 minutes, in either order).
        p.run_for(Duration::from_secs(30 * 60));
        let mut rekeyed = rekeyed_policies(&p.a);
        rekeyed.sort();
        assert_eq!(rekeyed, ["cbc", "cbc", "gcm"], "{role}");
        for n in [&p.a, &p.b] {
            assert_own_algorithms(n);
            assert!(
                !n.events
                    .iter()
                    .any(|e| matches!(e, Event::ChildSaExpired { .. })),
                "{role}: nothing expired"
            );
        }
        // B rekeys the cbc tunnel offering GCM first: A, the responder, selects from the cbc
        // tunnel's profile only.
        let b_cbc = p.b.endpoint.snapshot()[0]
            .children
            .iter()
            .find(|c| c.policy == PolicyId(0) && c.state == ChildState::Installed)
            .map(|c| c.inbound_spi)
            .unwrap();
        let h = handle(&p.b);
        let now = p.time;
        let before = rekeyed_policies(&p.b).len();
        p.b.endpoint.rekey_child_sa(now, h, b_cbc).unwrap();
        p.run_for(Duration::from_secs(5));
        assert_eq!(rekeyed_policies(&p.b)[before..], ["cbc"], "{role}");
        for n in [&p.a, &p.b] {
            assert_own_algorithms(n);
        }
        assert!(
            failures(&p.a).is_empty() && failures(&p.b).is_empty(),
            "{role}"
        );
        assert_eq!(assert_converged(&p), (1, 2), "{role}");
    }
}

#[test]
fn a_child_sa_refused_by_its_tunnels_profile_says_which() {
    // A offers AES-256-GCM for the cbc tunnel; B's cbc tunnel takes only CBC (B's gcm
    // tunnel would take GCM, but the traffic selectors are the cbc tunnel's).
    let mut a = two_tunnels(Side::A, true);
    a.policies[0].proposals = vec![esp_proposal_gcm()];
    let b = two_tunnels(Side::B, true);
    let mut p = pair_with(91, a, b, EndpointConfig::default());
    initiate(&mut p);
    p.run_for(Duration::from_secs(5));
    let fb = failures(&p.b);
    assert_eq!(fb.len(), 1, "{fb:?}");
    let (f, survives) = fb[0];
    assert!(survives);
    assert!(
        matches!(f, Failure::ChildNoProposalChosen { policy, also, .. } if policy == "cbc" && also.is_empty()),
        "{f:?}"
    );
    let text = f.to_string();
    assert!(
        text.starts_with("the IPSec crypto profile of cbc refused the Child SA")
            && text.contains("peer offered ESP: AES_GCM_16_256")
            && text.contains("we accept ESP: AES_CBC_128"),
        "{text}"
    );
    // The IKE SA and the gcm tunnel's Child SA are up.
    assert_eq!(child_ups(&p.a).len(), 1);
    assert_eq!(child_ups(&p.a)[0].policy, "gcm");
}

// ---------------------------------------------------------------------------------------
// Timers at scale

/// The earliest deadline of an SA as the snapshot shows it (lifetimes only: no request in
/// flight, no liveness checks configured).
fn snapshot_deadline(s: &IkeSaSnapshot) -> Option<Instant> {
    let children = s.children.iter().flat_map(|c| [c.rekey_at, c.expires_at]);
    [s.rekey_at, s.expires_at]
        .into_iter()
        .chain(children)
        .flatten()
        .min()
}

#[test]
fn handle_timeout_visits_only_the_sas_that_are_due() {
    const N: usize = 1000;
    let mut p = pair(1400);
    set_lifetimes(&mut p.b.endpoint, Some(3600), Some(1200), None);
    for i in 0..N {
        initiate(&mut p);
        assert!(
            p.run_until(Duration::from_secs(5), |p| child_ups(&p.a).len() > i),
            "SA {i}"
        );
    }
    p.run_for(Duration::from_secs(1));
    let b = &mut p.b.endpoint;
    assert_eq!(b.established().len(), N);
    let snap = b.snapshot();
    let t = snap.iter().filter_map(snapshot_deadline).min().unwrap();
    // Never later than the first SA deadline (the cookie secret rotation may come first).
    assert!(b.poll_timeout().unwrap() <= t);
    let due = snap
        .iter()
        .filter(|s| snapshot_deadline(s).is_some_and(|d| d <= t))
        .count();
    assert_eq!(due, 1, "jitter spreads the deadlines");
    // Nothing due yet: nothing visited.
    let before = b.timeout_visits;
    b.handle_timeout(t - Duration::from_millis(1));
    assert_eq!(b.timeout_visits, before);
    // One SA due among N idle ones: one visited (not N), and it moved on (rekeying).
    b.handle_timeout(t);
    assert_eq!(b.timeout_visits - before, 1);
    assert!(b.poll_transmit().is_some(), "the due SA sent its rekey");
    let visited = b.timeout_visits;
    b.handle_timeout(t);
    assert_eq!(b.timeout_visits, visited, "nothing due any more at t");
}
