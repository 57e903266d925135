//! Validation rules: global settings.

use crate::common::*;

#[test]
fn cookie_threshold_below_max_half_open() {
    let t = format!(
        "[global]\ncookie-activation-threshold = 1000\nmax-half-opened-sa = 1000\n{}",
        base()
    );
    let d = assert_error(
        &t,
        "global",
        None,
        "cookie-activation-threshold",
        "not lower than max-half-opened-sa",
    );
    assert_eq!(d.position.unwrap().line, 2);
    let l = ok(&format!(
        "[global]\ncookie-activation-threshold = 0\nmax-half-opened-sa = 1000\n{}",
        base()
    ));
    assert_eq!(l.config.global.cookie_activation_threshold, 0);
}

/// `esp-packet-ring`, `esp-packet-socket` and `esp-early-drop`: on by default, each one off
/// alone; the early drop asked for explicitly without the ring is an error naming both keys,
/// and left to its default it follows the ring.
#[test]
fn raw_esp_paths() {
    use ferrosec_config::RawEspPaths;
    let paths = |global: &str| {
        ok(&format!("[global]\n{global}{}", base()))
            .config
            .global
            .raw_esp
    };
    assert_eq!(paths(""), RawEspPaths::default());
    assert_eq!(
        RawEspPaths::default(),
        RawEspPaths {
            packet_ring: true,
            packet_socket: true,
            early_drop: true
        }
    );
    assert_eq!(
        paths("esp-packet-socket = false\n"),
        RawEspPaths {
            packet_socket: false,
            ..RawEspPaths::default()
        }
    );
    assert_eq!(
        paths("esp-early-drop = false\n"),
        RawEspPaths {
            early_drop: false,
            ..RawEspPaths::default()
        }
    );
    assert_eq!(
        paths("esp-packet-ring = false\n"),
        RawEspPaths {
            packet_ring: false,
            packet_socket: true,
            early_drop: false
        },
        "no ring, nothing to drop early"
    );
    let t = format!(
        "[global]\nesp-packet-ring = false\nesp-early-drop = true\n{}",
        base()
    );
    let d = assert_error(
        &t,
        "global",
        None,
        "esp-early-drop",
        "esp-packet-ring is false",
    );
    assert_eq!(d.position.unwrap().line, 3);
    let fix = d.fix.unwrap_or_default();
    assert!(fix.contains("esp-packet-ring = true"), "{fix}");

    // The summary (`config check`) says what is off, and that IPv6 then loses its ring.
    let summary = |global: &str| {
        ok(&format!("[global]\n{global}{}", base()))
            .config
            .summary()
            .to_string()
    };
    let all = summary("");
    assert!(!all.contains("kernel's IP layer"), "{all}");
    let no_drop = summary("esp-early-drop = false\n");
    assert!(
        no_drop.contains("raw ESP through the kernel's IP layer: esp-early-drop off"),
        "{no_drop}"
    );
    assert!(
        no_drop.contains("raw ESP over IPv6 received through the raw socket"),
        "{no_drop}"
    );
    let no_ring = summary("esp-packet-ring = false\n");
    assert!(
        no_ring.contains("esp-packet-ring, esp-early-drop off"),
        "{no_ring}"
    );
    assert!(!no_ring.contains("over IPv6"), "{no_ring}");
}
