//! Every file in examples/ loads, and holds what it says.

use std::path::PathBuf;

use ferrosec_config::load_file;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

#[test]
fn appendix_a_loads() {
    let loaded = match load_file(&example("appendix-a.toml")) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    println!("{}", loaded.config.summary());
    for w in &loaded.warnings {
        println!("warning: {w}");
    }
}
