//! The IKE task against an engine on a virtual clock, no sockets.

use super::*;

/// Site A (this daemon) or B (its peer, a bare engine): a gateway with one tunnel; A has
/// an IKE lifetime of 3 minutes (the shortest accepted) and re-authenticates at every one,
/// B's is 8 hours (so that B never rekeys first).
fn site(a: bool) -> String {
    let (local, peer, lid, pid, nets, multiple, lifetime) = if a {
        let nets = ("10.1.0.0/24", "10.2.0.0/24");
        (
            "198.51.100.1",
            "198.51.100.2",
            "a.test",
            "b.test",
            nets,
            1,
            "3m",
        )
    } else {
        let nets = ("10.2.0.0/24", "10.1.0.0/24");
        (
            "198.51.100.2",
            "198.51.100.1",
            "b.test",
            "a.test",
            nets,
            0,
            "8h",
        )
    };
    let (l, r) = nets;
    format!(
        r#"
[ike-crypto-profile.p]
dh-group = ["group19"]
authentication = ["sha256"]
encryption = ["aes-256-cbc"]
lifetime = "{lifetime}"
authentication-multiple = {multiple}
[ipsec-crypto-profile.e]
encryption = ["aes-256-gcm"]
authentication = ["none"]
dh-group = "no-pfs"
lifetime = "1h"
[ike-gateway.gw]
local-address = "{local}"
peer-address = "{peer}"
pre-shared-key = "a long enough test key"
local-id = {{ type = "fqdn", value = "{lid}" }}
peer-id = {{ type = "fqdn", value = "{pid}" }}
ike-crypto-profile = "p"
liveness-interval = "5s"
[tunnel-interface."tunnel.1"]
zone = "vpn"
[zone.vpn]
[ipsec-tunnel.t1]
tunnel-interface = "tunnel.1"
ike-gateway = "gw"
ipsec-crypto-profile = "e"
proxy-id = [ {{ name = "lan", local = "{l}", remote = "{r}" }} ]
"#
    )
}

fn engine(setup: &EngineSetup, now: Instant) -> Ike {
    let mut e = ferrosec_ike::v2::Endpoint::new(
        setup.endpoint.clone(),
        setup.peers.clone(),
        ferrosec_crypto::Provider::default(),
        Box::new(rand_core::OsRng),
        now,
    );
    for (i, g) in setup.gateways.iter().enumerate() {
        e.set_lifetimes(ferrosec_ike::v2::PeerId(i as u32), g.lifetimes)
            .unwrap();
        if let Some(c) = &g.certificates {
            e.set_certificates(ferrosec_ike::v2::PeerId(i as u32), c.clone())
                .unwrap();
        }
    }
    // Certificate dates are checked against the wall clock the daemon hands in.
    e.set_wall_clock(now, crate::ikecfg::unix_now());
    Ike::new(
        e,
        ferrosec_ike::v1::Engine::new(
            ferrosec_crypto::Provider::default(),
            Box::new(rand_core::OsRng),
        ),
    )
}

