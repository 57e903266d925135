//! IKEv2 round trips: hand-built payloads of every type, known byte layouts, and property
//! tests over generated reprs.

use std::net::{Ipv4Addr, Ipv6Addr};

use ferrosec_wire::ikev2::*;
use ferrosec_wire::{AttrValue, DataAttribute, IkeSpi, MessageId};
use proptest::prelude::*;

fn header(exchange: ExchangeType) -> Header {
    Header {
        initiator_spi: IkeSpi(0x0102_0304_0506_0708),
        responder_spi: IkeSpi(0x1112_1314_1516_1718),
        version: Version::IKEV2,
        exchange_type: exchange,
        flags: Flags::new(true, false),
        message_id: MessageId(1),
    }
}

fn every_payload() -> Vec<Payload<'static>> {
    let sa = Sa {
        proposals: vec![
            Proposal {
                number: 1,
                protocol: ProtocolId::IKE,
                spi: &[],
                transforms: vec![
                    Transform::encr(EncrId::AES_CBC, Some(256)),
                    Transform::prf(PrfId::HMAC_SHA2_256),
                    Transform::integ(IntegId::HMAC_SHA2_256_128),
                    Transform::ke(DhGroup::MODP_2048),
                ],
            },
            Proposal {
                number: 2,
                protocol: ProtocolId::ESP,
                spi: &[0xc1, 0xc2, 0xc3, 0xc4],
                transforms: vec![
                    Transform::encr(EncrId::AES_GCM_16, Some(128)),
                    Transform::esn(EsnId::NO_ESN),
                    Transform {
                        ty: TransformType(200),
                        id: 0xbeef,
                        attributes: vec![DataAttribute::variable(99u16, b"xyz")],
                    },
                ],
            },
        ],
    };
    vec![
        Payload::new(PayloadBody::Sa(sa)),
        Payload::new(PayloadBody::Ke(KeyExchange {
            group: DhGroup::ECP_256,
            data: &[0x42; 64],
        })),
        Payload::new(PayloadBody::Nonce(&[0x4e; 32])),
        Payload::new(PayloadBody::IdI(Identification {
            id_type: IdType::FQDN,
            data: b"left.example",
        })),
        Payload::new(PayloadBody::IdR(Identification {
            id_type: IdType::IPV4_ADDR,
            data: &[198, 51, 100, 2],
        })),
        Payload::new(PayloadBody::Cert(Certificate {
            encoding: CertEncoding::X509_SIGNATURE,
            data: &[0x30, 0x82, 0x01],
        })),
        Payload::new(PayloadBody::CertReq(Certificate {
            encoding: CertEncoding::X509_SIGNATURE,
            data: &[0xaa; 20],
        })),
        Payload::new(PayloadBody::Auth(Auth {
            method: AuthMethod::SHARED_KEY_MIC,
            data: &[0xab; 32],
        })),
        Payload::new(PayloadBody::Notify(Notify::new(
            NotifyType::INITIAL_CONTACT,
            &[],
        ))),
        Payload::new(PayloadBody::Notify(Notify {
            protocol: ProtocolId::ESP,
            spi: &[1, 2, 3, 4],
            ty: NotifyType::REKEY_SA,
            data: &[],
        })),
        Payload::new(PayloadBody::Notify(Notify::new(
            NotifyType(40000),
            b"private",
        ))),
        Payload::new(PayloadBody::Delete(Delete {
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: &[0, 0, 0, 1, 0, 0, 0, 2],
        })),
        Payload::new(PayloadBody::Delete(Delete {
            protocol: ProtocolId::IKE,
            spi_size: 0,
            spis: &[],
        })),
        Payload::new(PayloadBody::VendorId(b"ferrosec")),
        Payload::new(PayloadBody::TsI(TrafficSelectors {
            selectors: vec![
                TrafficSelector::Ipv4(TsRange {
                    ip_protocol: 0,
                    start_port: 0,
                    end_port: 65535,
                    start: Ipv4Addr::new(10, 1, 0, 0),
                    end: Ipv4Addr::new(10, 1, 255, 255),
                }),
                TrafficSelector::Ipv6(TsRange {
                    ip_protocol: 17,
                    start_port: 500,
                    end_port: 500,
                    start: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
                    end: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0xffff, 0xffff, 0xffff, 0xffff),
                }),
                TrafficSelector::Other {
                    ts_type: TsType::SECLABEL,
                    second_octet: 0,
                    data: b"system_u:object_r",
                },
            ],
        })),
        Payload::new(PayloadBody::TsR(TrafficSelectors { selectors: vec![] })),
        Payload::new(PayloadBody::Config(Config {
            cfg_type: CfgType::CFG_REPLY,
            attributes: vec![
                CfgAttribute {
                    ty: CfgAttrType::INTERNAL_IP4_ADDRESS,
                    value: &[10, 9, 0, 1],
                },
                CfgAttribute {
                    ty: CfgAttrType::INTERNAL_IP6_DNS,
                    value: &[],
                },
                CfgAttribute {
                    ty: CfgAttrType(30000),
                    value: &[1],
                },
            ],
        })),
        Payload::new(PayloadBody::Eap(&[1, 7, 0, 5, 1])),
        Payload {
            critical: true,
            body: PayloadBody::Unknown {
                ty: PayloadType(200),
                data: b"opaque",
            },
        },
        Payload::new(PayloadBody::Unknown {
            ty: PayloadType::GSPM,
            data: &[],
        }),
    ]
}

