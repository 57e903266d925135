//! NAT detection (RFC 7296 §2.23): the NAT_DETECTION_SOURCE_IP / DESTINATION_IP hashes.

use super::*;

pub(super) fn nat_hash(spi_i: IkeSpi, spi_r: IkeSpi, addr: SocketAddr) -> Vec<u8> {
    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.23
    //# The data associated with these Notify types is the SHA-1 digest of the SPIs (in
    //# the order they appear in the header), IP address, and port
    let ip = match addr.ip() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    HashAlgorithm::Sha1.digest(&[
        &spi_i.0.to_be_bytes(),
        &spi_r.0.to_be_bytes(),
        &ip,
        &addr.port().to_be_bytes(),
    ])
}

/// What we learn from the NAT_DETECTION notifies of a message we received: (we are behind a
/// NAT, the peer is). `None` if the peer sent none.
pub(super) fn nat_detect(
    payloads: &[Payload<'_>],
    spi_i: IkeSpi,
    spi_r: IkeSpi,
    local: SocketAddr,
    remote: SocketAddr,
) -> Option<(bool, bool)> {
    let mut src = Vec::new();
    let mut dst = None;
    for p in payloads {
        if let PayloadBody::Notify(n) = &p.body {
            match n.ty {
                NotifyType::NAT_DETECTION_SOURCE_IP => src.push(n.data),
                NotifyType::NAT_DETECTION_DESTINATION_IP => dst = Some(n.data),
                _ => {}
            }
        }
    }
    let dst = dst?;
    if src.is_empty() {
        return None;
    }
    let local_nat = nat_hash(spi_i, spi_r, local) != dst;
    let want = nat_hash(spi_i, spi_r, remote);
    let remote_nat = !src.contains(&want.as_slice());
    Some((local_nat, remote_nat))
}