/// Issue 20, part 4: the daemon's IKE task with the real engine, against a peer engine on
/// a virtual clock (no sockets), through a re-authentication (`authentication-multiple =
/// 1`, lifetime 3m): the system log says "re-authenticated" and why, not "rekeyed", and
/// `show vpn ike-sa` has the time of the next one.
#[test]
fn a_reauthentication_is_logged_as_one_and_shown_with_the_next_one() {
    let load = |t: &str| ferrosec_config::load_str(t, "t.toml").unwrap().config;
    let (sa, sb) = (
        crate::ikecfg::engine_setup(&load(&site(true)), &|_, _| None),
        crate::ikecfg::engine_setup(&load(&site(false)), &|_, _| None),
    );
    assert!(sa.skipped.is_empty() && sb.skipped.is_empty());
    let t0 = Instant::now();
    let mut b = engine(&sb, t0);
    let log = SharedLog::new(crate::syslog::SystemLog::open(None).unwrap());
    let tables = Tables::default();
    let ea = engine(&sa, t0);
    let mut task = IkeTask::new(
        sa,
        ea,
        Arc::new(Vec::new()),
        tables.clone(),
        log.clone(),
        None,
    );
    let (a_addr, b_addr): (SocketAddr, SocketAddr) = (
        "198.51.100.1:500".parse().unwrap(),
        "198.51.100.2:500".parse().unwrap(),
    );
    task.endpoint
        .initiate(t0, ferrosec_ike::v2::PeerId(0), a_addr, b_addr)
        .unwrap();
    // Deliver everything, handle timeouts, move the clock; the task handles the events.
    let mut now = t0;
    let mut run_until = |task: &mut IkeTask, until: Instant| {
        for _ in 0..100_000 {
            let mut moved = false;
            while let Some(t) = task.endpoint.poll_transmit() {
                b.handle_datagram(now, t.remote, t.local, &t.data);
                moved = true;
            }
            while let Some(t) = b.poll_transmit() {
                task.endpoint
                    .handle_datagram(now, t.remote, t.local, &t.data);
                moved = true;
            }
            while let Some(e) = task.endpoint.poll_event() {
                task.event(e);
            }
            while b.poll_event().is_some() {}
            if moved {
                continue;
            }
            let next = [task.endpoint.poll_timeout(), b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    now = now.max(t);
                    task.endpoint.handle_timeout(now);
                    b.handle_timeout(now);
                }
                _ => break,
            }
        }
    };
    run_until(&mut task, t0 + Duration::from_secs(1));
    let lines =
        |log: &SharedLog| -> Vec<String> { log.tail(None).iter().map(|l| l.to_string()).collect() };
    let first = lines(&log);
    assert!(
        first
            .iter()
            .any(|l| l.contains("IKE SA established") && l.contains("next re-authentication in")),
        "{first:#?}"
    );
    let rows = tables.ike_rows(None);
    assert_eq!(rows.len(), 1);
    // How both sides authenticated: the pre-shared key, no certificates.
    assert_eq!(
        (rows[0].local_auth.as_str(), rows[0].peer_auth.as_str()),
        ("psk", "psk")
    );
    assert!(rows[0].local_certificate.is_none() && rows[0].peer_certificate.is_none());
    assert!(
        first.iter().any(|l| l.contains("IKE SA established")
            && l.contains("authenticated with the pre-shared key")),
        "{first:#?}"
    );
    // The soft lifetime: 3 min less the 10 % margin and up to 10 % jitter.
    let next = rows[0]
        .next_reauthentication
        .expect("next re-authentication shown");
    assert!((140..=162).contains(&next), "{next}");
    // Past the lifetime: re-authenticated, and the old IKE SA gone.
    run_until(&mut task, t0 + Duration::from_secs(200));
    let all = lines(&log);
    let reauth: Vec<&String> = all
        .iter()
        .filter(|l| l.contains("ike-gateway gw: IKE SA re-authenticated"))
        .collect();
    assert_eq!(reauth.len(), 1, "{all:#?}");
    assert!(
        reauth[0].contains("authentication-multiple 1 reached"),
        "{}",
        reauth[0]
    );
    assert!(
        !all.iter().any(|l| l.contains("IKE SA rekeyed")),
        "{all:#?}"
    );
    assert!(
        all.iter()
            .any(|l| l
                .contains("old IKE SA with 198.51.100.2:500 removed after re-authentication")),
        "{all:#?}"
    );
    // Its Child SA pair: made anew under the new IKE SA, the old one removed after it.
    assert!(
        all.iter()
            .any(|l| l.contains("IPsec SA re-established (IKE SA re-authenticated)")),
        "{all:#?}"
    );
    assert!(
        all.iter()
            .any(|l| l.contains("(SPI in 0x") && l.contains("removed after re-authentication")),
        "{all:#?}"
    );
    assert!(!all.iter().any(|l| l.contains("rekey")), "{all:#?}");
    // The metrics count it as a re-authentication we started, not as a rekey.
    let rekeys: Vec<_> = tables
        .outcomes()
        .rekeys
        .into_iter()
        .map(|((g, k, s), n)| (g.to_string(), k, s, n))
        .collect();
    assert_eq!(
        rekeys,
        vec![("gw".to_owned(), "reauthentication", "local", 1)]
    );
    let rows = tables.ike_rows(None);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].next_reauthentication.is_some());
    let json = serde_json::to_value(&rows[0]).unwrap();
    assert!(json["next-reauthentication"].is_u64(), "{json}");
    assert_eq!(json["liveness-interval"], 5.0);
    assert_eq!(json["liveness-gives-up-after"], 18.0);
}

/// Delivers datagrams between the task's engine and the peer engine `b` (none while `cut`),
/// handles timeouts for `secs` seconds on the virtual clock `now`; the task sees its datagrams
/// both ways as `run` and `flush` show them to it (for the handshake timing).
fn exchange(task: &mut IkeTask, b: &mut Ike, now: &mut Instant, secs: u64, cut: bool) {
    let until = *now + Duration::from_secs(secs);
    for _ in 0..100_000 {
        let mut moved = false;
        while let Some(t) = task.endpoint.poll_transmit() {
            task.note_first_message(*now, t.remote.ip(), t.local.port(), &t.data, "local");
            if !cut {
                b.handle_datagram(*now, t.remote, t.local, &t.data);
                moved = true;
            }
        }
        while let Some(t) = b.poll_transmit() {
            if !cut {
                task.note_first_message(*now, t.local.ip(), t.remote.port(), &t.data, "peer");
                task.endpoint
                    .handle_datagram(*now, t.remote, t.local, &t.data);
                moved = true;
            }
        }
        while let Some(e) = task.endpoint.poll_event() {
            task.event(e);
        }
        while b.poll_event().is_some() {}
        if moved {
            continue;
        }
        let next = [task.endpoint.poll_timeout(), b.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) if t <= until => {
                *now = (*now).max(t);
                task.endpoint.handle_timeout(*now);
                b.handle_timeout(*now);
            }
            _ => break,
        }
    }
    *now = (*now).max(until);
}

