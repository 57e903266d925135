//! Criterion benchmarks: ESP suites (seal/open at 64, 1400, 8192 bytes), the provider's
//! AES-256-GCM against aws-lc-rs called directly, key exchange per group, sign/verify.
//!
//! Run: `cargo bench -p ferrosec-crypto -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use aws_lc_rs::aead as lc;
use aws_lc_rs::agreement;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrosec_crypto::sig::{self, SignatureScheme, SigningKey};
use ferrosec_crypto::{Encryption, EspSuite, Integrity, Provider, Secret};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const SIZES: [usize; 3] = [64, 1400, 8192];

fn suites() -> Vec<(&'static str, EspSuite)> {
    let s = |e, i| EspSuite::new(e, i).unwrap();
    vec![
        (
            "aes128-gcm16",
            s(
                Encryption::AesGcm {
                    key_len: 16,
                    icv_len: 16,
                },
                None,
            ),
        ),
        (
            "aes256-gcm16",
            s(
                Encryption::AesGcm {
                    key_len: 32,
                    icv_len: 16,
                },
                None,
            ),
        ),
        (
            "aes128-gcm8",
            s(
                Encryption::AesGcm {
                    key_len: 16,
                    icv_len: 8,
                },
                None,
            ),
        ),
        (
            "aes128-ccm16",
            s(
                Encryption::AesCcm {
                    key_len: 16,
                    icv_len: 16,
                },
                None,
            ),
        ),
        ("chacha20-poly1305", s(Encryption::ChaCha20Poly1305, None)),
        (
            "aes128-cbc-sha256",
            s(
                Encryption::AesCbc { key_len: 16 },
                Some(Integrity::HmacSha256_128),
            ),
        ),
        (
            "aes256-cbc-sha256",
            s(
                Encryption::AesCbc { key_len: 32 },
                Some(Integrity::HmacSha256_128),
            ),
        ),
        (
            "aes256-cbc-sha512",
            s(
                Encryption::AesCbc { key_len: 32 },
                Some(Integrity::HmacSha512_256),
            ),
        ),
        (
            "aes128-ctr-sha256",
            s(
                Encryption::AesCtr { key_len: 16 },
                Some(Integrity::HmacSha256_128),
            ),
        ),
        (
            "3des-sha1",
            s(Encryption::TripleDes, Some(Integrity::HmacSha1_96)),
        ),
        ("des-md5", s(Encryption::Des, Some(Integrity::HmacMd5_96))),
        (
            "null-sha256",
            s(Encryption::Null, Some(Integrity::HmacSha256_128)),
        ),
    ]
}

/// A packet of `payload` bytes (rounded up to the suite's alignment) with room for IV and ICV.
fn packet(suite: &EspSuite, payload: usize) -> Vec<u8> {
    let a = suite.pad_align();
    let body = payload.div_ceil(a) * a;
    vec![0x5a; 8 + suite.iv_len() + body + suite.icv_len()]
}

fn esp(c: &mut Criterion) {
    for (name, suite) in suites() {
        let ek = Secret::from_slice(&vec![7; suite.encr_keymat_len()]);
        let ik = Secret::from_slice(&vec![9; suite.integ_key_len()]);
        let sa = suite.key(&ek, &ik).unwrap();
        let mut g = c.benchmark_group(format!("esp/{name}"));
        for size in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let mut pkt = packet(&suite, size);
            g.bench_with_input(BenchmarkId::new("seal", size), &size, |b, _| {
                let mut seq = 0u64;
                b.iter(|| {
                    seq += 1;
                    sa.seal(black_box(&mut pkt), seq, false).unwrap();
                })
            });
            let mut sealed = packet(&suite, size);
            sa.seal(&mut sealed, 1, false).unwrap();
            let mut work = sealed.clone();
            g.bench_with_input(BenchmarkId::new("open", size), &size, |b, _| {
                b.iter(|| {
                    work.copy_from_slice(&sealed);
                    black_box(sa.open(black_box(&mut work), 1, false).unwrap());
                })
            });
        }
        g.finish();
    }
}

