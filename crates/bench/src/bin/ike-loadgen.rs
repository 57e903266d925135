//! `ike-loadgen`: opens N IKE SAs (shared key, or with `--cert-ca` certificates; one Child SA
//! each) against a responder and reports how many were established per second: IKEv2
//! (IKE_SA_INIT + IKE_AUTH with its Child SA) by default, IKEv1 with `--ikev1` (main mode +
//! one quick mode).
//!
//! A ferrosec engine acts as the initiator of every SA: the IKEv2 [`Endpoint`], or with
//! `--ikev1` the IKEv1 [`v1::Engine`] (the one the daemon serves `version = "ikev1"` gateways
//! with; phase 1 AES-256-CBC/SHA-256 since IKEv1 has no AEAD for ISAKMP, quick mode ESP
//! AES-256-GCM, no PFS, no DPD). Either is driven over plain tokio UDP sockets on one thread
//! (a current-thread runtime), so the generator uses at most one core and leaves the other
//! one to the responder. The SAs are spread over several engine instances of `--shard` SAs
//! each: some of the engines' bookkeeping walks all SAs of an instance (timers,
//! INITIAL_CONTACT and duplicate checks; in IKEv1 also the phase-1 takeover check), which
//! would otherwise make the generator's cost per SA grow with N. Replies are routed to their
//! instance by our IKE SPI (IKEv2) or initiator cookie (IKEv1): the first 8 octets of every
//! message, since we initiate every SA.
//!
//! # How all N SAs stay up
//!
//! Each SA gets its own peer configuration with its own identity (`i<k>.<id-domain>`, ID_FQDN)
//! and its own initiator traffic selector (`<ts-base> + k`/32). The engine sends
//! INITIAL_CONTACT on the first IKE SA of a peer configuration, and a responder acting on it
//! deletes only older SAs of the *same* identity, so none of ours is touched. Distinct peer
//! configurations also keep the engine's crossing-IKE_SA_INIT handling (which deletes the
//! redundant one of two overlapping SAs with one peer) from firing between our SAs, and in
//! IKEv1 keep a new ISAKMP SA from taking over another one's quick-mode SAs as a phase-1
//! rekey (the IKEv1 engine treats any newer ISAKMP SA of the same peer configuration so).
//!
//! # Sources
//!
//! SA `k` is sent from socket `k mod S`, where the sockets are `--ports` UDP ports starting at
//! `--base-port` on each `--local` address. With NAT traversal on (the default) each local
//! address also gets a socket on port 4500, used when the responder reports a NAT (strongSwan
//! with kernel-libipsec always does). `--local 10.64.0.1+1000 --ports 1` sends SA k from its own
//! address 10.64.0.1 + k (for a responder with one gateway per peer address).
//!
//! # Output
//!
//! One line `RESULT key=value ...` when every SA is up or failed (or `--timeout` passed), then,
//! with `--hold`, one line `HOLD key=value ...` at the end of the hold period, during which the
//! engine keeps answering the responder (liveness checks).
//!
//! # Certificates (IKEv2)
//!
//! `--cert-ca DIR` (a `ferrosec pki ca create` directory: `ca.pem`, `ca.key`) authenticates
//! with certificates instead of the key: the generator makes one `--cert-key` key pair and
//! issues SA k its own certificate from that CA (subject `CN=i<k>.<id-domain>`, SAN DNS the
//! same name, as its ID_FQDN), before the clock starts. One certificate per SA, not one for
//! all: a responder that honours INITIAL_CONTACT (RFC 7296 §2.4) deletes the other SAs of the
//! same authenticated identity, and a certificate vouches for the identities it names. Each
//! IKE_AUTH carries CERT (the leaf; the CA is the trust anchor of both sides), CERTREQ and an
//! RFC 7427 signature (method 14; RFC 4754 ECDSA when the responder announces no hashes); the
//! responder's certificate is checked against the same `ca.pem`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use ferrosec_crypto::sig::SigningKey;
use ferrosec_crypto::x509::Certificate;
use ferrosec_crypto::{Provider, Secret};
use ferrosec_ike::Transmit;
use ferrosec_ike::ts::{AddrRange, AddrSpec, PortRange, ProxyId};
use ferrosec_ike::v1;
use ferrosec_ike::v2::{
    CertAuth, ChildPolicy, CommandError, Endpoint, EndpointConfig, Event, Identity, IkeSaHandle,
    PeerConfig, PeerId, SaLifetime, esp_proposal_gcm, ike_proposal_cbc, ike_proposal_gcm,
};
use ferrosec_wire::ikev2::DhGroup;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Command line.
#[derive(Parser, Debug)]
#[command(
    name = "ike-loadgen",
    about = "IKEv2/IKEv1 handshake load generator (initiator)"
)]
struct Args {
    /// IKEv1: main mode + one quick mode per SA (phase 1 AES-256-CBC, SHA-256, the DH group
    /// of --group; quick mode ESP AES-256-GCM, no PFS). Default: IKEv2.
    #[arg(long)]
    ikev1: bool,
    /// The responder's address.
    #[arg(long)]
    target: IpAddr,
    /// Source addresses (comma-separated); each must be configured in this namespace.
    /// `ADDR+COUNT` stands for COUNT consecutive IPv4 addresses from ADDR (e.g. one address
    /// per SA, for a responder with one gateway per peer address).
    #[arg(long, value_delimiter = ',', required = true, value_parser = addr_run)]
    local: Vec<Vec<IpAddr>>,
    /// UDP source ports per source address.
    #[arg(long, default_value_t = 16)]
    ports: u16,
    /// The first source port.
    #[arg(long, default_value_t = 20000)]
    base_port: u16,
    /// How many IKE SAs to open.
    #[arg(short = 'n', long, default_value_t = 1000)]
    count: usize,
    /// The most negotiations in flight at once.
    #[arg(long, default_value_t = 128)]
    inflight: usize,
    /// The pre-shared key.
    #[arg(long, default_value = "ferrosec-bench-psk")]
    psk: String,
    /// Our identities are `i<k>.<id-domain>` (ID_FQDN).
    #[arg(long, default_value = "bench.test")]
    id_domain: String,
    /// The identity (FQDN) the responder must present; any when absent.
    #[arg(long)]
    peer_id: Option<String>,
    /// DH group (IANA number): 19 = P-256, 31 = Curve25519, 14 = MODP-2048.
    #[arg(long, default_value_t = 19)]
    group: u16,
    /// IKEv2: an RFC 9370 additional key exchange (IANA number: 35/36/37 = ML-KEM-512/768/
    /// 1024) run in IKE_INTERMEDIATE after IKE_SA_INIT; 0 = none.
    #[arg(long, default_value_t = 0)]
    addke: u16,
    /// IKEv2: authenticate with certificates issued by the CA in this directory (`ca.pem`,
    /// `ca.key`: `ferrosec pki ca create --out DIR`), one per SA; see the module comment.
    #[arg(long, conflicts_with = "ikev1")]
    cert_ca: Option<std::path::PathBuf>,
    /// The key type of the certificates of `--cert-ca` (one key for all SAs).
    #[arg(long, default_value = "ecdsa-p256", value_parser = ["ecdsa-p256", "rsa-2048"])]
    cert_key: String,
    /// Initiator traffic selector of SA k: this address + k, /32.
    #[arg(long, default_value = "10.128.0.0")]
    ts_base: Ipv4Addr,
    /// Responder traffic selector (prefix).
    #[arg(long, default_value = "10.2.0.0/24")]
    remote_ts: String,
    /// No NAT traversal (no NAT_DETECTION notifies, never port 4500).
    #[arg(long)]
    no_natt: bool,
    /// Act as if behind a NAT: the engine sees source address k as 192.0.2.(k+1) (from the
    /// 255th on, an address of 100.64.0.0/10), so its NAT_DETECTION_SOURCE_IP (IKEv1: NAT-D)
    /// does not match and the responder UDP-encapsulates ESP (and, for ferrosec, installs the
    /// Child SAs in its data plane, which needs ESP in UDP).
    #[arg(long, conflicts_with = "no_natt")]
    nat: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Keep the SAs up (answering the responder) this many seconds after the result.
    #[arg(long, default_value_t = 0)]
    hold: u64,
    /// SAs per engine instance.
    #[arg(long, default_value_t = 256)]
    shard: usize,
    /// IKEv1: the ISAKMP SA lifetime we offer, seconds (0: offer none). The daemon always
    /// offers its profile's (8 h in bench/handshake.sh); offered none, strongSwan answers
    /// LIFE_DURATION 0, which the engine takes as "expired" (deleted within a second).
    #[arg(long, default_value_t = 28_800)]
    ike_lifetime: u64,
    /// Open each socket of a source port (not 4500) when a negotiation first needs it, and
    /// close it once no negotiation that started there is pending or still on it (all moved
    /// to port 4500 by NAT traversal, or gone): with one address per SA (`ADDR+COUNT
    /// --ports 1`) that halves the file descriptors (10,000 SAs need ~10,000, not 20,000).
    #[arg(long)]
    close_idle_ports: bool,
    /// Print every engine event to stderr (for debugging a handful of SAs).
    #[arg(long)]
    log_events: bool,
    /// Random seed: every value the generator sends then derives from it, ECDH keys
    /// included. Without it the seed comes from the clock and the PID, and aws-lc draws the
    /// ECDH keys on NIST curves itself, as in the daemon (see [`BackendKeys`]).
    #[arg(long)]
    seed: Option<u64>,
}