/// R-OPS-5: the task counts rekeys by kind and by the side that started them (from the
/// engine's events), times the handshake from its first message, keeps the traffic of pairs
/// gone in the per-tunnel totals, and counts a peer declared dead by liveness; the metrics
/// text has each with its value.
#[test]
fn the_task_counts_rekeys_by_side_handshakes_traffic_and_dead_peers() {
    let load = |t: &str| ferrosec_config::load_str(t, "t.toml").unwrap().config;
    let (sa, sb) = (
        crate::ikecfg::engine_setup(&load(&site(true)), &|_, _| None),
        crate::ikecfg::engine_setup(&load(&site(false)), &|_, _| None),
    );
    let t0 = Instant::now();
    let mut b = engine(&sb, t0);
    let log = SharedLog::new(crate::syslog::SystemLog::open(None).unwrap());
    let tables = Tables::default();
    let ea = engine(&sa, t0);
    let child_lifetime = sa.gateways[0].policies[0].lifetime;
    let mut task = IkeTask::new(sa, ea, Arc::new(Vec::new()), tables.clone(), log, None);
    let (a_addr, b_addr): (SocketAddr, SocketAddr) = (
        "198.51.100.1:500".parse().unwrap(),
        "198.51.100.2:500".parse().unwrap(),
    );
    let mut now = t0;
    task.endpoint
        .initiate(now, ferrosec_ike::v2::PeerId(0), a_addr, b_addr)
        .unwrap();
    exchange(&mut task, &mut b, &mut now, 1, false);
    assert_eq!(tables.ipsec_rows(None).len(), 1);
    // The pair found its tunnel's policy: its lifetime is the IPSec profile's.
    assert!(!child_lifetime.is_zero());
    assert_eq!(
        tables.lock().child.values().next().unwrap().lifetime,
        child_lifetime
    );
    // Timed from our IKE_SA_INIT (the daemon's clock: real time here, so a few ms).
    let (count, sum) = tables.handshakes().series("gw", "ikev2");
    assert_eq!(count, 1);
    assert!((0.0..5.0).contains(&sum), "{sum}");
    assert!(task.first_messages.is_empty(), "{:?}", task.first_messages);
    // One negotiation started, by us (its retransmissions and answers do not count).
    let started = tables.outcomes().started;
    assert_eq!(
        started.into_iter().collect::<Vec<_>>(),
        vec![(("ikev2", "local"), 1)]
    );

    // Traffic on the first pair, then a rekey of it by each side, then of the IKE SA.
    let counters = Arc::clone(&tables.lock().child.values().next().unwrap().counters);
    counters.inbound(100);
    counters.outbound_many(3, 300);
    counters.drop_for("replay");
    let child = |task: &IkeTask| *task.tables.lock().child.keys().next().unwrap();
    let h = task.endpoint.established()[0];
    let spi = child(&task);
    task.endpoint.rekey_child_sa(now, h, spi).unwrap();
    exchange(&mut task, &mut b, &mut now, 5, false);
    let (hb, spi_b) = {
        let s = b.v2().snapshot();
        (s[0].handle, s[0].children[0].inbound_spi)
    };
    b.rekey_child_sa(now, hb, spi_b).unwrap();
    exchange(&mut task, &mut b, &mut now, 5, false);
    assert_eq!(tables.ipsec_rows(None).len(), 1, "old pairs gone");
    let h = task.endpoint.established()[0];
    task.endpoint.rekey_ike_sa(now, h).unwrap();
    exchange(&mut task, &mut b, &mut now, 5, false);
    let hb = b.established()[0];
    b.rekey_ike_sa(now, hb).unwrap();
    exchange(&mut task, &mut b, &mut now, 5, false);
    let o = tables.outcomes();
    let rekeys: Vec<(&str, &str, u64)> = o
        .rekeys
        .iter()
        .map(|((g, k, s), n)| {
            assert_eq!(&**g, "gw");
            (*k, *s, *n)
        })
        .collect();
    assert_eq!(
        rekeys,
        vec![
            ("ike-sa", "local", 1),
            ("ike-sa", "peer", 1),
            ("ipsec-sa", "local", 1),
            ("ipsec-sa", "peer", 1),
        ]
    );
    // The first pair's traffic stays counted after it is gone.
    let gone = o.retired[&(Arc::from("t1"), Arc::from("lan"))];
    assert_eq!((gone.packets_in, gone.packets_out), (1, 3));
    assert_eq!((gone.bytes_in, gone.bytes_out), (100, 300));
    assert_eq!(tables.all_drops().get("replay"), Some(&1));
    assert!(o.liveness_failures.is_empty());

    // The peer goes silent: the liveness check (every 5 s, dead 18 s later) gives up.
    exchange(&mut task, &mut b, &mut now, 40, true);
    // (The peer's rekey made the last IKE SA, so the engine leaves the restart to it.) We
    // start again into the silence: one more negotiation started, its retransmissions not.
    assert_eq!(tables.outcomes().started[&("ikev2", "local")], 1);
    task.endpoint
        .initiate(now, ferrosec_ike::v2::PeerId(0), a_addr, b_addr)
        .unwrap();
    exchange(&mut task, &mut b, &mut now, 10, true);
    assert_eq!(tables.outcomes().started[&("ikev2", "local")], 2);
    let o = tables.outcomes();
    assert_eq!(
        o.liveness_failures
            .iter()
            .map(|((g, v, r), n)| (&**g, *v, *r, *n))
            .collect::<Vec<_>>(),
        vec![("gw", "ikev2", "no-answer", 1)]
    );
    // Each unanswered liveness try is counted, as the engine counts it.
    task.publish_counters();
    let engine = task.endpoint.liveness_misses();
    assert_eq!(engine.len(), 1);
    let misses = engine[0].2;
    assert!(misses >= 3, "{misses} liveness misses");
    let o = tables.outcomes();
    assert_eq!(o.liveness_misses[&(Arc::from("gw"), "ikev2")], misses);

    let text = crate::metrics::render(&crate::metrics::Sources {
        tables: tables.clone(),
        ..crate::metrics::Sources::default()
    });
    let line =
        format!("ferrosec_liveness_misses_total{{gateway=\"gw\",version=\"ikev2\"}} {misses}");
    assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    for line in [
        "ferrosec_rekeys_total{gateway=\"gw\",kind=\"ike-sa\",side=\"local\"} 1",
        "ferrosec_rekeys_total{gateway=\"gw\",kind=\"ike-sa\",side=\"peer\"} 1",
        "ferrosec_rekeys_total{gateway=\"gw\",kind=\"ipsec-sa\",side=\"local\"} 1",
        "ferrosec_rekeys_total{gateway=\"gw\",kind=\"ipsec-sa\",side=\"peer\"} 1",
        "ferrosec_liveness_failures_total{gateway=\"gw\",version=\"ikev2\",reason=\"no-answer\"} 1",
        "ferrosec_ike_handshake_duration_seconds_count{gateway=\"gw\",version=\"ikev2\"} 1",
        "ferrosec_ike_handshake_duration_seconds_bucket{le=\"+Inf\",gateway=\"gw\",version=\"ikev2\"} 1",
        "ferrosec_tunnel_packets_total{tunnel=\"t1\",proxy_id=\"lan\",direction=\"out\"} 3",
        "ferrosec_tunnel_bytes_total{tunnel=\"t1\",proxy_id=\"lan\",direction=\"in\"} 100",
        "ferrosec_drops_total{reason=\"replay\"} 1",
        "ferrosec_negotiations_started_total{version=\"ikev2\",side=\"local\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
}

/// Live reload in the IKE task (R-OPS-4), with the real engine against a peer engine on a
/// virtual clock: the same file changes nothing (same SPIs); a changed IPSec crypto profile
/// rekeys the tunnel's Child SA under the same IKE SA; a removed gateway's IKE SA is deleted
/// on the peer (DELETE sent), and the tables are empty after it.
#[test]
fn a_reload_keeps_the_unchanged_rekeys_a_changed_profile_and_deletes_a_removed_gateway() {
    let load = |t: &str| ferrosec_config::load_str(t, "t.toml").unwrap().config;
    let plan = |text: &str| ReloadPlan {
        setup: crate::ikecfg::engine_setup(&load(text), &|_, _| None),
        changed_gateways: BTreeSet::new(),
        tunnels: Vec::new(),
        interfaces: BTreeMap::new(),
        always_on: Vec::new(),
        manual_changed: BTreeSet::new(),
        manual: Vec::new(),
    };
    // Site A without re-authentication (its lifetime is 8 h too).
    let a_text = site(true)
        .replace("lifetime = \"3m\"", "lifetime = \"8h\"")
        .replace("authentication-multiple = 1", "authentication-multiple = 0");
    let (sa, sb) = (
        crate::ikecfg::engine_setup(&load(&a_text), &|_, _| None),
        crate::ikecfg::engine_setup(&load(&site(false)), &|_, _| None),
    );
    let t0 = Instant::now();
    let mut b = engine(&sb, t0);
    let log = SharedLog::new(crate::syslog::SystemLog::open(None).unwrap());
    let tables = Tables::default();
    let ea = engine(&sa, t0);
    let mut task = IkeTask::new(
        sa,
        ea,
        Arc::new(Vec::new()),
        tables.clone(),
        log.clone(),
        None,
    );
    let (a_addr, b_addr): (SocketAddr, SocketAddr) = (
        "198.51.100.1:500".parse().unwrap(),
        "198.51.100.2:500".parse().unwrap(),
    );
    task.endpoint
        .initiate(t0, ferrosec_ike::v2::PeerId(0), a_addr, b_addr)
        .unwrap();
    let mut now = t0;
    let mut run_until = |task: &mut IkeTask, b: &mut Ike, until: Instant| {
        for _ in 0..100_000 {
            let mut moved = false;
            while let Some(t) = task.endpoint.poll_transmit() {
                b.handle_datagram(now, t.remote, t.local, &t.data);
                moved = true;
            }
            while let Some(t) = b.poll_transmit() {
                task.endpoint
                    .handle_datagram(now, t.remote, t.local, &t.data);
                moved = true;
            }
            while let Some(e) = task.endpoint.poll_event() {
                task.event(e);
            }
            while b.poll_event().is_some() {}
            if moved {
                continue;
            }
            let next = [task.endpoint.poll_timeout(), b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    now = now.max(t);
                    task.endpoint.handle_timeout(now);
                    b.handle_timeout(now);
                }
                _ => break,
            }
        }
    };
    let spis = |tables: &Tables| -> Vec<String> {
        tables
            .ipsec_rows(None)
            .into_iter()
            .map(|r| r.spi_in)
            .collect()
    };
    let ike_ups = |log: &SharedLog| {
        log.tail(None)
            .iter()
            .filter(|l| l.to_string().contains("IKE SA established"))
            .count()
    };
    run_until(&mut task, &mut b, t0 + Duration::from_secs(1));
    let before = spis(&tables);
    assert_eq!(before.len(), 1);
    assert_eq!(ike_ups(&log), 1);

    // The same file: nothing to do, nothing changes.
    let done = task.reload(plan(&a_text));
    assert!(done.is_empty(), "{done:?}");
    run_until(&mut task, &mut b, t0 + Duration::from_secs(2));
    assert_eq!(spis(&tables), before);

    // Another IPSec crypto profile (B still accepts it): the Child SA is rekeyed, the IKE
    // SA stays.
    let changed = a_text.replace(
        r#"encryption = ["aes-256-gcm"]"#,
        r#"encryption = ["aes-128-gcm", "aes-256-gcm"]"#,
    );
    let done = task.reload(plan(&changed));
    assert_eq!(
        done,
        vec![(
            "ipsec-tunnel t1".to_owned(),
            "proxy-id lan: rekey of 1 IPsec SA pair(s) with the new IPSec crypto settings \
             started (make-before-break)"
                .to_owned()
        )]
    );
    run_until(&mut task, &mut b, t0 + Duration::from_secs(4));
    let after = spis(&tables);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, before, "rekeyed");
    assert_eq!(ike_ups(&log), 1, "the same IKE SA");
    assert_eq!(tables.ike_rows(None).len(), 1);

    // Another anti-replay window (the data plane's, not the engine's): rekeyed to apply it.
    let replay = changed.replace(
        "[ipsec-tunnel.t1]\n",
        "[ipsec-tunnel.t1]\nreplay-window = 128\n",
    );
    assert_ne!(replay, changed);
    let done = task.reload(plan(&replay));
    assert_eq!(
        done,
        vec![(
            "ipsec-tunnel t1".to_owned(),
            "anti-replay window changed: rekey of 1 IPsec SA pair(s) started to apply it"
                .to_owned()
        )]
    );
    run_until(&mut task, &mut b, t0 + Duration::from_secs(5));
    let replayed = spis(&tables);
    assert_eq!(replayed.len(), 1, "{replayed:?}");
    assert_ne!(replayed, after, "rekeyed");
    let changed = replay;

    // The gateway (and its tunnel) removed: DELETE to the peer, everything gone.
    let start = changed.find("[ike-gateway.gw]").unwrap();
    let end = changed.find("[tunnel-interface").unwrap();
    let tunnel = changed.find("[ipsec-tunnel.t1]").unwrap();
    let none = format!("{}{}", &changed[..start], &changed[end..tunnel]);
    let done = task.reload(plan(&none));
    assert!(
        done.contains(&(
            "ike-gateway gw".to_owned(),
            "removed: 1 IKE SA(s) deleted on the peer (DELETE sent)".to_owned()
        )),
        "{done:?}"
    );
    assert!(tables.ike_rows(None).is_empty());
    assert!(tables.ipsec_rows(None).is_empty());
    assert_eq!(b.established().len(), 1);
    run_until(&mut task, &mut b, t0 + Duration::from_secs(6));
    assert!(b.established().is_empty(), "the peer got the DELETE");
    assert!(task.gateways.is_empty() && task.ids.is_empty());
    assert_eq!(task.endpoint.peers().count(), 0);
}

