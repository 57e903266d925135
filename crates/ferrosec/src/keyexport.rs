//! Wireshark decryption tables for the SAs up now (`request vpn export-keys --wireshark DIR`,
//! R-OPS-5): `esp_sa` (ESP SAs), `ikev2_decryption_table` and `ikev1_decryption_table`, in
//! the UAT format Wireshark reads from its configuration directory.
//!
//! Only when `[global] allow-key-export = true`: the IKE task keeps the Child SAs' keys then
//! (and only then) and builds these tables on request; the CLI writes them with mode 0600.
//! Algorithms that Wireshark cannot decrypt are left out and named.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ferrosec_crypto::{Encryption, Integrity, Secret};
use ferrosec_ike::export::IkeKeyExport;
use ferrosec_ike::v2::ChildSaInfo;
use ferrosec_wire::Spi;
use serde::{Deserialize, Serialize};

/// The keys of one ESP SA pair, kept while the pair is up.
#[derive(Debug)]
pub(crate) struct EspPair {
    tunnel: String,
    v6: bool,
    esp: bool,
    encr: Option<Encryption>,
    integ: Option<Integrity>,
    inbound_spi: Spi,
    outbound_spi: Spi,
    inbound: (Secret, Secret),
    outbound: (Secret, Secret),
}

impl EspPair {
    pub(crate) fn of(tunnel: &str, info: &ChildSaInfo) -> Self {
        EspPair {
            tunnel: tunnel.to_owned(),
            v6: info.local.is_ipv6(),
            esp: info.protocol != ferrosec_wire::ikev2::ProtocolId::AH,
            encr: info.encr,
            integ: info.integ,
            inbound_spi: info.inbound_spi,
            outbound_spi: info.outbound_spi,
            inbound: (info.inbound.encr.clone(), info.inbound.integ.clone()),
            outbound: (info.outbound.encr.clone(), info.outbound.integ.clone()),
        }
    }
}

/// The tables, as the daemon sends them to the CLI.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Tables {
    /// File name → contents.
    pub(crate) files: BTreeMap<String, String>,
    /// SAs in the tables.
    pub(crate) ike_sas: usize,
    /// ESP SAs (one per direction) in `esp_sa`.
    pub(crate) esp_sas: usize,
    /// What was left out, and why.
    pub(crate) left_out: Vec<String>,
}

fn hex(s: &Secret) -> String {
    s.expose().iter().fold(String::new(), |mut h, b| {
        let _ = write!(h, "{b:02x}");
        h
    })
}

/// Wireshark's name of an ESP encryption algorithm (`esp_sa`).
fn esp_encr_name(e: Encryption) -> Option<String> {
    Some(match e {
        Encryption::Null => "NULL".into(),
        Encryption::Des => "DES-CBC [RFC2405]".into(),
        Encryption::TripleDes => "TripleDES-CBC [RFC2451]".into(),
        Encryption::AesCbc { .. } => "AES-CBC [RFC3602]".into(),
        Encryption::AesCtr { .. } => "AES-CTR [RFC3686]".into(),
        Encryption::AesGcm { icv_len, .. } => format!("AES-GCM with {icv_len} octet ICV [RFC4106]"),
        Encryption::AesCcm { .. } | Encryption::ChaCha20Poly1305 => return None,
    })
}

/// Wireshark's name of an ESP integrity algorithm; XCBC and CMAC are decrypted unchecked.
fn esp_integ_name(i: Option<Integrity>) -> &'static str {
    match i {
        None => "NULL",
        Some(Integrity::HmacMd5_96) => "HMAC-MD5-96 [RFC2403]",
        Some(Integrity::HmacSha1_96) => "HMAC-SHA-1-96 [RFC2404]",
        Some(Integrity::HmacSha256_128) => "HMAC-SHA-256-128 [RFC4868]",
        Some(Integrity::HmacSha384_192) => "HMAC-SHA-384-192 [RFC4868]",
        Some(Integrity::HmacSha512_256) => "HMAC-SHA-512-256 [RFC4868]",
        Some(Integrity::AesXcbc96 | Integrity::AesCmac96) => {
            "ANY 96 bit authentication [no checking]"
        }
    }
}

