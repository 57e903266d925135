//! `ferrosec demo`: two sites in network namespaces, an IKEv2 tunnel between two ferrosec
//! gateways, traffic through it, the `show` tables, and nothing left behind.
//!
//! ```text
//!  a-host 10.1.0.10 ─eth1─ a-gw 198.51.100.1 ══ wan ══ 198.51.100.2 b-gw ─eth1─ b-host 10.2.0.10
//! ```
//!
//! The gateways run `examples/site-a.toml` and `examples/site-b.toml` (built into the binary),
//! with their control sockets and logs moved into a private directory. The gateways have no
//! route to the other LAN except through `tunnel.1`, so a reply proves the tunnel carried it.
//! Everything the demo creates (namespaces, processes, files) is removed at the end, also after
//! an error or Ctrl-C.
//!
//! `ferrosec demo --certificates` first makes a CA and a certificate for each gateway with
//! `ferrosec pki` (ECDSA P-256, SANs the gateways' FQDN IDs and WAN addresses), and the
//! gateways authenticate with them instead of the pre-shared key; `show vpn ike-sa` then
//! names the methods and both certificates.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The example configurations, as shipped.
const SITE_A: &str = include_str!("../../../examples/site-a.toml");
const SITE_B: &str = include_str!("../../../examples/site-b.toml");

const A_HOST: &str = "10.1.0.10";
const B_HOST: &str = "10.2.0.10";
/// Port of the TCP transfer inside b-host's namespace.
const TCP_PORT: u16 = 5201;
/// Bytes sent through the tunnel in the TCP step.
const TCP_BYTES: u64 = 64 * 1024 * 1024;

/// One link: (namespace A, interface A, address A, namespace B, interface B, address B).
type Link = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const LINKS: [Link; 3] = [
    (
        "a-gw",
        "eth1",
        "10.1.0.1/24",
        "a-host",
        "eth0",
        "10.1.0.10/24",
    ),
    (
        "a-gw",
        "eth0",
        "198.51.100.1/24",
        "b-gw",
        "eth0",
        "198.51.100.2/24",
    ),
    (
        "b-gw",
        "eth1",
        "10.2.0.1/24",
        "b-host",
        "eth0",
        "10.2.0.10/24",
    ),
];

/// What the demo created, removed on drop whatever happened.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    daemons: Vec<(String, Child)>,
    dir: PathBuf,
    start: Instant,
    interrupted: Arc<AtomicBool>,
}

impl Lab {
    fn ns(&self, role: &str) -> String {
        format!("{}{role}", self.prefix)
    }

    fn step(&self, what: &str) -> anyhow::Result<()> {
        if self.interrupted.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        println!("[{:5.1}s] {what}", self.start.elapsed().as_secs_f64());
        Ok(())
    }