#[test]
fn every_payload_type_round_trips() {
    let msg = Message {
        header: header(ExchangeType::IKE_AUTH),
        payloads: every_payload(),
    };
    let bytes = msg.to_vec().unwrap();
    assert_eq!(bytes.len(), msg.buffer_len());
    let parsed = Message::parse(&bytes).unwrap();
    assert_eq!(parsed, msg);
    assert_eq!(parsed.to_vec().unwrap(), bytes);
    // The critical bit of the unknown payload survives.
    assert!(
        parsed
            .payloads
            .iter()
            .any(|p| p.critical && p.payload_type() == PayloadType(200))
    );
}

#[test]
fn known_layout_ke_nonce() {
    // Header + KE(group 19, 4 bytes) + Nonce(3 bytes), written out by hand from RFC 7296
    // §3.1, §3.2, §3.4 and §3.9.
    #[rustfmt::skip]
    let bytes = [
        1, 2, 3, 4, 5, 6, 7, 8,   0, 0, 0, 0, 0, 0, 0, 0,
        34, 0x20, 34, 0x08,  0, 0, 0, 0,  0, 0, 0, 47,
        // KE: next = Nonce (40), length 12, group 19, reserved, data
        40, 0, 0, 12,  0, 19, 0, 0,  0xde, 0xad, 0xbe, 0xef,
        // Nonce: next = none, length 7
        0, 0, 0, 7,  9, 9, 9,
    ];
    let msg = Message::parse(&bytes).unwrap();
    assert_eq!(msg.header.exchange_type, ExchangeType::IKE_SA_INIT);
    assert!(msg.header.flags.initiator());
    assert!(!msg.header.flags.response());
    assert_eq!(msg.header.responder_spi, IkeSpi(0));
    assert_eq!(
        msg.payloads,
        vec![
            Payload::new(PayloadBody::Ke(KeyExchange {
                group: DhGroup::ECP_256,
                data: &[0xde, 0xad, 0xbe, 0xef]
            })),
            Payload::new(PayloadBody::Nonce(&[9, 9, 9])),
        ]
    );
    assert_eq!(msg.to_vec().unwrap(), bytes);
}

#[test]
fn transform_debug_names_the_algorithm() {
    let s = format!("{:?}", Transform::encr(EncrId::AES_GCM_16, Some(256)));
    assert!(s.contains("AES_GCM_16"), "{s}");
    assert_eq!(format!("{:?}", NotifyType(12345)), "NotifyType(12345)");
    assert_eq!(
        format!("{:?}", NotifyType::NAT_DETECTION_SOURCE_IP),
        "NAT_DETECTION_SOURCE_IP"
    );
    assert_eq!(
        Transform::encr(EncrId::AES_CBC, Some(128)).key_length(),
        Some(128)
    );
}

