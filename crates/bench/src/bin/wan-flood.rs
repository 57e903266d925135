//! `wan-flood`: bad input on every WAN socket of a gateway, as fast as one thread can send, for
//! a fixed time (interop 54). Needs CAP_NET_RAW (the raw ESP and AH sockets).
//!
//! Nine kinds of packet, sent in turn, each from a pool of 256 made in advance from a seeded
//! RNG (so the sending loop does nothing but send):
//!
//! | kind | socket | what the gateway should count |
//! |---|---|---|
//! | `udp500-garbage` | UDP 500 | random bytes whose IKE length field lies: `ike-malformed` |
//! | `udp500-truncated` | UDP 500 | 1 to 27 bytes, shorter than an IKE header: `ike-malformed` |
//! | `udp4500-truncated` | UDP 4500 | 1 to 7 bytes (never the 0xff keepalive): `natt-malformed` |
//! | `udp4500-marker-garbage` | UDP 4500 | the non-ESP marker, then lying IKE: `ike-malformed` |
//! | `udp4500-esp-unknown` | UDP 4500 | ESP with an SPI of no SA: `unknown-spi` |
//! | `esp-unknown` | raw ESP (50) | ESP with an SPI of no SA: `unknown-spi` |
//! | `esp-bad-icv` | raw ESP | `--esp-spi`, fresh sequence numbers, random ciphertext: `auth-failed` on that SA |
//! | `ah-unknown` | raw AH (51) | a well-formed AH header with an SPI of no SA: `unknown-spi` |
//! | `ah-bad-icv` | raw AH | `--ah-spi`, fresh sequence numbers, random ICV: `auth-failed` on that SA |
//!
//! Without `--esp-spi` / `--ah-spi` the two bad-ICV kinds are not sent; `--sockets` keeps the
//! kinds of some sockets only (e.g. `udp500,udp4500`). Every socket is bound to
//! `--source` (an address of this host that is not the gateway's peer). Output: one JSON line,
//! `{"seconds": S, "sent": {kind: packets}, "errors": {kind: failed sends}}`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use socket2::{Domain, Protocol, Socket, Type};

#[derive(Debug, Parser)]
#[command(about = "Bad input on a gateway's UDP 500/4500, raw ESP and raw AH sockets")]
struct Args {
    /// The gateway's WAN address.
    #[arg(long)]
    target: Ipv4Addr,
    /// The address to send from.
    #[arg(long)]
    source: Ipv4Addr,
    /// How long to send.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// The inbound SPI of the gateway's ESP SA (hex, 0x optional): packets with it and a bad
    /// ICV.
    #[arg(long, value_parser = hex_spi)]
    esp_spi: Option<u32>,
    /// The inbound SPI of the gateway's AH SA.
    #[arg(long, value_parser = hex_spi)]
    ah_spi: Option<u32>,
    /// At most this many packets a second in all (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Only the kinds for these sockets (comma-separated: udp500, udp4500, esp, ah; default
    /// all four).
    #[arg(long, value_delimiter = ',', default_value = "udp500,udp4500,esp,ah")]
    sockets: Vec<String>,
    /// Seed of the packet pools.
    #[arg(long, default_value_t = 53)]
    seed: u64,
}

fn hex_spi(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| format!("{s}: {e}"))
}

/// Packets of one kind made in advance.
const POOL: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Sock {
    Udp500,
    Udp4500,
    Esp,
    Ah,
}

impl Sock {
    fn name(self) -> &'static str {
        match self {
            Sock::Udp500 => "udp500",
            Sock::Udp4500 => "udp4500",
            Sock::Esp => "esp",
            Sock::Ah => "ah",
        }
    }
}

struct Kind {
    name: &'static str,
    sock: Sock,
    pool: Vec<Vec<u8>>,
}

struct Gen {
    rng: ChaCha8Rng,
    /// SPIs that must not be picked as unknown ones.
    real: Vec<u32>,
}

impl Gen {
    fn below(&mut self, n: u32) -> u32 {
        self.rng.next_u32() % n
    }

    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo) as u32) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill_bytes(&mut v);
        v
    }

    /// Random bytes shaped as an IKE message whose length field disagrees with its length.
    fn lying_ike(&mut self) -> Vec<u8> {
        let len = self.range(28, 1400);
        let mut v = self.bytes(len);
        let mut declared = self.rng.next_u32();
        if declared as usize == len {
            declared ^= 1;
        }
        v[24..28].copy_from_slice(&declared.to_be_bytes());
        v
    }

    /// An SPI of no SA (256 and up: 1-255 are reserved, RFC 4303 §2.1).
    fn unknown_spi(&mut self) -> u32 {
        loop {
            let s = self.rng.next_u32();
            if s >= 256 && !self.real.contains(&s) {
                return s;
            }
        }
    }

    /// An ESP packet: SPI, a sequence number well right of any replay window's start (so
    /// that the packet reaches the ICV check), then random IV, ciphertext and ICV.
    fn esp(&mut self, spi: u32) -> Vec<u8> {
        let seq = (1u32 << 24) + self.below(1 << 30);
        let mut v = spi.to_be_bytes().to_vec();
        v.extend_from_slice(&seq.to_be_bytes());
        let n = self.range(48, 1400);
        v.extend(self.bytes(n));
        v
    }

    /// An AH packet (what follows the IPv4 header): Next Header IPv4, a length that fits a
    /// 16-byte ICV (HMAC-SHA-256-128), SPI, sequence number, a random ICV, then an inner IPv4
    /// header and random payload.
    fn ah(&mut self, spi: u32) -> Vec<u8> {
        let seq = (1u32 << 24) + self.below(1 << 30);
        let mut v = vec![4, ((12 + 16) / 4 - 2) as u8, 0, 0];
        v.extend_from_slice(&spi.to_be_bytes());
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend(self.bytes(16));
        let payload = self.range(8, 1200);
        let total = (20 + payload) as u16;
        let mut inner = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 2, 0, 10, 10, 1, 0, 10,
        ];
        inner[2..4].copy_from_slice(&total.to_be_bytes());
        v.extend(inner);
        v.extend(self.bytes(payload));
        v
    }

    fn pool(&mut self, f: impl Fn(&mut Self) -> Vec<u8>) -> Vec<Vec<u8>> {
        (0..POOL).map(|_| f(self)).collect()
    }
}

