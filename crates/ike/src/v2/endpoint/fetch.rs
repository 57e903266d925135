//! Hash-and-URL certificates from the peer (RFC 7296 §3.6): an IKE_AUTH message whose CERT
//! payloads name the peer's certificate by SHA-1 and URL waits while the daemon fetches it
//! ([`Event::FetchCertificate`]); [`Endpoint::certificate_fetched`] checks the hash and goes
//! on with the message as if the certificate had come in it.
//!
//! CRL distribution points (`certificate.crl-fetch`, RFC 5280 §4.2.1.13) the same way: an
//! IKE_AUTH message whose certificates name an http:// distribution point for which no fresh
//! CRL is held (and no CRL file of that issuer is configured) waits while the daemon fetches
//! it ([`Event::FetchCrl`], at most 5 s); [`Endpoint::crl_fetched`] checks the CRL's signature
//! with the issuer's certificate and keeps it ([`crl_cache`](super::crl_cache)). A failed
//! fetch does not fail the authentication: the certificate is checked without that CRL
//! (strongSwan's default policy), and the daemon logs the URL. The distribution points of
//! certificates that came by hash and URL are looked at once those are fetched.

use ferrosec_crypto::crl::Crl;
use ferrosec_crypto::x509::Certificate;

use super::crl_cache::Lookup;
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
    /// CRL distribution points being fetched: the URL, the certificate of the CRL's issuer
    /// (when the chain or our anchors hold it) and whether the answer came.
    crls: Vec<(String, Option<Certificate>, bool)>,
    /// Whether the distribution points of the certificates fetched by hash and URL were
    /// looked at (they are known only once those are here).
    fetched_cdps_seen: bool,
}

