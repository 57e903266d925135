//! ISAKMP/IKEv1 round trips and malformed input.

use ferrosec_wire::ikev2::Version;
use ferrosec_wire::isakmp::*;
use ferrosec_wire::{AttrValue, DataAttribute, Error, IkeSpi, MessageId};
use proptest::prelude::*;

fn header(x: ExchangeType) -> Header {
    Header {
        initiator_cookie: IkeSpi(0xa1a2_a3a4_a5a6_a7a8),
        responder_cookie: IkeSpi(0),
        version: Version::IKEV1,
        exchange_type: x,
        flags: Flags(0),
        message_id: MessageId(0),
    }
}

fn main_mode_sa() -> Payload<'static> {
    Payload::Sa(Sa {
        doi: Doi::IPSEC,
        body: SaBody::Ipsec {
            situation: Situation::IDENTITY_ONLY,
            proposals: vec![Proposal {
                number: 1,
                protocol: ProtocolId::ISAKMP,
                spi: &[],
                transforms: vec![
                    Transform {
                        number: 1,
                        id: IsakmpTransformId::KEY_IKE.0,
                        attributes: vec![
                            DataAttribute::basic(
                                Phase1Attr::ENCRYPTION_ALGORITHM,
                                Ike1Encr::AES_CBC.0,
                            ),
                            DataAttribute::basic(Phase1Attr::KEY_LENGTH, 256),
                            DataAttribute::basic(Phase1Attr::HASH_ALGORITHM, Ike1Hash::SHA2_256.0),
                            DataAttribute::basic(
                                Phase1Attr::AUTHENTICATION_METHOD,
                                Ike1AuthMethod::PRE_SHARED_KEY.0,
                            ),
                            DataAttribute::basic(Phase1Attr::GROUP_DESCRIPTION, 14),
                            DataAttribute::basic(Phase1Attr::LIFE_TYPE, LifeType::SECONDS.0),
                            DataAttribute::variable(Phase1Attr::LIFE_DURATION, &[0, 1, 0x51, 0x80]),
                        ],
                    },
                    Transform {
                        number: 2,
                        id: 1,
                        attributes: vec![],
                    },
                ],
            }],
        },
    })
}

fn every_payload() -> Vec<Payload<'static>> {
    vec![
        main_mode_sa(),
        Payload::Sa(Sa {
            doi: Doi(7),
            body: SaBody::Other(&[1, 2, 3]),
        }),
        Payload::Sa(Sa {
            doi: Doi::IPSEC,
            body: SaBody::Other(&[0, 0, 0, 2, 9]),
        }),
        Payload::Ke(&[0x55; 32]),
        Payload::Id(Identification {
            id_type: IdType::IPV4_ADDR_SUBNET,
            protocol: 17,
            port: 500,
            data: &[10, 1, 0, 0, 255, 255, 0, 0],
        }),
        Payload::Cert(Certificate {
            encoding: CertEncoding::X509_SIGNATURE,
            data: &[0x30, 0x03],
        }),
        Payload::CertReq(Certificate {
            encoding: CertEncoding::X509_SIGNATURE,
            data: &[],
        }),
        Payload::Hash(&[0x11; 32]),
        Payload::Signature(&[0x22; 64]),
        Payload::Nonce(&[0x33; 32]),
        Payload::Notification(Notification {
            doi: Doi::IPSEC,
            protocol: ProtocolId::IPSEC_ESP,
            spi: &[1, 2, 3, 4],
            ty: NotifyType::RESPONDER_LIFETIME,
            data: &[0x80, 1, 0, 1],
        }),
        Payload::Notification(Notification {
            doi: Doi::IPSEC,
            protocol: ProtocolId::ISAKMP,
            spi: &[0xab; 16],
            ty: NotifyType::R_U_THERE,
            data: &[0, 0, 0, 5],
        }),
        Payload::Delete(Delete {
            doi: Doi::IPSEC,
            protocol: ProtocolId::IPSEC_ESP,
            spi_size: 4,
            spis: &[0, 0, 0, 1, 0, 0, 0, 2],
        }),
        Payload::VendorId(&[0xaf, 0xca, 0xd7, 0x13]),
        Payload::Attribute(ModeCfg {
            cfg_type: ModeCfgType::REPLY,
            identifier: 0x1234,
            attributes: vec![
                DataAttribute::variable(ModeCfgAttr::INTERNAL_IP4_ADDRESS, &[10, 3, 0, 1]),
                DataAttribute::basic(ModeCfgAttr::XAUTH_STATUS, 1),
            ],
        }),
        Payload::NatD(&[0x44; 32]),
        Payload::NatOa(NatOa {
            id_type: IdType::IPV4_ADDR,
            address: &[192, 0, 2, 2],
        }),
        Payload::Unknown {
            ty: PayloadType::FRAGMENT,
            data: &[0, 1, 1, 0, 9],
        },
    ]
}

