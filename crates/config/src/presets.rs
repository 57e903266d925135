//! Built-in presets (R-CFG-3), usable by name without being defined.
//!
//! * `default` (IKE and IPSec): the profiles a PAN-OS firewall ships. The seeds name group2 as
//!   the default DH group and 8 hours as the default IKE lifetime; the algorithm lists are those
//!   of PAN-OS' shipped `default` profiles: IKE aes-128-cbc + 3des, sha1, group2, 8h; IPSec ESP
//!   aes-128-cbc + 3des, sha1, PFS group2, 1h. They contain 3des and group2, so **using** them
//!   warns like any profile with those algorithms (a defined but unused preset does not).
//! * `Suite-B-GCM-128` / `Suite-B-GCM-256` (RFC 6379 §3.2/3.4, seed: Junos): IKE AES-CBC-128 +
//!   SHA-256 + group19 / AES-CBC-256 + SHA-384 + group20; ESP AES-GCM-128/256 (16-octet ICV),
//!   PFS with the same group. IKEv1 and IKEv2.
//! * `PRIME-128` / `PRIME-256` (seed: Junos): IKE AES-GCM-128 + PRF-SHA-256 + group19 /
//!   AES-GCM-256 + PRF-SHA-384 + group20; ESP AES-GCM-128/256. **IKEv2 only**: an IKEv1 or
//!   ikev2-preferred gateway using them is an error.
//!
//! RFC 6379 names no lifetimes; the suites use the PAN-OS defaults (IKE 8h, IPSec 1h). The
//! suites' ECDSA authentication is a gateway matter (`certificate`), not part of a profile: a
//! gateway whose IKE profile is a suite and whose certificate's key is not ECDSA on the
//! suite's curve ([`suite_curve`]: P-256 for the 128-bit suites, P-384 for the 256-bit ones,
//! RFC 6380 §3) gets a warning naming the key, the curve and the fix.
//!
//! A profile defined in the file named `default` replaces the built-in one (PAN-OS lets the
//! `default` profiles be edited). Defining a profile named like a suite is an error: those names
//! stand for fixed RFC suites, and a different meaning would mislead whoever reads the file.

use std::time::Duration;

use crate::algo::MonitorAction;
use crate::algo::{
    DhGroup, EspEncryption, HashAlgorithm, IkeEncryption, IpsecAuthentication, IpsecProtocol,
};
use crate::model::{Esn, IkeCryptoProfile, IpsecCryptoProfile, MonitorProfile};

/// The name of the built-in `default` profiles (IKE, IPSec and monitor).
pub const DEFAULT: &str = "default";

/// The names of the built-in crypto presets, in documentation order.
pub const PRESET_NAMES: &[&str] = &[
    "default",
    "Suite-B-GCM-128",
    "Suite-B-GCM-256",
    "PRIME-128",
    "PRIME-256",
];

/// Whether a preset is usable with IKEv2 only.
pub fn is_ikev2_only(name: &str) -> bool {
    matches!(name, "PRIME-128" | "PRIME-256")
}

/// The ECDSA curve (bits) a suite authenticates with (RFC 6380 §3, and the PRIME suites of the
/// same strength): P-256 for Suite-B-GCM-128 and PRIME-128, P-384 for Suite-B-GCM-256 and
/// PRIME-256; `None` for `default` and for any other name.
pub fn suite_curve(name: &str) -> Option<u16> {
    match name {
        "Suite-B-GCM-128" | "PRIME-128" => Some(256),
        "Suite-B-GCM-256" | "PRIME-256" => Some(384),
        _ => None,
    }
}

/// The suite of the same family with the other strength: what a key of the other curve fits.
pub(crate) fn sibling_suite(name: &str) -> &'static str {
    match name {
        "Suite-B-GCM-128" => "Suite-B-GCM-256",
        "Suite-B-GCM-256" => "Suite-B-GCM-128",
        "PRIME-128" => "PRIME-256",
        _ => "PRIME-128",
    }
}

/// Whether a name is reserved for a suite (cannot be redefined; `default` can).
pub fn is_reserved_suite(name: &str) -> bool {
    PRESET_NAMES.contains(&name) && name != DEFAULT
}

const HOUR: u64 = 3600;