#[test]
fn sk_build_then_verify_layout() {
    // Build a protected message the way the engine will: inner chain, then SK with room
    // for IV | ciphertext | ICV, then fill in the ICV over the signed range.
    let inner = vec![
        Payload::new(PayloadBody::IdI(Identification {
            id_type: IdType::FQDN,
            data: b"a",
        })),
        Payload::new(PayloadBody::Auth(Auth {
            method: AuthMethod::SHARED_KEY_MIC,
            data: &[7; 32],
        })),
    ];
    let mut plain = vec![0u8; payloads_len(&inner)];
    emit_payloads(&inner, &mut plain).unwrap();
    plain.push(0); // Pad Length 0
    let (iv_len, icv_len) = (16, 16);
    let mut data = vec![0xa5u8; iv_len];
    data.extend_from_slice(&plain); // "encryption" = identity, for the test
    data.extend_from_slice(&[0u8; 16]);
    let msg = Message {
        header: header(ExchangeType::IKE_AUTH),
        payloads: vec![Payload::new(PayloadBody::Encrypted(Encrypted {
            next_payload: first_payload_type(&inner),
            data: &data,
        }))],
    };
    let mut bytes = msg.to_vec().unwrap();
    let layout = msg.sk_layout().unwrap();
    assert_eq!(layout.payload_start, HEADER_LEN);
    assert_eq!(layout.aad(), 0..HEADER_LEN + 4);
    let parts = layout.split(iv_len, icv_len).unwrap();
    assert_eq!(parts.signed.end, bytes.len() - icv_len);
    let icv = parts.icv.clone();
    bytes[icv].copy_from_slice(&[0x11; 16]);

    // Receiver side.
    let rx = Message::parse(&bytes).unwrap();
    let l2 = rx.sk_layout().unwrap();
    assert_eq!(l2, layout);
    assert_eq!(l2.next_payload, PayloadType::IDI);
    let p2 = l2.split(iv_len, icv_len).unwrap();
    assert_eq!(&bytes[p2.icv.clone()], &[0x11; 16]);
    let decrypted = &bytes[p2.ciphertext];
    let got = parse_payloads(l2.next_payload, strip_padding(decrypted).unwrap()).unwrap();
    assert_eq!(got, inner);
    assert!(layout.split(20, 200).is_err());
}

#[test]
fn skf_layout() {
    let data = [1u8; 40];
    let msg = Message {
        header: header(ExchangeType::IKE_AUTH),
        payloads: vec![
            Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::COOKIE,
                &[5; 8],
            ))),
            Payload::new(PayloadBody::EncryptedFragment(EncryptedFragment {
                next_payload: PayloadType::IDI,
                fragment_number: 1,
                total_fragments: 3,
                data: &data,
            })),
        ],
    };
    let bytes = msg.to_vec().unwrap();
    let parsed = Message::parse(&bytes).unwrap();
    assert_eq!(parsed, msg);
    let l = parsed.sk_layout().unwrap();
    assert_eq!(l.fragment, Some((1, 3)));
    assert_eq!(l.payload_start, HEADER_LEN + 4 + 4 + 8);
    assert_eq!(l.aad().end, l.payload_start + 8);
    assert_eq!(&bytes[l.data.clone()], &data);
}

// ---------------------------------------------------------------------------------------
// Property tests

fn bytes(max: usize) -> impl Strategy<Value = &'static [u8]> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(|v| &*v.leak())
}

fn attribute() -> impl Strategy<Value = DataAttribute<'static>> {
    (
        0u16..0x8000,
        prop_oneof![
            any::<u16>().prop_map(AttrValue::Basic),
            bytes(8).prop_map(AttrValue::Variable)
        ],
    )
        .prop_map(|(ty, value)| DataAttribute { ty, value })
}

fn transform() -> impl Strategy<Value = Transform<'static>> {
    (
        any::<u8>(),
        any::<u16>(),
        proptest::collection::vec(attribute(), 0..3),
    )
        .prop_map(|(ty, id, attributes)| Transform {
            ty: TransformType(ty),
            id,
            attributes,
        })
}

fn proposal() -> impl Strategy<Value = Proposal<'static>> {
    (
        any::<u8>(),
        any::<u8>(),
        bytes(9),
        proptest::collection::vec(transform(), 0..5),
    )
        .prop_map(|(number, protocol, spi, transforms)| Proposal {
            number,
            protocol: ProtocolId(protocol),
            spi,
            transforms,
        })
}

