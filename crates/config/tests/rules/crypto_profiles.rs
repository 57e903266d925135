//! Validation rules: IKE and IPSec crypto profiles.

use crate::common::*;

#[test]
fn authentication_none_needs_an_aead_cipher() {
    let t = edit(
        &base(),
        "encryption = [\"aes-256-gcm\"]",
        "encryption = [\"aes-256-cbc\"]",
    );
    assert_error(
        &t,
        "ipsec-crypto-profile",
        Some("e1"),
        "authentication",
        "only with an AEAD cipher",
    );
    // GCM with none, CCM with none, and a mixed list with a hash for the CBC cipher are fine.
    ok(&edit(
        &base(),
        "encryption = [\"aes-256-gcm\"]",
        "encryption = [\"aes-128-ccm\"]",
    ));
    let mixed = edit(
        &base(),
        "encryption = [\"aes-256-gcm\"]",
        "encryption = [\"aes-256-gcm\", \"aes-256-cbc\"]",
    );
    ok(&edit(
        &mixed,
        "authentication = [\"none\"]",
        "authentication = [\"none\", \"sha256\"]",
    ));
    // null with none protects nothing.
    let t = edit(
        &base(),
        "encryption = [\"aes-256-gcm\"]",
        "encryption = [\"null\"]",
    );
    assert_error(
        &t,
        "ipsec-crypto-profile",
        Some("e1"),
        "authentication",
        "neither encrypted nor authenticated",
    );
}

#[test]
fn ah_takes_no_encryption_and_needs_a_hash() {
    let t = add(&base(), "[ipsec-crypto-profile.e1]", "protocol = \"ah\"");
    assert_error(
        &t,
        "ipsec-crypto-profile",
        Some("e1"),
        "encryption",
        "ESP only",
    );
    let t = edit(
        &base(),
        "encryption = [\"aes-256-gcm\"]\nauthentication = [\"none\"]",
        "protocol = \"ah\"\nauthentication = [\"none\"]",
    );
    assert_error(
        &t,
        "ipsec-crypto-profile",
        Some("e1"),
        "authentication",
        "protect nothing",
    );
}

#[test]
fn ah_with_nat_traversal_warns() {
    let t = edit(
        &base(),
        "encryption = [\"aes-256-gcm\"]\nauthentication = [\"none\"]",
        "protocol = \"ah\"\nauthentication = [\"sha256\"]",
    );
    assert!(ok(&t).warnings.is_empty());
    let t = add(&t, "[ike-gateway.gw1]", "nat-traversal = true");
    assert_warning(
        &ok(&t),
        "ipsec-tunnel",
        "t1",
        "ipsec-crypto-profile",
        "AH, which cannot cross NAT",
    );
}

#[test]
fn weak_algorithms_warn() {
    let t = edit(
        &base(),
        "dh-group = [\"group19\"]",
        "dh-group = [\"group1\", \"group5\"]",
    );
    let t = edit(
        &t,
        "authentication = [\"sha256\"]",
        "authentication = [\"md5\"]",
    );
    let t = edit(
        &t,
        "encryption = [\"aes-256-cbc\"]",
        "encryption = [\"des\", \"3des\"]",
    );
    let t = edit(&t, "dh-group = \"group19\"", "dh-group = \"group2\"");
    let l = ok(&t);
    assert_warning(&l, "ike-crypto-profile", "p1", "dh-group", "group1, group5");
    assert_warning(&l, "ike-crypto-profile", "p1", "authentication", "md5");
    assert_warning(&l, "ike-crypto-profile", "p1", "encryption", "des, 3des");
    assert_warning(&l, "ipsec-crypto-profile", "e1", "dh-group", "group2");
    assert_eq!(l.warnings.len(), 4, "{:#?}", l.warnings);
}

#[test]
fn unknown_algorithm_lists_the_allowed_ones() {
    let t = edit(
        &base(),
        "encryption = [\"aes-256-cbc\"]",
        "encryption = [\"aes256\"]",
    );
    let d = assert_error(
        &t,
        "ike-crypto-profile",
        Some("p1"),
        "encryption",
        "unknown value \"aes256\"",
    );
    assert!(d.fix.unwrap().contains("aes-256-cbc"));
}

#[test]
fn authentication_multiple_range() {
    let t = add(
        &base(),
        "[ike-crypto-profile.p1]",
        "authentication-multiple = 51",
    );
    assert_error(
        &t,
        "ike-crypto-profile",
        Some("p1"),
        "authentication-multiple",
        "51 is out of range",
    );
    let l = ok(&add(
        &base(),
        "[ike-crypto-profile.p1]",
        "authentication-multiple = 50",
    ));
    let p = &l.config.ike_crypto_profiles["p1"];
    assert_eq!(p.reauthentication_interval(), Some(p.lifetime * 50));
}

