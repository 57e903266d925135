//! An IKEv1 phase-1 (ISAKMP) SA, the quick-mode exchanges in flight on it and the phase-2 SA
//! pairs it made; its keys, the CBC IV chain of RFC 2409 Appendix B and the HASH payloads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrosec_crypto::kdf::ikev1 as kdf;
use ferrosec_crypto::{ActiveKeyExchange, Encryption, HashAlgorithm, Prf, Secret};
use ferrosec_wire::IkeSpi;
use ferrosec_wire::Spi;
use ferrosec_wire::isakmp::PayloadType;

use super::Mode;
use super::payloads::{P1Transform, QmTransform};
use crate::identity::Identity;
use crate::proposal::Selected;
use crate::retransmit::RetransmitPolicy;
use crate::ts::{TrafficSelector, TsSet};
use crate::v2::{PeerConfig, PeerId, PolicyId};

/// Where a phase-1 negotiation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum P1State {
    /// Initiator, main mode: message 1 sent (SA).
    MainI1,
    /// Initiator, main mode: message 3 sent (KE, Ni).
    MainI3,
    /// Initiator, main mode: message 5 sent (IDii, HASH_I).
    MainI5,
    /// Responder, main mode: message 2 sent.
    MainR2,
    /// Responder, main mode: message 4 sent.
    MainR4,
    /// Initiator, aggressive mode: message 1 sent.
    AggrI1,
    /// Responder, aggressive mode: message 2 sent.
    AggrR2,
    /// Authenticated.
    Established,
}

/// The negotiated phase-1 algorithms.
#[derive(Debug, Clone)]
pub(crate) struct P1Algs {
    /// As sent on the wire.
    pub(crate) wire: P1Transform,
    /// In the engine's proposal terms (for `show`).
    pub(crate) selected: Selected,
    pub(crate) encr: Encryption,
    pub(crate) hash: HashAlgorithm,
    pub(crate) prf: Prf,
}

/// The keys of an ISAKMP SA.
#[derive(Debug)]
pub(crate) struct P1Keys {
    pub(crate) skeyid: Secret,
    pub(crate) skeyid_d: Secret,
    pub(crate) skeyid_a: Secret,
    /// The encryption key (SKEYID_e expanded per Appendix B).
    pub(crate) enc: Secret,
}

/// A message we sent that may need to be sent again.
#[derive(Debug)]
pub(crate) struct Retx {
    pub(crate) data: Vec<u8>,
    pub(crate) next: Instant,
    pub(crate) sent: u32,
}

impl Retx {
    pub(crate) fn new(data: Vec<u8>, now: Instant, policy: &RetransmitPolicy) -> Self {
        Retx {
            data,
            next: now + policy.wait(0),
            sent: 0,
        }
    }
}

/// Where a quick mode stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QmState {
    /// Initiator: message 1 sent.
    I1,
    /// Responder: message 2 sent, waiting for HASH(3).
    R2,
}

/// A quick-mode exchange in flight.
#[derive(Debug)]
pub(crate) struct QuickMode {
    pub(crate) mid: u32,
    pub(crate) state: QmState,
    pub(crate) policy: PolicyId,
    /// The IV of this exchange (the last CBC block of its last message).
    pub(crate) iv: Vec<u8>,
    pub(crate) ni: Vec<u8>,
    pub(crate) nr: Vec<u8>,
    /// Our SPI (inbound).
    pub(crate) spi_in: Spi,
    /// The peer's SPI (outbound), once known.
    pub(crate) spi_out: Spi,
    pub(crate) kx: Option<Box<dyn ActiveKeyExchange>>,
    /// The PFS shared secret.
    pub(crate) g_qm: Option<Secret>,
    /// What we offered (initiator), for the failure text.
    pub(crate) offered: Vec<QmTransform>,
    /// The chosen transform.
    pub(crate) chosen: Option<QmTransform>,
    /// Our side's selector and the peer's.
    pub(crate) local_ts: TrafficSelector,
    pub(crate) remote_ts: TrafficSelector,
    /// The inbound SPI of the pair this one replaces (a rekey).
    pub(crate) rekey_of: Option<Spi>,
    pub(crate) retx: Option<Retx>,
    /// Responder: the digest of message 1, to answer its retransmissions with message 2.
    pub(crate) request_digest: Vec<u8>,
    /// Responder: we set the commit bit in message 2 and owe CONNECTED after HASH(3).
    pub(crate) commit: bool,
}