fn kinds(args: &Args) -> Vec<Kind> {
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(args.seed),
        real: [args.esp_spi, args.ah_spi].into_iter().flatten().collect(),
    };
    let mut k = vec![
        Kind {
            name: "udp500-garbage",
            sock: Sock::Udp500,
            pool: g.pool(Gen::lying_ike),
        },
        Kind {
            name: "udp500-truncated",
            sock: Sock::Udp500,
            pool: g.pool(|g| {
                let n = g.range(1, 28);
                g.bytes(n)
            }),
        },
        Kind {
            name: "udp4500-truncated",
            sock: Sock::Udp4500,
            pool: g.pool(|g| {
                let n = g.range(1, 8);
                let mut v = g.bytes(n);
                if v == [0xff] {
                    v[0] = 0xfe;
                }
                // Not the non-ESP marker followed by nothing.
                v[0] |= 1;
                v
            }),
        },
        Kind {
            name: "udp4500-marker-garbage",
            sock: Sock::Udp4500,
            pool: g.pool(|g| {
                let mut v = vec![0u8; 4];
                v.extend(g.lying_ike());
                v
            }),
        },
        Kind {
            name: "udp4500-esp-unknown",
            sock: Sock::Udp4500,
            pool: g.pool(|g| {
                let spi = g.unknown_spi();
                g.esp(spi)
            }),
        },
        Kind {
            name: "esp-unknown",
            sock: Sock::Esp,
            pool: g.pool(|g| {
                let spi = g.unknown_spi();
                g.esp(spi)
            }),
        },
        Kind {
            name: "ah-unknown",
            sock: Sock::Ah,
            pool: g.pool(|g| {
                let spi = g.unknown_spi();
                g.ah(spi)
            }),
        },
    ];
    if let Some(spi) = args.esp_spi {
        k.push(Kind {
            name: "esp-bad-icv",
            sock: Sock::Esp,
            pool: g.pool(|g| g.esp(spi)),
        });
    }
    if let Some(spi) = args.ah_spi {
        k.push(Kind {
            name: "ah-bad-icv",
            sock: Sock::Ah,
            pool: g.pool(|g| g.ah(spi)),
        });
    }
    k
}

fn raw(source: Ipv4Addr, proto: i32) -> Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(proto)))
        .with_context(|| format!("raw socket for IP protocol {proto} (needs CAP_NET_RAW)"))?;
    s.bind(&SocketAddr::new(IpAddr::V4(source), 0).into())
        .with_context(|| format!("bind raw socket to {source}"))?;
    Ok(s)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.seconds <= 0.0 {
        bail!("--seconds must be positive");
    }
    for n in &args.sockets {
        if !["udp500", "udp4500", "esp", "ah"].contains(&n.as_str()) {
            bail!("--sockets: {n} is none of udp500, udp4500, esp, ah");
        }
    }
    let kinds: Vec<Kind> = kinds(&args)
        .into_iter()
        .filter(|k| args.sockets.iter().any(|n| n == k.sock.name()))
        .collect();
    let udp = UdpSocket::bind((args.source, 0)).context("bind UDP socket")?;
    let esp = raw(args.source, 50)?;
    let ah = raw(args.source, 51)?;
    let to = |port| SocketAddr::new(IpAddr::V4(args.target), port);
    let (to500, to4500, to_raw) = (to(500), to(4500), to(0).into());
    let mut sent = vec![0u64; kinds.len()];
    let mut errors = vec![0u64; kinds.len()];
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.seconds);
    let mut n = 0u64;
    'send: loop {
        // The clock is read once per round of 64 packets of each kind.
        let now = Instant::now();
        if now >= end {
            break;
        }
        if args.rate > 0 {
            let due = (now - start).as_secs_f64() * args.rate as f64;
            if ((n * kinds.len() as u64) as f64) >= due {
                std::thread::sleep(Duration::from_micros(200));
                continue 'send;
            }
        }
        for _ in 0..64 {
            for (i, k) in kinds.iter().enumerate() {
                let p = &k.pool[(n as usize) % POOL];
                let r = match k.sock {
                    Sock::Udp500 => udp.send_to(p, to500),
                    Sock::Udp4500 => udp.send_to(p, to4500),
                    Sock::Esp => esp.send_to(p, &to_raw),
                    Sock::Ah => ah.send_to(p, &to_raw),
                };
                match r {
                    Ok(_) => sent[i] += 1,
                    Err(_) => errors[i] += 1,
                }
            }
            n += 1;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let by_name = |v: &[u64]| {
        kinds
            .iter()
            .zip(v)
            .map(|(k, n)| (k.name, *n))
            .collect::<BTreeMap<_, _>>()
    };
    let fmt = |m: BTreeMap<&str, u64>| {
        m.iter()
            .map(|(k, v)| format!("\"{k}\": {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "{{\"seconds\": {seconds:.3}, \"sent\": {{{}}}, \"errors\": {{{}}}}}",
        fmt(by_name(&sent)),
        fmt(by_name(&errors))
    );
    Ok(())
}
