//! ESP packet protection (RFC 4303) for the data plane: in place, into the caller's buffer, no
//! allocation per packet.
//!
//! The caller (the ESP crate) lays the packet out and pads it; this module fills in the IV,
//! encrypts and writes the ICV:
//!
//! ```text
//! packet = SPI(4) | Seq(4) | IV(iv_len) | payload … padding | pad len | next hdr | ICV(icv_len)
//!                                          └──────── a multiple of pad_align() ───────┘
//! ```
//!
//! - AEAD (GCM RFC 4106, CCM RFC 4309, ChaCha20-Poly1305 RFC 7634): nonce = salt | IV,
//!   AAD = SPI | Seq, or SPI | Seq-high | Seq-low with extended sequence numbers.
//! - CBC / CTR / NULL with an integrity algorithm: ICV over SPI … end of ciphertext, followed by
//!   the high 32 bits of the ESN when ESN is on (RFC 4303 §2.2.1, not transmitted).
//!
//! IVs: AEAD and CTR use the 64-bit sequence number (unique per SA, RFC 4106 §3.1). CBC needs
//! an unpredictable IV: it is the sequence number encrypted under the SA's key (NIST SP 800-38A
//! Appendix C), so no RNG is needed per packet.

use std::ops::Range;

use aws_lc_rs::aead as lc;

use crate::cipher::{AeadKey, aes_ctr_apply};
use crate::encryption::CipherKey;
use crate::ike_cipher::aead_nonce;
use crate::{Encryption, Error, Integrity, IntegrityKey, Secret};

/// Byte ranges of IV, encrypted body and ICV within a packet.
type Layout = (Range<usize>, Range<usize>, Range<usize>);

/// ESP header length (SPI + sequence number).
const HDR: usize = 8;

/// A negotiated ESP transform: encryption plus (for non-AEAD ciphers) integrity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EspSuite {
    /// Encryption algorithm.
    pub encr: Encryption,
    /// Integrity algorithm; `None` exactly when `encr` is an AEAD.
    pub integ: Option<Integrity>,
}

impl EspSuite {
    /// Checks the combination: AEADs take no integrity; everything else (including NULL
    /// encryption) needs one (SPEC R-CFG-2: "none only with an AEAD cipher").
    pub fn new(encr: Encryption, integ: Option<Integrity>) -> Result<Self, Error> {
        match (encr.is_aead(), integ) {
            (true, None) | (false, Some(_)) => Ok(Self { encr, integ }),
            (true, Some(_)) => Err(Error::Unsupported("AEAD cipher with integrity")),
            (false, None) => Err(Error::Unsupported("ESP cipher needs integrity")),
        }
    }

    /// Bytes of encryption keying material per direction (key + salt).
    pub fn encr_keymat_len(&self) -> usize {
        self.encr.keymat_len()
    }

    /// Bytes of integrity key per direction.
    pub fn integ_key_len(&self) -> usize {
        self.integ.map_or(0, |i| i.key_len())
    }

    /// IV bytes in each packet.
    pub fn iv_len(&self) -> usize {
        self.encr.iv_len()
    }

    /// ICV bytes at the end of each packet.
    pub fn icv_len(&self) -> usize {
        match self.integ {
            Some(i) => i.icv_len(),
            None => self.encr.icv_len(),
        }
    }

    /// The payload + padding + pad length + next header must be a multiple of this (the
    /// cipher block size, and at least 4 so the ICV is 4-byte aligned, RFC 4303 §2.4).
    pub fn pad_align(&self) -> usize {
        self.encr.block_len().max(4)
    }

    /// Keys one SA (one direction).
    pub fn key(&self, encr_key: &Secret, integ_key: &Secret) -> Result<EspSa, Error> {
        let integ = match self.integ {
            Some(i) => Some(i.key(integ_key.expose())?),
            None => None,
        };
        Ok(EspSa {
            suite: *self,
            cipher: self.encr.key(encr_key.expose())?,
            integ,
        })
    }
}

/// A keyed ESP SA (one direction).
pub struct EspSa {
    suite: EspSuite,
    cipher: CipherKey,
    integ: Option<IntegrityKey>,
}

