use super::*;
use ferrosec_ike::proposal::{SelectOptions, select};
use ferrosec_ike::v2::{esp_proposal_gcm, ike_proposal_cbc};
use ferrosec_wire::ikev2::{IdType, TransformType};

fn load(text: &str) -> Config {
    ferrosec_config::load_str(text, "t.toml").unwrap().config
}

const BASE: &str = r#"
[global]
cookie-activation-threshold = 7
max-half-opened-sa = 100
[ike-crypto-profile.p]
dh-group = ["group19", "group14"]
authentication = ["sha256", "sha384"]
encryption = ["aes-256-gcm", "aes-128-cbc"]
lifetime = "2h"
[ipsec-crypto-profile.e]
encryption = ["aes-256-gcm", "aes-256-cbc"]
authentication = ["none", "sha256"]
dh-group = "group14"
lifetime = "30m"
[ike-gateway.gw]
local-address = "198.51.100.1"
peer-address = "198.51.100.2"
pre-shared-key = "a long enough test key"
local-id = { type = "fqdn", value = "a.example" }
peer-id = { type = "ipaddr", value = "198.51.100.2" }
ike-crypto-profile = "p"
liveness-interval = "7s"
nat-traversal = true
[tunnel-interface."tunnel.1"]
zone = "vpn"
[zone.vpn]
[ipsec-tunnel.t1]
tunnel-interface = "tunnel.1"
ike-gateway = "gw"
ipsec-crypto-profile = "e"
proxy-id = [
  { name = "lan", local = "10.1.0.0/24", remote = "10.2.0.0/24" },
  { name = "dns", local = "10.1.0.53", remote = "10.3.0.0-10.3.0.9", protocol = "udp", local-port = 53 },
]
"#;

fn setup_of(text: &str) -> EngineSetup {
    engine_setup(&load(text), &|_, _| None)
}

#[test]
fn gateway_becomes_a_peer_with_its_settings() {
    let s = setup_of(BASE);
    assert!(s.skipped.is_empty(), "{:?}", s.skipped);
    assert_eq!(s.peers.len(), 1);
    let p = &s.peers[0];
    assert_eq!(p.name, "gw");
    assert_eq!(p.peer_addr, Some("198.51.100.2".parse().unwrap()));
    assert_eq!(p.local_id, Some(Identity::fqdn("a.example")));
    assert_eq!(
        p.peer_id.as_ref().map(|i| i.ty),
        Some(IdType::IPV4_ADDR),
        "ipaddr ID"
    );
    assert_eq!(p.psk.expose(), b"a long enough test key");
    assert_eq!(p.liveness, Some(std::time::Duration::from_secs(7)));
    assert!(p.nat_traversal);
    assert!(p.restart_on_dead_peer);
    assert_eq!(s.endpoint.cookies.activation_threshold, 7);
    assert_eq!(s.endpoint.cookies.max_half_open, 100);
    assert!(!s.endpoint.cookies.strict);
    let g = &s.gateways[0];
    assert!(g.may_initiate);
    assert_eq!(g.local_address, Some("198.51.100.1".parse().unwrap()));
    assert_eq!(g.ike_lifetime, std::time::Duration::from_secs(7200));
    assert_eq!(
        g.lifetimes.ike.map(|l| l.lifetime),
        Some(std::time::Duration::from_secs(7200))
    );
    assert!(
        p.policies
            .iter()
            .all(|pol| pol.lifetime.map(|l| l.lifetime)
                == Some(std::time::Duration::from_secs(1800))),
        "each policy has its tunnel's Child SA lifetime"
    );
}