/// A phase-2 SA pair made by quick mode.
#[derive(Debug, Clone)]
pub(crate) struct Child {
    pub(crate) policy: PolicyId,
    pub(crate) inbound: Spi,
    pub(crate) outbound: Spi,
    pub(crate) rekey_at: Option<Instant>,
    pub(crate) expire_at: Option<Instant>,
    /// A rekey was started (or it was replaced).
    pub(crate) rekeying: bool,
    /// AH rather than ESP (for the DELETE's protocol).
    pub(crate) ah: bool,
    /// Made by our own rekey of the pair with this inbound SPI (to spot the peer rekeying the
    /// same pair at the same time).
    pub(crate) rekey_of: Option<Spi>,
    /// The pair replaces the one with this inbound SPI, and outbound traffic moves to it at
    /// this time ([`Event::ChildSaRekeyed`](crate::event::Event::ChildSaRekeyed)): the quick
    /// mode initiator waits [`OUTBOUND_SWITCH_DELAY`] after HASH(3), which the responder
    /// needs before it installs the pair (RFC 2409 §5.5).
    pub(crate) switch: Option<(Instant, Spi)>,
    /// The responder set the commit bit (RFC 2408 §3.1): the pair carries no outbound
    /// traffic until its CONNECTED notify (quick-mode message 4) comes.
    pub(crate) commit: Option<Commit>,
}

/// A quick mode we initiated whose responder set the commit bit.
#[derive(Debug, Clone)]
pub(crate) struct Commit {
    /// The quick mode's message ID (message 4 has it).
    pub(crate) mid: u32,
    /// The IV after HASH(3), for message 4.
    pub(crate) iv: Vec<u8>,
    /// Given up (and the pair deleted) if CONNECTED has not come by then.
    pub(crate) until: Instant,
    /// The replaced pair's expiry before the rekey, restored if CONNECTED never comes.
    pub(crate) old_expire: Option<Instant>,
}

/// How long the initiator of a quick-mode rekey keeps sending on the old pair after its
/// HASH(3): the responder installs the new pair only when HASH(3) arrives, and ESP sent
/// before that would be dropped there (strongSwan 5.9 showed it: one ping of 700 lost).
pub(crate) const OUTBOUND_SWITCH_DELAY: Duration = Duration::from_secs(1);

/// DPD (RFC 3706) state of an ISAKMP SA.
#[derive(Debug, Default)]
pub(crate) struct Dpd {
    /// The last time anything authenticated came from the peer.
    pub(crate) last_rx: Option<Instant>,
    pub(crate) seq: u32,
    /// An R-U-THERE in flight: (sequence number, next retransmission, tries so far).
    pub(crate) outstanding: Option<(u32, Instant, u32)>,
}