/// The built-in IKE crypto profile of that name.
pub fn ike_preset(name: &str) -> Option<IkeCryptoProfile> {
    let (dh, auth, enc) = match name {
        "default" => (
            vec![DhGroup::Group2],
            vec![HashAlgorithm::Sha1],
            vec![IkeEncryption::Aes128Cbc, IkeEncryption::TripleDes],
        ),
        "Suite-B-GCM-128" => (
            vec![DhGroup::Group19],
            vec![HashAlgorithm::Sha256],
            vec![IkeEncryption::Aes128Cbc],
        ),
        "Suite-B-GCM-256" => (
            vec![DhGroup::Group20],
            vec![HashAlgorithm::Sha384],
            vec![IkeEncryption::Aes256Cbc],
        ),
        "PRIME-128" => (
            vec![DhGroup::Group19],
            vec![HashAlgorithm::Sha256],
            vec![IkeEncryption::Aes128Gcm],
        ),
        "PRIME-256" => (
            vec![DhGroup::Group20],
            vec![HashAlgorithm::Sha384],
            vec![IkeEncryption::Aes256Gcm],
        ),
        _ => return None,
    };
    Some(IkeCryptoProfile {
        name: name.to_owned(),
        builtin: true,
        dh_groups: dh,
        authentication: auth,
        encryption: enc,
        lifetime: Duration::from_secs(8 * HOUR),
        authentication_multiple: 0,
        additional_key_exchange: Vec::new(),
    })
}

/// The built-in IPSec crypto profile of that name.
pub fn ipsec_preset(name: &str) -> Option<IpsecCryptoProfile> {
    let (enc, auth, pfs) = match name {
        "default" => (
            vec![EspEncryption::Aes128Cbc, EspEncryption::TripleDes],
            vec![IpsecAuthentication::Sha1],
            DhGroup::Group2,
        ),
        "Suite-B-GCM-128" | "PRIME-128" => (
            vec![EspEncryption::Aes128Gcm],
            vec![IpsecAuthentication::None],
            DhGroup::Group19,
        ),
        "Suite-B-GCM-256" | "PRIME-256" => (
            vec![EspEncryption::Aes256Gcm],
            vec![IpsecAuthentication::None],
            DhGroup::Group20,
        ),
        _ => return None,
    };
    Some(IpsecCryptoProfile {
        name: name.to_owned(),
        builtin: true,
        protocol: IpsecProtocol::Esp,
        encryption: enc,
        authentication: auth,
        pfs: Some(pfs),
        lifetime: Duration::from_secs(HOUR),
        lifesize: None,
        esn: Esn::Either,
        additional_key_exchange: Vec::new(),
    })
}

/// The built-in monitor profile `default`: PAN-OS' shipped one (wait-recover, 3 s, 5 misses).
pub fn monitor_preset(name: &str) -> Option<MonitorProfile> {
    (name == DEFAULT).then(|| MonitorProfile {
        name: DEFAULT.to_owned(),
        builtin: true,
        interval: Duration::from_secs(3),
        threshold: 5,
        action: MonitorAction::WaitRecover,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_exists_in_both_kinds() {
        for name in PRESET_NAMES {
            let ike = ike_preset(name).unwrap();
            let esp = ipsec_preset(name).unwrap();
            assert!(ike.builtin && esp.builtin);
            assert_eq!(ike.lifetime, Duration::from_secs(28_800));
            assert_eq!(esp.lifetime, Duration::from_secs(3600));
        }
        assert!(ike_preset("Suite-B-GCM-129").is_none());
    }

    #[test]
    fn pan_os_defaults() {
        let ike = ike_preset("default").unwrap();
        assert_eq!(ike.dh_groups, [DhGroup::Group2]);
        assert_eq!(
            ike.encryption,
            [IkeEncryption::Aes128Cbc, IkeEncryption::TripleDes]
        );
        let esp = ipsec_preset("default").unwrap();
        assert_eq!(esp.pfs, Some(DhGroup::Group2));
        assert_eq!(esp.authentication, [IpsecAuthentication::Sha1]);
    }

    #[test]
    fn rfc6379_and_prime() {
        assert_eq!(
            ike_preset("Suite-B-GCM-256").unwrap().authentication,
            [HashAlgorithm::Sha384]
        );
        assert_eq!(
            ike_preset("PRIME-128").unwrap().encryption,
            [IkeEncryption::Aes128Gcm]
        );
        assert_eq!(
            ipsec_preset("PRIME-256").unwrap().encryption,
            [EspEncryption::Aes256Gcm]
        );
        assert!(is_ikev2_only("PRIME-256") && !is_ikev2_only("Suite-B-GCM-128"));
        assert!(is_reserved_suite("PRIME-128") && !is_reserved_suite("default"));
    }
}