/// The generator's randomness without `--seed`: a ChaCha generator seeded from the clock, that
/// lets aws-lc draw ECDH private keys on NIST curves from its own OS-seeded generator
/// ([`ferrosec_crypto::Rng::is_os_backed`]), as the daemon's generator does. Importing a key
/// drawn here makes aws-lc check it against its public value, a second base-point
/// multiplication per SA; the generator shares the cores with the responder, so that check
/// was taken from the responder's rate.
struct BackendKeys(ChaCha8Rng);

impl ferrosec_crypto::Rng for BackendKeys {
    fn fill(&mut self, buf: &mut [u8]) {
        rand_core::RngCore::fill_bytes(&mut self.0, buf);
    }

    fn is_os_backed(&self) -> bool {
        true
    }
}

/// The generator for instance `i`: the seeded one with `--seed`, else [`BackendKeys`].
fn instance_rng(
    seed: Option<u64>,
    clock_seed: u64,
    i: usize,
) -> Box<dyn ferrosec_crypto::Rng + Send> {
    match seed {
        Some(s) => Box::new(ChaCha8Rng::seed_from_u64(s.wrapping_add(i as u64))),
        None => Box::new(BackendKeys(ChaCha8Rng::seed_from_u64(
            clock_seed.wrapping_add(i as u64),
        ))),
    }
}