fn selector() -> impl Strategy<Value = TrafficSelector<'static>> {
    prop_oneof![
        (
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            any::<[u8; 4]>(),
            any::<[u8; 4]>()
        )
            .prop_map(|(p, a, b, s, e)| {
                TrafficSelector::Ipv4(TsRange {
                    ip_protocol: p,
                    start_port: a,
                    end_port: b,
                    start: s.into(),
                    end: e.into(),
                })
            }),
        (
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>()
        )
            .prop_map(|(p, a, b, s, e)| {
                TrafficSelector::Ipv6(TsRange {
                    ip_protocol: p,
                    start_port: a,
                    end_port: b,
                    start: s.into(),
                    end: e.into(),
                })
            }),
        (9u8..=255, any::<u8>(), bytes(12)).prop_map(|(t, second_octet, data)| {
            TrafficSelector::Other {
                ts_type: TsType(t),
                second_octet,
                data,
            }
        }),
    ]
}

fn plain_body() -> impl Strategy<Value = PayloadBody<'static>> {
    prop_oneof![
        proptest::collection::vec(proposal(), 0..3)
            .prop_map(|proposals| PayloadBody::Sa(Sa { proposals })),
        (any::<u16>(), bytes(40)).prop_map(|(g, data)| PayloadBody::Ke(KeyExchange {
            group: DhGroup(g),
            data
        })),
        (any::<u8>(), bytes(20)).prop_map(|(t, data)| PayloadBody::IdI(Identification {
            id_type: IdType(t),
            data
        })),
        (any::<u8>(), bytes(20)).prop_map(|(t, data)| PayloadBody::IdR(Identification {
            id_type: IdType(t),
            data
        })),
        (any::<u8>(), bytes(20)).prop_map(|(e, data)| PayloadBody::Cert(Certificate {
            encoding: CertEncoding(e),
            data
        })),
        (any::<u8>(), bytes(20)).prop_map(|(e, data)| PayloadBody::CertReq(Certificate {
            encoding: CertEncoding(e),
            data
        })),
        (any::<u8>(), bytes(20)).prop_map(|(m, data)| PayloadBody::Auth(Auth {
            method: AuthMethod(m),
            data
        })),
        bytes(40).prop_map(PayloadBody::Nonce),
        (any::<u8>(), bytes(8), any::<u16>(), bytes(20)).prop_map(|(p, spi, t, data)| {
            PayloadBody::Notify(Notify {
                protocol: ProtocolId(p),
                spi,
                ty: NotifyType(t),
                data,
            })
        }),
        (any::<u8>(), 1u8..9, 0usize..4).prop_flat_map(|(p, size, n)| {
            proptest::collection::vec(any::<u8>(), usize::from(size) * n).prop_map(move |v| {
                PayloadBody::Delete(Delete {
                    protocol: ProtocolId(p),
                    spi_size: size,
                    spis: v.leak(),
                })
            })
        }),
        bytes(20).prop_map(PayloadBody::VendorId),
        proptest::collection::vec(selector(), 0..4)
            .prop_map(|selectors| PayloadBody::TsI(TrafficSelectors { selectors })),
        proptest::collection::vec(selector(), 0..4)
            .prop_map(|selectors| PayloadBody::TsR(TrafficSelectors { selectors })),
        (
            any::<u8>(),
            proptest::collection::vec((0u16..0x8000, bytes(8)), 0..4)
        )
            .prop_map(|(t, attrs)| {
                PayloadBody::Config(Config {
                    cfg_type: CfgType(t),
                    attributes: attrs
                        .into_iter()
                        .map(|(ty, value)| CfgAttribute {
                            ty: CfgAttrType(ty),
                            value,
                        })
                        .collect(),
                })
            }),
        bytes(20).prop_map(PayloadBody::Eap),
        (prop_oneof![1u8..33, 49u8..53, 54u8..=255], bytes(20)).prop_map(|(t, data)| {
            PayloadBody::Unknown {
                ty: PayloadType(t),
                data,
            }
        }),
    ]
}

