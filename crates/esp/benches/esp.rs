//! Criterion benchmarks: tunnel-mode encapsulate + decapsulate per suite at 64, 1400 and
//! 8192-byte inner packets, beside the crypto crate's bare ESP seal + open (same suite, same
//! size, no framing) and, for the AEADs aws-lc-rs implements, aws-lc-rs `aead` called
//! directly. The ratio encap+decap / bare AEAD is the data plane's overhead (issue 7 target:
//! at most 1.3× at 1400 B).
//!
//! Run: `cargo bench -p ferrosec-esp -- --warm-up-time 1 --measurement-time 3`.

mod common;

use std::hint::black_box;

use aws_lc_rs::aead as lc;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrosec_crypto::Secret;
use ferrosec_esp::{InboundSa, OutboundSa};

use common::{inner_packet, params, suites};

const SIZES: [usize; 3] = [64, 1400, 8192];

fn bench(c: &mut Criterion) {
    for (name, suite, bare) in suites() {
        let mut g = c.benchmark_group(format!("esp/{name}"));
        for size in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let inner = inner_packet(size);

            let mut out = OutboundSa::new(params(suite, [10, 0, 0, 0], [10, 1, 0, 0])).unwrap();
            let mut inb =
                InboundSa::new(params(suite, [10, 1, 0, 0], [10, 0, 0, 0]), 4096).unwrap();
            let mut buf = vec![0u8; out.packet_len(size)];
            g.bench_with_input(BenchmarkId::new("encap+decap", size), &inner, |b, inner| {
                b.iter(|| {
                    let n = out
                        .encapsulate(black_box(inner), &mut buf)
                        .unwrap()
                        .packet
                        .len();
                    let d = inb.decapsulate_in_place(&mut buf[..n]).unwrap();
                    black_box(d.inner.len())
                })
            });

            // The crypto crate alone on a laid-out packet of the same size.
            let sa = suite
                .key(
                    &Secret::new(vec![7; suite.encr_keymat_len()]),
                    &Secret::new(vec![9; suite.integ_key_len()]),
                )
                .unwrap();
            let body = size + 2;
            let body = body.div_ceil(suite.pad_align()) * suite.pad_align();
            let mut pkt = vec![0u8; 8 + suite.iv_len() + body + suite.icv_len()];
            let mut seq = 0u64;
            g.bench_function(BenchmarkId::new("crypto-seal+open", size), |b| {
                b.iter(|| {
                    seq += 1;
                    sa.seal(&mut pkt, seq, true).unwrap();
                    black_box(sa.open(&mut pkt, seq, true).unwrap())
                })
            });

            // aws-lc-rs directly: seal + open of `size` bytes with an 8-byte AAD.
            if let Some(alg) = bare {
                let key = lc::LessSafeKey::new(
                    lc::UnboundKey::new(alg, &vec![7u8; alg.key_len()]).unwrap(),
                );
                let mut data = vec![0x5au8; size + alg.tag_len()];
                let mut n = 0u64;
                g.bench_function(BenchmarkId::new("aws-lc-aead-seal+open", size), |b| {
                    b.iter(|| {
                        n += 1;
                        let mut nonce = [0u8; 12];
                        nonce[4..].copy_from_slice(&n.to_be_bytes());
                        let aad = [0u8; 8];
                        let (msg, tag_room) = data.split_at_mut(size);
                        let tag = key
                            .seal_in_place_separate_tag(
                                lc::Nonce::assume_unique_for_key(nonce),
                                lc::Aad::from(aad),
                                msg,
                            )
                            .unwrap();
                        tag_room.copy_from_slice(tag.as_ref());
                        let plain = key
                            .open_in_place(
                                lc::Nonce::assume_unique_for_key(nonce),
                                lc::Aad::from(aad),
                                &mut data,
                            )
                            .unwrap();
                        black_box(plain.len())
                    })
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