impl std::fmt::Debug for EspSa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EspSa")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl EspSa {
    /// The negotiated suite.
    pub fn suite(&self) -> &EspSuite {
        &self.suite
    }

    fn layout(&self, len: usize) -> Result<Layout, Error> {
        let iv_len = self.suite.iv_len();
        let icv_len = self.suite.icv_len();
        let body_start = HDR + iv_len;
        if len < body_start + icv_len {
            return Err(Error::Length("ESP packet shorter than header + IV + ICV"));
        }
        let body_end = len - icv_len;
        // Block lengths are 1, 8 or 16: a mask, not a division, twice per packet.
        let block = self.suite.encr.block_len();
        debug_assert!(block.is_power_of_two());
        if (body_end - body_start) & (block - 1) != 0 {
            return Err(Error::Length(
                "ESP payload is not a multiple of the block size",
            ));
        }
        Ok((HDR..body_start, body_start..body_end, body_end..len))
    }

    /// Protects a packet in place. `packet` holds the ESP header (SPI and low 32 bits of
    /// `seq` already written), room for the IV, the padded payload, and room for the ICV.
    /// `seq` is the full 64-bit sequence number; `esn` says whether ESN is negotiated.
    pub fn seal(&self, packet: &mut [u8], seq: u64, esn: bool) -> Result<(), Error> {
        let (iv_r, body_r, icv_r) = self.layout(packet.len())?;
        let seq_hi = ((seq >> 32) as u32).to_be_bytes();
        let (head, rest) = packet.split_at_mut(iv_r.end);
        let (body, icv) = rest.split_at_mut(body_r.len());
        let (hdr, iv) = head.split_at_mut(HDR);
        match &self.cipher {
            CipherKey::Null => {}
            CipherKey::Cbc(c) => {
                // IV = E_K(seq), a nonce under the SA key (SP 800-38A Appendix C).
                iv.fill(0);
                let l = iv.len();
                iv[l - 8..].copy_from_slice(&seq.to_be_bytes());
                c.encrypt_block(iv);
                c.encrypt(iv, body)?;
            }
            CipherKey::Ctr(k, nonce) => {
                iv.copy_from_slice(&seq.to_be_bytes());
                aes_ctr_apply(k, nonce, &seq.to_be_bytes(), body);
            }
            CipherKey::Aead(k, salt) => {
                iv.copy_from_slice(&seq.to_be_bytes());
                let (nonce, n) = aead_nonce(self.suite.encr, salt, iv);
                let mut aad = [0u8; 12];
                let aad = esp_aad(&mut aad, hdr, &seq_hi, esn);
                return k.seal(&nonce[..n], aad, body, icv);
            }
        }
        if let Some(ik) = &self.integ {
            let covered = &packet[..icv_r.start];
            let mut tag = [0u8; 64];
            let tl = icv_r.len();
            if esn {
                ik.compute(&[covered, &seq_hi], &mut tag[..tl])?;
            } else {
                ik.compute(&[covered], &mut tag[..tl])?;
            }
            packet[icv_r].copy_from_slice(&tag[..tl]);
        }
        Ok(())
    }

    /// Like [`Self::seal`], with the payload and the trailer (padding, Pad Length, Next
    /// Header) read from `payload` and `trailer` instead of from `packet`. AES-GCM encrypts
    /// them straight into `packet`, so the payload is read once, not copied first and
    /// encrypted after (issue 16); the other ciphers lay the packet out and seal it in place.
    /// `packet` is the whole ESP packet: its header written, then room for the IV, `payload`,
    /// `trailer` and the ICV, exactly.
    pub fn seal_from(
        &self,
        packet: &mut [u8],
        payload: &[u8],
        trailer: &[u8],
        seq: u64,
        esn: bool,
    ) -> Result<(), Error> {
        let (iv_r, body_r, _) = self.layout(packet.len())?;
        if body_r.len() != payload.len() + trailer.len() {
            return Err(Error::Length(
                "ESP payload and trailer do not fill the packet",
            ));
        }
        // AES-GCM only: aws-lc's ChaCha20-Poly1305 out of place took longer than a copy and
        // the in-place seal (2,115 against 1,958 ns at 1,400 B).
        if let CipherKey::Aead(AeadKey::Lc(k), salt) = &self.cipher
            && matches!(self.suite.encr, Encryption::AesGcm { .. })
        {
            let seq_hi = ((seq >> 32) as u32).to_be_bytes();
            let (head, rest) = packet.split_at_mut(iv_r.end);
            let (hdr, iv) = head.split_at_mut(HDR);
            iv.copy_from_slice(&seq.to_be_bytes());
            let (nonce, n) = aead_nonce(self.suite.encr, salt, iv);
            let mut aad = [0u8; 12];
            let aad = esp_aad(&mut aad, hdr, &seq_hi, esn);
            let (body, trailer_and_icv) = rest.split_at_mut(payload.len());
            let nonce =
                lc::Nonce::try_assume_unique_for_key(&nonce[..n]).map_err(|_| Error::Backend)?;
            return k
                .seal_out_of_place_scatter(
                    nonce,
                    lc::Aad::from(aad),
                    payload,
                    body,
                    trailer,
                    trailer_and_icv,
                )
                .map_err(|_| Error::Backend);
        }
        let (body, rest) = packet[body_r.start..].split_at_mut(payload.len());
        body.copy_from_slice(payload);
        rest[..trailer.len()].copy_from_slice(trailer);
        self.seal(packet, seq, esn)
    }

    /// Verifies and decrypts a received packet in place. `seq` is the full sequence number
    /// (with ESN, the high bits inferred by the anti-replay window, RFC 4303 Appendix A).
    /// Returns the byte range of the decrypted payload (payload, padding, pad length, next
    /// header) within `packet`. On error the packet must be dropped.
    pub fn open(&self, packet: &mut [u8], seq: u64, esn: bool) -> Result<Range<usize>, Error> {
        let (iv_r, body_r, icv_r) = self.layout(packet.len())?;
        let seq_hi = ((seq >> 32) as u32).to_be_bytes();
        if let Some(ik) = &self.integ {
            let (covered, icv) = packet.split_at(icv_r.start);
            if esn {
                ik.verify(&[covered, &seq_hi], icv)?;
            } else {
                ik.verify(&[covered], icv)?;
            }
        }
        let (head, rest) = packet.split_at_mut(iv_r.end);
        let (body, icv) = rest.split_at_mut(body_r.len());
        let (hdr, iv) = head.split_at_mut(HDR);
        match &self.cipher {
            CipherKey::Null => {}
            CipherKey::Cbc(c) => c.decrypt(iv, body)?,
            CipherKey::Ctr(k, nonce) => {
                let iv8: [u8; 8] = (&*iv).try_into().map_err(|_| Error::Length("IV"))?;
                aes_ctr_apply(k, nonce, &iv8, body)
            }
            CipherKey::Aead(k, salt) => {
                let (nonce, n) = aead_nonce(self.suite.encr, salt, iv);
                let mut aad = [0u8; 12];
                let aad = esp_aad(&mut aad, hdr, &seq_hi, esn);
                k.open(&nonce[..n], aad, body, icv)?;
            }
        }
        Ok(body_r)
    }
}