/// Issue 13, operations: with certificates made by `ferrosec pki` and read by the
/// configuration loader, the task files what the engine reports: `show vpn ike-sa` has both
/// AUTH methods and both certificates (the peer's issuer and expiry), and the system log's
/// IKE SA line names them.
#[test]
fn show_vpn_ike_sa_names_the_methods_and_certificates_of_a_certificate_sa() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    crate::pki::ca_create(
        "CN=Test CA, O=Example",
        &ca,
        crate::pki::KeyType::EcdsaP256,
        30,
    )
    .unwrap();
    let load = |a: bool| {
        let (name, id) = if a { ("a", "a.test") } else { ("b", "b.test") };
        let out = dir.path().join(name);
        crate::pki::cert_issue(
            &ca,
            &format!("CN={id}, O=Example"),
            &[format!("fqdn:{id}")],
            None,
            crate::pki::KeyType::EcdsaP256,
            &out,
            30,
        )
        .unwrap();
        let text = site(a).replace(
            "pre-shared-key = \"a long enough test key\"",
            &format!(
                "certificate = {{ local = \"{0}/cert.pem\", key = \"{0}/key.pem\", ca = [\"{0}/ca.pem\"] }}",
                out.display()
            ),
        );
        let file = dir.path().join(format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        let config = ferrosec_config::load_file(&file).unwrap().config;
        crate::ikecfg::engine_setup(&config, &|_, _| None)
    };
    let (sa, sb) = (load(true), load(false));
    assert!(sa.gateways[0].certificates.is_some(), "certificates served");
    let t0 = Instant::now();
    let mut b = engine(&sb, t0);
    let log = SharedLog::new(crate::syslog::SystemLog::open(None).unwrap());
    let tables = Tables::default();
    let ea = engine(&sa, t0);
    let mut task = IkeTask::new(
        sa,
        ea,
        Arc::new(Vec::new()),
        tables.clone(),
        log.clone(),
        None,
    );
    let mut now = t0;
    task.endpoint
        .initiate(
            now,
            ferrosec_ike::v2::PeerId(0),
            "198.51.100.1:500".parse().unwrap(),
            "198.51.100.2:500".parse().unwrap(),
        )
        .unwrap();
    exchange(&mut task, &mut b, &mut now, 1, false);
    let rows = tables.ike_rows(None);
    assert_eq!(rows.len(), 1, "{:#?}", log.tail(None));
    let r = &rows[0];
    assert_eq!(r.local_auth, "digital-signature");
    assert_eq!(r.peer_auth, "digital-signature");
    let (l, p) = (
        r.local_certificate.as_ref().unwrap(),
        r.peer_certificate.as_ref().unwrap(),
    );
    assert_eq!(l.subject, "CN=a.test, O=Example");
    assert_eq!(p.subject, "CN=b.test, O=Example");
    assert_eq!(p.issuer, "CN=Test CA, O=Example");
    assert!(
        p.not_after.ends_with('Z') && p.not_after.contains('T'),
        "{}",
        p.not_after
    );
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(json["peer-certificate"]["subject"], "CN=b.test, O=Example");
    let lines: Vec<String> = log.tail(None).iter().map(|l| l.to_string()).collect();
    assert!(
        lines.iter().any(|l| l.contains("IKE SA established")
            && l.contains(
                "we signed with digital-signature (certificate \"CN=a.test, O=Example\"), the \
                 peer with digital-signature (certificate \"CN=b.test, O=Example\" issued by \
                 \"CN=Test CA, O=Example\", valid until "
            )),
        "{lines:#?}"
    );
}

