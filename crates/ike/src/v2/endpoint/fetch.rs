//! Hash-and-URL certificates from the peer (RFC 7296 §3.6): an IKE_AUTH message whose CERT
//! payloads name the peer's certificate by SHA-1 and URL waits while the daemon fetches it
//! ([`Event::FetchCertificate`]); [`Endpoint::certificate_fetched`] checks the hash and goes
//! on with the message as if the certificate had come in it.

use super::*;

/// An authentic IKE_AUTH message waiting for the peer's certificates.
#[derive(Debug)]
pub(super) struct Fetching {
    header: Header,
    local: SocketAddr,
    remote: SocketAddr,
    first: PayloadType,
    plain: Vec<u8>,
    /// Per hash-and-URL CERT payload, in order: the SHA-1, the URL and, once fetched, the
    /// DER certificate.
    wanted: Vec<([u8; 20], String, Option<Vec<u8>>)>,
}

impl Fetching {
    /// Whether it waits for this message (a retransmission of it is dropped meanwhile).
    pub(super) fn is(&self, header: &Header) -> bool {
        self.header.message_id == header.message_id
            && self.header.flags.response() == header.flags.response()
    }
}

/// The largest URL taken from a peer.
const MAX_URL: usize = 1024;

/// The hash-and-URL CERT payloads of `inner` (§3.6: a 20-octet SHA-1, then the URL).
fn hash_urls(inner: &[Payload<'_>]) -> Vec<([u8; 20], String)> {
    inner
        .iter()
        .filter_map(|p| match &p.body {
            PayloadBody::Cert(c) if c.encoding == CertEncoding::HASH_URL_X509_CERT => {
                let (hash, url) = c.data.split_first_chunk::<20>()?;
                let url = std::str::from_utf8(url).ok()?;
                (!url.is_empty() && url.len() <= MAX_URL).then(|| (*hash, url.to_owned()))
            }
            _ => None,
        })
        .collect()
}

impl Core {
    /// An authentic IKE_AUTH message with hash-and-URL certificates, to a gateway that
    /// fetches them: asks for them and keeps the message. `false`: nothing to fetch.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fetch_first(
        &mut self,
        sa: &mut IkeSa,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        first: PayloadType,
        plain: &[u8],
        inner: &[Payload<'_>],
    ) -> bool {
        if header.exchange_type != ExchangeType::IKE_AUTH
            || !self
                .certs
                .get(&sa.peer)
                .is_some_and(|c| c.fetch_hash_and_url)
        {
            return false;
        }
        let urls = hash_urls(inner);
        if urls.is_empty() {
            return false;
        }
        let peer = self.peers[&sa.peer].name.clone();
        for (_, url) in &urls {
            self.event(Event::FetchCertificate {
                handle: IkeSaHandle(sa.our_spi()),
                peer: peer.clone(),
                url: url.clone(),
            });
        }
        sa.fetching = Some(Box::new(Fetching {
            header: *header,
            local,
            remote,
            first,
            plain: plain.to_vec(),
            wanted: urls.into_iter().map(|(h, u)| (h, u, None)).collect(),
        }));
        true
    }

    fn fetched(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        url: &str,
        result: Result<Vec<u8>, String>,
    ) -> Keep {
        let Some(f) = sa.fetching.as_mut() else {
            return Keep::Yes;
        };
        let Some(slot) = f
            .wanted
            .iter_mut()
            .find(|(_, u, der)| u == url && der.is_none())
        else {
            return Keep::Yes;
        };
        let checked = result.and_then(|der| {
            //= https://www.rfc-editor.org/rfc/rfc7296#section-3.6
            //# implementations MUST verify that the hash of the received data matches
            let got = ferrosec_crypto::HashAlgorithm::Sha1.digest(&[&der]);
            if got == slot.0 {
                Ok(der)
            } else {
                Err("what is there does not match the SHA-1 hash the peer sent".into())
            }
        });
        match checked {
            Ok(der) => slot.2 = Some(der),
            Err(why) => {
                let Some(f) = sa.fetching.take() else {
                    return Keep::No;
                };
                let reason = Failure::CertificateFetch {
                    url: url.to_owned(),
                    why,
                };
                let name = self.peers[&sa.peer].name.clone();
                if !f.header.flags.response() {
                    // §2.21.2: the responder answers AUTHENTICATION_FAILED in the response.
                    let (ty, data) = Rejection::AuthFailed.notify();
                    self.respond(
                        sa,
                        &f.header,
                        &[Payload::new(PayloadBody::Notify(Notify::new(ty, &data)))],
                    );
                } else {
                    self.tell_auth_failed(sa);
                }
                self.failed_in(ExchangeType::IKE_AUTH, Some(sa), name, false, reason);
                return Keep::No;
            }
        }
        if f.wanted.iter().any(|(_, _, der)| der.is_none()) {
            return Keep::Yes;
        }
        let Some(f) = sa.fetching.take() else {
            return Keep::Yes;
        };
        let Ok(inner) = parse_payloads(f.first, &f.plain) else {
            return Keep::No;
        };
        // The message as if the certificates had come in it, in their places.
        let mut ders = f.wanted.iter().filter_map(|(_, _, d)| d.as_deref());
        let inner: Vec<Payload<'_>> = inner
            .into_iter()
            .map(|p| match &p.body {
                PayloadBody::Cert(c) if c.encoding == CertEncoding::HASH_URL_X509_CERT => {
                    match ders.next() {
                        Some(der) => {
                            Payload::new(PayloadBody::Cert(ferrosec_wire::ikev2::Certificate {
                                encoding: CertEncoding::X509_SIGNATURE,
                                data: der,
                            }))
                        }
                        None => p,
                    }
                }
                _ => p,
            })
            .collect();
        if f.header.flags.response() {
            self.handle_authentic_response(now, sa, &f.header, &inner)
        } else {
            self.handle_authentic_request(now, sa, f.local, f.remote, &f.header, &inner)
        }
    }
}

impl Endpoint {
    /// The daemon's answer to [`Event::FetchCertificate`]: the DER certificate found at
    /// `url`, or why there is none. When every certificate of the waiting IKE_AUTH message
    /// is here (and matches its hash), the message is handled; a failure fails the
    /// authentication in words.
    pub fn certificate_fetched(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        url: &str,
        result: Result<Vec<u8>, String>,
    ) {
        let h = self.resolve(h);
        let Some((sa, core)) = self.lend(h.0) else {
            return;
        };
        let keep = core.fetched(now, sa, url, result);
        self.settle(now, h.0, keep);
    }
}