/// AAD of RFC 4106 §5: SPI | Seq (8 bytes), or SPI | Seq-high | Seq-low with ESN (12 bytes).
fn esp_aad<'a>(buf: &'a mut [u8; 12], hdr: &[u8], seq_hi: &[u8; 4], esn: bool) -> &'a [u8] {
    if esn {
        buf[..4].copy_from_slice(&hdr[..4]);
        buf[4..8].copy_from_slice(seq_hi);
        buf[8..].copy_from_slice(&hdr[4..8]);
        &buf[..]
    } else {
        buf[..8].copy_from_slice(&hdr[..8]);
        &buf[..8]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    /// A data plane holds two of these per Child SA: the block cipher and MAC states are
    /// boxed so an AEAD SA does not carry room for them (it was 1,344 bytes).
    #[test]
    fn an_sa_is_small() {
        assert!(
            std::mem::size_of::<EspSa>() <= 96,
            "{}",
            std::mem::size_of::<EspSa>()
        );
    }

    /// ESP framing against the GCM specification (Appendix B, test case 3): with salt cafebabe
    /// and sequence number facedbaddecaf888 as the IV, the nonce is the spec's
    /// cafebabefacedbaddecaf888, so the ciphertext must be the spec's (the AAD differs, so only
    /// the ciphertext is compared; the tag is covered by the round trip).
    #[test]
    fn gcm_framing_matches_raw_aead() {
        let suite = EspSuite::new(
            Encryption::AesGcm {
                key_len: 16,
                icv_len: 16,
            },
            None,
        )
        .unwrap();
        let keymat = h("feffe9928665731c6d6a8f9467308308 cafebabe");
        let sa = suite
            .key(&Secret::from_slice(&keymat), &Secret::default())
            .unwrap();
        let seq: u64 = 0xfacedbad_decaf888;
        let payload = h("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72");
        let mut pkt = vec![0u8; 8 + 8 + payload.len() + 16];
        pkt[..4].copy_from_slice(&0x11223344u32.to_be_bytes());
        pkt[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        pkt[16..16 + payload.len()].copy_from_slice(&payload);
        sa.seal(&mut pkt, seq, true).unwrap();
        // IV is the 64-bit sequence number.
        assert_eq!(&pkt[8..16], &seq.to_be_bytes());
        // GCM spec test case 3/4 ciphertext prefix for the same key and nonce.
        assert_eq!(
            hex::encode(&pkt[16..48]),
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
        );
        let r = sa.open(&mut pkt, seq, true).unwrap();
        assert_eq!(&pkt[r], &payload[..]);
    }

    #[test]
    fn every_suite_round_trips_and_detects_tampering() {
        let encrs = [
            Encryption::AesGcm {
                key_len: 16,
                icv_len: 8,
            },
            Encryption::AesGcm {
                key_len: 16,
                icv_len: 12,
            },
            Encryption::AesGcm {
                key_len: 32,
                icv_len: 16,
            },
            Encryption::AesCcm {
                key_len: 16,
                icv_len: 8,
            },
            Encryption::AesCcm {
                key_len: 16,
                icv_len: 12,
            },
            Encryption::AesCcm {
                key_len: 16,
                icv_len: 16,
            },
            Encryption::ChaCha20Poly1305,
            Encryption::AesCbc { key_len: 16 },
            Encryption::AesCbc { key_len: 24 },
            Encryption::AesCbc { key_len: 32 },
            Encryption::AesCtr { key_len: 16 },
            Encryption::TripleDes,
            Encryption::Des,
            Encryption::Null,
        ];
        for encr in encrs {
            let integs: Vec<Option<Integrity>> = if encr.is_aead() {
                vec![None]
            } else {
                Integrity::ALL.iter().copied().map(Some).collect()
            };
            for integ in integs {
                let suite = EspSuite::new(encr, integ).unwrap();
                let ek = Secret::from_slice(&vec![3; suite.encr_keymat_len()]);
                let ik = Secret::from_slice(&vec![5; suite.integ_key_len()]);
                let sa = suite.key(&ek, &ik).unwrap();
                for esn in [false, true] {
                    let seq = 0x1_0000_0005u64;
                    let body = 64;
                    let len = 8 + suite.iv_len() + body + suite.icv_len();
                    let mut pkt = vec![0u8; len];
                    pkt[..4].copy_from_slice(&[0, 0, 0x10, 0]);
                    pkt[4..8].copy_from_slice(&5u32.to_be_bytes());
                    for (i, b) in pkt[8 + suite.iv_len()..8 + suite.iv_len() + body]
                        .iter_mut()
                        .enumerate()
                    {
                        *b = i as u8;
                    }
                    let plain = pkt.clone();
                    sa.seal(&mut pkt, seq, esn).unwrap();
                    if encr != Encryption::Null {
                        assert_ne!(
                            pkt[8 + suite.iv_len()..][..body],
                            plain[8 + suite.iv_len()..][..body]
                        );
                    }
                    let sealed = pkt.clone();
                    // The same packet sealed from a separate payload and trailer (encrypted
                    // straight into the packet with AES-GCM, laid out first by the others).
                    let start = 8 + suite.iv_len();
                    let (payload, trailer) = plain[start..start + body].split_at(body - 6);
                    let mut from = vec![0u8; len];
                    from[..8].copy_from_slice(&plain[..8]);
                    sa.seal_from(&mut from, payload, trailer, seq, esn).unwrap();
                    assert_eq!(from, sealed, "seal_from: {} {integ:?}", encr.name());
                    assert!(
                        sa.seal_from(&mut from, payload, &trailer[1..], seq, esn)
                            .is_err(),
                        "payload and trailer one byte short of the packet"
                    );
                    let r = sa.open(&mut pkt, seq, esn).unwrap();
                    assert_eq!(pkt[r.clone()], plain[r], "{} {integ:?}", encr.name());
                    // Tampering anywhere, or the wrong ESN high bits, is detected.
                    for i in [0, 5, 8, len / 2, len - 1] {
                        let mut bad = sealed.clone();
                        bad[i] ^= 1;
                        assert!(
                            sa.open(&mut bad, seq, esn).is_err(),
                            "{} byte {i}",
                            encr.name()
                        );
                    }
                    if esn {
                        let mut bad = sealed.clone();
                        assert!(sa.open(&mut bad, seq + (1 << 32), true).is_err());
                    }
                    for cut in 0..len {
                        let mut short = sealed[..cut].to_vec();
                        let _ = sa.open(&mut short, seq, esn);
                    }
                }
            }
        }
    }

    #[test]
    fn cbc_ivs_are_unpredictable_and_distinct() {
        let suite = EspSuite::new(
            Encryption::AesCbc { key_len: 16 },
            Some(Integrity::HmacSha256_128),
        )
        .unwrap();
        let sa = suite
            .key(&Secret::from_slice(&[1; 16]), &Secret::from_slice(&[2; 32]))
            .unwrap();
        let mut ivs = std::collections::HashSet::new();
        for seq in 1..100u64 {
            let mut pkt = vec![0u8; 8 + 16 + 16 + 16];
            sa.seal(&mut pkt, seq, false).unwrap();
            let iv = pkt[8..24].to_vec();
            assert_ne!(&iv[8..], &seq.to_be_bytes());
            assert!(ivs.insert(iv));
        }
    }

    #[test]
    fn suite_rules() {
        assert!(EspSuite::new(Encryption::Null, None).is_err());
        assert!(EspSuite::new(Encryption::AesCbc { key_len: 16 }, None).is_err());
        assert!(EspSuite::new(Encryption::ChaCha20Poly1305, Some(Integrity::HmacSha1_96)).is_err());
    }
}
