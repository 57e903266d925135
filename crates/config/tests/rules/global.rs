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