/// `ADDR` or `ADDR+COUNT` (IPv4): the addresses it stands for.
fn addr_run(s: &str) -> Result<Vec<IpAddr>, String> {
    let Some((a, n)) = s.split_once('+') else {
        return s.parse().map(|a| vec![a]).map_err(|e| format!("{s}: {e}"));
    };
    let a: Ipv4Addr = a.parse().map_err(|e| format!("{s}: {e}"))?;
    let n: u32 = n.parse().map_err(|e| format!("{s}: {e}"))?;
    let start = u32::from(a);
    if n == 0 || start.checked_add(n - 1).is_none() {
        return Err(format!("{s}: COUNT must be 1 or more and stay within IPv4"));
    }
    Ok((0..n)
        .map(|i| IpAddr::V4(Ipv4Addr::from(start + i)))
        .collect())
}

/// With `--nat`, the address the engine is told source address `j` has (so its NAT-D hash
/// does not match what the responder sees): 192.0.2.(j+1) for the first 254, then
/// 100.64.0.0/10 addresses.
fn nat_pose(j: usize) -> Result<IpAddr> {
    Ok(IpAddr::V4(if j < 254 {
        Ipv4Addr::new(192, 0, 2, u8::try_from(j + 1)?)
    } else {
        let j = u32::try_from(j)?;
        if j >= 1 << 22 {
            bail!("--nat: at most 2^22 source addresses");
        }
        Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + j)
    }))
}

fn prefix(s: &str) -> Result<AddrRange> {
    let (a, l) = s.split_once('/').context("a prefix like 10.2.0.0/24")?;
    AddrRange::from_prefix(a.parse()?, l.parse()?).map_err(|e| anyhow::anyhow!("{s}: {e:?}"))
}

fn peer_configs(a: &Args, range: std::ops::Range<usize>) -> Result<Vec<PeerConfig>> {
    let remote = prefix(&a.remote_ts)?;
    let base = u32::from(a.ts_base);
    let psk = Secret::from_slice(a.psk.as_bytes());
    // IKEv1 has no AEAD for the ISAKMP SA: AES-256-CBC with SHA-256 (hash and PRF) there.
    let ike = if a.ikev1 {
        vec![ike_proposal_cbc(256, DhGroup(a.group))]
    } else {
        let mut p = ike_proposal_gcm(DhGroup(a.group));
        if a.addke != 0 {
            p.transforms.push(ferrosec_ike::proposal::Transform::addke(
                1,
                DhGroup(a.addke),
            ));
        }
        vec![p]
    };
    let esp = vec![esp_proposal_gcm()];
    range
        .map(|k| {
            let k32 = u32::try_from(k)?;
            let host = IpAddr::V4(Ipv4Addr::from(base.wrapping_add(k32)));
            let policy = ProxyId {
                name: "lan".into(),
                local: AddrSpec::Range(AddrRange::host(host)),
                remote: AddrSpec::Range(remote),
                protocol: 0,
                local_ports: PortRange::ANY,
                remote_ports: PortRange::ANY,
            }
            .to_policy();
            Ok(PeerConfig {
                name: format!("lg{k}"),
                peer_addr: Some(a.target),
                local_id: Some(Identity::fqdn(&format!("i{k}.{}", a.id_domain))),
                peer_id: a.peer_id.as_deref().map(Identity::fqdn),
                psk: psk.clone(),
                ike_proposals: ike.clone(),
                policies: vec![ChildPolicy::new(policy, esp.clone())],
                liveness: None,
                nat_traversal: !a.no_natt,
                restart_on_dead_peer: false,
                strict_cookies: false,
                fragmentation: true,
            })
        })
        .collect()
}

