//! One test per validation rule: each breaks a valid file in one way and checks that the error
//! names the object, the field, what is wrong and gives a fix (and a position in the file).

#[path = "../common/mod.rs"]
mod common;

mod config_payload;
mod crypto_profiles;
mod gateways;
mod global;
mod interfaces;
mod references;
mod security_rules;
mod syntax;
mod tunnels;

use common::*;

#[test]
fn base_is_valid_and_clean() {
    let l = ok(&base());
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}