/// The most distribution points one IKE_AUTH message waits for.
const MAX_CRL_FETCHES: usize = 8;

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
        now: Instant,
        sa: &mut IkeSa,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        first: PayloadType,
        plain: &[u8],
        inner: &[Payload<'_>],
    ) -> bool {
        let Some(auth) = self.certs.get(&sa.peer).cloned() else {
            return false;
        };
        if header.exchange_type != ExchangeType::IKE_AUTH
            || !(auth.fetch_hash_and_url || auth.fetch_crls)
        {
            return false;
        }
        let urls = if auth.fetch_hash_and_url {
            hash_urls(inner)
        } else {
            Vec::new()
        };
        let crls = match self.unix_time(now) {
            Some(t) if auth.fetch_crls => self.crls_wanted(&auth, inner, t),
            _ => Vec::new(),
        };
        if urls.is_empty() && crls.is_empty() {
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
        for (url, _, _) in &crls {
            self.event(Event::FetchCrl {
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
            crls,
            fetched_cdps_seen: false,
        }));
        true
    }

    /// The distribution points of the certificates in `inner` to fetch: http:// URLs with no
    /// fresh CRL and no recent failure held, of certificates whose issuer has no configured
    /// CRL file; with the issuer's certificate, for the CRL's signature.
    fn crls_wanted(
        &self,
        auth: &CertAuth,
        inner: &[Payload<'_>],
        now: u64,
    ) -> Vec<(String, Option<Certificate>, bool)> {
        let ders: Vec<&[u8]> = inner
            .iter()
            .filter_map(|p| match &p.body {
                PayloadBody::Cert(c) if c.encoding == CertEncoding::X509_SIGNATURE => Some(c.data),
                _ => None,
            })
            .collect();
        self.crls_of(auth, &ders, &[], now)
    }

    /// [`Core::crls_wanted`] of these DER certificates, leaving out the URLs in `asked`.
    fn crls_of(
        &self,
        auth: &CertAuth,
        ders: &[&[u8]],
        asked: &[String],
        now: u64,
    ) -> Vec<(String, Option<Certificate>, bool)> {
        let certs: Vec<Certificate> = ders
            .iter()
            .filter_map(|d| Certificate::from_der(d).ok())
            .take(ferrosec_crypto::x509::MAX_CHAIN_LEN)
            .collect();
        let mut out: Vec<(String, Option<Certificate>, bool)> = Vec::new();
        for c in &certs {
            let issuer = c.issuer_der();
            if auth
                .crls
                .iter()
                .any(|l| l.issuer_der() == issuer.as_slice())
            {
                continue;
            }
            let issuer_cert = certs
                .iter()
                .chain(&auth.trust_anchors)
                .find(|i| i.subject_der() == issuer)
                .cloned();
            for url in c.crl_urls() {
                if out.len() + asked.len() < MAX_CRL_FETCHES
                    && !out.iter().any(|(u, _, _)| *u == url)
                    && !asked.contains(&url)
                    && self.crl_cache.lookup(&url, now) == Lookup::Fetch
                {
                    out.push((url, issuer_cert.clone(), false));
                }
            }
        }
        out
    }

    fn crl_arrived(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        url: &str,
        result: Result<Vec<u8>, String>,
    ) -> (Keep, Result<Crl, String>) {
        let Some(f) = sa.fetching.as_mut() else {
            return (
                Keep::Yes,
                Err("the IKE SA that asked for it is gone".into()),
            );
        };
        let Some(slot) = f.crls.iter_mut().find(|(u, _, done)| u == url && !done) else {
            return (Keep::Yes, Err("no IKE_AUTH waits for it".into()));
        };
        slot.2 = true;
        let t = self.unix_time(now).unwrap_or(0);
        let issuer = slot.1.clone();
        let outcome = result.and_then(|der| {
            let crl = Crl::from_der(&der).map_err(|e| e.to_string())?;
            match &issuer {
                Some(i) => match crl.check_signed_by(i) {
                    Ok(()) => Ok(crl),
                    Err(why) => Err(format!(
                        "the CRL (issuer \"{}\") is not signed by \"{}\", the issuer of the \
                         certificate that names it: {why}",
                        crl.issuer(),
                        i.subject()
                    )),
                },
                None => Err(format!(
                    "the certificate of its issuer \"{}\" is neither one of our CAs nor sent \
                     by the peer, so its signature cannot be checked",
                    crl.issuer()
                )),
            }
        });
        self.crl_cache.put(url, outcome.as_ref().ok().cloned(), t);
        (self.resume(now, sa), outcome)
    }

    /// Handles the waiting message once every certificate and CRL it waits for is here.
    fn resume(&mut self, now: Instant, sa: &mut IkeSa) -> Keep {
        let Some(f) = sa.fetching.as_ref() else {
            return Keep::Yes;
        };
        if f.wanted.iter().any(|(_, _, der)| der.is_none())
            || f.crls.iter().any(|(_, _, done)| !done)
        {
            return Keep::Yes;
        }
        // Certificates that came by hash and URL: their distribution points are known now.
        if !f.wanted.is_empty() && !f.fetched_cdps_seen {
            let more = match (self.certs.get(&sa.peer).cloned(), self.unix_time(now)) {
                (Some(auth), Some(t)) if auth.fetch_crls => {
                    let ders: Vec<&[u8]> = f
                        .wanted
                        .iter()
                        .filter_map(|(_, _, d)| d.as_deref())
                        .collect();
                    let asked: Vec<String> = f.crls.iter().map(|(u, _, _)| u.clone()).collect();
                    self.crls_of(&auth, &ders, &asked, t)
                }
                _ => Vec::new(),
            };
            let (handle, peer) = (IkeSaHandle(sa.our_spi()), self.peers[&sa.peer].name.clone());
            if let Some(f) = sa.fetching.as_mut() {
                f.fetched_cdps_seen = true;
                if !more.is_empty() {
                    for (url, _, _) in &more {
                        self.event(Event::FetchCrl {
                            handle,
                            peer: peer.clone(),
                            url: url.clone(),
                        });
                    }
                    f.crls.extend(more);
                    return Keep::Yes;
                }
            }
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
        self.resume(now, sa)
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

    /// The daemon's answer to [`Event::FetchCrl`]: the DER CRL found at `url`, or why there
    /// is none. A CRL that parses and is signed by the issuer of the certificate that names
    /// it is kept until its nextUpdate and used for this and later authentications; a
    /// failure is remembered for a while and the certificate is checked without it. When
    /// nothing else is awaited, the waiting IKE_AUTH message is handled. Gives the CRL, or
    /// why it is not used, for the daemon's log.
    pub fn crl_fetched(
        &mut self,
        now: Instant,
        h: IkeSaHandle,
        url: &str,
        result: Result<Vec<u8>, String>,
    ) -> Result<Crl, String> {
        let h = self.resolve(h);
        let Some((sa, core)) = self.lend(h.0) else {
            return Err("the IKE SA that asked for it is gone".into());
        };
        let (keep, outcome) = core.crl_arrived(now, sa, url, result);
        self.settle(now, h.0, keep);
        outcome
    }

    /// The CRLs fetched from distribution points and held now, with their URLs.
    pub fn fetched_crls(&self) -> Vec<(String, Crl)> {
        self.crl_cache.list()
    }
}