/// `--cert-ca`: the CA, the one key of every SA's certificate, and how to issue them.
struct Certs {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    key_pair: rcgen::KeyPair,
    key: Arc<SigningKey>,
    anchor: Certificate,
    domain: String,
}

impl Certs {
    fn load(a: &Args, dir: &std::path::Path) -> Result<Self> {
        let read = |n: &str| {
            let p = dir.join(n);
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
        };
        let ca_pem = read("ca.pem")?;
        let ca_key = rcgen::KeyPair::from_pem(&read("ca.key")?).context("ca.key")?;
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).context("ca.pem")?;
        let key_pair = if a.cert_key == "rsa-2048" {
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        } else {
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        }
        .context("generating the certificates' key")?;
        let key = SigningKey::from_pem(key_pair.serialize_pem().as_bytes())
            .map_err(|e| anyhow::anyhow!("the generated key: {e}"))?;
        let anchor = Certificate::from_pem(ca_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("ca.pem: {e}"))?
            .into_iter()
            .next()
            .context("ca.pem holds no certificate")?;
        Ok(Self {
            issuer,
            key_pair,
            key: Arc::new(key),
            anchor,
            domain: a.id_domain.clone(),
        })
    }

    /// SA k's certificate authentication: its own certificate for `i<k>.<domain>`.
    fn auth(&self, k: usize) -> Result<CertAuth> {
        let name = format!("i{k}.{}", self.domain);
        let mut p = rcgen::CertificateParams::new(vec![name.clone()])?;
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.is_ca = rcgen::IsCa::ExplicitNoCa;
        p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        p.serial_number = Some(rcgen::SerialNumber::from(u64::try_from(k)? + 1));
        p.use_authority_key_identifier_extension = true;
        let der = p.signed_by(&self.key_pair, &self.issuer)?.der().to_vec();
        Ok(CertAuth {
            key: self.key.clone(),
            chain: vec![Certificate::from_der(&der).map_err(|e| anyhow::anyhow!("{e}"))?],
            trust_anchors: vec![self.anchor.clone()],
            crls: Vec::new(),
            fetch_crls: false,
            hash_and_url: None,
            fetch_hash_and_url: false,
        })
    }
}