/// An ISAKMP SA.
pub(crate) struct Sa {
    pub(crate) peer: PeerId,
    pub(crate) cfg: Arc<PeerConfig>,
    /// Certificate authentication (signatures), else the pre-shared key.
    pub(crate) cert: Option<Arc<crate::v2::CertAuth>>,
    /// The phase-1 authentication method (of the transforms we offer or accept).
    pub(crate) auth_method: u16,
    /// The peer announced IKEv1 fragmentation (its vendor ID).
    pub(crate) peer_frag: bool,
    /// The fragments of the peer's message being reassembled.
    pub(crate) reasm: super::frag::Reassembly,
    /// The peer's certificate, once its signature verified.
    pub(crate) peer_cert: Option<ferrosec_crypto::x509::Certificate>,
    pub(crate) mode: Mode,
    pub(crate) initiator: bool,
    pub(crate) state: P1State,
    pub(crate) cky_i: IkeSpi,
    pub(crate) cky_r: IkeSpi,
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    /// The initiator's SA payload body (HASH_I and HASH_R cover it).
    pub(crate) sa_i_b: Vec<u8>,
    pub(crate) offered: Vec<P1Transform>,
    pub(crate) algs: Option<P1Algs>,
    pub(crate) kx: Option<Box<dyn ActiveKeyExchange>>,
    pub(crate) g_xi: Vec<u8>,
    pub(crate) g_xr: Vec<u8>,
    pub(crate) g_xy: Option<Secret>,
    pub(crate) ni: Vec<u8>,
    pub(crate) nr: Vec<u8>,
    pub(crate) keys: Option<P1Keys>,
    /// The phase-1 IV chain; once established, the last CBC block of phase 1.
    pub(crate) iv: Vec<u8>,
    /// Our ID payload body.
    pub(crate) id_ours_b: Vec<u8>,
    pub(crate) peer_id: Option<Identity>,
    pub(crate) retx: Option<Retx>,
    /// Responder: digest of the last request and our answer to it, for retransmissions.
    pub(crate) last_request: Vec<u8>,
    pub(crate) last_answer: Option<Vec<u8>>,
    pub(crate) established_at: Option<Instant>,
    pub(crate) rekey_at: Option<Instant>,
    pub(crate) expire_at: Option<Instant>,
    /// A newer ISAKMP SA took over this one's phase-2 SAs; it goes quietly.
    pub(crate) replaced: bool,
    /// We initiated it with no other ISAKMP SA up with the peer: main mode message 5 carries
    /// INITIAL-CONTACT (RFC 2407 §4.6.3.3), and the peer may drop what it has of us.
    pub(crate) first_contact: bool,
    /// The peer's authenticated phase-1 message carried INITIAL-CONTACT: once it is up, our
    /// other SAs with the peer are stale (it restarted) and go without a DELETE.
    pub(crate) peer_initial_contact: bool,
    /// The peer sent the RFC 3947 vendor ID.
    pub(crate) natt: bool,
    /// NAT between us: (we are behind one, the peer is behind one).
    pub(crate) nat: (bool, bool),
    pub(crate) peer_dpd: bool,
    pub(crate) dpd: Dpd,
    /// The gateway's DPD settings.
    pub(crate) dpd_cfg: Option<super::DpdSettings>,
    /// The peer's ID payload body as received (its HASH covers it).
    pub(crate) peer_id_b: Vec<u8>,
    pub(crate) qms: Vec<QuickMode>,
    pub(crate) children: Vec<Child>,
    /// Quick modes we finished as initiator: (message ID, our HASH(3) message, kept until), to
    /// answer a retransmitted message 2 (its responder did not get HASH(3)); bounded.
    pub(crate) qm_done: Vec<(u32, Vec<u8>, Instant)>,
    /// Policies to bring up once established.
    pub(crate) pending: Vec<(PolicyId, Option<Spi>)>,
    /// Message IDs of informational and quick-mode requests seen, newest last (replays of
    /// them are ignored); bounded.
    pub(crate) seen_mids: Vec<u32>,
}

impl std::fmt::Debug for Sa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sa")
            .field("peer", &self.cfg.name)
            .field("initiator", &self.initiator)
            .field("state", &self.state)
            .field("cky_i", &self.cky_i)
            .field("cky_r", &self.cky_r)
            .field("children", &self.children.len())
            .field(
                "qms",
                &self
                    .qms
                    .iter()
                    .map(|q| (q.mid, q.state, q.retx.as_ref().map(|r| r.sent)))
                    .collect::<Vec<_>>(),
            )
            .field("pending", &self.pending)
            .finish()
    }
}

/// Why a message could not be decrypted: no keys yet, or not a multiple of the block size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unprotect;

impl Sa {
    /// Drops what only phase 1 needed once the SA is established: the values its HASHes and
    /// keys were computed from (the initiator's SA payload, both public values and the shared
    /// secret, both nonces, both ID payloads, the transforms offered). Nothing after phase 1
    /// reads them (quick mode has its own nonces and SKEYID_d/SKEYID_a); a retransmitted last
    /// message is answered from `last_answer`, and anything else arriving for phase 1 fails
    /// its HASH. A responder holds thousands of SAs (issue 16).
    pub(crate) fn shed_phase1(&mut self) {
        self.sa_i_b = Vec::new();
        self.offered = Vec::new();
        self.kx = None;
        self.g_xi = Vec::new();
        self.g_xr = Vec::new();
        self.g_xy = None;
        self.ni = Vec::new();
        self.nr = Vec::new();
        self.id_ours_b = Vec::new();
        self.peer_id_b = Vec::new();
    }