    /// Runs a command to completion inside a namespace; fails with its output.
    fn run_in(&self, role: &str, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(role)])
            .args(args)
            .output()
            .with_context(|| format!("running {args:?} in {}", self.ns(role)))?;
        if !out.status.success() {
            bail!(
                "{} in {} failed: {}{}",
                args.join(" "),
                self.ns(role),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn socket(&self, site: &str) -> PathBuf {
        self.dir.join(format!("{site}.sock"))
    }

    /// `ferrosec --socket … ARGS` for one site; the output, or the error it printed.
    fn cli(&self, site: &str, args: &[&str]) -> anyhow::Result<String> {
        cli_at(&self.socket(site), args)
    }

    fn build_topology(&mut self) -> anyhow::Result<()> {
        for role in ["a-host", "a-gw", "b-gw", "b-host"] {
            let ns = self.ns(role);
            ip(&["netns", "add", &ns])?;
            self.namespaces.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        for (na, ia, aa, nb, ib, ab) in LINKS {
            let (na, nb) = (self.ns(na), self.ns(nb));
            ip(&[
                "link", "add", ia, "netns", &na, "type", "veth", "peer", "name", ib, "netns", &nb,
            ])?;
            for (ns, dev, addr) in [(&na, ia, aa), (&nb, ib, ab)] {
                ip(&["-n", ns, "addr", "add", addr, "dev", dev])?;
                ip(&["-n", ns, "link", "set", dev, "up"])?;
            }
        }
        ip(&[
            "-n",
            &self.ns("a-host"),
            "route",
            "add",
            "default",
            "via",
            "10.1.0.1",
        ])?;
        ip(&[
            "-n",
            &self.ns("b-host"),
            "route",
            "add",
            "default",
            "via",
            "10.2.0.1",
        ])?;
        for gw in ["a-gw", "b-gw"] {
            self.run_in(gw, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        }
        Ok(())
    }

    /// The example file with the socket and log moved into the demo's directory; with `pki`
    /// (the site's directory from [`Lab::make_pki`]), certificates instead of the pre-shared
    /// key.
    fn write_config(&self, site: &str, text: &str, pki: Option<&Path>) -> anyhow::Result<PathBuf> {
        let mut doc: toml::Table = text.parse().context("parsing the built-in example")?;
        if let Some(dir) = pki {
            let gateways = doc
                .get_mut("ike-gateway")
                .and_then(toml::Value::as_table_mut)
                .context("the example has no [ike-gateway]")?;
            for (_, gw) in gateways.iter_mut() {
                let gw = gw
                    .as_table_mut()
                    .context("an [ike-gateway] is not a table")?;
                gw.remove("pre-shared-key");
                let path = |f: &str| toml::Value::String(dir.join(f).display().to_string());
                let mut cert = toml::Table::new();
                cert.insert("local".into(), path("cert.pem"));
                cert.insert("key".into(), path("key.pem"));
                cert.insert("ca".into(), toml::Value::Array(vec![path("ca.pem")]));
                gw.insert("certificate".into(), toml::Value::Table(cert));
            }
        }
        let global = doc
            .entry("global")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .context("[global] is not a table")?;
        let socket = self.socket(site).display().to_string();
        let log = self.dir.join(format!("{site}.log")).display().to_string();
        global.insert("control-socket".into(), toml::Value::String(socket));
        global.insert("log-file".into(), toml::Value::String(log));
        let path = self.dir.join(format!("{site}.toml"));
        std::fs::write(&path, toml::to_string(&doc)?)?;
        Ok(path)
    }

    /// `ferrosec pki`: a CA and an ECDSA P-256 certificate for each gateway (its FQDN ID and
    /// WAN address as SANs), printed as a user would type them.
    fn make_pki(&self) -> anyhow::Result<()> {
        let dir = self.dir.join("pki");
        let ca = dir.join("ca").display().to_string();
        let mut commands: Vec<Vec<String>> = vec![
            [
                "pki",
                "ca",
                "create",
                "--subject",
                "CN=ferrosec demo CA, O=ferrosec demo",
                "--out",
                &ca,
            ]
            .map(String::from)
            .to_vec(),
        ];
        for (site, wan) in [("site-a", "198.51.100.1"), ("site-b", "198.51.100.2")] {
            commands.push(
                [
                    "pki",
                    "cert",
                    "issue",
                    "--ca",
                    &ca,
                    "--subject",
                    &format!("CN={site}.example.net, O=ferrosec demo"),
                    "--san",
                    &format!("fqdn:{site}.example.net"),
                    "--san",
                    &format!("ip:{wan}"),
                    "--key",
                    "ecdsa-p256",
                    "--out",
                    &dir.join(site).display().to_string(),
                ]
                .map(String::from)
                .to_vec(),
            );
        }
        for args in commands {
            let shown: Vec<String> = args
                .iter()
                .map(|a| {
                    if a.contains(' ') {
                        format!("\"{a}\"")
                    } else {
                        a.clone()
                    }
                })
                .collect();
            println!("         $ ferrosec {}", shown.join(" "));
            let out = Command::new(std::env::current_exe()?)
                .args(&args)
                .output()
                .context("running ferrosec pki")?;
            if !out.status.success() {
                bail!(
                    "ferrosec pki failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        Ok(())
    }

    fn start_daemon(&mut self, site: &str, role: &str, config: &Path) -> anyhow::Result<()> {
        let out = std::fs::File::create(self.dir.join(format!("{site}.out")))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(role)])
            .arg(std::env::current_exe()?)
            .args(["run", "-c"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting a gateway")?;
        self.daemons.push((site.to_owned(), child));
        let socket = self.socket(site);
        self.wait(
            Duration::from_secs(10),
            &format!("the {site} daemon"),
            || Ok(socket.exists()),
        )
    }

    /// Polls `ready` every 100 ms until it says yes, the time is up, a daemon died, or Ctrl-C.
    fn wait(
        &mut self,
        limit: Duration,
        what: &str,
        mut ready: impl FnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if ready()? {
                return Ok(());
            }
            for (site, child) in &mut self.daemons {
                if let Some(status) = child.try_wait()? {
                    bail!("the {site} gateway exited ({status}) while waiting for {what}");
                }
            }
            if self.interrupted.load(Ordering::Relaxed) {
                bail!("interrupted");
            }
            if Instant::now() > deadline {
                bail!("gave up waiting {}s for {what}", limit.as_secs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines each gateway wrote, for a failure report.
    fn daemon_logs(&self) -> String {
        let mut all = String::new();
        for site in ["site-a", "site-b"] {
            for ext in ["log", "out"] {
                let path = self.dir.join(format!("{site}.{ext}"));
                if let Ok(text) = std::fs::read_to_string(&path) {
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = &lines[lines.len().saturating_sub(8)..];
                    if !tail.is_empty() {
                        all.push_str(&format!("--- {}\n{}\n", path.display(), tail.join("\n")));
                    }
                }
            }
        }
        all
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, child) in &mut self.daemons {
            // SIGTERM first so that each gateway deletes its SAs on the peer, then give up.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs the demo; `Ok(false)` when a check failed (the reason is printed).
pub(crate) fn run(certificates: bool) -> anyhow::Result<bool> {
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
    {
        bail!(
            "the demo needs root: it creates network namespaces, veth links and TUN devices. \
             Run it as `sudo ferrosec demo`."
        );
    }
    if Command::new("ip").arg("-V").output().is_err() {
        bail!("the demo needs iproute2 (`ip`); install it with `apt-get install iproute2`");
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&interrupted))?;
    }
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("ferrosec-demo-{pid}"));
    std::fs::create_dir_all(&dir)?;
    let mut lab = Lab {
        prefix: format!("fsdemo{pid}-"),
        namespaces: Vec::new(),
        daemons: Vec::new(),
        dir,
        start: Instant::now(),
        interrupted,
    };
    let result = steps(&mut lab, certificates);
    if let Err(e) = &result {
        eprintln!("demo failed: {e:#}");
        eprint!("{}", lab.daemon_logs());
    }
    lab.step("tearing down: gateways stopped, namespaces and files removed")
        .ok();
    drop(lab);
    result.map(|()| true).or(Ok(false))
}

fn steps(lab: &mut Lab, certificates: bool) -> anyhow::Result<()> {
    lab.step("building two sites in network namespaces (LAN host, gateway; a WAN between)")?;
    lab.build_topology()?;

    let pki = lab.dir.join("pki");
    let (pki_a, pki_b) = if certificates {
        lab.step("making a CA and a certificate per gateway with ferrosec pki")?;
        lab.make_pki()?;
        (Some(pki.join("site-a")), Some(pki.join("site-b")))
    } else {
        (None, None)
    };
    lab.step(if certificates {
        "starting the site-a and site-b gateways from examples/site-*.toml, with certificates \
         instead of the pre-shared key"
    } else {
        "starting the site-a and site-b gateways from examples/site-*.toml"
    })?;
    let a = lab.write_config("site-a", SITE_A, pki_a.as_deref())?;
    let b = lab.write_config("site-b", SITE_B, pki_b.as_deref())?;
    lab.start_daemon("site-b", "b-gw", &b)?;
    lab.start_daemon("site-a", "a-gw", &a)?;

    lab.step("bringing up the IKEv2 tunnel (test vpn ipsec-sa tunnel to-site-b)")?;
    lab.cli(
        "site-a",
        &["test", "vpn", "ipsec-sa", "tunnel", "to-site-b"],
    )?;
    let socket = lab.socket("site-a");
    lab.wait(Duration::from_secs(15), "the IPsec SA", || {
        let rows: serde_json::Value =
            serde_json::from_str(&cli_at(&socket, &["--json", "show", "vpn", "ipsec-sa"])?)?;
        Ok(rows.as_array().is_some_and(|r| !r.is_empty()))
    })?;
    if certificates {
        // The IKE SA authenticated with the certificates, not with anything else.
        let rows: serde_json::Value =
            serde_json::from_str(&lab.cli("site-a", &["--json", "show", "vpn", "ike-sa"])?)?;
        let peer = &rows[0]["peer-certificate"]["subject"];
        if rows[0]["peer-auth"] == "psk"
            || !peer
                .as_str()
                .is_some_and(|s| s.contains("CN=site-b.example.net"))
        {
            bail!("the IKE SA did not authenticate with site-b's certificate: {rows}");
        }
        println!(
            "         authenticated: site-a {}, site-b {} with certificate \"{}\"",
            rows[0]["local-auth"].as_str().unwrap_or("?"),
            rows[0]["peer-auth"].as_str().unwrap_or("?"),
            peer.as_str().unwrap_or("?")
        );
    }

    lab.step(&format!("ping {B_HOST} from {A_HOST} through the tunnel"))?;
    let out = lab.run_in(
        "a-host",
        &["ping", "-c", "5", "-i", "0.2", "-W", "2", B_HOST],
    )?;
    let summary = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("");
    println!("         {summary}");

    lab.step(&format!(
        "TCP transfer of {} MiB {A_HOST} -> {B_HOST}",
        TCP_BYTES >> 20
    ))?;
    let exe = std::env::current_exe()?;
    let exe = exe.to_str().context("the binary's path is not UTF-8")?;
    let sink = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns("b-host"),
            exe,
            "__tcp-sink",
            &TCP_PORT.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()?;
    lab.daemons.push(("tcp-sink".into(), sink));
    std::thread::sleep(Duration::from_millis(200));
    let target = format!("{B_HOST}:{TCP_PORT}");
    let out = lab.run_in(
        "a-host",
        &[exe, "__tcp-source", &target, &TCP_BYTES.to_string()],
    )?;
    println!("         {}", out.trim());
    if let Some((_, mut sink)) = lab.daemons.pop() {
        let _ = sink.wait();
    }

    for (title, args) in [
        ("show vpn ike-sa", ["show", "vpn", "ike-sa"].as_slice()),
        ("show vpn ipsec-sa", ["show", "vpn", "ipsec-sa"].as_slice()),
        ("show vpn flow", ["show", "vpn", "flow"].as_slice()),
    ] {
        lab.step(&format!("site-a> {title}"))?;
        print!("{}", lab.cli("site-a", args)?);
    }
    Ok(())
}

/// `ferrosec --socket SOCKET ARGS`: its output, or the error it printed.
fn cli_at(socket: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(std::env::current_exe()?)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Hidden helper: accept one TCP connection on `port`, count the bytes, print the count.
pub(crate) fn tcp_sink(port: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))?;
    let (mut stream, _) = listener.accept()?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        match stream.read(&mut buf)? {
            0 => break,
            n => total += n as u64,
        }
    }
    stream.write_all(&total.to_be_bytes())?;
    Ok(())
}

/// Hidden helper: send `bytes` to `target`, wait for the sink's count, print the rate.
pub(crate) fn tcp_source(target: SocketAddr, bytes: u64) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let chunk = vec![0x5au8; 256 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        stream.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut count = [0u8; 8];
    stream.read_exact(&mut count)?;
    let received = u64::from_be_bytes(count);
    let secs = start.elapsed().as_secs_f64();
    if received != bytes {
        bail!("the sink received {received} of {bytes} bytes");
    }
    println!(
        "{} MiB received intact in {secs:.2}s ({:.0} Mbit/s)",
        bytes >> 20,
        bytes as f64 * 8.0 / secs / 1e6
    );
    Ok(())
}
