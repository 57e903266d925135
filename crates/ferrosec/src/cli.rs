//! Command-line grammar (clap) and what each command does.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::control::{self, Request};
use crate::status::{FlowRow, IkeCountersRow, IkeSaRow, IpsecSaRow, Table, TunnelRow};
use crate::syslog::LogLine;

/// Where the CLI looks for the daemon when `--socket` is not given.
pub(crate) const DEFAULT_SOCKET: &str = "/run/ferrosec/ferrosec.sock";

/// ferrosec: a site-to-site IPsec VPN gateway (IKEv1 and IKEv2, ESP or AH, route-based).
#[derive(Debug, Parser)]
#[command(name = "ferrosec", version, propagate_version = true)]
pub(crate) struct Args {
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,

    /// The daemon's control socket (its `global.control-socket`).
    #[arg(long, global = true, value_name = "PATH", env = "FERROSEC_SOCKET",
          default_value = DEFAULT_SOCKET)]
    socket: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway daemon with a configuration file.
    Run {
        /// The configuration file (TOML).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Show the state of a running daemon.
    #[command(subcommand)]
    Show(ShowCmd),
    /// Bring up an IKE SA or IPsec SA now (rather than on demand).
    #[command(subcommand)]
    Test(TestCmd),
    /// Tear down SAs; they come back on demand or by `test`.
    #[command(subcommand)]
    Clear(ClearCmd),
    /// Ask the daemon for an operation: `request vpn rekey ipsec-sa tunnel T`.
    #[command(subcommand)]
    Request(RequestCmd),
    /// Two gateways in network namespaces, a tunnel, traffic through it, the show tables (root).
    Demo {
        /// Authenticate with certificates made by `ferrosec pki` (a CA and one ECDSA P-256
        /// certificate per gateway) instead of the pre-shared key.
        #[arg(long)]
        certificates: bool,
    },
    /// A small certificate authority for certificate tunnels (PEM files for
    /// `certificate = { local, key, ca }`).
    #[command(subcommand)]
    Pki(PkiCmd),
    /// Print the shell completion script: `source <(ferrosec completions bash)`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `ferrosec manpage > ferrosec.1`.
    Manpage,
    /// Demo helper: receive one TCP connection and report its byte count.
    #[command(name = "__tcp-sink", hide = true)]
    TcpSink {
        /// Port to listen on.
        port: u16,
    },
    /// Demo helper: send bytes over TCP and print the rate.
    #[command(name = "__tcp-source", hide = true)]
    TcpSource {
        /// Where to send.
        target: std::net::SocketAddr,
        /// How many bytes.
        bytes: u64,
    },
}

#[derive(Debug, Subcommand)]
enum PkiCmd {
    /// Certificate revocation lists.
    #[command(subcommand)]
    Crl(PkiCrl),
    /// The certificate authority.
    #[command(subcommand)]
    Ca(PkiCa),
    /// Gateway certificates.
    #[command(subcommand)]
    Cert(PkiCert),
}

