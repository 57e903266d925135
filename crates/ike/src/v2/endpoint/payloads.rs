//! The payloads of a message that the exchanges read, collected in one typed pass: each
//! handler asks for the ones it needs instead of walking the message itself.

use super::*;
use ferrosec_wire::ikev2::{Auth, Identification, KeyExchange};

/// The singular payloads of one message (the last of each kind wins, as the RFC leaves
/// duplicates undefined and every earlier hand-written walk did), and the REKEY_SA notify.
#[derive(Default)]
pub(super) struct Found<'p, 'a> {
    pub(super) sa: Option<&'p Sa<'a>>,
    pub(super) ke: Option<KeyExchange<'a>>,
    pub(super) nonce: Option<&'a [u8]>,
    pub(super) idi: Option<Identification<'a>>,
    pub(super) idr: Option<Identification<'a>>,
    pub(super) auth: Option<Auth<'a>>,
    pub(super) tsi: Option<TsSet>,
    pub(super) tsr: Option<TsSet>,
    pub(super) rekey_sa: Option<Notify<'a>>,
}

impl<'p, 'a> Found<'p, 'a> {
    pub(super) fn of(payloads: &'p [Payload<'a>]) -> Self {
        let mut f = Found::default();
        for p in payloads {
            match &p.body {
                PayloadBody::Sa(s) => f.sa = Some(s),
                PayloadBody::Ke(k) => f.ke = Some(*k),
                PayloadBody::Nonce(n) => f.nonce = Some(*n),
                PayloadBody::IdI(i) => f.idi = Some(*i),
                PayloadBody::IdR(i) => f.idr = Some(*i),
                PayloadBody::Auth(a) => f.auth = Some(*a),
                PayloadBody::TsI(t) => f.tsi = Some(TsSet::from_wire(t)),
                PayloadBody::TsR(t) => f.tsr = Some(TsSet::from_wire(t)),
                PayloadBody::Notify(n) if n.ty == NotifyType::REKEY_SA => f.rekey_sa = Some(*n),
                _ => {}
            }
        }
        f
    }
}