/// AES-256-GCM seal+open of 1400 bytes: through the provider, and calling aws-lc-rs directly
/// with the same nonce and AAD construction.
fn gcm_vs_direct(c: &mut Criterion) {
    let mut g = c.benchmark_group("gcm256-1400-seal+open");
    g.throughput(Throughput::Bytes(1400));
    let suite = Provider::default().esp(20, Some(256), None).unwrap();
    let sa = suite
        .key(&Secret::from_slice(&[7; 36]), &Secret::default())
        .unwrap();
    let mut pkt = packet(&suite, 1400);
    g.bench_function("provider", |b| {
        let mut seq = 0u64;
        b.iter(|| {
            seq += 1;
            sa.seal(&mut pkt, seq, false).unwrap();
            black_box(sa.open(&mut pkt, seq, false).unwrap());
        })
    });
    let key = lc::LessSafeKey::new(lc::UnboundKey::new(&lc::AES_256_GCM, &[7; 32]).unwrap());
    let mut buf = vec![0x5au8; 1400];
    g.bench_function("aws-lc-rs", |b| {
        let mut seq = 0u64;
        b.iter(|| {
            seq += 1;
            let mut n = [0u8; 12];
            n[..4].copy_from_slice(&[7; 4]);
            n[4..].copy_from_slice(&seq.to_be_bytes());
            let mut aad = [0u8; 8];
            aad[4..].copy_from_slice(&(seq as u32).to_be_bytes());
            let tag = key
                .seal_in_place_separate_tag(
                    lc::Nonce::assume_unique_for_key(n),
                    lc::Aad::from(aad),
                    &mut buf,
                )
                .unwrap();
            key.open_in_place_separate_tag(
                lc::Nonce::assume_unique_for_key(n),
                lc::Aad::from(aad),
                tag.as_ref(),
                &mut buf,
            )
            .unwrap();
            black_box(&buf);
        })
    });
    g.finish();
}

/// The operating system's generator, saying so (as the daemon's does).
struct OsBacked;

impl ferrosec_crypto::Rng for OsBacked {
    fn fill(&mut self, buf: &mut [u8]) {
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, buf)
    }
    fn is_os_backed(&self) -> bool {
        true
    }
}

fn key_exchange(c: &mut Criterion) {
    let mut g = c.benchmark_group("kex");
    g.sample_size(10);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for kx in Provider::default().key_exchanges() {
        let peer = kx.start(&mut rng).unwrap();
        let peer_pub = peer.public_key().to_vec();
        g.bench_function(BenchmarkId::new("keygen+shared", kx.name()), |b| {
            b.iter(|| {
                let me = kx.start(&mut rng).unwrap();
                black_box(me.complete(&peer_pub).unwrap());
            })
        });
        if kx.name() == "ecp256" {
            // As the daemon draws: from the operating system, so aws-lc draws the key itself.
            g.bench_function(BenchmarkId::new("keygen+shared-os-rng", kx.name()), |b| {
                b.iter(|| {
                    let me = kx.start(&mut OsBacked).unwrap();
                    black_box(me.complete(&peer_pub).unwrap());
                })
            });
            // aws-lc-rs with its own randomness, for reference: what the import of our scalar
            // costs on top.
            let mut sec1 = vec![4u8];
            sec1.extend_from_slice(&peer_pub);
            g.bench_function(
                BenchmarkId::new("aws-lc-rs-generate+shared", "ecp256"),
                |b| {
                    b.iter(|| {
                        let me = agreement::PrivateKey::generate(&agreement::ECDH_P256).unwrap();
                        black_box(me.compute_public_key().unwrap());
                        let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &sec1);
                        black_box(agreement::agree(&me, peer, (), |k| Ok(k.to_vec())).unwrap());
                    })
                },
            );
            g.bench_function(BenchmarkId::new("aws-lc-rs-import", "ecp256"), |b| {
                let scalar = [7u8; 32];
                b.iter(|| {
                    let me =
                        agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, &scalar)
                            .unwrap();
                    black_box(me.compute_public_key().unwrap());
                })
            });
            g.bench_function(BenchmarkId::new("aws-lc-rs-generate", "ecp256"), |b| {
                b.iter(|| {
                    let me = agreement::PrivateKey::generate(&agreement::ECDH_P256).unwrap();
                    black_box(me.compute_public_key().unwrap());
                })
            });
        }
    }
    g.finish();
}

fn signatures(c: &mut Criterion) {
    let mut g = c.benchmark_group("sig");
    let keys = [
        (
            "rsa2048-pkcs1-sha256",
            &rcgen::PKCS_RSA_SHA256,
            SignatureScheme::RsaPkcs1Sha256,
        ),
        (
            "ecdsa-p256",
            &rcgen::PKCS_ECDSA_P256_SHA256,
            SignatureScheme::EcdsaP256Sha256,
        ),
        (
            "ecdsa-p384",
            &rcgen::PKCS_ECDSA_P384_SHA384,
            SignatureScheme::EcdsaP384Sha384,
        ),
        ("ed25519", &rcgen::PKCS_ED25519, SignatureScheme::Ed25519),
    ];
    let msg = vec![0x42u8; 600];
    for (name, alg, scheme) in keys {
        let kp = rcgen::KeyPair::generate_for(alg).unwrap();
        let key = SigningKey::from_der(&kp.serialize_der()).unwrap();
        let public = key.public_key();
        let s = key.sign(scheme, &msg).unwrap();
        g.bench_function(BenchmarkId::new("sign", name), |b| {
            b.iter(|| black_box(key.sign(scheme, &msg).unwrap()))
        });
        g.bench_function(BenchmarkId::new("verify", name), |b| {
            b.iter(|| sig::verify(scheme, &public, &msg, &s).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, gcm_vs_direct, esp, key_exchange, signatures);
criterion_main!(benches);
