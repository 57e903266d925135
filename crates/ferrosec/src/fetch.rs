//! Fetching a peer's hash-and-URL certificate (RFC 7296 §3.6) for the IKE engine
//! ([`ferrosec_ike::event::Event::FetchCertificate`]), with `certificate.hash-and-url-fetch`,
//! and the CRL at a distribution point of a peer's certificate
//! ([`ferrosec_ike::event::Event::FetchCrl`], with `certificate.crl-fetch`; at most
//! [`MAX_CRL`] bytes, the rest of the fences alike).
//!
//! A URL from the peer makes the gateway connect where the peer says, so the fetch is
//! fenced: only `http://`, never to a loopback, unspecified, multicast, broadcast or
//! link-local address (of a name: every address it resolves to is checked), one HTTP/1.1
//! GET with hyper, no redirects, at most [`MAX_CERT`] bytes within [`FETCH_TIMEOUT`] in
//! all.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// The largest certificate taken.
pub(crate) const MAX_CERT: usize = 16 * 1024;
/// The largest CRL taken.
pub(crate) const MAX_CRL: usize = ferrosec_crypto::crl::MAX_CRL_SIZE;
/// The whole fetch (resolving, connecting, the answer) within this.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an address may not be fetched from, if it may not.
fn refused(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(a) if a.is_loopback() => Some("a loopback address"),
        IpAddr::V4(a) if a.is_unspecified() => Some("the unspecified address"),
        IpAddr::V4(a) if a.is_multicast() || a.is_broadcast() => {
            Some("a multicast or broadcast address")
        }
        IpAddr::V4(a) if a.is_link_local() => Some("a link-local address"),
        IpAddr::V6(a) if a.is_loopback() => Some("a loopback address"),
        IpAddr::V6(a) if a.is_unspecified() => Some("the unspecified address"),
        IpAddr::V6(a) if a.is_multicast() => Some("a multicast address"),
        IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 => Some("a link-local address"),
        _ => None,
    }
}

/// The host, port and path of an `http://` URL.
fn parse(url: &str) -> Result<(String, u16, String), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// URLs are fetched".into());
    }
    let host = uri.host().ok_or("the URL has no host")?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let path = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    Ok((host, uri.port_u16().unwrap_or(80), path))
}

/// Fetches the DER certificate at `url`, within [`FETCH_TIMEOUT`].
pub(crate) async fn fetch(url: &str) -> Result<Vec<u8>, String> {
    fetch_at_most(url, MAX_CERT).await
}

/// Fetches what is at `url` (at most `max` bytes), within [`FETCH_TIMEOUT`].
pub(crate) async fn fetch_at_most(url: &str, max: usize) -> Result<Vec<u8>, String> {
    tokio::time::timeout(FETCH_TIMEOUT, fetch_unbounded(url, max))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", FETCH_TIMEOUT.as_secs())))
}

async fn fetch_unbounded(url: &str, max: usize) -> Result<Vec<u8>, String> {
    let (host, port, path) = parse(url)?;
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect(),
    };
    if let Some((a, why)) = addrs.iter().find_map(|a| refused(a.ip()).map(|w| (a, w))) {
        return Err(format!(
            "refused: {} is {why} (a peer's URL may not reach this host's own services)",
            a.ip()
        ));
    }
    let addr = addrs
        .first()
        .ok_or_else(|| format!("{host} has no address"))?;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP with {addr}: {e}"))?;
    let driver = tokio::spawn(conn);
    let authority = if port == 80 {
        host.clone()
    } else {
        format!("{host}:{port}")
    };
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(
            hyper::header::USER_AGENT,
            concat!("ferrosec/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP with {addr}: {e}"))?;
    let status = response.status();
    if status != hyper::StatusCode::OK {
        driver.abort();
        return Err(format!(
            "the server answered HTTP {status} (redirects are not followed)"
        ));
    }
    let body = Limited::new(response.into_body(), max)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e} (at most {max} bytes are taken)"))?;
    driver.abort();
    Ok(body.to_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_with_a_host_are_taken() {
        assert_eq!(
            parse("http://192.0.2.1:8080/ab12").unwrap(),
            ("192.0.2.1".into(), 8080, "/ab12".into())
        );
        assert_eq!(
            parse("http://[2001:db8::1]/c").unwrap(),
            ("2001:db8::1".into(), 80, "/c".into())
        );
        assert!(parse("https://192.0.2.1/x").is_err());
        assert!(parse("file:///etc/passwd").is_err());
        assert!(parse("not a url").is_err());
    }

    #[test]
    fn the_hosts_own_and_local_addresses_are_refused() {
        for a in [
            "127.0.0.1",
            "::1",
            "0.0.0.0",
            "169.254.1.1",
            "fe80::1",
            "224.0.0.1",
            "::ffff:127.0.0.1",
        ] {
            assert!(refused(a.parse().unwrap()).is_some(), "{a}");
        }
        for a in ["192.0.2.1", "2001:db8::1", "10.1.2.3"] {
            assert!(refused(a.parse().unwrap()).is_none(), "{a}");
        }
    }

    #[tokio::test]
    async fn a_fetch_from_loopback_is_refused_before_connecting() {
        let e = fetch("http://127.0.0.1:9/cert").await.unwrap_err();
        assert!(e.contains("127.0.0.1 is a loopback address"), "{e}");
    }
}