/// R-CFG-4: a gateway whose FQDN did not resolve at start is served but starts nothing, and
/// says why; the lookup's answer points the engine at the address (logged with the name);
/// a later failure keeps the address and is logged once; a changed address is followed.
#[test]
fn an_fqdn_peer_is_followed_to_its_new_address() {
    let load = |t: &str| ferrosec_config::load_str(t, "t.toml").unwrap().config;
    let text = site(true).replace(
        "peer-address = \"198.51.100.2\"",
        "peer-address = \"b.peer.test\"",
    );
    assert!(text.contains("b.peer.test"));
    let setup = crate::ikecfg::engine_setup(&load(&text), &|_, _| None);
    assert_eq!(setup.unresolved.len(), 1);
    let e = engine(&setup, Instant::now());
    let log = SharedLog::new(crate::syslog::SystemLog::open(None).unwrap());
    let mut task = IkeTask::new(
        setup,
        e,
        Arc::new(Vec::new()),
        Tables::default(),
        log.clone(),
        None,
    )
    .with_fqdn_refresh(Duration::from_secs(60));
    let peer_addr = |task: &IkeTask| task.endpoint.peers().next().unwrap().1.peer_addr;
    assert_eq!(peer_addr(&task), Some("0.0.0.0".parse().unwrap()));
    let err = task.initiate(0, "test").unwrap_err();
    assert!(
        err.contains("peer-address \"b.peer.test\" does not resolve"),
        "{err}"
    );

    let lines = |log: &SharedLog| -> Vec<String> {
        log.tail(Some(100)).into_iter().map(|l| l.message).collect()
    };
    task.peer_resolved("gw", "b.peer.test", Err("no such name".into()));
    task.peer_resolved("gw", "b.peer.test", Err("no such name".into()));
    let failed: Vec<String> = lines(&log)
        .into_iter()
        .filter(|l| l.contains("does not resolve: no such name"))
        .collect();
    assert_eq!(failed.len(), 1, "logged once: {failed:?}");
    assert!(failed[0].contains("waits for it"), "{failed:?}");

    task.peer_resolved("gw", "b.peer.test", Ok("198.51.100.2".parse().unwrap()));
    assert_eq!(peer_addr(&task), Some("198.51.100.2".parse().unwrap()));
    assert_eq!(
        task.gateways[0].peer_address,
        Some("198.51.100.2".parse().unwrap())
    );
    assert!(lines(&log).iter().any(|l| l.contains(
        "peer-address \"b.peer.test\" now resolves to 198.51.100.2 (it did not resolve before)"
    )));

    task.peer_resolved("gw", "b.peer.test", Err("timed out".into()));
    assert_eq!(peer_addr(&task), Some("198.51.100.2".parse().unwrap()));
    assert!(
        lines(&log)
            .iter()
            .any(|l| l.contains("does not resolve: timed out; keeping 198.51.100.2"))
    );

    task.peer_resolved("gw", "b.peer.test", Ok("198.51.100.3".parse().unwrap()));
    assert_eq!(peer_addr(&task), Some("198.51.100.3".parse().unwrap()));
    assert!(
        lines(&log)
            .iter()
            .any(|l| l.contains("now resolves to 198.51.100.3 (was 198.51.100.2)"))
    );
    // An answer for a name the gateway no longer has is ignored.
    task.peer_resolved("gw", "old.name.test", Ok("192.0.2.77".parse().unwrap()));
    assert_eq!(peer_addr(&task), Some("198.51.100.3".parse().unwrap()));
}