#[derive(Debug, Subcommand)]
enum PkiCa {
    /// Make a CA: DIR/ca.pem (the trust anchor every gateway lists in `ca`) and DIR/ca.key
    /// (mode 0600; keep it off the gateways).
    Create {
        /// The CA's subject, e.g. "CN=Example VPN CA, O=Example".
        #[arg(long)]
        subject: String,
        /// The directory to write to (made if missing; existing files are never overwritten).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The CA's key.
        #[arg(long, value_enum, default_value = "ecdsa-p384")]
        key: crate::pki::KeyType,
        /// Days of validity.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
}

#[derive(Debug, Subcommand)]
enum PkiCrl {
    /// Sign the CA's CRL revoking the certificates given (none: an empty CRL): a new PEM file
    /// for `certificate.crl`, or to publish at the certificates' --crl-url.
    Sign {
        /// The CA's directory (from `pki ca create`).
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// A PEM certificate the CA issued, to revoke; repeatable.
        #[arg(long, value_name = "CERT.pem")]
        revoke: Vec<PathBuf>,
        /// The revocation reason (RFC 5280 §5.3.1).
        #[arg(long, default_value = "keyCompromise")]
        reason: String,
        /// Days until the next update (sign a new CRL before then).
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// The CRL file to write (never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PkiCert {
    /// Issue a gateway certificate signed by the CA in --ca: writes DIR/cert.pem, DIR/key.pem
    /// (mode 0600) and a copy of the CA's ca.pem, and prints the `certificate = { … }` line.
    Issue {
        /// The CA's directory (from `pki ca create`).
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The gateway's subject, e.g. "CN=hq.example.net, O=Example" (its `dn` ID).
        #[arg(long)]
        subject: String,
        /// A subjectAltName, repeatable: fqdn:NAME, ip:ADDRESS, email:ADDRESS (the IDs a peer
        /// may expect: local-id/peer-id of type fqdn, ipaddr, ufqdn).
        #[arg(long, value_name = "TYPE:VALUE")]
        san: Vec<String>,
        /// An http:// CRL distribution point to name in the certificate (where peers with
        /// `crl-fetch = true` fetch the CA's CRL).
        #[arg(long, value_name = "URL")]
        crl_url: Option<String>,
        /// The gateway's key (ecdsa-p256 for Suite-B-GCM-128/PRIME-128, ecdsa-p384 for the
        /// 256-bit suites).
        #[arg(long, value_enum, default_value = "ecdsa-p256")]
        key: crate::pki::KeyType,
        /// The directory to write to.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Days of validity.
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
}

#[derive(Debug, Subcommand)]
enum RequestCmd {
    /// VPN operations.
    #[command(subcommand)]
    Vpn(RequestVpn),
    /// System operations.
    #[command(subcommand)]
    System(RequestSystem),
}

#[derive(Debug, Subcommand)]
enum RequestSystem {
    /// Load the configuration file again and apply it object by object, as SIGHUP does:
    /// what did not change keeps its SAs; a broken file changes nothing. Prints what was done.
    Reload,
}

#[derive(Debug, Subcommand)]
enum RequestVpn {
    /// Rekey now (make-before-break).
    #[command(subcommand)]
    Rekey(RekeyTarget),
    /// Write the keys of the SAs up now as Wireshark decryption tables (`esp_sa`,
    /// `ikev2_decryption_table`, `ikev1_decryption_table`, mode 0600) into DIR; needs
    /// `[global] allow-key-export = true`.
    ExportKeys {
        /// The directory to write the tables to (Wireshark's configuration directory, e.g.
        /// for `WIRESHARK_CONFIG_DIR=DIR tshark -o esp.enable_encryption_decode:TRUE -r
        /// capture.pcap`).
        #[arg(long, value_name = "DIR")]
        wireshark: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum RekeyTarget {
    /// Rekey the IKE SA of a gateway: `request vpn rekey ike-sa gateway G`.
    IkeSa {
        #[command(subcommand)]
        target: GatewayFilter,
    },
    /// Rekey the IPsec SAs of a tunnel: `request vpn rekey ipsec-sa tunnel T`.
    IpsecSa {
        #[command(subcommand)]
        target: TunnelFilter,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Load and validate a file; print its objects, references and warnings, and what this
    /// build does not serve. Exit 0: valid; 1: invalid; 3: valid, but objects of it are not
    /// served by this build (the daemon leaves them out).
    Check {
        /// The configuration file (TOML).
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ShowCmd {
    /// VPN state.
    #[command(subcommand)]
    Vpn(ShowVpn),
    /// System state.
    #[command(subcommand)]
    System(ShowSystem),
    /// Zones and security rules.
    #[command(subcommand)]
    Security(ShowSecurity),
    /// Certificate authentication state.
    #[command(subcommand)]
    Auth(ShowAuth),
}

#[derive(Debug, Subcommand)]
enum ShowAuth {
    /// The CRLs in use: each gateway's `certificate.crl` files and those fetched from CRL
    /// distribution points (`crl-fetch`), with issuer, thisUpdate, nextUpdate and the number
    /// of revoked certificates.
    Certs,
}

#[derive(Debug, Subcommand)]
enum ShowSecurity {
    /// The security rules in order with their hit counts, then the zone defaults.
    Rules,
}

#[derive(Debug, Subcommand)]
enum ShowVpn {
    /// IKE SAs (phase 1), optionally of one gateway: `show vpn ike-sa gateway G`.
    IkeSa {
        #[command(subcommand)]
        filter: Option<GatewayFilter>,
    },
    /// IPsec SAs (phase 2), optionally of one tunnel: `show vpn ipsec-sa tunnel T`.
    IpsecSa {
        #[command(subcommand)]
        filter: Option<TunnelFilter>,
    },
    /// Per-SA packets, bytes and drops by reason.
    Flow,
    /// The IKE responder's half-open SAs, cookies and refusals by reason.
    IkeCounters,
    /// Configured IPsec tunnels and whether they are up.
    Tunnel,
}

#[derive(Debug, Subcommand)]
enum ShowSystem {
    /// Version, uptime, configuration file, object and SA counts, the metrics endpoint.
    Info,
    /// The system log: tunnel up/down/rekey/failure with reasons.
    Log {
        /// Only the newest N lines.
        #[arg(long, value_name = "N")]
        lines: Option<usize>,
    },
}

#[derive(Debug, Subcommand)]
enum GatewayFilter {
    /// One IKE gateway.
    Gateway {
        /// Its name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum TunnelFilter {
    /// One IPsec tunnel.
    Tunnel {
        /// Its name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum TestCmd {
    /// Negotiate now.
    #[command(subcommand)]
    Vpn(TestVpn),
}

#[derive(Debug, Subcommand)]
enum TestVpn {
    /// Negotiate the IKE SA with a gateway: `test vpn ike-sa gateway G`.
    IkeSa {
        #[command(subcommand)]
        target: GatewayFilter,
    },
    /// Negotiate the IPsec SAs of a tunnel: `test vpn ipsec-sa tunnel T`.
    IpsecSa {
        #[command(subcommand)]
        target: TunnelFilter,
    },
}

#[derive(Debug, Subcommand)]
enum ClearCmd {
    /// Delete SAs.
    #[command(subcommand)]
    Vpn(ClearVpn),
}

#[derive(Debug, Subcommand)]
enum ClearVpn {
    /// Delete IKE SAs (and their IPsec SAs), all or of one gateway.
    IkeSa {
        #[command(subcommand)]
        filter: Option<GatewayFilter>,
    },
    /// Delete IPsec SAs, all or of one tunnel.
    IpsecSa {
        #[command(subcommand)]
        filter: Option<TunnelFilter>,
    },
}

fn gateway(f: Option<GatewayFilter>) -> Option<String> {
    f.map(|GatewayFilter::Gateway { name }| name)
}

fn tunnel(f: Option<TunnelFilter>) -> Option<String> {
    f.map(|TunnelFilter::Tunnel { name }| name)
}

/// Runs one command; the exit code tells scripts whether it worked.
/// Writes generated text to standard output; a closed pipe (`| head`) is not an error.
fn write_out(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    match std::io::stdout().write_all(bytes) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("writing to standard output"),
    }
}

pub(crate) fn dispatch(args: Args) -> anyhow::Result<ExitCode> {
    let json = args.json;
    let request = match args.command {
        Command::Run { config } => return crate::daemon::run(&config).map(|()| ExitCode::SUCCESS),
        Command::Config(ConfigCmd::Check { file }) => return config_check(&file, json),
        Command::Pki(cmd) => return pki(cmd, json),
        Command::Demo { certificates } => {
            return crate::demo::run(certificates).map(|ok| {
                if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            });
        }
        Command::Completions { shell } => {
            let mut cmd = <Args as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "ferrosec", &mut out);
            return write_out(&out);
        }
        Command::Manpage => {
            let cmd = <Args as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("rendering the man page")?;
            return write_out(&out);
        }
        Command::TcpSink { port } => {
            return crate::demo::tcp_sink(port).map(|()| ExitCode::SUCCESS);
        }
        Command::TcpSource { target, bytes } => {
            return crate::demo::tcp_source(target, bytes).map(|()| ExitCode::SUCCESS);
        }
        Command::Show(ShowCmd::Vpn(ShowVpn::IkeSa { filter })) => Request::ShowIkeSa {
            gateway: gateway(filter),
        },
        Command::Show(ShowCmd::Vpn(ShowVpn::IpsecSa { filter })) => Request::ShowIpsecSa {
            tunnel: tunnel(filter),
        },
        Command::Show(ShowCmd::Vpn(ShowVpn::Flow)) => Request::ShowFlow,
        Command::Show(ShowCmd::Vpn(ShowVpn::IkeCounters)) => Request::ShowIkeCounters,
        Command::Show(ShowCmd::Vpn(ShowVpn::Tunnel)) => Request::ShowTunnel,
        Command::Show(ShowCmd::Security(ShowSecurity::Rules)) => Request::ShowSecurityRules,
        Command::Show(ShowCmd::Auth(ShowAuth::Certs)) => Request::ShowAuthCerts,
        Command::Show(ShowCmd::System(ShowSystem::Info)) => Request::ShowSystemInfo,
        Command::Show(ShowCmd::System(ShowSystem::Log { lines })) => {
            Request::ShowSystemLog { lines }
        }
        Command::Test(TestCmd::Vpn(TestVpn::IkeSa { target })) => Request::TestIkeSa {
            gateway: gateway(Some(target)).unwrap_or_default(),
        },
        Command::Test(TestCmd::Vpn(TestVpn::IpsecSa { target })) => Request::TestIpsecSa {
            tunnel: tunnel(Some(target)).unwrap_or_default(),
        },
        Command::Clear(ClearCmd::Vpn(ClearVpn::IkeSa { filter })) => Request::ClearIkeSa {
            gateway: gateway(filter),
        },
        Command::Clear(ClearCmd::Vpn(ClearVpn::IpsecSa { filter })) => Request::ClearIpsecSa {
            tunnel: tunnel(filter),
        },
        Command::Request(RequestCmd::Vpn(RequestVpn::Rekey(RekeyTarget::IkeSa { target }))) => {
            Request::RekeyIkeSa {
                gateway: gateway(Some(target)).unwrap_or_default(),
            }
        }
        Command::Request(RequestCmd::Vpn(RequestVpn::Rekey(RekeyTarget::IpsecSa { target }))) => {
            Request::RekeyIpsecSa {
                tunnel: tunnel(Some(target)).unwrap_or_default(),
            }
        }
        Command::Request(RequestCmd::System(RequestSystem::Reload)) => Request::ReloadConfig,
        Command::Request(RequestCmd::Vpn(RequestVpn::ExportKeys { wireshark })) => {
            let data = control::call(&args.socket, Request::ExportKeys)?;
            return write_key_tables(&wireshark, data, json);
        }
    };
    let data = control::call(&args.socket, request.clone())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&data)?);
    } else {
        print!("{}", render(&request, data)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// `request vpn export-keys --wireshark DIR`: writes the tables the daemon built, readable by
/// their owner only.
fn write_key_tables(
    dir: &std::path::Path,
    data: serde_json::Value,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let text = data
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the daemon's answer is not a key table"))?;
    let tables: crate::keyexport::Tables = serde_json::from_str(text)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, contents) in &tables.files {
        let path = dir.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(contents.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        let summary = serde_json::json!({
            "directory": dir.display().to_string(),
            "ike-sas": tables.ike_sas,
            "esp-sas": tables.esp_sas,
            "left-out": tables.left_out,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "wrote the keys of {} IKE SA(s) and {} ESP SA(s) to {} (esp_sa, \
             ikev2_decryption_table, ikev1_decryption_table; mode 0600)",
            tables.ike_sas,
            tables.esp_sas,
            dir.display()
        );
        for l in &tables.left_out {
            println!("left out: {l}");
        }
        println!(
            "decrypt a capture with: WIRESHARK_CONFIG_DIR={} tshark -o \
             esp.enable_encryption_decode:TRUE -r capture.pcap",
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `config check`: the file is valid but this build leaves objects of it out.
const EXIT_NOT_SERVED: u8 = 3;

/// `ferrosec config check FILE`: exit 0 with a summary (and warnings), 1 with every error, or
/// 3 when the file is valid but names objects this build does not serve (an IKEv1 gateway, a
/// manual-key tunnel …): `config check` never calls plainly valid what the daemon will not
/// run. Settings this build ignores (IKE fragmentation …) are warned about with exit 0, as the
/// daemon starts their objects without them.
fn config_check(file: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    match ferrosec_config::load_file(file) {
        Ok(loaded) => {
            let summary = loaded.config.summary();
            let unserved = crate::served::unserved(&loaded.config);
            let left_out = unserved
                .iter()
                .filter(|u| u.impact == crate::served::Impact::NotServed)
                .count();
            let ignored = unserved.len() - left_out;
            if json {
                let out = serde_json::json!({
                    "valid": true,
                    "served": left_out == 0,
                    "summary": summary,
                    "warnings": loaded.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "unserved": unserved,
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{summary}");
                for w in &loaded.warnings {
                    println!("warning: {w}");
                }
                for u in &unserved {
                    println!("warning: {u}");
                }
                let plural = |n: usize| if n == 1 { "" } else { "s" };
                let warnings = loaded.warnings.len() + unserved.len();
                let verdict = if left_out > 0 {
                    format!(
                        "valid but not served: this build of ferrosec does not serve \
                         {left_out} object{} of it (see \"not served\" above)",
                        plural(left_out)
                    )
                } else if ignored > 0 {
                    format!(
                        "valid; this build of ferrosec ignores {ignored} setting{} of it (see \
                         \"ignored\" above)",
                        plural(ignored)
                    )
                } else {
                    "valid".to_owned()
                };
                println!(
                    "{}: configuration is {verdict}; {warnings} warning{}",
                    file.display(),
                    plural(warnings)
                );
            }
            Ok(if left_out > 0 {
                ExitCode::from(EXIT_NOT_SERVED)
            } else {
                ExitCode::SUCCESS
            })
        }
        Err(e) => {
            if json {
                let out = serde_json::json!({ "valid": false, "error": e.to_string() });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                eprintln!("{e}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `ferrosec pki …`: no daemon involved.
fn pki(cmd: PkiCmd, json: bool) -> anyhow::Result<ExitCode> {
    let (written, gateway) = match cmd {
        PkiCmd::Ca(PkiCa::Create {
            subject,
            out,
            key,
            days,
        }) => (crate::pki::ca_create(&subject, &out, key, days)?, false),
        PkiCmd::Cert(PkiCert::Issue {
            ca,
            subject,
            san,
            crl_url,
            key,
            out,
            days,
        }) => (
            crate::pki::cert_issue(&ca, &subject, &san, crl_url.as_deref(), key, &out, days)?,
            true,
        ),
        PkiCmd::Crl(PkiCrl::Sign {
            ca,
            revoke,
            reason,
            days,
            out,
        }) => {
            let w = crate::pki::crl_sign(&ca, &revoke, &reason, days, &out)?;
            return if json {
                let mut text = serde_json::to_string_pretty(&w)?;
                text.push('\n');
                write_out(text.as_bytes())
            } else {
                write_out(w.text().as_bytes())
            };
        }
    };
    if json {
        let mut text = serde_json::to_string_pretty(&written)?;
        text.push('\n');
        write_out(text.as_bytes())
    } else {
        write_out(written.text(gateway).as_bytes())
    }
}

/// Turns a daemon answer into the table a person reads.
/// The liveness schedule of an IKE SA in one cell: "every 5s, 8x2s, dead +18s" (a check after
/// 5 s without a message from the peer, retransmitted 8 times 2 s apart, the peer declared dead
/// 18 s after the check).
fn liveness_cell(r: &IkeSaRow) -> String {
    if r.liveness_interval <= 0.0 {
        return "off".into();
    }
    format!(
        "every {}s, {}x{}s, dead +{}s",
        r.liveness_interval,
        r.liveness_retransmissions,
        r.liveness_retransmit_every,
        r.liveness_gives_up_after
    )
}

/// The certificates of an IKE SA, under the table: both subjects, and the peer's issuer and
/// expiry.
fn certificate_lines(r: &IkeSaRow) -> String {
    let mut out = format!("{} {} ({}):\n", r.gateway, r.peer_address, r.state);
    if let Some(c) = &r.local_certificate {
        out.push_str(&format!(
            "  local certificate  {} (issuer {}, not after {})\n",
            c.subject, c.issuer, c.not_after
        ));
    }
    if let Some(c) = &r.peer_certificate {
        out.push_str(&format!(
            "  peer certificate   {} (issuer {}, not after {})\n",
            c.subject, c.issuer, c.not_after
        ));
    }
    out
}

/// The virtual IP column: `10.9.0.1 (pool)` (we assigned it), `10.9.0.1 (peer)` (the peer
/// assigned it to us), `-`.
fn virtual_ip_cell(r: &IkeSaRow) -> String {
    if r.virtual_ip.is_empty() {
        return "-".into();
    }
    format!("{} ({})", r.virtual_ip.join(","), r.virtual_ip_from)
}

/// What the configuration payload carried, under the table.
fn config_payload_line(r: &IkeSaRow) -> String {
    let words = |v: &[String]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    let whose = if r.virtual_ip_from == "pool" {
        "assigned to the peer from our pool"
    } else {
        "assigned to us by the peer"
    };
    format!(
        "{} {} configuration payload: address {} {whose}; DNS {}; subnets {}\n",
        r.gateway,
        r.peer_address,
        words(&r.virtual_ip),
        words(&r.dns),
        words(&r.subnets)
    )
}

fn render(request: &Request, data: serde_json::Value) -> anyhow::Result<String> {
    fn rows<T: serde::de::DeserializeOwned>(data: serde_json::Value) -> anyhow::Result<Vec<T>> {
        serde_json::from_value(data).context("the daemon's answer has an unexpected shape")
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    Ok(match request {
        Request::ShowIkeSa { .. } => {
            let mut t = Table::new(&[
                "gateway",
                "state",
                "version",
                "role",
                "local",
                "peer",
                "nat(l/p)",
                "transport",
                "encryption",
                "integrity",
                "prf",
                "dh",
                "auth(l/p)",
                "lifetime",
                "reauth-in",
                "liveness",
                "virtual-ip",
            ]);
            let rows: Vec<IkeSaRow> = rows(data)?;
            let mut certs = String::new();
            for r in &rows {
                if r.local_certificate.is_some() || r.peer_certificate.is_some() {
                    certs.push_str(&certificate_lines(r));
                }
                if !r.virtual_ip.is_empty() || !r.dns.is_empty() || !r.subnets.is_empty() {
                    certs.push_str(&config_payload_line(r));
                }
                t.row(vec![
                    r.gateway.clone(),
                    r.state.clone(),
                    r.version.clone(),
                    r.role.clone(),
                    r.local_address.clone(),
                    r.peer_address.clone(),
                    format!("{}/{}", yes_no(r.local_nat), yes_no(r.peer_nat)),
                    if r.transport.is_empty() {
                        "-".into()
                    } else {
                        r.transport.clone()
                    },
                    r.encryption.clone(),
                    r.integrity.clone(),
                    r.prf.clone(),
                    r.dh_group.clone(),
                    format!("{}/{}", r.local_auth, r.peer_auth),
                    format!("{}s", r.remaining_lifetime),
                    r.next_reauthentication
                        .map_or("-".into(), |s| format!("{s}s")),
                    liveness_cell(r),
                    virtual_ip_cell(r),
                ]);
            }
            format!("{t}{} IKE SA(s)\n{certs}", rows.len())
        }
        Request::ShowIpsecSa { .. } => {
            let mut t = Table::new(&[
                "tunnel",
                "proxy-id",
                "state",
                "spi-in",
                "spi-out",
                "encap",
                "encryption",
                "integrity",
                "pfs",
                "esn",
                "pkts in/out",
                "bytes in/out",
                "lifetime",
            ]);
            let rows: Vec<IpsecSaRow> = rows(data)?;
            for r in &rows {
                t.row(vec![
                    r.tunnel.clone(),
                    r.proxy_id.clone(),
                    r.state.clone(),
                    r.spi_in.clone(),
                    r.spi_out.clone(),
                    r.encapsulation.clone(),
                    r.encryption.clone(),
                    r.integrity.clone(),
                    r.dh_group.clone(),
                    if r.esn { "yes" } else { "no" }.into(),
                    format!("{}/{}", r.packets_in, r.packets_out),
                    format!("{}/{}", r.bytes_in, r.bytes_out),
                    format!("{}s", r.remaining_lifetime),
                ]);
            }
            format!("{t}{} IPsec SA pair(s)\n", rows.len())
        }
        Request::ShowIkeCounters => {
            let rows: Vec<IkeCountersRow> = rows(data)?;
            let mut t = Table::new(&["counter", "value"]);
            for r in &rows {
                for (k, v) in [
                    ("IKE SAs", r.ike_sas),
                    ("half-open now", r.half_open),
                    ("cookie threshold", r.cookie_threshold),
                    ("half-open limit", r.half_open_limit),
                    ("half-open per address", r.half_open_per_address),
                    ("cookies sent", r.cookies_sent),
                    ("refused: per-address limit", r.refused_per_address),
                    ("refused: global limit", r.refused_global),
                    ("refused: key-exchange rate", r.refused_dh_rate),
                    ("half-open replaced", r.evicted),
                    ("deleted IKE SAs kept (tombstones)", r.tombstones),
                    ("retransmissions answered from them", r.tombstone_answers),
                ] {
                    t.row(vec![k.to_owned(), v.to_string()]);
                }
            }
            format!("{t}")
        }
        Request::ShowFlow => {
            let mut t = Table::new(&[
                "tunnel",
                "proxy-id",
                "spi-in",
                "spi-out",
                "pkts in",
                "pkts out",
                "bytes in",
                "bytes out",
                "drops",
            ]);
            let rows: Vec<FlowRow> = rows(data)?;
            for r in &rows {
                let drops = r
                    .drops
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(why, n)| format!("{why}={n}"))
                    .collect::<Vec<_>>()
                    .join(",");
                t.row(vec![
                    r.tunnel.clone(),
                    r.proxy_id.clone(),
                    r.spi_in.clone(),
                    r.spi_out.clone(),
                    r.packets_in.to_string(),
                    r.packets_out.to_string(),
                    r.bytes_in.to_string(),
                    r.bytes_out.to_string(),
                    if drops.is_empty() { "0".into() } else { drops },
                ]);
            }
            format!("{t}{} flow(s)\n", rows.len())
        }
        Request::ShowTunnel => {
            let mut t = Table::new(&[
                "tunnel",
                "interface",
                "type",
                "gateway",
                "profile",
                "proxy-ids",
                "state",
                "monitor",
                "misses",
                "last-reply",
                "rtt",
                "routes",
                "mtu",
            ]);
            let rows: Vec<TunnelRow> = rows(data)?;
            for r in &rows {
                let none = r.monitor.is_empty() || r.monitor == "none";
                t.row(vec![
                    r.tunnel.clone(),
                    r.interface.clone(),
                    r.kind.clone(),
                    r.gateway.clone(),
                    r.profile.clone(),
                    r.proxy_ids.to_string(),
                    r.state.clone(),
                    if none { "-".into() } else { r.monitor.clone() },
                    if none {
                        "-".into()
                    } else {
                        r.misses.to_string()
                    },
                    match r.last_reply {
                        Some(s) => format!("{s}s ago"),
                        None if none => "-".into(),
                        None => "never".into(),
                    },
                    match r.rtt {
                        Some(s) => format!("{:.1}ms", s * 1000.0),
                        None => "-".into(),
                    },
                    if r.routes.is_empty() {
                        "-".into()
                    } else {
                        r.routes.clone()
                    },
                    r.mtu.map_or("-".into(), |m| m.to_string()),
                ]);
            }
            format!("{t}{} tunnel(s)\n", rows.len())
        }
        Request::ShowSecurityRules => {
            let mut t = Table::new(&["rule", "action", "hits"]);
            let rows: Vec<crate::policy::RuleRow> = rows(data)?;
            for r in &rows {
                t.row(vec![r.name.clone(), r.action.clone(), r.hits.to_string()]);
            }
            format!("{t}{} rule(s)\n", rows.len())
        }
        Request::ShowAuthCerts => {
            let rows: Vec<crate::status::CrlRow> = rows(data)?;
            let mut t = Table::new(&[
                "issuer",
                "this-update",
                "next-update",
                "revoked",
                "source",
                "gateway",
                "from",
            ]);
            for r in &rows {
                t.row(vec![
                    r.issuer.clone(),
                    r.this_update.clone(),
                    match (&r.next_update, r.stale) {
                        (Some(n), true) => format!("{n} (stale, still used)"),
                        (Some(n), false) => n.clone(),
                        (None, _) => "-".into(),
                    },
                    r.revoked.to_string(),
                    r.source.clone(),
                    r.gateway.clone().unwrap_or_else(|| "-".into()),
                    r.location.clone(),
                ]);
            }
            format!("{t}{} CRL(s)\n", rows.len())
        }
        Request::ShowSystemInfo => {
            let rows: Vec<crate::status::SystemInfoRow> = rows(data)?;
            let mut t = Table::new(&["", ""]);
            for r in &rows {
                for (k, v) in [
                    ("version", r.version.clone()),
                    ("features", r.features.join(",")),
                    ("profile", r.profile.clone()),
                    ("pid", r.pid.to_string()),
                    ("uptime", format!("{}s", r.uptime)),
                    ("configuration", r.config_file.clone()),
                    ("ike-gateways", r.gateways.to_string()),
                    ("ipsec-tunnels", r.tunnels.to_string()),
                    ("IKE SAs", r.ike_sas.to_string()),
                    ("IPsec SA pairs", r.ipsec_sa_pairs.to_string()),
                    ("metrics", r.metrics.clone().unwrap_or_else(|| "off".into())),
                    (
                        "raw ESP",
                        if r.raw_esp.is_empty() {
                            "none".into()
                        } else {
                            r.raw_esp.join("; ")
                        },
                    ),
                ] {
                    t.row(vec![k.to_owned(), v]);
                }
            }
            format!("{t}")
        }
        Request::ShowSystemLog { .. } => {
            let lines: Vec<LogLine> = rows(data)?;
            lines.iter().map(|l| format!("{l}\n")).collect()
        }
        Request::TestIkeSa { .. }
        | Request::TestIpsecSa { .. }
        | Request::ClearIkeSa { .. }
        | Request::ClearIpsecSa { .. }
        | Request::RekeyIpsecSa { .. }
        | Request::RekeyIkeSa { .. }
        | Request::ReloadConfig
        | Request::ExportKeys => match data {
            serde_json::Value::String(s) => format!("{s}\n"),
            other => format!("{other}\n"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::CertificateRow;

    fn ike_row(local: &str, peer: &str, certs: bool) -> IkeSaRow {
        let cert = |s: &str| CertificateRow {
            subject: s.into(),
            issuer: "CN=ferrosec CA".into(),
            not_after: "2027-12-06T00:00:00Z".into(),
        };
        IkeSaRow {
            gateway: "site-b".into(),
            state: "established".into(),
            version: "ikev2".into(),
            role: "initiator".into(),
            local_address: "198.51.100.1:500".into(),
            peer_address: "198.51.100.2:500".into(),
            local_nat: false,
            peer_nat: false,
            transport: "udp".into(),
            encryption: "aes-256-cbc".into(),
            integrity: "sha256".into(),
            prf: "sha256".into(),
            dh_group: "group19".into(),
            remaining_lifetime: 100,
            next_reauthentication: None,
            liveness_interval: 0.0,
            liveness_retransmissions: 0,
            liveness_retransmit_every: 0.0,
            liveness_gives_up_after: 0.0,
            local_auth: local.into(),
            peer_auth: peer.into(),
            local_certificate: certs.then(|| cert("CN=site-a.example.net")),
            peer_certificate: certs.then(|| cert("CN=site-b.example.net")),
            virtual_ip: Vec::new(),
            virtual_ip_from: String::new(),
            dns: Vec::new(),
            subnets: Vec::new(),
        }
    }

    /// `show auth certs`: one line per CRL with issuer, dates, the count, where it came from;
    /// a stale one says it is still used.
    #[test]
    fn show_auth_certs_lists_the_crls() {
        let row = |source: &str, gateway: Option<&str>, location: &str, stale: bool| {
            crate::status::CrlRow {
                gateway: gateway.map(str::to_owned),
                source: source.into(),
                location: location.into(),
                issuer: "CN=Root CA".into(),
                this_update: "2025-12-01 00:00:00 UTC".into(),
                next_update: Some("2026-01-01 00:00:00 UTC".into()),
                revoked: 3,
                stale,
            }
        };
        let rows = vec![
            row("file", Some("hq"), "/etc/ferrosec/ca.crl", true),
            row("fetched", None, "http://192.0.2.80/ca.crl", false),
        ];
        let text = render(
            &Request::ShowAuthCerts,
            serde_json::to_value(&rows).unwrap(),
        )
        .unwrap();
        assert!(
            text.contains("issuer") && text.contains("revoked"),
            "{text}"
        );
        assert!(
            text.contains("2026-01-01 00:00:00 UTC (stale, still used)  3        file     hq "),
            "{text}"
        );
        assert!(
            text.contains("fetched  -        http://192.0.2.80/ca.crl"),
            "{text}"
        );
        assert!(text.ends_with("2 CRL(s)\n"), "{text}");
    }

    /// `show vpn ike-sa`: the methods in a column, both certificates' subjects under the table
    /// (the peer's with its issuer and expiry); a PSK SA adds no lines.
    #[test]
    fn show_ike_sa_names_the_methods_and_both_certificates() {
        let rows = vec![
            ike_row("ecdsa-256", "digital-signature", true),
            ike_row("psk", "psk", false),
        ];
        let text = render(
            &Request::ShowIkeSa { gateway: None },
            serde_json::to_value(&rows).unwrap(),
        )
        .unwrap();
        assert!(text.contains("auth(l/p)"), "{text}");
        assert!(text.contains("ecdsa-256/digital-signature"), "{text}");
        assert!(text.contains("psk/psk"), "{text}");
        assert!(
            text.contains("  local certificate  CN=site-a.example.net (issuer CN=ferrosec CA, not after 2027-12-06T00:00:00Z)"),
            "{text}"
        );
        assert!(
            text.contains("  peer certificate   CN=site-b.example.net (issuer CN=ferrosec CA"),
            "{text}"
        );
        assert_eq!(text.matches("local certificate").count(), 1, "{text}");
    }
}