#[test]
fn every_payload_type_round_trips() {
    let m = Message {
        header: header(ExchangeType::IDENTITY_PROTECTION),
        body: Body::Plain(every_payload()),
    };
    let bytes = m.to_vec().unwrap();
    let parsed = Message::parse(&bytes).unwrap();
    assert_eq!(parsed, m);
    assert_eq!(parsed.to_vec().unwrap(), bytes);
    if let Some(Payload::Sa(sa)) = parsed.payloads().and_then(|p| p.first()) {
        let t = &sa.proposals()[0].transforms[0];
        assert_eq!(t.attribute(Phase1Attr::LIFE_DURATION), Some(86400));
        assert_eq!(t.attribute(Phase1Attr::ENCRYPTION_ALGORITHM), Some(7));
    } else {
        panic!("first payload is not the SA");
    }
}

#[test]
fn encrypted_body_and_padding() {
    let inner = vec![
        Payload::Hash(&[1; 20]),
        Payload::Delete(Delete {
            doi: Doi::IPSEC,
            protocol: ProtocolId::ISAKMP,
            spi_size: 16,
            spis: &[7; 16],
        }),
    ];
    let mut plain = vec![0u8; payloads_len(&inner)];
    emit_payloads(&inner, &mut plain).unwrap();
    plain.extend_from_slice(&[0; 11]); // CBC padding
    let m = Message {
        header: Header {
            message_id: MessageId(0xdead_beef),
            ..header(ExchangeType::INFORMATIONAL)
        },
        body: Body::Encrypted {
            first_payload: PayloadType::HASH,
            data: &plain,
        },
    };
    let bytes = m.to_vec().unwrap();
    assert_eq!(bytes[19] & Flags::ENCRYPTION, Flags::ENCRYPTION);
    let parsed = Message::parse(&bytes).unwrap();
    assert!(parsed.header.flags.encryption());
    let Body::Encrypted {
        first_payload,
        data,
    } = parsed.body
    else {
        panic!("not encrypted")
    };
    let (got, used) = parse_payloads_padded(first_payload, data).unwrap();
    assert_eq!(got, inner);
    assert_eq!(used, data.len() - 11);
    assert_eq!(
        parse_payloads(first_payload, data),
        Err(Error::TrailingData("last payload"))
    );
}

#[test]
fn id_addresses() {
    let id = Identification {
        id_type: IdType::IPV4_ADDR_RANGE,
        protocol: 0,
        port: 0,
        data: &[10, 0, 0, 1, 10, 0, 0, 9],
    };
    assert_eq!(
        id.address(),
        Some(IdAddress::Range([10, 0, 0, 1].into(), [10, 0, 0, 9].into()))
    );
    let id = Identification {
        id_type: IdType::IPV6_ADDR,
        protocol: 0,
        port: 0,
        data: &[0; 15],
    };
    assert_eq!(id.address(), None);
}

#[test]
fn malformed_isakmp() {
    let good = Message {
        header: header(ExchangeType::AGGRESSIVE),
        body: Body::Plain(every_payload()),
    }
    .to_vec()
    .unwrap();
    for n in 0..good.len() {
        assert!(Message::parse(&good[..n]).is_err(), "prefix {n}");
    }
    // > 64 KiB length field.
    let mut v = good.clone();
    v[24..28].copy_from_slice(&70000u32.to_be_bytes());
    assert_eq!(
        Message::parse(&v),
        Err(Error::TooLong("IKE message length"))
    );
    // Zero-length payload.
    let mut v = good[..28].to_vec();
    v.extend_from_slice(&[0, 0, 0, 0]);
    v[16] = 13;
    v[24..28].copy_from_slice(&32u32.to_be_bytes());
    assert_eq!(Message::parse(&v), Err(Error::BadLength("payload")));
    // Payload chain ends early: VID says another VID follows.
    v[28..32].copy_from_slice(&[13, 0, 0, 4]);
    assert_eq!(Message::parse(&v), Err(Error::Truncated("payload header")));
    // Proposal count mismatch.
    let sa = [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 8, 1, 1, 0, 1];
    assert_eq!(
        Payload::parse(PayloadType::SA, &sa),
        Err(Error::CountMismatch("proposal transforms"))
    );
    // Proposal whose Next Payload names a non-Proposal.
    let sa = [
        0, 0, 0, 1, 0, 0, 0, 1, 5, 0, 0, 8, 1, 1, 0, 0, 0, 0, 0, 8, 1, 1, 0, 0,
    ];
    assert_eq!(
        Payload::parse(PayloadType::SA, &sa),
        Err(Error::Malformed("SA: substructure is not a Proposal"))
    );
    // Notification with an SPI size past the end.
    let n = [0, 0, 0, 1, 3, 4, 0, 14, 1];
    assert_eq!(
        Payload::parse(PayloadType::NOTIFICATION, &n),
        Err(Error::Truncated("Notification SPI"))
    );
}

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