/// Wireshark's name of an IKEv2 encryption algorithm (`ikev2_decryption_table`).
fn ike_encr_name(e: Encryption) -> Option<String> {
    Some(match e {
        Encryption::Null => "NULL [RFC2410]".into(),
        Encryption::TripleDes => "3DES [RFC2451]".into(),
        Encryption::AesCbc { key_len } => format!("AES-CBC-{} [RFC3602]", u32::from(key_len) * 8),
        Encryption::AesCtr { key_len } => format!("AES-CTR-{} [RFC5930]", u32::from(key_len) * 8),
        Encryption::AesGcm { key_len, icv_len } => format!(
            "AES-GCM-{} with {icv_len} octet ICV [RFC5282]",
            u32::from(key_len) * 8
        ),
        Encryption::AesCcm { key_len, icv_len } => format!(
            "AES-CCM-{} with {icv_len} octet ICV [RFC5282]",
            u32::from(key_len) * 8
        ),
        Encryption::Des | Encryption::ChaCha20Poly1305 => return None,
    })
}

fn ike_integ_name(i: Option<Integrity>) -> Option<&'static str> {
    Some(match i {
        None => "NONE [RFC4306]",
        Some(Integrity::HmacMd5_96) => "HMAC_MD5_96 [RFC2403]",
        Some(Integrity::HmacSha1_96) => "HMAC_SHA1_96 [RFC2404]",
        Some(Integrity::HmacSha256_128) => "HMAC_SHA2_256_128 [RFC4868]",
        Some(Integrity::HmacSha384_192) => "HMAC_SHA2_384_192 [RFC4868]",
        Some(Integrity::HmacSha512_256) => "HMAC_SHA2_512_256 [RFC4868]",
        Some(Integrity::AesXcbc96 | Integrity::AesCmac96) => return None,
    })
}