/// R-V2-12: a client asks for the families of its tunnels' local selectors; a server's
/// pool, DNS, subnets and the tunnel interface's own address reach the engine.
#[test]
fn config_payload_reaches_the_engine() {
    let client = BASE.replace(
        "nat-traversal = true",
        "nat-traversal = true\nconfig-payload = { request = true }",
    );
    let s = setup_of(&client);
    assert_eq!(
        s.gateways[0].config_payload,
        Some(ferrosec_ike::v2::ConfigPayload::Request {
            ipv4: true,
            ipv6: false
        })
    );
    assert_eq!(s.gateways[0].tunnel_interface.as_deref(), Some("tunnel.1"));
    let server = BASE
        .replace("peer-address = \"198.51.100.2\"", "peer-address = \"dynamic\"")
        .replace(
            "nat-traversal = true",
            "nat-traversal = true\nconfig-payload = { pool = [\"10.9.0.0/24\", \"fd09::/120\"], dns = \"10.1.0.53\", subnets = \"10.1.0.0/24\", required = true }",
        )
        .replace("remote = \"10.2.0.0/24\"", "remote = \"any\"")
        .replace("[tunnel-interface.\"tunnel.1\"]", "[tunnel-interface.\"tunnel.1\"]\naddress = \"10.9.0.1/24\"");
    let s = setup_of(&server);
    let Some(ferrosec_ike::v2::ConfigPayload::Serve(p)) = &s.gateways[0].config_payload else {
        panic!("{:?}", s.gateways[0].config_payload);
    };
    assert_eq!(p.ipv4, Some(("10.9.0.0".parse().unwrap(), 24)));
    assert_eq!(p.ipv6, Some(("fd09::".parse().unwrap(), 120)));
    assert_eq!(p.reserved, vec!["10.9.0.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(p.dns, vec!["10.1.0.53".parse::<IpAddr>().unwrap()]);
    assert_eq!(p.subnets, vec![("10.1.0.0".parse().unwrap(), 24)]);
    assert!(p.required);
}

#[test]
fn ike_proposals_follow_the_profile_order() {
    let s = setup_of(BASE);
    let props = &s.peers[0].ike_proposals;
    assert_eq!(props.len(), 2);
    // GCM: no integrity, PRFs from the authentication list, both groups, group19 first.
    let gcm = &props[0];
    let ids = |p: &Proposal, ty| p.of_type(ty).map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(gcm, TransformType::ENCR), vec![EncrId::AES_GCM_16.0]);
    assert_eq!(
        gcm.of_type(TransformType::ENCR).next().unwrap().key_len,
        Some(256)
    );
    assert!(ids(gcm, TransformType::INTEG).is_empty());
    assert_eq!(
        ids(gcm, TransformType::PRF),
        vec![PrfId::HMAC_SHA2_256.0, PrfId::HMAC_SHA2_384.0]
    );
    assert_eq!(ids(gcm, TransformType::KE), vec![19, 14]);
    let cbc = &props[1];
    assert_eq!(
        ids(cbc, TransformType::INTEG),
        vec![IntegId::HMAC_SHA2_256_128.0, IntegId::HMAC_SHA2_384_192.0]
    );
    // strongSwan's aes128-sha256-modp2048 is acceptable.
    let theirs = ike_proposal_cbc(128, DhGroup::MODP_2048);
    let sel = select(&[(1, theirs)], props, SelectOptions::default()).unwrap();
    assert_eq!(sel.ke, Some(DhGroup::MODP_2048));
    assert_eq!(sel.integ, Some(IntegId::HMAC_SHA2_256_128));
}

/// `additional-key-exchange`: ADDKE1 transforms on every IKE proposal; optional adds the
/// same proposals without them after (strongSwan 5.9 refuses unknown transform types).
#[test]
fn additional_key_exchange_goes_into_the_ike_proposals() {
    let addke = |p: &Proposal| {
        p.of_type(TransformType::ADDKE1)
            .map(|t| t.id)
            .collect::<Vec<_>>()
    };
    let req = BASE.replace(
        "lifetime = \"2h\"",
        "lifetime = \"2h\"\nadditional-key-exchange = [\"ml-kem-768\"]",
    );
    let s = setup_of(&req);
    let props = &s.peers[0].ike_proposals;
    assert_eq!(props.len(), 2);
    assert!(props.iter().all(|p| addke(p) == [36]));
    let opt = BASE.replace(
        "lifetime = \"2h\"",
        "lifetime = \"2h\"\nadditional-key-exchange = [\"ml-kem-1024\", \"none\"]",
    );
    let s = setup_of(&opt);
    let props = &s.peers[0].ike_proposals;
    assert_eq!(props.len(), 4);
    assert_eq!(addke(&props[0]), [37, 0]);
    assert_eq!(addke(&props[1]), [37, 0]);
    assert!(addke(&props[2]).is_empty() && addke(&props[3]).is_empty());
    assert_eq!(
        props[2].of_type(TransformType::ENCR).next(),
        props[0].of_type(TransformType::ENCR).next()
    );
}

#[test]
fn child_proposals_carry_pfs_and_esn_either() {
    let s = setup_of(BASE);
    let props = &s.peers[0].policies[0].proposals;
    assert_eq!(props.len(), 2);
    assert!(props.iter().all(|p| p.protocol == ProtocolId::ESP));
    let ids = |p: &Proposal, ty| p.of_type(ty).map(|t| t.id).collect::<Vec<_>>();
    assert!(
        ids(&props[0], TransformType::INTEG).is_empty(),
        "GCM has no integrity"
    );
    assert_eq!(ids(&props[1], TransformType::INTEG), vec![12]);
    assert!(props.iter().all(|p| ids(p, TransformType::KE) == vec![14]));
    // esn = "either" (the default): ESN preferred, 32-bit sequence numbers accepted.
    assert!(
        props
            .iter()
            .all(|p| ids(p, TransformType::ESN) == vec![1, 0])
    );
    for (esn, want) in [("true", vec![1]), ("false", vec![0])] {
        let s = setup_of(&BASE.replace(
            "[ipsec-crypto-profile.e]",
            &format!("[ipsec-crypto-profile.e]\nesn = {esn}"),
        ));
        let props = &s.peers[0].policies[0].proposals;
        assert!(
            props.iter().all(|p| ids(p, TransformType::ESN) == want),
            "esn = {esn}"
        );
    }
    // IKE_AUTH ignores KE: the engine's plain GCM proposal matches.
    let sel = select(
        &[(1, esp_proposal_gcm())],
        props,
        SelectOptions { ignore_ke: true },
    )
    .unwrap();
    assert_eq!(sel.encr, Some((EncrId::AES_GCM_16, Some(256))));
}

/// `additional-key-exchange` on the IPSec crypto profile: ADDKE1 beside the PFS group in
/// every Child SA proposal; with `none` the same proposals without it follow (for a
/// peer without RFC 9370); IKE_AUTH leaves KE and ADDKE out, so those are one there.
#[test]
fn child_proposals_carry_the_additional_key_exchange() {
    let addke = |p: &Proposal| {
        p.transforms
            .iter()
            .filter(|t| t.ty == TransformType::ADDKE1)
            .map(|t| t.id)
            .collect::<Vec<_>>()
    };
    let ke = |p: &Proposal| {
        p.of_type(TransformType::KE)
            .map(|t| t.id)
            .collect::<Vec<_>>()
    };
    let req = BASE.replace(
        "[ipsec-crypto-profile.e]",
        "[ipsec-crypto-profile.e]\nadditional-key-exchange = \"ml-kem-768\"",
    );
    let s = setup_of(&req);
    let props = &s.peers[0].policies[0].proposals;
    assert_eq!(props.len(), 2);
    assert!(props.iter().all(|p| addke(p) == [36] && ke(p) == [14]));
    let opt = BASE.replace(
        "[ipsec-crypto-profile.e]",
        "[ipsec-crypto-profile.e]\nadditional-key-exchange = [\"ml-kem-1024\", \"none\"]",
    );
    let s = setup_of(&opt);
    let props = &s.peers[0].policies[0].proposals;
    assert_eq!(props.len(), 4);
    assert_eq!(addke(&props[0]), [37, 0]);
    assert!(addke(&props[2]).is_empty() && ke(&props[2]) == [14]);
    // The same offer in IKE_AUTH (no KE there) matches the plain GCM proposal.
    let sel = select(
        &[(1, esp_proposal_gcm())],
        props,
        SelectOptions { ignore_ke: true },
    )
    .unwrap();
    assert_eq!(sel.additional().count(), 0);
}

#[test]
fn proxy_ids_become_named_policies() {
    let s = setup_of(BASE);
    let pols = &s.peers[0].policies;
    assert_eq!(pols.len(), 2);
    assert_eq!(pols[0].name(), "t1/lan");
    assert_eq!(split_policy(pols[1].name()), ("t1", "dns"));
    let dns = &pols[1].ts;
    assert_eq!(dns.local.0.len(), 1);
    assert_eq!(dns.local.0[0].protocol, 17);
    assert_eq!(dns.local.0[0].ports, PortRange::single(53));
    assert_eq!(dns.remote.0[0].ports, PortRange::ANY);
    assert!(
        dns.remote.0[0]
            .addrs
            .contains_addr("10.3.0.9".parse().unwrap())
    );
    assert!(
        !dns.remote.0[0]
            .addrs
            .contains_addr("10.3.0.10".parse().unwrap())
    );
    let g = &s.gateways[0];
    assert_eq!(g.policies[1].tunnel, "t1");
    assert_eq!(g.policies[1].proxy_id, "dns");
    assert_eq!(g.policies[1].lifetime, std::time::Duration::from_secs(1800));
    assert_eq!(g.policies[1].local, dns.local);
}

#[test]
fn each_tunnel_maps_to_its_own_ipsec_profile() {
    // Issue 11: t1 (profile e: AES-256-GCM or AES-256-CBC, PFS group14, 30 min) and t2
    // (AES-128-CBC/SHA-256, no PFS, 1 h, 1 GB) on one gateway. Each tunnel's policies
    // carry their own profile's proposals and lifetime, not the merged set and the
    // shortest lifetime.
    let text = format!(
        "{BASE}
[ipsec-crypto-profile.e2]
encryption = [\"aes-128-cbc\"]
authentication = [\"sha256\"]
dh-group = \"no-pfs\"
lifetime = \"1h\"
lifesize = \"1GB\"
[tunnel-interface.\"tunnel.2\"]
zone = \"vpn\"
[ipsec-tunnel.t2]
tunnel-interface = \"tunnel.2\"
ike-gateway = \"gw\"
ipsec-crypto-profile = \"e2\"
proxy-id = [{{ name = \"lab\", local = \"10.1.7.0/24\", remote = \"10.4.0.0/24\" }}]
"
    );
    let s = setup_of(&text);
    assert!(s.skipped.is_empty(), "{:?}", s.skipped);
    let p = &s.peers[0];
    let names: Vec<&str> = p.policies.iter().map(|pol| pol.name()).collect();
    assert_eq!(names, ["t1/lan", "t1/dns", "t2/lab"]);
    let ids = |p: &Proposal, ty| p.of_type(ty).map(|t| t.id).collect::<Vec<_>>();
    let encrs = |pol: &ChildPolicy| {
        pol.proposals
            .iter()
            .flat_map(|p| p.of_type(TransformType::ENCR).map(|t| (t.id, t.key_len)))
            .collect::<Vec<_>>()
    };
    for t1 in &p.policies[..2] {
        assert_eq!(
            encrs(t1),
            [
                (EncrId::AES_GCM_16.0, Some(256)),
                (EncrId::AES_CBC.0, Some(256))
            ],
            "{}",
            t1.name()
        );
        assert!(
            t1.proposals
                .iter()
                .all(|x| ids(x, TransformType::KE) == [14])
        );
        assert_eq!(
            t1.lifetime.map(|l| l.lifetime),
            Some(std::time::Duration::from_secs(1800))
        );
    }
    let t2 = &p.policies[2];
    assert_eq!(encrs(t2), [(EncrId::AES_CBC.0, Some(128))]);
    assert_eq!(
        ids(&t2.proposals[0], TransformType::INTEG),
        [IntegId::HMAC_SHA2_256_128.0]
    );
    assert!(
        ids(&t2.proposals[0], TransformType::KE).is_empty(),
        "no-pfs"
    );
    assert_eq!(
        t2.lifetime.map(|l| l.lifetime),
        Some(std::time::Duration::from_secs(3600))
    );
    // The data plane's byte limit is the tunnel's too.
    let g = &s.gateways[0];
    assert_eq!(g.policies[0].lifesize, None);
    assert_eq!(g.policies[2].lifesize, Some(1 << 30));
    assert_eq!(g.policies[2].lifetime, std::time::Duration::from_secs(3600));
}

#[test]
fn no_proxy_id_means_any_both_families() {
    let text = BASE.replace("proxy-id = [", "x-proxy-id = [");
    let text: String = text
        .lines()
        .take_while(|l| !l.starts_with("x-proxy-id"))
        .collect::<Vec<_>>()
        .join("\n");
    let s = setup_of(&text);
    let pols = &s.peers[0].policies;
    assert_eq!(pols.len(), 2);
    assert_eq!(pols[0].name(), "t1/any-v4");
    assert_eq!(pols[1].name(), "t1/any-v6");
}

#[test]
fn unusable_gateways_are_skipped_with_a_reason() {
    let text = BASE.replace(
        "peer-address = \"198.51.100.2\"",
        "peer-address = \"peer.example\"",
    );
    // A name that does not resolve: served, pointed at no address, waiting for it.
    let s = setup_of(&text);
    assert!(s.skipped.is_empty(), "{:?}", s.skipped);
    assert_eq!(
        s.unresolved,
        vec![("gw".to_owned(), "peer.example".to_owned())]
    );
    assert_eq!(s.peers[0].peer_addr, Some("0.0.0.0".parse().unwrap()));
    assert_eq!(s.gateways[0].peer_address, None);
    assert_eq!(
        s.gateways[0].fqdn,
        Some((
            "peer.example".to_owned(),
            ferrosec_config::algo::AddressFamily::Ipv4
        ))
    );

    // It resolves: to an address of the gateway's family only.
    let resolved = engine_setup(&load(&text), &|n, family| {
        (n == "peer.example" && family == ferrosec_config::algo::AddressFamily::Ipv4)
            .then(|| "192.0.2.9".parse().unwrap())
    });
    assert!(resolved.unresolved.is_empty());
    assert_eq!(
        resolved.peers[0].peer_addr,
        Some("192.0.2.9".parse().unwrap())
    );
    assert_eq!(
        resolved.gateways[0].peer_address,
        Some("192.0.2.9".parse().unwrap())
    );

    let v1 = BASE.replace("[ike-gateway.gw]", "[ike-gateway.gw]\nversion = \"ikev1\"");
    let v1 = v1.replace("liveness-interval = \"7s\"", "").replace(
        "encryption = [\"aes-256-gcm\", \"aes-128-cbc\"]",
        "encryption = [\"aes-128-cbc\"]",
    );
    let s = setup_of(&v1);
    assert_eq!(s.peers.len(), 1, "an IKEv1 gateway is served");
    assert!(s.skipped.is_empty(), "{:?}", s.skipped);
    assert!(s.unserved.is_empty(), "{:?}", s.unserved);
    let v1 = s.gateways[0].ikev1.expect("IKEv1 settings");
    assert_eq!(v1.mode, ferrosec_ike::v1::Mode::Main);
    assert!(!s.gateways[0].ikev2_preferred);

    let pref = BASE
        .replace(
            "[ike-gateway.gw]",
            "[ike-gateway.gw]\nversion = \"ikev2-preferred\"\nexchange-mode = \"aggressive\"",
        )
        .replace(
            "encryption = [\"aes-256-gcm\", \"aes-128-cbc\"]",
            "encryption = [\"aes-128-cbc\"]",
        );
    let s = setup_of(&pref);
    assert!(s.unserved.is_empty(), "served whole: {:?}", s.unserved);
    assert!(s.gateways[0].ikev2_preferred);
    let v1 = s.gateways[0]
        .ikev1
        .expect("IKEv1 settings for the fallback");
    assert_eq!(v1.mode, ferrosec_ike::v1::Mode::Aggressive);
}

#[test]
fn passive_and_dynamic_gateways_only_respond() {
    let passive = BASE.replace("[ike-gateway.gw]", "[ike-gateway.gw]\npassive-mode = true");
    let s = setup_of(&passive);
    assert!(!s.gateways[0].may_initiate);
    assert!(!s.peers[0].restart_on_dead_peer);
    let dynamic = BASE.replace(
        "peer-address = \"198.51.100.2\"",
        "peer-address = \"dynamic\"",
    );
    let s = setup_of(&dynamic);
    assert_eq!(s.peers[0].peer_addr, None);
    assert!(!s.gateways[0].may_initiate);
}

#[test]
fn algorithm_names_are_the_configuration_words() {
    assert_eq!(
        encr_name(Some((EncrId::AES_GCM_16, Some(256)))),
        "aes-256-gcm"
    );
    assert_eq!(encr_name(Some((EncrId::AES_CBC, Some(128)))), "aes-128-cbc");
    assert_eq!(integ_name(None), "none");
    assert_eq!(integ_name(Some(IntegId::HMAC_SHA2_256_128)), "sha256");
    assert_eq!(prf_name(Some(PrfId::HMAC_SHA2_384)), "sha384");
    assert_eq!(group_name(Some(DhGroup::CURVE25519)), "group31");
    assert_eq!(group_name(None), "no-pfs");
    let mut addke = [DhGroup::NONE; 7];
    assert_eq!(ke_names(Some(DhGroup::CURVE25519), &addke), "group31");
    addke[0] = DhGroup::ML_KEM_768;
    assert_eq!(
        ke_names(Some(DhGroup::CURVE25519), &addke),
        "group31+ml-kem-768"
    );
    assert_eq!(
        child_encr_name(Some(Encryption::AesGcm {
            key_len: 32,
            icv_len: 16
        })),
        "aes-256-gcm"
    );
    assert_eq!(child_integ_name(Some(Integrity::HmacSha256_128)), "sha256");
    assert_eq!(child_encr_name(None), "none");
    assert_eq!(child_integ_name(None), "none");
}

/// A Child SA's algorithms are named exactly as the same transforms on the wire.
#[test]
fn child_sa_names_match_the_wire_names() {
    let mut all = vec![
        Encryption::Null,
        Encryption::Des,
        Encryption::TripleDes,
        Encryption::ChaCha20Poly1305,
    ];
    for key_len in [16, 24, 32] {
        all.push(Encryption::AesCbc { key_len });
        all.push(Encryption::AesCtr { key_len });
        for icv_len in [8, 12, 16] {
            all.push(Encryption::AesGcm { key_len, icv_len });
            all.push(Encryption::AesCcm { key_len, icv_len });
        }
    }
    for e in all {
        let (id, bits) = e.id();
        assert_eq!(
            child_encr_name(Some(e)),
            encr_name(Some((EncrId(id), bits))),
            "{e:?}"
        );
    }
    for i in Integrity::ALL {
        assert_eq!(
            child_integ_name(Some(i)),
            integ_name(Some(IntegId(i.id()))),
            "{i:?}"
        );
    }
}