fn encrypted_body() -> impl Strategy<Value = PayloadBody<'static>> {
    prop_oneof![
        (any::<u8>(), bytes(64)).prop_map(|(n, data)| PayloadBody::Encrypted(Encrypted {
            next_payload: PayloadType(n),
            data
        })),
        (any::<u8>(), any::<u16>(), any::<u16>(), bytes(64)).prop_map(|(n, f, t, data)| {
            PayloadBody::EncryptedFragment(EncryptedFragment {
                next_payload: PayloadType(n),
                fragment_number: f,
                total_fragments: t,
                data,
            })
        }),
    ]
}

fn header_strategy() -> impl Strategy<Value = Header> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u32>(),
    )
        .prop_map(|(i, r, v, x, f, m)| Header {
            initiator_spi: IkeSpi(i),
            responder_spi: IkeSpi(r),
            version: Version(v),
            exchange_type: ExchangeType(x),
            flags: Flags(f),
            message_id: MessageId(m),
        })
}

fn message() -> impl Strategy<Value = Message<'static>> {
    (
        header_strategy(),
        proptest::collection::vec((any::<bool>(), plain_body()), 0..6),
        proptest::option::of((any::<bool>(), encrypted_body())),
    )
        .prop_map(|(header, plain, sk)| {
            let mut payloads: Vec<Payload<'static>> = plain
                .into_iter()
                .map(|(critical, body)| Payload { critical, body })
                .collect();
            if let Some((critical, body)) = sk {
                payloads.push(Payload { critical, body });
            }
            Message { header, payloads }
        })
}