/// `pki crl sign` revokes b's certificate; a's gateway lists that CRL in `certificate.crl`: the
/// IKE_AUTH fails and a's system log gives the certificate, its serial, the CA, the date and
/// the reason. `show auth certs` rows list the CRL file.
#[test]
fn a_certificate_revoked_by_a_pki_crl_is_refused_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    crate::pki::ca_create(
        "CN=Test CA, O=Example",
        &ca,
        crate::pki::KeyType::EcdsaP256,
        30,
    )
    .unwrap();
    for (name, id) in [("a", "a.test"), ("b", "b.test")] {
        crate::pki::cert_issue(
            &ca,
            &format!("CN={id}, O=Example"),
            &[format!("fqdn:{id}")],
            Some("http://192.0.2.80/ca.crl"),
            crate::pki::KeyType::EcdsaP256,
            &dir.path().join(name),
            30,
        )
        .unwrap();
    }
    let crl = dir.path().join("ca.crl");
    let w = crate::pki::crl_sign(
        &ca,
        &[dir.path().join("b/cert.pem")],
        "keyCompromise",
        7,
        &crl,
    )
    .unwrap();
    assert_eq!(w.revoked.len(), 1);
    assert!(w.text().contains("crl = ["), "{}", w.text());
    assert!(
        crate::pki::crl_sign(&ca, &[], "nonsense", 7, &dir.path().join("x.crl")).is_err(),
        "an unknown reason is refused"
    );
    let load = |a: bool| {
        let name = if a { "a" } else { "b" };
        let out = dir.path().join(name);
        let extra = if a {
            format!(", crl = [\"{}\"]", crl.display())
        } else {
            String::new()
        };
        let text = site(a).replace(
            "pre-shared-key = \"a long enough test key\"",
            &format!(
                "certificate = {{ local = \"{0}/cert.pem\", key = \"{0}/key.pem\", ca = [\"{0}/ca.pem\"]{extra} }}",
                out.display()
            ),
        );
        let file = dir.path().join(format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        let config = ferrosec_config::load_file(&file).unwrap().config;
        (crate::ikecfg::engine_setup(&config, &|_, _| None), config)
    };
    let ((sa, config_a), (sb, _)) = (load(true), load(false));
    let rows = crate::status::crl_rows(&config_a, &[], 0);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0].issuer.as_str(),
            rows[0].revoked,
            rows[0].source.as_str()
        ),
        ("CN=Test CA, O=Example", 1, "file")
    );
    let t0 = Instant::now();
    let mut b = engine(&sb, t0);
    let log = SharedLog::new(crate::syslog::SystemLog::open(None).unwrap());
    let tables = Tables::default();
    let ea = engine(&sa, t0);
    let mut task = IkeTask::new(
        sa,
        ea,
        Arc::new(Vec::new()),
        tables.clone(),
        log.clone(),
        None,
    );
    let mut now = t0;
    task.endpoint
        .initiate(
            now,
            ferrosec_ike::v2::PeerId(0),
            "198.51.100.1:500".parse().unwrap(),
            "198.51.100.2:500".parse().unwrap(),
        )
        .unwrap();
    exchange(&mut task, &mut b, &mut now, 1, false);
    assert!(tables.ike_rows(None).is_empty());
    let lines: Vec<String> = log.tail(None).iter().map(|l| l.to_string()).collect();
    let serial = &w.revoked[0];
    assert!(
        lines.iter().any(|l| l.contains(&format!(
            "peer certificate \"CN=b.test, O=Example\" serial {serial} revoked by \"CN=Test \
             CA, O=Example\" on "
        )) && l.contains("(reason keyCompromise)")),
        "{lines:#?}"
    );
}