/// One engine instance as the generator drives it: the IKEv2 endpoint or the IKEv1 engine.
trait Initiator {
    fn initiate(
        &mut self,
        now: Instant,
        peer: PeerId,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<IkeSaHandle, CommandError>;
    fn handle_datagram(&mut self, now: Instant, local: SocketAddr, from: SocketAddr, data: &[u8]);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_transmit(&mut self) -> Option<Transmit>;
    fn poll_event(&mut self) -> Option<Event>;
    /// IKE (ISAKMP) SAs of every state.
    fn ike_sa_count(&self) -> usize;
}

impl Initiator for Endpoint {
    fn initiate(
        &mut self,
        now: Instant,
        peer: PeerId,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<IkeSaHandle, CommandError> {
        Endpoint::initiate(self, now, peer, local, remote)
    }
    fn handle_datagram(&mut self, now: Instant, local: SocketAddr, from: SocketAddr, data: &[u8]) {
        Endpoint::handle_datagram(self, now, local, from, data);
    }
    fn handle_timeout(&mut self, now: Instant) {
        Endpoint::handle_timeout(self, now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Endpoint::poll_transmit(self)
    }
    fn poll_event(&mut self) -> Option<Event> {
        Endpoint::poll_event(self)
    }
    fn ike_sa_count(&self) -> usize {
        Endpoint::ike_sa_count(self)
    }
}

impl Initiator for v1::Engine {
    fn initiate(
        &mut self,
        now: Instant,
        peer: PeerId,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<IkeSaHandle, CommandError> {
        v1::Engine::initiate(self, now, peer, local, remote)
    }
    fn handle_datagram(&mut self, now: Instant, local: SocketAddr, from: SocketAddr, data: &[u8]) {
        v1::Engine::handle_datagram(self, now, local, from, data);
    }
    fn handle_timeout(&mut self, now: Instant) {
        // As the facade does: the engine walks its SAs, so only when something is due.
        if self.poll_timeout().is_some_and(|t| t <= now) {
            v1::Engine::handle_timeout(self, now);
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        v1::Engine::poll_transmit(self)
    }
    fn poll_event(&mut self) -> Option<Event> {
        v1::Engine::poll_event(self)
    }
    fn ike_sa_count(&self) -> usize {
        self.sa_count()
    }
}

/// What happened to the SAs so far.
#[derive(Default)]
struct Tally {
    started: usize,
    up: usize,
    failed: usize,
    down_after_up: usize,
    /// Sum of per-SA handshake latencies (initiate → Child SA up).
    latency: Duration,
    max_latency: Duration,
    first_failure: Option<String>,
}

struct Gen {
    /// Engine instances; SA k lives in `eps[k / shard]` as peer `k % shard`.
    eps: Vec<Box<dyn Initiator>>,
    shard: usize,
    /// Our IKE SPI → engine instance.
    by_spi: HashMap<u64, usize>,
    sockets: Vec<Sock>,
    by_local: HashMap<SocketAddr, usize>,
    /// For the receive tasks of sockets opened later.
    tx: mpsc::Sender<(usize, SocketAddr, Vec<u8>)>,
    close_idle: bool,
    /// The socket each SA started on, while it counts as a user of it.
    sa_socket: HashMap<IkeSaHandle, usize>,
    /// SAs whose IKE traffic moved to port 4500.
    floated: std::collections::HashSet<IkeSaHandle>,
    /// Sockets used for initiating (not the 4500 ones).
    sources: Vec<SocketAddr>,
    target: SocketAddr,
    pending: HashMap<IkeSaHandle, Instant>,
    established: std::collections::HashSet<IkeSaHandle>,
    tally: Tally,
    log_events: bool,
    unroutable: usize,
    send_errors: usize,
}

/// One UDP socket of the generator.
struct Sock {
    /// The address it is bound to.
    addr: SocketAddr,
    /// `None` while closed (`--close-idle-ports`).
    sock: Option<Arc<UdpSocket>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Negotiations that started on it and have not moved away or ended.
    users: usize,
}

/// Receives on socket `i` into the generator's channel.
fn spawn_recv(
    i: usize,
    sock: Arc<UdpSocket>,
    tx: mpsc::Sender<(usize, SocketAddr, Vec<u8>)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            if tx.send((i, from, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    })
}

impl Gen {
    /// Opens socket `i` if it is closed.
    fn open(&mut self, i: usize) -> Result<()> {
        if self.sockets[i].sock.is_none() {
            let s = bind(self.sockets[i].addr)?;
            self.sockets[i].task = Some(spawn_recv(i, Arc::clone(&s), self.tx.clone()));
            self.sockets[i].sock = Some(s);
        }
        Ok(())
    }

    /// SA `h` no longer needs the socket it started on; with `--close-idle-ports` the socket
    /// closes when nobody does.
    fn release(&mut self, h: IkeSaHandle) {
        let Some(i) = self.sa_socket.remove(&h) else {
            return;
        };
        let s = &mut self.sockets[i];
        s.users = s.users.saturating_sub(1);
        if s.users == 0 && self.close_idle {
            if let Some(t) = s.task.take() {
                t.abort();
            }
            s.sock = None;
        }
    }

    async fn flush(&mut self) {
        for e in 0..self.eps.len() {
            while let Some(t) = self.eps[e].poll_transmit() {
                let Some(&i) = self.by_local.get(&t.local) else {
                    self.unroutable += 1;
                    continue;
                };
                let Some(sock) = &self.sockets[i].sock else {
                    self.send_errors += 1;
                    continue;
                };
                match sock.try_send_to(&t.data, t.remote) {
                    Ok(_) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                        if sock.send_to(&t.data, t.remote).await.is_err() {
                            self.send_errors += 1;
                        }
                    }
                    Err(_) => self.send_errors += 1,
                }
            }
        }
    }

    /// Hands a datagram to the engine instance that owns its IKE SA.
    fn datagram(&mut self, now: Instant, local: SocketAddr, from: SocketAddr, data: &[u8]) {
        // On port 4500 IKE messages follow a four-octet non-ESP marker.
        let ike = if local.port() == 4500 {
            data.get(4..)
        } else {
            Some(data)
        };
        let spi = ike
            .and_then(|d| d.get(..8))
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes);
        if let Some(&e) = spi.and_then(|s| self.by_spi.get(&s)) {
            self.eps[e].handle_datagram(now, local, from, data);
        } else {
            self.unroutable += 1;
        }
    }

    fn events(&mut self, now: Instant) {
        for e in 0..self.eps.len() {
            self.events_of(now, e);
        }
    }

    fn events_of(&mut self, now: Instant, idx: usize) {
        while let Some(e) = self.eps[idx].poll_event() {
            if self.log_events {
                eprintln!("event (instance {idx}): {e:?}");
            }
            match e {
                Event::IkeSaUp(info) if info.local.port() == 4500 => {
                    self.floated.insert(info.handle);
                }
                Event::ChildSaUp(info) => {
                    if let Some(t0) = self.pending.remove(&info.ike_sa) {
                        let l = now.saturating_duration_since(t0);
                        self.tally.up += 1;
                        self.tally.latency += l;
                        self.tally.max_latency = self.tally.max_latency.max(l);
                        self.established.insert(info.ike_sa);
                        if self.floated.remove(&info.ike_sa) {
                            self.release(info.ike_sa);
                        }
                    }
                }
                Event::Failed { handle, reason, .. } => {
                    if let Some(h) = handle
                        && self.pending.remove(&h).is_some()
                    {
                        self.tally.failed += 1;
                        self.tally.first_failure.get_or_insert(reason.to_string());
                        self.release(h);
                    }
                }
                Event::IkeSaDown { handle, reason, .. } => {
                    if self.pending.remove(&handle).is_some() {
                        self.tally.failed += 1;
                        self.tally
                            .first_failure
                            .get_or_insert(format!("IKE SA down: {reason}"));
                    } else if self.established.remove(&handle) {
                        self.tally.down_after_up += 1;
                    }
                    self.floated.remove(&handle);
                    self.release(handle);
                }
                _ => {}
            }
        }
    }

    /// Starts negotiations until `inflight` are pending or all `count` are started.
    fn refill(&mut self, now: Instant, count: usize, inflight: usize) {
        while self.tally.started < count && self.pending.len() < inflight {
            let k = self.tally.started;
            let local = self.sources[k % self.sources.len()];
            self.tally.started += 1;
            let e = k / self.shard;
            let peer = PeerId(u32::try_from(k % self.shard).unwrap_or(u32::MAX));
            let i = self.by_local[&local];
            if let Err(err) = self.open(i) {
                self.tally.failed += 1;
                self.tally.first_failure.get_or_insert(format!("{err:#}"));
                continue;
            }
            match self.eps[e].initiate(now, peer, local, self.target) {
                Ok(h) => {
                    self.pending.insert(h, now);
                    self.by_spi.insert(h.0.0, e);
                    self.sockets[i].users += 1;
                    self.sa_socket.insert(h, i);
                }
                Err(e) => {
                    self.tally.failed += 1;
                    self.tally.first_failure.get_or_insert(e.to_string());
                }
            }
        }
    }

    /// Gives up on negotiations older than `limit`.
    fn expire(&mut self, now: Instant, limit: Duration) {
        let old: Vec<IkeSaHandle> = self
            .pending
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(**t) > limit)
            .map(|(h, _)| *h)
            .collect();
        for h in old {
            self.pending.remove(&h);
            self.release(h);
            self.tally.failed += 1;
            self.tally
                .first_failure
                .get_or_insert("no answer within the per-SA limit".into());
        }
    }
}

/// This process's user + system CPU time so far, from /proc/self/stat (0 if unreadable).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

fn bind(addr: SocketAddr) -> Result<Arc<UdpSocket>> {
    let s = StdUdpSocket::bind(addr).with_context(|| format!("bind {addr}"))?;
    s.set_nonblocking(true)?;
    Ok(Arc::new(UdpSocket::from_std(s)?))
}

async fn run(a: Args) -> Result<()> {
    if a.count == 0 || a.inflight == 0 || a.shard == 0 {
        bail!("--count, --inflight and --shard must be positive");
    }
    let clock_seed = {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        t ^ u64::from(std::process::id()).rotate_left(32)
    };
    let certs = a
        .cert_ca
        .as_deref()
        .map(|d| Certs::load(&a, d))
        .transpose()?;
    let mut eps: Vec<Box<dyn Initiator>> = Vec::new();
    for (i, lo) in (0..a.count).step_by(a.shard).enumerate() {
        let peers = peer_configs(&a, lo..(lo + a.shard).min(a.count))?;
        let rng = instance_rng(a.seed, clock_seed, i);
        if a.ikev1 {
            // Peer j of the instance is PeerId(j), as the IKEv2 endpoint numbers them.
            let mut e = v1::Engine::new(Provider::default(), rng);
            let settings = v1::Settings {
                mode: v1::Mode::Main,
                dpd: None,
                ike_lifetime: (a.ike_lifetime > 0)
                    .then(|| SaLifetime::new(Duration::from_secs(a.ike_lifetime))),
            };
            for (j, cfg) in peers.into_iter().enumerate() {
                e.add_peer(PeerId(u32::try_from(j)?), Arc::new(cfg), settings);
            }
            eps.push(Box::new(e));
        } else {
            let now = Instant::now();
            let mut e = Endpoint::new(
                EndpointConfig::default(),
                peers,
                Provider::default(),
                rng,
                now,
            );
            if let Some(c) = &certs {
                let unix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
                e.set_wall_clock(now, unix);
                for k in lo..(lo + a.shard).min(a.count) {
                    let peer = PeerId(u32::try_from(k - lo)?);
                    e.set_certificates(peer, c.auth(k)?)
                        .map_err(|err| anyhow::anyhow!("SA {k}: {err}"))?;
                }
            }
            eps.push(Box::new(e));
        }
    }

    let (tx, mut rx) = mpsc::channel::<(usize, SocketAddr, Vec<u8>)>(8192);
    let mut sockets = Vec::new();
    let mut by_local = HashMap::new();
    let mut sources = Vec::new();
    // What the engine is told its local address is, per socket.
    let mut locals = Vec::new();
    let local: Vec<IpAddr> = a.local.iter().flatten().copied().collect();
    for (j, &ip) in local.iter().enumerate() {
        let seen = if a.nat { nat_pose(j)? } else { ip };
        for p in 0..a.ports {
            let addr = SocketAddr::new(ip, a.base_port + p);
            let engine = SocketAddr::new(seen, a.base_port + p);
            by_local.insert(engine, sockets.len());
            sockets.push(Sock {
                addr,
                sock: None,
                task: None,
                users: 0,
            });
            locals.push(engine);
            sources.push(engine);
        }
        if !a.no_natt {
            let addr = SocketAddr::new(ip, 4500);
            let engine = SocketAddr::new(seen, 4500);
            by_local.insert(engine, sockets.len());
            let s = bind(addr)?;
            sockets.push(Sock {
                addr,
                task: Some(spawn_recv(sockets.len(), Arc::clone(&s), tx.clone())),
                sock: Some(s),
                users: 0,
            });
            locals.push(engine);
        }
    }
    // Interleave addresses so consecutive SAs come from different source addresses.
    let per = usize::from(a.ports);
    let n_addr = local.len();
    let sources: Vec<SocketAddr> = (0..sources.len())
        .map(|i| sources[(i % n_addr) * per + i / n_addr])
        .collect();

    let mut g = Gen {
        eps,
        shard: a.shard,
        by_spi: HashMap::new(),
        by_local,
        sources,
        target: SocketAddr::new(a.target, 500),
        pending: HashMap::new(),
        established: Default::default(),
        tally: Tally::default(),
        log_events: a.log_events,
        unroutable: 0,
        send_errors: 0,
        sockets,
        tx,
        close_idle: a.close_idle_ports,
        sa_socket: HashMap::new(),
        floated: Default::default(),
    };
    // Without --close-idle-ports every socket is open from the start.
    if !g.close_idle {
        for i in 0..g.sockets.len() {
            g.open(i)?;
        }
    }

    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.timeout);
    let per_sa_limit = Duration::from_secs(a.timeout.min(30));
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut batch = Vec::with_capacity(256);
    g.refill(start, a.count, a.inflight);
    g.flush().await;