proptest! {
    #[test]
    fn message_round_trip(msg in message()) {
        let bytes = msg.to_vec().unwrap();
        prop_assert_eq!(bytes.len(), msg.buffer_len());
        let parsed = Message::parse(&bytes).unwrap();
        prop_assert_eq!(&parsed, &msg);
        prop_assert_eq!(parsed.to_vec().unwrap(), bytes);
    }

    #[test]
    fn inner_chain_round_trip(payloads in proptest::collection::vec(plain_body().prop_map(Payload::new), 0..6)) {
        let mut buf = vec![0u8; payloads_len(&payloads)];
        prop_assert_eq!(emit_payloads(&payloads, &mut buf), Ok(buf.len()));
        let parsed = parse_payloads(first_payload_type(&payloads), &buf).unwrap();
        prop_assert_eq!(parsed, payloads);
    }

    #[test]
    fn emit_into_short_buffer_is_an_error(msg in message(), cut in 1usize..64) {
        let len = msg.buffer_len();
        let mut buf = vec![0u8; len.saturating_sub(cut)];
        prop_assert!(msg.emit(&mut buf).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(m) = Message::parse(&data) {
            let again = m.to_vec().unwrap();
            prop_assert_eq!(Message::parse(&again).unwrap(), m);
        }
        let _ = parse_payloads(PayloadType::SA, &data);
    }
}

/// RFC 9370: an IKE_SA_INIT offer with Additional Key Exchange transforms (types 6-12) of
/// ML-KEM (IANA Transform Type 4 IDs 35-37), INTERMEDIATE_EXCHANGE_SUPPORTED (16438), then an
/// IKE_INTERMEDIATE (43) message carrying a 1184-byte ML-KEM-768 KE payload: the codes are
/// the registered ones and everything survives decode → emit unchanged.
#[test]
fn addke_transforms_and_ml_kem_ke_payloads_round_trip() {
    assert_eq!(
        (
            TransformType::ADDKE1.0,
            TransformType::ADDKE7.0,
            DhGroup::ML_KEM_512.0,
            DhGroup::ML_KEM_768.0,
            DhGroup::ML_KEM_1024.0,
            ExchangeType::IKE_INTERMEDIATE.0,
            NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED.0,
            NotifyType::ADDITIONAL_KEY_EXCHANGE.0,
        ),
        (6, 12, 35, 36, 37, 43, 16438, 16441)
    );
    let addke = |ty: TransformType, g: DhGroup| Transform {
        ty,
        id: g.0,
        attributes: vec![],
    };
    let sa = Sa {
        proposals: vec![Proposal {
            number: 1,
            protocol: ProtocolId::IKE,
            spi: &[],
            transforms: vec![
                Transform::encr(EncrId::AES_GCM_16, Some(256)),
                Transform::prf(PrfId::HMAC_SHA2_256),
                Transform::ke(DhGroup::CURVE25519),
                addke(TransformType::ADDKE1, DhGroup::ML_KEM_768),
                addke(TransformType::ADDKE1, DhGroup::NONE),
                addke(TransformType::ADDKE2, DhGroup::ML_KEM_1024),
            ],
        }],
    };
    let init = Message {
        header: header(ExchangeType::IKE_SA_INIT),
        payloads: vec![
            Payload::new(PayloadBody::Sa(sa)),
            Payload::new(PayloadBody::Notify(Notify::new(
                NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED,
                &[],
            ))),
        ],
    };
    let bytes = init.to_vec().unwrap();
    let parsed = Message::parse(&bytes).unwrap();
    assert_eq!(parsed, init);
    assert_eq!(parsed.to_vec().unwrap(), bytes);
    let PayloadBody::Sa(sa) = &parsed.payloads[0].body else {
        panic!("SA first")
    };
    assert_eq!(sa.proposals[0].transforms[3].ty, TransformType(6));
    assert_eq!(sa.proposals[0].transforms[3].id, 36);
    assert!(format!("{:?}", sa.proposals[0].transforms[5]).contains("ML_KEM_1024"));
    let ek = vec![0x5a; 1184];
    let ke = Message {
        header: header(ExchangeType::IKE_INTERMEDIATE),
        payloads: vec![Payload::new(PayloadBody::Ke(KeyExchange {
            group: DhGroup::ML_KEM_768,
            data: &ek,
        }))],
    };
    let bytes = ke.to_vec().unwrap();
    assert_eq!(bytes.len(), 28 + 4 + 4 + 1184);
    assert_eq!(bytes[18], 43, "exchange type IKE_INTERMEDIATE");
    assert_eq!(&bytes[32..34], &[0, 36], "KE payload group ML-KEM-768");
    assert_eq!(Message::parse(&bytes).unwrap(), ke);
}

// ---------------------------------------------------------------------------------------
// Configuration payload attribute values (RFC 7296 §3.15.1)

/// A CP(CFG_REPLY) as a responder hands it out: address, DNS and subnets of both families,
/// in the byte layout of §3.15.1.
#[test]
fn cfg_reply_attributes_have_the_rfc_layout_and_read_back_typed() {
    let v4 = CfgValue::Ip4(Ipv4Addr::new(10, 9, 0, 1)).to_vec().unwrap();
    let dns = CfgValue::Ip4(Ipv4Addr::new(10, 1, 0, 53)).to_vec().unwrap();
    let subnet = CfgValue::Ip4Subnet {
        addr: Ipv4Addr::new(10, 1, 0, 0),
        mask: ipv4_netmask(24),
    }
    .to_vec()
    .unwrap();
    let v6 = CfgValue::Ip6Prefix {
        addr: "fd09::1".parse().unwrap(),
        prefix_len: 128,
    }
    .to_vec()
    .unwrap();
    let subnet6 = CfgValue::Ip6Prefix {
        addr: "fd01::".parse().unwrap(),
        prefix_len: 64,
    }
    .to_vec()
    .unwrap();
    let cp = Payload::new(PayloadBody::Config(Config {
        cfg_type: CfgType::CFG_REPLY,
        attributes: vec![
            CfgAttribute {
                ty: CfgAttrType::INTERNAL_IP4_ADDRESS,
                value: &v4,
            },
            CfgAttribute {
                ty: CfgAttrType::INTERNAL_IP4_DNS,
                value: &dns,
            },
            CfgAttribute {
                ty: CfgAttrType::INTERNAL_IP4_SUBNET,
                value: &subnet,
            },
            CfgAttribute {
                ty: CfgAttrType::INTERNAL_IP6_ADDRESS,
                value: &v6,
            },
            CfgAttribute {
                ty: CfgAttrType::INTERNAL_IP6_SUBNET,
                value: &subnet6,
            },
        ],
    }));
    let mut buf = vec![0u8; payloads_len(std::slice::from_ref(&cp))];
    emit_payloads(std::slice::from_ref(&cp), &mut buf).unwrap();
    // Generic header, CFG Type 2 and RESERVED, then the first attribute: type 1, length 4.
    assert_eq!(&buf[4..8], &[2, 0, 0, 0]);
    assert_eq!(&buf[8..16], &[0, 1, 0, 4, 10, 9, 0, 1]);
    let parsed = parse_payloads(PayloadType::CP, &buf).unwrap();
    assert_eq!(parsed, vec![cp]);
    let PayloadBody::Config(c) = &parsed[0].body else {
        panic!("not a CP")
    };
    let typed: Vec<CfgValue<'_>> = c
        .attributes
        .iter()
        .map(|a| CfgValue::parse(a.ty, a.value).unwrap())
        .collect();
    assert_eq!(typed[0], CfgValue::Ip4(Ipv4Addr::new(10, 9, 0, 1)));
    assert_eq!(typed[2].prefix_len(), Some(24));
    assert_eq!(typed[4].prefix_len(), Some(64));
}

fn cfg_value() -> impl Strategy<Value = (CfgAttrType, CfgValue<'static>)> {
    let v4 = any::<[u8; 4]>().prop_map(Ipv4Addr::from);
    let v6 = any::<[u8; 16]>().prop_map(Ipv6Addr::from);
    prop_oneof![
        (
            prop_oneof![
                Just(CfgAttrType::INTERNAL_IP4_ADDRESS),
                Just(CfgAttrType::INTERNAL_IP4_DNS),
                Just(CfgAttrType::INTERNAL_IP4_NETMASK),
            ],
            v4.clone()
        )
            .prop_map(|(t, a)| (t, CfgValue::Ip4(a))),
        (v4.clone(), v4).prop_map(|(addr, mask)| (
            CfgAttrType::INTERNAL_IP4_SUBNET,
            CfgValue::Ip4Subnet { addr, mask }
        )),
        v6.clone()
            .prop_map(|a| (CfgAttrType::INTERNAL_IP6_DNS, CfgValue::Ip6(a))),
        (
            prop_oneof![
                Just(CfgAttrType::INTERNAL_IP6_ADDRESS),
                Just(CfgAttrType::INTERNAL_IP6_SUBNET)
            ],
            v6,
            0u8..=128
        )
            .prop_map(|(t, addr, prefix_len)| (t, CfgValue::Ip6Prefix { addr, prefix_len })),
        (0u16..0x8000).prop_map(|t| (CfgAttrType(t), CfgValue::Empty)),
    ]
}

proptest! {
    /// Every typed value written into a CP attribute of its type reads back the same through
    /// the payload codec.
    #[test]
    fn cfg_values_round_trip(values in proptest::collection::vec(cfg_value(), 0..6)) {
        let bytes: Vec<Vec<u8>> = values.iter().map(|(_, v)| v.to_vec().unwrap()).collect();
        let cp = Payload::new(PayloadBody::Config(Config {
            cfg_type: CfgType::CFG_REPLY,
            attributes: values
                .iter()
                .zip(&bytes)
                .map(|((ty, _), value)| CfgAttribute { ty: *ty, value })
                .collect(),
        }));
        let mut buf = vec![0u8; payloads_len(std::slice::from_ref(&cp))];
        emit_payloads(std::slice::from_ref(&cp), &mut buf).unwrap();
        let parsed = parse_payloads(PayloadType::CP, &buf).unwrap();
        let PayloadBody::Config(c) = &parsed[0].body else { panic!("not a CP") };
        for (a, (ty, v)) in c.attributes.iter().zip(&values) {
            prop_assert_eq!(a.ty, *ty);
            let back = CfgValue::parse(a.ty, a.value).unwrap();
            // An empty value of an untyped attribute reads back as Other(&[]).
            if !matches!((v, back), (CfgValue::Empty, CfgValue::Other(&[]))) {
                prop_assert_eq!(back, *v);
            }
        }
    }

    /// Whatever bytes an attribute carries, a value that reads writes back the same bytes.
    #[test]
    fn cfg_value_bytes_round_trip(ty in 0u16..32, value in proptest::collection::vec(any::<u8>(), 0..20)) {
        if let Ok(v) = CfgValue::parse(CfgAttrType(ty), &value) {
            prop_assert!(v.fits(CfgAttrType(ty)));
            prop_assert_eq!(v.to_vec().unwrap(), value);
        }
    }
}