/// RFC 9329 §5.1: a `fallback` gateway sends IKE_SA_INIT over UDP and moves to TCP when the
/// first transmission and its first retransmission go unanswered; an `always` gateway is on
/// TCP from the first message; `show vpn ike-sa` reads the transport from the same set.
#[test]
fn fallback_moves_to_tcp_after_two_unanswered_ike_sa_inits_always_at_once() {
    let load = |t: &str| ferrosec_config::load_str(t, "t.toml").unwrap().config;
    for (mode, first_on_tcp) in [
        ("fallback", FALLBACK_AFTER_TRANSMISSIONS + 1),
        ("always", 1),
    ] {
        let text = site(true).replace(
            "[ike-gateway.gw]\n",
            &format!("[ike-gateway.gw]\nversion = \"ikev2\"\ntcp-encapsulation = \"{mode}\"\n"),
        );
        let setup = crate::ikecfg::engine_setup(&load(&text), &|_, _| None);
        let t0 = Instant::now();
        let ea = engine(&setup, t0);
        let log = SharedLog::new(crate::syslog::SystemLog::open(None).unwrap());
        let tables = Tables::default();
        let (to_ike, _keep) = mpsc::channel(4);
        let tcp =
            crate::tcpencap::TcpEncap::new(to_ike, tables.drops(), log.clone(), tables.tcp_peers());
        let mut task = IkeTask::new(
            setup,
            ea,
            Arc::new(Vec::new()),
            tables.clone(),
            log.clone(),
            None,
        )
        .with_tcp(Some(Arc::clone(&tcp)));
        let (a_addr, b_addr): (SocketAddr, SocketAddr) = (
            "198.51.100.1:500".parse().unwrap(),
            "198.51.100.2:500".parse().unwrap(),
        );
        let peer = b_addr.ip();
        let mut now = t0;
        task.endpoint
            .initiate(now, ferrosec_ike::v2::PeerId(0), a_addr, b_addr)
            .unwrap();
        let mut sent = 0;
        let mut on_tcp = Vec::new();
        while sent < 4 {
            while let Some(t) = task.endpoint.poll_transmit() {
                task.tcp_route(t.local, t.remote, &t.data);
                sent += 1;
                on_tcp.push(tcp.carries(peer));
            }
            let Some(next) = task.endpoint.poll_timeout() else {
                break;
            };
            now = now.max(next);
            task.endpoint.handle_timeout(now);
        }
        let want: Vec<bool> = (1..=sent).map(|n| n >= first_on_tcp).collect();
        assert_eq!(
            on_tcp, want,
            "{mode}: which IKE_SA_INIT transmissions go over TCP"
        );
        // `show vpn ike-sa` names the transport from this set.
        assert!(
            tables.tcp_peers().lock().unwrap().contains(&peer),
            "{mode}: shown as tcp"
        );
        let logged = log.tail(None).iter().any(|l| {
            l.message
                .contains("no answer over UDP to IKE_SA_INIT after 2 transmissions")
        });
        assert_eq!(logged, mode == "fallback", "{mode}: the switch is logged");
        if mode == "fallback" {
            // A new negotiation while no IKE SA with the peer is up tries UDP first again.
            task.endpoint
                .initiate(now, ferrosec_ike::v2::PeerId(0), a_addr, b_addr)
                .unwrap();
            while let Some(t) = task.endpoint.poll_transmit() {
                task.tcp_route(t.local, t.remote, &t.data);
            }
            assert!(!tcp.carries(peer), "back to UDP for a new negotiation");
        }
    }
}

