//! The `ferrosec` binary end to end: `config check`, and a daemon driven over its control socket.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ferrosec");

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn ferrosec(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("FERROSEC_SOCKET")
        .output()
        .expect("run ferrosec")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The Appendix A file with the socket and log moved into `dir`.
fn appendix_a_in(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let original = std::fs::read_to_string(examples().join("appendix-a.toml")).unwrap();
    let socket = dir.join("ferrosec.sock");
    let log = dir.join("log/system.log");
    let text = original
        .replace("/run/ferrosec/ferrosec.sock", socket.to_str().unwrap())
        .replace("/var/log/ferrosec/system.log", log.to_str().unwrap());
    assert_ne!(
        text, original,
        "appendix-a.toml no longer names the default socket and log"
    );
    let file = dir.join("gw.toml");
    std::fs::write(&file, text).unwrap();
    (file, socket, log)
}

#[test]
fn config_check_prints_the_objects_and_exits_zero() {
    let out = ferrosec(&[
        "config",
        "check",
        examples().join("appendix-a.toml").to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for needle in [
        "branch1",
        "hq-ike",
        "hq-esp",
        "tunnel.1",
        "to-branch1",
        "configuration is valid",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    assert!(
        !stdout.contains("correct horse battery staple"),
        "the PSK was printed:\n{stdout}"
    );
}

#[test]
fn config_check_json_is_machine_readable() {
    let out = ferrosec(&[
        "--json",
        "config",
        "check",
        examples().join("appendix-a.toml").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["valid"], true);
    assert_eq!(v["served"], true);
    assert!(v["summary"].is_object(), "{v}");
    assert!(!text(&out.stdout).contains("correct horse battery staple"));
}

#[test]
fn config_check_fails_with_the_position_and_never_prints_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _, _) = appendix_a_in(dir.path());
    let broken = std::fs::read_to_string(&file).unwrap().replace(
        "pre-shared-key = \"correct horse battery staple\"",
        "pre-shared-key = \"short7!\"",
    );
    std::fs::write(&file, broken).unwrap();
    let out = ferrosec(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("gw.toml:"), "no file position: {stderr}");
    assert!(
        stderr.contains("branch1") && stderr.contains("pre-shared-key"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("short7!"),
        "the PSK leaked into the error: {stderr}"
    );

    std::fs::write(&file, "[ike-gateway.x\nversion = 2").unwrap();
    let out = ferrosec(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("gw.toml:1:"),
        "{}",
        text(&out.stderr)
    );
}

/// The Appendix A file with its gateway made IKEv1 (without the IKEv2-only keys).
fn ikev1_appendix_a_in(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (file, socket, log) = appendix_a_in(dir);
    let v1 = std::fs::read_to_string(&file)
        .unwrap()
        .replace("version = \"ikev2\" ", "version = \"ikev1\" ")
        .lines()
        .filter(|l| {
            !l.starts_with("liveness-interval") && !l.starts_with("strict-cookie-validation")
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(v1.contains("version = \"ikev1\""));
    std::fs::write(&file, v1).unwrap();
    (file, socket, log)
}

#[test]
fn config_check_serves_an_ikev1_gateway() {
    // IKEv1 gateways are served: config check calls the file valid (exit 0), naming only the
    // settings this build ignores (Appendix A's fragmentation), and the
    // daemon leaves nothing of it out.
    let dir = tempfile::tempdir().unwrap();
    let (file, socket, _) = ikev1_appendix_a_in(dir.path());
    let out = ferrosec(&["config", "check", file.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(!stdout.contains("not served"), "{stdout}");
    assert!(stdout.contains("configuration is valid"), "{stdout}");

    let daemon = Daemon::start(&file, &socket);
    wait_for("the daemon's start in its log", || {
        text(&daemon.cli(&["show", "system", "log"]).stdout).contains("daemon: started")
    });
    let log = text(&daemon.cli(&["show", "system", "log"]).stdout);
    assert!(!log.contains("not served"), "{log}");
}

#[test]
fn config_check_names_the_settings_this_build_ignores() {
    // Appendix A is served in full now: its tunnel monitor runs and IKE fragmentation
    // (RFC 7383) is built, so the file is valid (exit 0) with no warning for either.
    let out = ferrosec(&[
        "config",
        "check",
        examples().join("appendix-a.toml").to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    assert!(!stdout.contains("warning: ignored"), "{stdout}");
}

#[test]
fn show_without_a_daemon_says_so_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock");
    let out = ferrosec(&[
        "--socket",
        socket.to_str().unwrap(),
        "show",
        "vpn",
        "ike-sa",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no ferrosec daemon is running at"),
        "{stderr}"
    );
    assert!(stderr.contains(socket.to_str().unwrap()), "{stderr}");
}

/// A daemon started by the test, stopped (by PID) when dropped.
struct Daemon {
    child: Child,
    socket: PathBuf,
}

impl Daemon {
    fn start(config: &Path, socket: &Path) -> Self {
        let child = Command::new(BIN)
            .args(["run", "-c", config.to_str().unwrap()])
            // The host's namespace: no TUN devices or routes from a test.
            .env("FERROSEC_NO_DATAPLANE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start daemon");
        let daemon = Self {
            child,
            socket: socket.to_owned(),
        };
        wait_for("the control socket", || socket.exists());
        daemon
    }

    fn cli(&self, args: &[&str]) -> Output {
        let mut all = vec!["--socket", self.socket.to_str().unwrap()];
        all.extend_from_slice(args);
        ferrosec(&all)
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn daemon_serves_show_commands_reloads_safely_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (config, socket, log) = appendix_a_in(dir.path());
    let mut daemon = Daemon::start(&config, &socket);

    // show vpn tunnel: the configured tunnel, not yet up.
    let out = daemon.cli(&["--json", "show", "vpn", "tunnel"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["tunnel"], "to-branch1");
    assert_eq!(rows[0]["interface"], "tunnel.1");
    assert_eq!(rows[0]["gateway"], "branch1");
    assert_eq!(rows[0]["proxy-ids"], 2);
    assert_eq!(rows[0]["state"], "down");
    // Its tunnel monitor needs the data plane (off in this test): not running, and said so.
    assert_eq!(rows[0]["monitor"], "none");
    assert_eq!(rows[0]["misses"], 0);
    assert_eq!(rows[0]["last-reply"], serde_json::Value::Null);
    assert_eq!(rows[0]["rtt"], serde_json::Value::Null);
    assert_eq!(rows[0]["routes"], "none");
    wait_for("the monitor's line in the log", || {
        text(&daemon.cli(&["show", "system", "log"]).stdout)
            .contains("ipsec-tunnel to-branch1: tunnel monitor not started: the data plane")
    });

    // The table form for people.
    let out = daemon.cli(&["show", "vpn", "tunnel"]);
    let table = text(&out.stdout);
    assert!(
        table.lines().next().unwrap().starts_with("tunnel"),
        "{table}"
    );
    assert!(
        table.contains("to-branch1") && table.contains("1 tunnel(s)"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .ends_with("monitor  misses  last-reply  rtt  routes  mtu"),
        "{table}"
    );

    // Key export is off unless the file allows it: refused in words, nothing written.
    let keys = dir.path().join("keys");
    let out = daemon.cli(&[
        "request",
        "vpn",
        "export-keys",
        "--wireshark",
        keys.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("key export is off: set allow-key-export = true in [global]"),
        "{}",
        text(&out.stderr)
    );
    assert!(!keys.exists(), "nothing written");

    // show system info: this daemon, its file, what it runs; metrics off.
    let out = daemon.cli(&["--json", "show", "system", "info"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info[0]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info[0]["pid"], daemon.child.id());
    assert_eq!(info[0]["config-file"], config.display().to_string());
    assert_eq!(info[0]["gateways"], 1);
    assert_eq!(info[0]["tunnels"], 1);
    assert_eq!(info[0]["ike-sas"], 0);
    assert_eq!(info[0]["metrics"], serde_json::Value::Null);
    assert!(info[0]["uptime"].is_u64(), "{info}");
    assert_eq!(info[0]["ipsec-sa-pairs"], 0);
    // The build's features (the metrics' build_info has the same list) and profile.
    let features: Vec<&str> = info[0]["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for f in [
        "ikev2",
        "ikev1",
        "esp",
        "ah",
        "nat-t",
        "tunnel-monitor",
        "metrics",
    ] {
        assert!(features.contains(&f), "{f} missing: {info}");
    }
    assert!(
        ["debug", "release"].contains(&info[0]["profile"].as_str().unwrap()),
        "{info}"
    );
    let table = text(&daemon.cli(&["show", "system", "info"]).stdout);
    assert!(
        table.contains("ike-gateways") && table.contains("metrics") && table.contains("off"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("features") && l.contains("ikev2,ikev1,esp,ah")),
        "{table}"
    );

    // No SAs yet; an unknown gateway is named with the ones that exist.
    let out = daemon.cli(&["--json", "show", "vpn", "ike-sa"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
    let out = daemon.cli(&["show", "vpn", "ike-sa", "gateway", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("ike-gateway \"nope\" is not configured; configured: branch1"),
        "{stderr}"
    );

    // IKE commands reach the IKE task: nothing to clear yet; unknown names are refused.
    let out = daemon.cli(&["clear", "vpn", "ike-sa"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("cleared 0 IKE SA(s)"),
        "{}",
        text(&out.stdout)
    );
    let out = daemon.cli(&[
        "request",
        "vpn",
        "rekey",
        "ipsec-sa",
        "tunnel",
        "to-branch1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("has no IPsec SA to rekey"),
        "{}",
        text(&out.stderr)
    );
    let out = daemon.cli(&["test", "vpn", "ike-sa", "gateway", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is not configured"));

    // The system log, in memory and in the file.
    let out = daemon.cli(&["show", "system", "log"]);
    assert!(text(&out.stdout).contains("daemon: started: 1 ike-gateway(s), 1 ipsec-tunnel(s)"));
    assert!(std::fs::read_to_string(&log).unwrap().contains("started"));

    // A good file with a changed gateway (SIGHUP): applied, the change named with what was
    // done (no IKE SA was up), the key never printed.
    let good = std::fs::read_to_string(&config).unwrap();
    let changed = good.replace("correct horse battery staple", "another long shared key");
    assert_ne!(changed, good);
    std::fs::write(&config, &changed).unwrap();
    daemon.signal("HUP");
    wait_for("the reload naming the changed gateway", || {
        let log = text(&daemon.cli(&["show", "system", "log"]).stdout);
        log.contains(
            "reload: ike-gateway branch1 (changed): settings changed: no IKE SA was up; the \
             new settings are used from the next negotiation",
        ) && log.contains("1 change(s) applied")
    });
    let log_text = text(&daemon.cli(&["show", "system", "log"]).stdout);
    assert!(
        !log_text.contains("another long shared key"),
        "a key in the log"
    );
    // The same file as the one in force now, by `request system reload`: no change.
    let out = daemon.cli(&["request", "system", "reload"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "no change");
    // Back to the first file: applied again, and said so on the CLI.
    std::fs::write(&config, &good).unwrap();
    let out = daemon.cli(&["request", "system", "reload"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("reload: ike-gateway branch1 (changed)"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        !text(&out.stdout).contains("correct horse"),
        "a key printed"
    );
    daemon.signal("HUP");
    wait_for("the reload with no change", || {
        text(&daemon.cli(&["show", "system", "log"]).stdout).contains(": no change")
    });
    // A broken file by `request system reload`: refused with the errors, exit 1.
    std::fs::write(&config, "[ike-gateway.broken\n").unwrap();
    let out = daemon.cli(&["request", "system", "reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("reload rejected, the running configuration stays in force"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&config, &good).unwrap();

    // A broken file on SIGHUP is rejected and logged; the running configuration stays.
    std::fs::write(&config, "[ike-gateway.broken\n").unwrap();
    daemon.signal("HUP");
    wait_for("the rejected reload in the log", || {
        text(&daemon.cli(&["show", "system", "log"]).stdout).contains("reload rejected")
    });
    let out = daemon.cli(&["--json", "show", "vpn", "tunnel"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rows[0]["tunnel"], "to-branch1",
        "the running configuration was lost"
    );

    // SIGTERM: a clean exit that removes the socket.
    daemon.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "daemon ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "the control socket was left behind");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("stopping on SIGTERM")
    );
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (config, socket, _) = appendix_a_in(dir.path());
    let _first = Daemon::start(&config, &socket);
    let out = Command::new(BIN)
        .args(["run", "-c", config.to_str().unwrap()])
        .env("FERROSEC_NO_DATAPLANE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("another ferrosec daemon is already running"));
}

/// `ferrosec pki`: a CA, two gateway certificates (ECDSA P-256 with FQDN and IP SANs, and
/// RSA-3072), PEM files the configuration reads: `config check` accepts both sites of the
/// demo with them in place of the pre-shared key, the local ID defaulting or given as the SAN;
/// files are never overwritten; a suite whose curve the key is not on is a warning.
#[test]
fn pki_makes_a_ca_and_gateway_certificates_that_config_check_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).display().to_string();
    let out = ferrosec(&[
        "pki",
        "ca",
        "create",
        "--subject",
        "CN=Example VPN CA, O=Example",
        "--out",
        &d("ca"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("subject     CN=Example VPN CA, O=Example"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("ca/ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the CA key is private");
    for (site, wan, key) in [
        ("site-a", "198.51.100.1", "ecdsa-p256"),
        ("site-b", "198.51.100.2", "rsa-3072"),
    ] {
        let out = ferrosec(&[
            "--json",
            "pki",
            "cert",
            "issue",
            "--ca",
            &d("ca"),
            "--subject",
            &format!("CN={site}.example.net, O=Example"),
            "--san",
            &format!("fqdn:{site}.example.net"),
            "--san",
            &format!("ip:{wan}"),
            "--key",
            key,
            "--out",
            &d(site),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["issuer"], "CN=Example VPN CA, O=Example");
        assert_eq!(
            v["san"],
            serde_json::json!([format!("fqdn:{site}.example.net"), format!("ip:{wan}")])
        );
        assert_eq!(v["certificate"], d(&format!("{site}/cert.pem")));
    }
    // Each site's example file with its certificate instead of the pre-shared key.
    for site in ["site-a", "site-b"] {
        let original = std::fs::read_to_string(examples().join(format!("{site}.toml"))).unwrap();
        let conf: String = original
            .lines()
            .map(|l| {
                if l.starts_with("pre-shared-key = ") {
                    format!(
                        "certificate = {{ local = \"{site}/cert.pem\", key = \"{site}/key.pem\", ca = [\"{site}/ca.pem\"] }}"
                    )
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_ne!(conf, original);
        let file = dir.path().join(format!("{site}.toml"));
        std::fs::write(&file, &conf).unwrap();
        let out = ferrosec(&["config", "check", file.to_str().unwrap()]);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{site}: {stdout}{}",
            text(&out.stderr)
        );
        assert!(stdout.contains("auth certificate"), "{stdout}");
        assert!(
            stdout.contains("configuration is valid; 0 warnings"),
            "{stdout}"
        );
        // PRIME-256 wants P-384: site-a's P-256 key and site-b's RSA key are named.
        let suite = conf.replace(
            "ike-crypto-profile = \"demo-ike\"",
            "ike-crypto-profile = \"PRIME-256\"",
        );
        std::fs::write(&file, suite).unwrap();
        let out = ferrosec(&["config", "check", file.to_str().unwrap()]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        assert!(
            stdout.contains("field \"certificate.local\": ike-crypto-profile \"PRIME-256\" authenticates with ECDSA P-384"),
            "{site}: {stdout}"
        );
    }
    // Never over an existing file.
    let out = ferrosec(&[
        "pki",
        "cert",
        "issue",
        "--ca",
        &d("ca"),
        "--subject",
        "CN=again",
        "--out",
        &d("site-a"),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("exists already"),
        "{}",
        text(&out.stderr)
    );
    // A subject without CN, a SAN without a type: said plainly.
    let out = ferrosec(&[
        "pki",
        "ca",
        "create",
        "--subject",
        "O=Example",
        "--out",
        &d("x"),
    ]);
    assert!(
        text(&out.stderr).contains("has no CN"),
        "{}",
        text(&out.stderr)
    );
    let out = ferrosec(&[
        "pki",
        "cert",
        "issue",
        "--ca",
        &d("ca"),
        "--subject",
        "CN=y",
        "--san",
        "y.example",
        "--out",
        &d("y"),
    ]);
    assert!(
        text(&out.stderr).contains("has no type"),
        "{}",
        text(&out.stderr)
    );
}