    let mut phase_done = false;
    let mut result_at = start;
    let hold_until = |t: Instant| t + Duration::from_secs(a.hold);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 { break; }
                let now = Instant::now();
                // drain, not mem::take: the batch keeps its capacity across wakeups.
                for (i, from, data) in batch.drain(..) {
                    g.datagram(now, locals[i], from, &data);
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                for ep in &mut g.eps {
                    ep.handle_timeout(now);
                }
                if !phase_done {
                    g.expire(now, per_sa_limit);
                }
            }
        }
        let now = Instant::now();
        g.events(now);
        if !phase_done {
            g.refill(now, a.count, a.inflight);
        }
        g.flush().await;

        if !phase_done && ((g.tally.started == a.count && g.pending.is_empty()) || now >= deadline)
        {
            phase_done = true;
            result_at = now;
            let secs = now.duration_since(start).as_secs_f64();
            let t = &g.tally;
            let mean_ms = if t.up > 0 {
                t.latency.as_secs_f64() * 1e3 / t.up as f64
            } else {
                0.0
            };
            println!(
                "RESULT version={} auth={} n={} established={} failed={} seconds={:.3} rate={:.1} \
                 mean_latency_ms={:.2} max_latency_ms={:.1} down_after_up={} unroutable={} \
                 send_errors={} cpu_seconds={:.2} first_failure={:?}",
                if a.ikev1 { "ikev1" } else { "ikev2" },
                if a.cert_ca.is_some() {
                    a.cert_key.as_str()
                } else {
                    "psk"
                },
                a.count,
                t.up,
                t.failed + g.pending.len(),
                secs,
                t.up as f64 / secs,
                mean_ms,
                t.max_latency.as_secs_f64() * 1e3,
                t.down_after_up,
                g.unroutable,
                g.send_errors,
                cpu_seconds(),
                t.first_failure.as_deref().unwrap_or("none"),
            );
            if a.hold == 0 {
                break;
            }
        }
        if phase_done && now >= hold_until(result_at) {
            println!(
                "HOLD still_up={} down_after_up={} ike_sas={}",
                g.established.len(),
                g.tally.down_after_up,
                g.eps.iter().map(|e| e.ike_sa_count()).sum::<usize>()
            );
            break;
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosec_crypto::sig::{self, SignatureScheme};
    use ferrosec_crypto::x509::{self, SubjectAltName};

    /// With `--seed` every ECDH key derives from the seed (the same seed gives the same group
    /// 19 public value); without it aws-lc draws them (two generators from the same clock seed
    /// give different ones), and the exchange still agrees with a seeded peer.
    #[test]
    fn ecdh_keys_come_from_the_seed_only_with_seed() {
        let p256 = Provider::default().key_exchange(19).unwrap();
        let public = |mut rng: Box<dyn ferrosec_crypto::Rng + Send>| {
            p256.start(&mut *rng).unwrap().public_key().to_vec()
        };
        assert_eq!(
            public(instance_rng(Some(5), 1, 0)),
            public(instance_rng(Some(5), 2, 0)),
            "--seed decides the key, not the clock"
        );
        assert!(!instance_rng(Some(5), 1, 0).is_os_backed());
        assert!(instance_rng(None, 1, 0).is_os_backed());
        assert_ne!(
            public(instance_rng(None, 1, 0)),
            public(instance_rng(None, 1, 0)),
            "without --seed aws-lc draws the key"
        );
        let a = p256.start(&mut *instance_rng(None, 1, 0)).unwrap();
        let b = p256.start(&mut *instance_rng(Some(5), 1, 0)).unwrap();
        assert_eq!(
            a.complete(b.public_key()).unwrap().expose(),
            b.complete(a.public_key()).unwrap().expose()
        );
    }

    /// `--cert-ca`: SA k's certificate names `i<k>.<id-domain>`, chains to the CA, and the
    /// generated key is its key; another SA's certificate names another identity.
    #[test]
    fn per_sa_certificates_chain_to_the_ca_and_match_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "loadgen test CA");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let ca = p.self_signed(&kp).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("ca.key"), kp.serialize_pem()).unwrap();
        let a = Args::parse_from([
            "ike-loadgen",
            "--target",
            "198.51.100.2",
            "--local",
            "192.0.2.1",
            "--cert-ca",
            dir.path().to_str().unwrap(),
        ]);
        let certs = Certs::load(&a, dir.path()).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        for k in [0, 7] {
            let auth = certs.auth(k).unwrap();
            let ee = &auth.chain[0];
            let name = format!("i{k}.bench.test");
            assert_eq!(ee.subject(), format!("CN={name}"));
            assert_eq!(ee.subject_alt_names(), vec![SubjectAltName::Dns(name)]);
            x509::check_chain(ee, &[], &auth.trust_anchors, &[], now).unwrap();
            let s = auth
                .key
                .sign(SignatureScheme::EcdsaP256Sha256, b"octets")
                .unwrap();
            sig::verify(
                SignatureScheme::EcdsaP256Sha256,
                &ee.public_key(),
                b"octets",
                &s,
            )
            .unwrap();
        }
    }
}