    /// Gives back the room of finished exchanges: the quick-mode list's once none is in
    /// flight (a few hundred bytes per slot, four slots after the first push), and the phase-2
    /// list's spare slots. Called after every change; a reallocation per quick mode at most.
    pub(crate) fn compact(&mut self) {
        if self.qms.is_empty() && self.qms.capacity() > 0 {
            self.qms = Vec::new();
        }
        if self.children.capacity() > self.children.len() {
            self.children.shrink_to_fit();
        }
    }

    /// Bytes of phase-1 material still held (see [`Sa::shed_phase1`]).
    #[cfg(test)]
    pub(crate) fn phase1_material(&self) -> usize {
        self.sa_i_b.capacity()
            + self.offered.capacity()
            + usize::from(self.kx.is_some())
            + self.g_xi.capacity()
            + self.g_xr.capacity()
            + self.g_xy.as_ref().map_or(0, |s| s.expose().len())
            + self.ni.capacity()
            + self.nr.capacity()
            + self.id_ours_b.capacity()
            + self.peer_id_b.capacity()
    }

    /// Our cookie, the handle of the SA.
    pub(crate) fn our_cookie(&self) -> IkeSpi {
        if self.initiator {
            self.cky_i
        } else {
            self.cky_r
        }
    }

    /// Derives SKEYID… once nonces and g^xy are known (pre-shared key or signatures, RFC
    /// 2409 §5).
    pub(crate) fn derive_keys(&mut self) -> Option<()> {
        let algs = self.algs.as_ref()?;
        let g_xy = self.g_xy.as_ref()?;
        let skeyid = match &self.cert {
            None => kdf::skeyid_psk(algs.prf, &self.cfg.psk, &self.ni, &self.nr),
            Some(_) => kdf::skeyid_sig(algs.prf, &self.ni, &self.nr, g_xy.expose()),
        };
        let k = kdf::Phase1Keys::derive(
            algs.prf,
            skeyid,
            g_xy.expose(),
            &self.cky_i.0.to_be_bytes(),
            &self.cky_r.0.to_be_bytes(),
        );
        let enc = kdf::encryption_key(algs.prf, &k.skeyid_e, algs.encr.key_len());
        self.iv = kdf::phase1_iv(algs.hash, &self.g_xi, &self.g_xr, algs.encr.block_len());
        self.keys = Some(P1Keys {
            skeyid: k.skeyid,
            skeyid_d: k.skeyid_d,
            skeyid_a: k.skeyid_a,
            enc,
        });
        Some(())
    }

    /// HASH_I (ours = initiator) or HASH_R: prf(SKEYID, g^x(self) | g^x(peer) | CKY-self |
    /// CKY-peer | SAi_b | ID_b) (RFC 2409 §5).
    pub(crate) fn phase1_hash(&self, of_initiator: bool, id_b: &[u8]) -> Option<Secret> {
        let algs = self.algs.as_ref()?;
        let keys = self.keys.as_ref()?;
        let (ci, cr) = (self.cky_i.0.to_be_bytes(), self.cky_r.0.to_be_bytes());
        Some(if of_initiator {
            algs.prf.compute(
                keys.skeyid.expose(),
                &[&self.g_xi, &self.g_xr, &ci, &cr, &self.sa_i_b, id_b],
            )
        } else {
            algs.prf.compute(
                keys.skeyid.expose(),
                &[&self.g_xr, &self.g_xi, &cr, &ci, &self.sa_i_b, id_b],
            )
        })
    }

    /// prf(SKEYID_a, parts…): the HASH payloads of quick mode and informational exchanges.
    pub(crate) fn hash_a(&self, parts: &[&[u8]]) -> Option<Secret> {
        let algs = self.algs.as_ref()?;
        let keys = self.keys.as_ref()?;
        Some(algs.prf.compute(keys.skeyid_a.expose(), parts))
    }

