//! Real strongSwan 5.9 traffic captured in network namespaces by
//! `scripts/capture-fixtures.sh`: each `tests/fixtures/<scenario>.tsv` row is one UDP
//! datagram (payload in hex) with the fields tshark 4.0 dissected from it. For every
//! datagram this test decodes the bytes with our crate, derives the same fields in
//! tshark's format and asserts that both agree, and that emit gives back the same bytes.

use std::collections::BTreeMap;

use ferrosec_wire::natt::{Datagram, demux_4500};
use ferrosec_wire::{AttrValue, esp, ikev2, isakmp};

type Row = BTreeMap<String, String>;

fn load(name: &str) -> Vec<Row> {
    let path = format!("{}/tests/fixtures/{name}.tsv", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header row").split('\t').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split('\t'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn join<T: ToString>(v: impl IntoIterator<Item = T>) -> String {
    v.into_iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn check(row: &Row, field: &str, ours: String, frame: &str) {
    let theirs = row.get(field).map(String::as_str).unwrap_or("");
    assert_eq!(ours, theirs, "frame {frame}: field {field}");
}

#[derive(Default)]
struct Stats {
    ikev2: usize,
    ikev1: usize,
    esp: usize,
    encrypted: usize,
}

fn check_ikev2(row: &Row, frame: &str, bytes: &[u8], st: &mut Stats) {
    let m = ikev2::Message::parse(bytes).unwrap_or_else(|e| panic!("frame {frame}: {e}"));
    assert_eq!(m.to_vec().unwrap(), bytes, "frame {frame}: emit differs");
    st.ikev2 += 1;
    let h = &m.header;
    check(
        row,
        "isakmp.ispi",
        format!("{:016x}", h.initiator_spi.0),
        frame,
    );
    check(
        row,
        "isakmp.rspi",
        format!("{:016x}", h.responder_spi.0),
        frame,
    );
    check(
        row,
        "isakmp.version",
        format!("{:#04x}", h.version.0),
        frame,
    );
    check(
        row,
        "isakmp.exchangetype",
        h.exchange_type.0.to_string(),
        frame,
    );
    check(row, "isakmp.flags", format!("{:#04x}", h.flags.0), frame);
    check(
        row,
        "isakmp.messageid",
        format!("{:#010x}", h.message_id.0),
        frame,
    );
    check(row, "isakmp.length", m.buffer_len().to_string(), frame);
    let (mut types, mut lens, mut crit) = (vec![], vec![], vec![]);
    let (mut pnum, mut pproto, mut pcount, mut tft, mut kl) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut ids: BTreeMap<u8, Vec<u16>> = BTreeMap::new();
    let (mut ke, mut notify, mut vid) = (vec![], vec![], vec![]);
    for p in &m.payloads {
        types.push(p.payload_type().0);
        lens.push(p.buffer_len());
        crit.push(u8::from(p.critical));
        match &p.body {
            ikev2::PayloadBody::Sa(sa) => {
                for pr in &sa.proposals {
                    types.push(2);
                    lens.push(
                        8 + pr.spi.len()
                            + pr.transforms
                                .iter()
                                .map(|t| 8 + t.attributes.len() * 4)
                                .sum::<usize>(),
                    );
                    pnum.push(pr.number);
                    pproto.push(pr.protocol.0);
                    pcount.push(pr.transforms.len());
                    for t in &pr.transforms {
                        types.push(3);
                        lens.push(8 + t.attributes.len() * 4);
                        tft.push(t.ty.0);
                        ids.entry(t.ty.0).or_default().push(t.id);
                        kl.extend(t.key_length());
                    }
                }
            }
            ikev2::PayloadBody::Ke(k) => ke.push(k.group.0),
            ikev2::PayloadBody::Notify(n) => notify.push(n.ty.0),
            ikev2::PayloadBody::VendorId(v) => vid.push(hex::encode(v)),
            ikev2::PayloadBody::Encrypted(e) => {
                st.encrypted += 1;
                let l = m.sk_layout().expect("SK layout");
                assert_eq!(l.data.end, bytes.len(), "frame {frame}: SK runs to the end");
                assert_eq!(&bytes[l.data.clone()], e.data);
                assert_eq!(l.aad(), 0..l.payload_start + 4);
                // Every captured SK holds at least a GCM IV (8) and ICV (16).
                assert!(l.split(8, 16).is_ok(), "frame {frame}");
            }
            _ => {}
        }
    }
    check(row, "isakmp.typepayload", join(types), frame);
    check(row, "isakmp.payloadlength", join(lens), frame);
    check(row, "isakmp.criticalpayload", join(crit), frame);
    check(row, "isakmp.prop.number", join(pnum), frame);
    check(row, "isakmp.prop.protoid", join(pproto), frame);
    check(row, "isakmp.prop.transforms", join(pcount), frame);
    check(row, "isakmp.tf.type", join(tft), frame);
    for (ty, field) in [
        (1u8, "encr"),
        (2, "prf"),
        (3, "integ"),
        (4, "dh"),
        (5, "esn"),
    ] {
        check(
            row,
            &format!("isakmp.tf.id.{field}"),
            join(ids.remove(&ty).unwrap_or_default()),
            frame,
        );
    }
    check(row, "isakmp.ike2.attr.key_length", join(kl), frame);
    check(row, "isakmp.key_exchange.dh_group", join(ke), frame);
    check(row, "isakmp.notify.msgtype", join(notify), frame);
    check(row, "isakmp.vid_bytes", join(vid), frame);
}

fn check_ikev1(row: &Row, frame: &str, bytes: &[u8], st: &mut Stats) {
    let m = isakmp::Message::parse(bytes).unwrap_or_else(|e| panic!("frame {frame}: {e}"));
    assert_eq!(m.to_vec().unwrap(), bytes, "frame {frame}: emit differs");
    st.ikev1 += 1;
    let h = &m.header;
    check(
        row,
        "isakmp.ispi",
        format!("{:016x}", h.initiator_cookie.0),
        frame,
    );
    check(
        row,
        "isakmp.rspi",
        format!("{:016x}", h.responder_cookie.0),
        frame,
    );
    check(
        row,
        "isakmp.version",
        format!("{:#04x}", h.version.0),
        frame,
    );
    check(
        row,
        "isakmp.exchangetype",
        h.exchange_type.0.to_string(),
        frame,
    );
    check(row, "isakmp.flags", format!("{:#04x}", h.flags.0), frame);
    check(
        row,
        "isakmp.messageid",
        format!("{:#010x}", h.message_id.0),
        frame,
    );
    check(row, "isakmp.length", m.buffer_len().to_string(), frame);
    let (mut types, mut lens) = (vec![], vec![]);
    let (mut pnum, mut pproto, mut pcount, mut tid, mut aty, mut aval) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut notify, mut vid, mut idt, mut natd) = (vec![], vec![], vec![], vec![]);
    match &m.body {
        isakmp::Body::Encrypted { data, .. } => {
            st.encrypted += 1;
            assert!(h.flags.encryption());
            assert_eq!(data.len() + 28, bytes.len());
        }
        isakmp::Body::Plain(payloads) => {
            for p in payloads {
                types.push(p.payload_type().0);
                lens.push(p.buffer_len());
                match p {
                    isakmp::Payload::Sa(sa) => {
                        for pr in sa.proposals() {
                            types.push(2);
                            pnum.push(pr.number);
                            pproto.push(pr.protocol.0);
                            pcount.push(pr.transforms.len());
                            let tlens: Vec<usize> = pr
                                .transforms
                                .iter()
                                .map(|t| {
                                    8 + t
                                        .attributes
                                        .iter()
                                        .map(|a| match a.value {
                                            AttrValue::Basic(_) => 4,
                                            AttrValue::Variable(v) => 4 + v.len(),
                                        })
                                        .sum::<usize>()
                                })
                                .collect();
                            lens.push(8 + pr.spi.len() + tlens.iter().sum::<usize>());
                            for (t, l) in pr.transforms.iter().zip(tlens) {
                                types.push(3);
                                lens.push(l);
                                tid.push(t.id);
                                for a in &t.attributes {
                                    aty.push(a.ty);
                                    aval.push(match a.value {
                                        AttrValue::Basic(v) => format!("{v:04x}"),
                                        AttrValue::Variable(b) => hex::encode(b),
                                    });
                                }
                            }
                        }
                    }
                    isakmp::Payload::Notification(n) => notify.push(n.ty.0),
                    isakmp::Payload::VendorId(v) => vid.push(hex::encode(v)),
                    isakmp::Payload::Id(id) => idt.push(id.id_type.0),
                    isakmp::Payload::NatD(d) => natd.push(hex::encode(d)),
                    _ => {}
                }
            }
        }
    }
    check(row, "isakmp.typepayload", join(types), frame);
    check(row, "isakmp.payloadlength", join(lens), frame);
    check(row, "isakmp.prop.number", join(pnum), frame);
    check(row, "isakmp.prop.protoid", join(pproto), frame);
    check(row, "isakmp.prop.transforms", join(pcount), frame);
    check(row, "isakmp.trans.id", join(tid), frame);
    check(row, "isakmp.ike.attr.type", join(aty), frame);
    check(row, "isakmp.ike.attr.value", join(aval), frame);
    check(row, "isakmp.notify.msgtype", join(notify), frame);
    check(row, "isakmp.vid_bytes", join(vid), frame);
    check(row, "isakmp.id.type", join(idt), frame);
    check(row, "isakmp.ike.nat_hash", join(natd), frame);
}

fn run(name: &str) -> Stats {
    let rows = load(name);
    assert!(!rows.is_empty(), "{name}: no frames");
    let mut st = Stats::default();
    for row in &rows {
        let frame = row["frame.number"].clone();
        let udp = hex::decode(&row["udp.payload"]).expect("hex payload");
        let on_4500 = row["udp.srcport"] == "4500" || row["udp.dstport"] == "4500";
        let ike = if on_4500 {
            match demux_4500(&udp).unwrap_or_else(|e| panic!("frame {frame}: {e}")) {
                Datagram::Keepalive => {
                    assert!(!row["udpencap.nat_keepalive"].is_empty(), "frame {frame}");
                    continue;
                }
                Datagram::Esp(b) => {
                    let p = esp::Packet::new_checked(b).unwrap();
                    let r = esp::Repr::parse(&p).unwrap();
                    check(row, "esp.spi", format!("{:#010x}", r.spi.0), &frame);
                    check(row, "esp.sequence", r.sequence_number.to_string(), &frame);
                    assert!(row["udpencap.non_esp_marker"].is_empty(), "frame {frame}");
                    st.esp += 1;
                    continue;
                }
                Datagram::Ike(b) => {
                    assert!(!row["udpencap.non_esp_marker"].is_empty(), "frame {frame}");
                    b
                }
            }
        } else {
            &udp[..]
        };
        match ferrosec_wire::natt::ike_major_version(ike) {
            Some(2) => check_ikev2(row, &frame, ike, &mut st),
            Some(1) => check_ikev1(row, &frame, ike, &mut st),
            v => panic!("frame {frame}: IKE version {v:?}"),
        }
    }
    st
}

#[test]
fn ikev2_several_proposals() {
    let st = run("ikev2-proposals");
    assert!(st.ikev2 >= 4 && st.esp >= 2 && st.encrypted >= 2);
}

#[test]
fn ikev2_invalid_ke_retry() {
    let st = run("ikev2-ecp");
    assert!(st.ikev2 >= 6 && st.esp >= 2);
    // The responder's first answer is INVALID_KE_PAYLOAD carrying the group it wants.
    let rows = load("ikev2-ecp");
    let udp = hex::decode(&rows[1]["udp.payload"]).unwrap();
    let m = ikev2::Message::parse(&udp).unwrap();
    let ikev2::PayloadBody::Notify(n) = &m.payloads[0].body else {
        panic!("not a notify")
    };
    assert_eq!(n.ty, ikev2::NotifyType::INVALID_KE_PAYLOAD);
    assert_eq!(n.data, 31u16.to_be_bytes());
}

#[test]
fn ikev1_main_mode() {
    let st = run("ikev1-main");
    assert!(st.ikev1 >= 9 && st.encrypted >= 5 && st.esp >= 2);
}

#[test]
fn ikev1_aggressive_mode() {
    let st = run("ikev1-aggr");
    assert!(st.ikev1 >= 5 && st.esp >= 2);
}

#[test]
fn ikev2_behind_nat() {
    let st = run("ikev2-nat");
    assert!(st.ikev2 >= 4 && st.esp >= 2);
}

#[test]
fn ikev1_behind_nat() {
    let st = run("ikev1-nat");
    assert!(st.ikev1 >= 9 && st.esp >= 2);
}