fn proposal() -> impl Strategy<Value = Proposal<'static>> {
    let t = (
        any::<u8>(),
        any::<u8>(),
        proptest::collection::vec(attribute(), 0..4),
    )
        .prop_map(|(number, id, attributes)| Transform {
            number,
            id,
            attributes,
        });
    (
        any::<u8>(),
        any::<u8>(),
        bytes(17),
        proptest::collection::vec(t, 0..4),
    )
        .prop_map(|(number, p, spi, transforms)| Proposal {
            number,
            protocol: ProtocolId(p),
            spi,
            transforms,
        })
}

fn payload() -> impl Strategy<Value = Payload<'static>> {
    prop_oneof![
        (0u32..2, proptest::collection::vec(proposal(), 0..3)).prop_map(|(s, proposals)| {
            Payload::Sa(Sa {
                doi: Doi::IPSEC,
                body: SaBody::Ipsec {
                    situation: Situation(s),
                    proposals,
                },
            })
        }),
        (2u32..100, bytes(10)).prop_map(|(d, b)| Payload::Sa(Sa {
            doi: Doi(d),
            body: SaBody::Other(b)
        })),
        bytes(40).prop_map(Payload::Ke),
        (any::<u8>(), any::<u8>(), any::<u16>(), bytes(20)).prop_map(
            |(t, protocol, port, data)| Payload::Id(Identification {
                id_type: IdType(t),
                protocol,
                port,
                data
            })
        ),
        (any::<u8>(), bytes(20)).prop_map(|(e, data)| Payload::Cert(Certificate {
            encoding: CertEncoding(e),
            data
        })),
        (any::<u8>(), bytes(20)).prop_map(|(e, data)| Payload::CertReq(Certificate {
            encoding: CertEncoding(e),
            data
        })),
        bytes(40).prop_map(Payload::Hash),
        bytes(40).prop_map(Payload::Signature),
        bytes(40).prop_map(Payload::Nonce),
        (
            any::<u32>(),
            any::<u8>(),
            bytes(17),
            any::<u16>(),
            bytes(10)
        )
            .prop_map(|(d, p, spi, t, data)| {
                Payload::Notification(Notification {
                    doi: Doi(d),
                    protocol: ProtocolId(p),
                    spi,
                    ty: NotifyType(t),
                    data,
                })
            }),
        (any::<u32>(), any::<u8>(), 1u8..17, 0usize..3).prop_flat_map(|(d, p, size, n)| {
            proptest::collection::vec(any::<u8>(), usize::from(size) * n).prop_map(move |v| {
                Payload::Delete(Delete {
                    doi: Doi(d),
                    protocol: ProtocolId(p),
                    spi_size: size,
                    spis: v.leak(),
                })
            })
        }),
        bytes(20).prop_map(Payload::VendorId),
        (
            any::<u8>(),
            any::<u16>(),
            proptest::collection::vec(attribute(), 0..4)
        )
            .prop_map(|(t, identifier, attributes)| {
                Payload::Attribute(ModeCfg {
                    cfg_type: ModeCfgType(t),
                    identifier,
                    attributes,
                })
            }),
        bytes(40).prop_map(Payload::NatD),
        (any::<u8>(), bytes(16)).prop_map(|(t, address)| Payload::NatOa(NatOa {
            id_type: IdType(t),
            address
        })),
        (prop_oneof![2u8..4, 15u8..20, 22u8..=255], bytes(20)).prop_map(|(t, data)| {
            Payload::Unknown {
                ty: PayloadType(t),
                data,
            }
        }),
    ]
}

proptest! {
    #[test]
    fn message_round_trip(
        ex in any::<u8>(), flags in any::<u8>(), mid in any::<u32>(),
        payloads in proptest::collection::vec(payload(), 0..6),
    ) {
        let m = Message {
            header: Header { exchange_type: ExchangeType(ex), flags: Flags(flags & !Flags::ENCRYPTION), message_id: MessageId(mid), ..header(ExchangeType::NONE) },
            body: Body::Plain(payloads),
        };
        let bytes = m.to_vec().unwrap();
        prop_assert_eq!(bytes.len(), m.buffer_len());
        let parsed = Message::parse(&bytes).unwrap();
        prop_assert_eq!(&parsed, &m);
        prop_assert_eq!(parsed.to_vec().unwrap(), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(m) = Message::parse(&data) {
            let again = m.to_vec().unwrap();
            prop_assert_eq!(Message::parse(&again).unwrap(), m);
        }
        let _ = parse_payloads_padded(PayloadType::SA, &data);
    }
}