    /// The IV of a new phase-2 or informational exchange with message ID `mid`.
    pub(crate) fn phase2_iv(&self, mid: u32) -> Vec<u8> {
        match &self.algs {
            Some(a) => kdf::phase2_iv(a.hash, &self.iv, mid, a.encr.block_len()),
            None => Vec::new(),
        }
    }

    /// Encrypts a payload chain with `iv`: zero padding to the block size, CBC; `iv` becomes
    /// the last ciphertext block.
    pub(crate) fn encrypt(&self, iv: &mut Vec<u8>, mut plain: Vec<u8>) -> Option<Vec<u8>> {
        let algs = self.algs.as_ref()?;
        let keys = self.keys.as_ref()?;
        let bl = algs.encr.block_len();
        let pad = (bl - plain.len() % bl) % bl;
        plain.resize(plain.len() + pad, 0);
        algs.encr.ikev1_encrypt(&keys.enc, iv, &mut plain).ok()?;
        *iv = plain.get(plain.len().saturating_sub(bl)..)?.to_vec();
        Some(plain)
    }

    /// Decrypts with `iv`; returns the plaintext and the next IV (the last ciphertext block).
    pub(crate) fn decrypt(&self, iv: &[u8], data: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Unprotect> {
        let algs = self.algs.as_ref().ok_or(Unprotect)?;
        let keys = self.keys.as_ref().ok_or(Unprotect)?;
        let bl = algs.encr.block_len();
        if data.is_empty() || !data.len().is_multiple_of(bl) {
            return Err(Unprotect);
        }
        let next_iv = data[data.len() - bl..].to_vec();
        let mut buf = data.to_vec();
        algs.encr
            .ikev1_decrypt(&keys.enc, iv, &mut buf)
            .map_err(|_| Unprotect)?;
        Ok((buf, next_iv))
    }

    /// Quick-mode KEYMAT for the SA with `spi` (RFC 2409 §5.5).
    pub(crate) fn keymat(
        &self,
        qm: &QuickMode,
        spi: Spi,
        protocol: u8,
        len: usize,
    ) -> Option<Secret> {
        let algs = self.algs.as_ref()?;
        let keys = self.keys.as_ref()?;
        kdf::quick_mode_keymat(
            algs.prf,
            &keys.skeyid_d,
            qm.g_qm.as_ref().map(Secret::expose),
            protocol,
            spi.0,
            &qm.ni,
            &qm.nr,
            len,
        )
        .ok()
    }

    /// Remembers a request's message ID; `false` when it was seen already (a replay).
    pub(crate) fn note_mid(&mut self, mid: u32) -> bool {
        if self.seen_mids.contains(&mid) {
            return false;
        }
        if self.seen_mids.len() >= 64 {
            self.seen_mids.remove(0);
        }
        self.seen_mids.push(mid);
        true
    }
}

/// Our selectors of a policy as one IKEv1 selector per side: a set of one, or the IPv4 one of
/// "any" (an ID payload carries one selector; a tunnel without proxy IDs offers
/// 0.0.0.0/0 both ways, as the seeds say).
pub(crate) fn one_selector(set: &TsSet) -> Option<TrafficSelector> {
    set.iter()
        .find(|t| !t.addrs.is_ipv6())
        .or_else(|| set.iter().next())
        .copied()
}

/// The payload type constants used by the exchanges.
pub(crate) mod pt {
    use super::PayloadType;
    pub(crate) const SA: PayloadType = PayloadType::SA;
    pub(crate) const KE: PayloadType = PayloadType::KE;
    pub(crate) const ID: PayloadType = PayloadType::ID;
    pub(crate) const HASH: PayloadType = PayloadType::HASH;
    pub(crate) const NONCE: PayloadType = PayloadType::NONCE;
    pub(crate) const N: PayloadType = PayloadType::NOTIFICATION;
    pub(crate) const D: PayloadType = PayloadType::DELETE;
    pub(crate) const VID: PayloadType = PayloadType::VENDOR_ID;
    pub(crate) const NATD: PayloadType = PayloadType::NAT_D;
    pub(crate) const CERT: PayloadType = PayloadType::CERT;
    pub(crate) const CR: PayloadType = PayloadType::CR;
    pub(crate) const SIG: PayloadType = PayloadType::SIG;
}