/// Builds the three tables from the IKE SAs' and the ESP SA pairs' keys.
pub(crate) fn tables<'a>(ike: &[IkeKeyExport], esp: impl Iterator<Item = &'a EspPair>) -> Tables {
    let mut t = Tables::default();
    let (mut v2, mut v1, mut sa) = (String::new(), String::new(), String::new());
    for k in ike {
        match k {
            IkeKeyExport::V2 {
                spi_i,
                spi_r,
                encr,
                integ,
                sk_ei,
                sk_er,
                sk_ai,
                sk_ar,
            } => match (ike_encr_name(*encr), ike_integ_name(*integ)) {
                (Some(e), Some(i)) => {
                    let _ = writeln!(
                        v2,
                        "{:016x},{:016x},{},{},\"{e}\",{},{},\"{i}\"",
                        spi_i.0,
                        spi_r.0,
                        hex(sk_ei),
                        hex(sk_er),
                        hex(sk_ai),
                        hex(sk_ar)
                    );
                    t.ike_sas += 1;
                }
                _ => t.left_out.push(format!(
                    "IKEv2 SA {:016x}_i {:016x}_r: Wireshark cannot decrypt {}/{}",
                    spi_i.0,
                    spi_r.0,
                    encr.name(),
                    integ.map_or("none", Integrity::name)
                )),
            },
            IkeKeyExport::V1 { cookie_i, enc_key } => {
                let _ = writeln!(v1, "{:016x},{}", cookie_i.0, hex(enc_key));
                t.ike_sas += 1;
            }
        }
    }
    for p in esp {
        if !p.esp {
            // AH encrypts nothing: Wireshark reads it without keys.
            continue;
        }
        let Some(e) = p.encr.and_then(esp_encr_name) else {
            t.left_out.push(format!(
                "ESP SA pair 0x{:08x}/0x{:08x} of ipsec-tunnel {}: Wireshark cannot decrypt {}",
                p.inbound_spi.0,
                p.outbound_spi.0,
                p.tunnel,
                p.encr.map_or("no encryption".into(), Encryption::name)
            ));
            continue;
        };
        let i = esp_integ_name(p.integ);
        let family = if p.v6 { "IPv6" } else { "IPv4" };
        for (spi, (ek, ik)) in [(p.inbound_spi, &p.inbound), (p.outbound_spi, &p.outbound)] {
            let ik = if p.integ.is_some() {
                format!("0x{}", hex(ik))
            } else {
                String::new()
            };
            let _ = writeln!(
                sa,
                "\"{family}\",\"*\",\"*\",\"0x{:08x}\",\"{e}\",\"0x{}\",\"{i}\",\"{ik}\"",
                spi.0,
                hex(ek)
            );
            t.esp_sas += 1;
        }
    }
    t.files.insert("esp_sa".into(), sa);
    t.files.insert("ikev2_decryption_table".into(), v2);
    t.files.insert("ikev1_decryption_table".into(), v1);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosec_wire::IkeSpi;

    fn s(b: &[u8]) -> Secret {
        Secret::from_slice(b)
    }

    #[test]
    fn tables_hold_each_sa_in_wiresharks_format() {
        let ike = [
            IkeKeyExport::V2 {
                spi_i: IkeSpi(0x0102030405060708),
                spi_r: IkeSpi(0xa0),
                encr: Encryption::AesCbc { key_len: 32 },
                integ: Some(Integrity::HmacSha256_128),
                sk_ei: s(&[0xe1; 2]),
                sk_er: s(&[0xe2; 2]),
                sk_ai: s(&[0xa1; 2]),
                sk_ar: s(&[0xa2; 2]),
            },
            IkeKeyExport::V2 {
                spi_i: IkeSpi(1),
                spi_r: IkeSpi(2),
                encr: Encryption::ChaCha20Poly1305,
                integ: None,
                sk_ei: s(&[1]),
                sk_er: s(&[2]),
                sk_ai: s(&[]),
                sk_ar: s(&[]),
            },
            IkeKeyExport::V1 {
                cookie_i: IkeSpi(0xc0c0),
                enc_key: s(&[0x11, 0x22]),
            },
        ];
        let gcm = EspPair {
            tunnel: "to-b".into(),
            v6: false,
            esp: true,
            encr: Some(Encryption::AesGcm {
                key_len: 32,
                icv_len: 16,
            }),
            integ: None,
            inbound_spi: Spi(0xc1),
            outbound_spi: Spi(0xc2),
            inbound: (s(&[0x01, 0x02]), s(&[])),
            outbound: (s(&[0x03, 0x04]), s(&[])),
        };
        let t = tables(&ike, [gcm].iter());
        assert_eq!(
            t.files["ikev2_decryption_table"],
            "0102030405060708,00000000000000a0,e1e1,e2e2,\"AES-CBC-256 [RFC3602]\",a1a1,a2a2,\"HMAC_SHA2_256_128 [RFC4868]\"\n"
        );
        assert_eq!(t.files["ikev1_decryption_table"], "000000000000c0c0,1122\n");
        assert_eq!(
            t.files["esp_sa"],
            "\"IPv4\",\"*\",\"*\",\"0x000000c1\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x0102\",\"NULL\",\"\"\n\
             \"IPv4\",\"*\",\"*\",\"0x000000c2\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x0304\",\"NULL\",\"\"\n"
        );
        assert_eq!((t.ike_sas, t.esp_sas), (2, 2));
        assert_eq!(t.left_out.len(), 1, "{:?}", t.left_out);
        assert!(t.left_out[0].contains("cannot decrypt"), "{:?}", t.left_out);
    }
}