/// `show vpn ipsec-sa` and `show vpn ike-sa` name the key exchanges of the current SAs: the
/// IKE_AUTH pair has none of its own, the pair of a rekey with PFS and ML-KEM
/// (IKE_FOLLOWUP_KE) is `group19+ml-kem-768`, and so is the IKE SA after its rekey.
#[test]
fn show_names_the_additional_key_exchanges_after_rekeys() {
    let hybrid = |a: bool| {
        site(a)
            .replace(
                "authentication-multiple = 0",
                "authentication-multiple = 0\nadditional-key-exchange = \"ml-kem-768\"",
            )
            .replace(
                "authentication-multiple = 1",
                "authentication-multiple = 0\nadditional-key-exchange = \"ml-kem-768\"",
            )
            .replace(
                "dh-group = \"no-pfs\"",
                "dh-group = \"group19\"\nadditional-key-exchange = \"ml-kem-768\"",
            )
    };
    let load = |t: &str| ferrosec_config::load_str(t, "t.toml").unwrap().config;
    let (sa, sb) = (
        crate::ikecfg::engine_setup(&load(&hybrid(true)), &|_, _| None),
        crate::ikecfg::engine_setup(&load(&hybrid(false)), &|_, _| None),
    );
    let t0 = Instant::now();
    let mut b = engine(&sb, t0);
    let log = SharedLog::new(crate::syslog::SystemLog::open(None).unwrap());
    let tables = Tables::default();
    let ea = engine(&sa, t0);
    let mut task = IkeTask::new(sa, ea, Arc::new(Vec::new()), tables.clone(), log, None);
    let (a_addr, b_addr): (SocketAddr, SocketAddr) = (
        "198.51.100.1:500".parse().unwrap(),
        "198.51.100.2:500".parse().unwrap(),
    );
    let mut now = t0;
    task.endpoint
        .initiate(now, ferrosec_ike::v2::PeerId(0), a_addr, b_addr)
        .unwrap();
    exchange(&mut task, &mut b, &mut now, 1, false);
    let dh = |t: &Tables| {
        (
            t.ike_rows(None)[0].dh_group.clone(),
            t.ipsec_rows(None)
                .iter()
                .map(|r| r.dh_group.clone())
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        dh(&tables),
        ("group19+ml-kem-768".into(), vec!["none".into()])
    );
    let h = task.endpoint.established()[0];
    let spi = *task.tables.lock().child.keys().next().unwrap();
    task.endpoint.rekey_child_sa(now, h, spi).unwrap();
    exchange(&mut task, &mut b, &mut now, 5, false);
    assert_eq!(
        dh(&tables),
        (
            "group19+ml-kem-768".into(),
            vec!["group19+ml-kem-768".into()]
        )
    );
    let h = task.endpoint.established()[0];
    task.endpoint.rekey_ike_sa(now, h).unwrap();
    exchange(&mut task, &mut b, &mut now, 5, false);
    let rows = tables.ike_rows(None);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_ne!(task.endpoint.established()[0], h, "rekeyed");
    assert_eq!(rows[0].dh_group, "group19+ml-kem-768");
}