#[test]
fn lifetimes_and_sizes_are_checked() {
    let t = add(&base(), "[ike-crypto-profile.p1]", "lifetime = \"1m\"");
    assert_error(
        &t,
        "ike-crypto-profile",
        Some("p1"),
        "lifetime",
        "out of range",
    );
    let t = add(
        &base(),
        "[ipsec-crypto-profile.e1]",
        "lifetime = \"8 hours\"",
    );
    assert_error(
        &t,
        "ipsec-crypto-profile",
        Some("e1"),
        "lifetime",
        "unknown duration unit",
    );
    let t = add(&base(), "[ipsec-crypto-profile.e1]", "lifesize = \"50XB\"");
    assert_error(
        &t,
        "ipsec-crypto-profile",
        Some("e1"),
        "lifesize",
        "unknown size unit",
    );
}

#[test]
fn presets_can_be_used_but_suites_not_redefined() {
    let t = edit(
        &base(),
        "ike-crypto-profile = \"p1\"",
        "ike-crypto-profile = \"Suite-B-GCM-256\"",
    );
    let l = ok(&t);
    assert_eq!(l.config.ike_gateways["gw1"].crypto.name, "Suite-B-GCM-256");
    let t = edit(
        &base(),
        "[ike-crypto-profile.p1]",
        "[ike-crypto-profile.PRIME-128]",
    );
    let t = edit(
        &t,
        "ike-crypto-profile = \"p1\"",
        "ike-crypto-profile = \"PRIME-128\"",
    );
    assert_error(
        &t,
        "ike-crypto-profile",
        Some("PRIME-128"),
        "name",
        "built-in preset and cannot be redefined",
    );
    // `default` may be redefined: the file's definition wins and does not warn.
    let t = edit(
        &base(),
        "[ike-crypto-profile.p1]",
        "[ike-crypto-profile.default]",
    );
    let t = edit(
        &t,
        "ike-crypto-profile = \"p1\"",
        "ike-crypto-profile = \"default\"",
    );
    let l = ok(&t);
    let p = &l.config.ike_gateways["gw1"].crypto;
    assert!(!p.builtin);
    assert_eq!(
        p.encryption,
        [ferrosec_config::algo::IkeEncryption::Aes256Cbc]
    );
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn built_in_default_warns_when_used() {
    let t = edit(&base(), "ike-crypto-profile = \"p1\"\n", "");
    let l = ok(&t);
    assert!(l.config.ike_gateways["gw1"].crypto.builtin);
    assert_warning(&l, "ike-crypto-profile", "default", "encryption", "3des");
    assert_warning(&l, "ike-crypto-profile", "default", "dh-group", "group2");
}

#[test]
fn prime_is_ikev2_only() {
    for version in ["ikev1", "ikev2-preferred"] {
        let t = edit(
            &base(),
            "version = \"ikev2\"",
            &format!("version = \"{version}\""),
        );
        let t = edit(
            &t,
            "ike-crypto-profile = \"p1\"",
            "ike-crypto-profile = \"PRIME-256\"",
        );
        assert_error(
            &t,
            "ike-gateway",
            Some("gw1"),
            "ike-crypto-profile",
            "IKEv2 only",
        );
        let t = edit(
            &base(),
            "version = \"ikev2\"",
            &format!("version = \"{version}\""),
        );
        let t = edit(
            &t,
            "ipsec-crypto-profile = \"e1\"",
            "ipsec-crypto-profile = \"PRIME-128\"",
        );
        assert_error(
            &t,
            "ipsec-tunnel",
            Some("t1"),
            "ipsec-crypto-profile",
            "IKEv2 only",
        );
    }
    // Suite B works with IKEv1.
    let t = edit(&base(), "version = \"ikev2\"", "version = \"ikev1\"");
    ok(&edit(
        &t,
        "ike-crypto-profile = \"p1\"",
        "ike-crypto-profile = \"Suite-B-GCM-128\"",
    ));
}

#[test]
fn ike_gcm_and_curve25519_need_ikev2() {
    let v1 = edit(&base(), "version = \"ikev2\"", "version = \"ikev1\"");
    let t = edit(
        &v1,
        "encryption = [\"aes-256-cbc\"]",
        "encryption = [\"aes-256-gcm\"]",
    );
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "ike-crypto-profile",
        "IKEv1 does not support",
    );
    let t = edit(&v1, "dh-group = [\"group19\"]", "dh-group = [\"group31\"]");
    assert_error(
        &t,
        "ike-gateway",
        Some("gw1"),
        "ike-crypto-profile",
        "group31",
    );
}
