//! Stateless cookies against IKE_SA_INIT floods (RFC 7296 §2.6; R-V2-5, R-CFG-10).
//!
//! While the number of half-open IKE SAs is below the activation threshold, the responder
//! answers IKE_SA_INIT normally. From the threshold on (or always, with strict cookie
//! validation, or with a threshold of 0) it answers a request without a valid COOKIE notify
//! with a COOKIE of its own and keeps **no state and does no DH**; the initiator repeats its
//! request with the cookie in front.
//!
//! ```text
//! Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>)
//! ```
//!
//! The version is a 4-byte counter, the hash SHA-256, the secret 32 random bytes that
//! rotate every [`CookieConfig::rotation`]; cookies made with the previous secret stay valid
//! until the next rotation, so a cookie handed out just before a rotation still works.
//! A hard maximum of half-open SAs holds whatever the cookies say.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrosec_crypto::{HashAlgorithm, Rng, ct_eq};
use ferrosec_wire::IkeSpi;

/// Length of the cookies we make: 4-byte version and a SHA-256 hash.
pub const COOKIE_LEN: usize = 4 + 32;

/// The longest COOKIE notify data accepted from a peer (§3.10.1: 1 to 64 octets).
pub const MAX_COOKIE_LEN: usize = 64;

/// Cookie and half-open limits (R-CFG-10, R-CFG-4 `strict-cookie-validation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieConfig {
    /// Half-open SAs from which cookies are required; 0 = always (default 500).
    pub activation_threshold: usize,
    /// The most half-open SAs kept (default 65535); beyond it a request gets a cookie, or,
    /// with a valid one, the slot of an old half-open SA ([`crate::halfopen`]).
    pub max_half_open: usize,
    /// Require a cookie always.
    pub strict: bool,
    /// How often the secret changes (default 2 minutes).
    pub rotation: Duration,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            activation_threshold: 500,
            max_half_open: 65535,
            strict: false,
            rotation: Duration::from_secs(120),
        }
    }
}

/// What to do with an IKE_SA_INIT request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieDecision {
    /// Go on: create the half-open SA.
    Proceed,
    /// Answer with this COOKIE notify and keep no state.
    SendCookie(Vec<u8>),
}

/// The information a cookie binds: the initiator's nonce, address and SPI.
#[derive(Debug, Clone, Copy)]
pub struct CookieInput<'a> {
    /// Ni.
    pub nonce: &'a [u8],
    /// The initiator's IP address as seen by us.
    pub addr: IpAddr,
    /// SPIi.
    pub spi_i: IkeSpi,
}

/// The cookie secrets and the policy.
pub struct CookieJar {
    config: CookieConfig,
    version: u32,
    current: [u8; 32],
    previous: Option<(u32, [u8; 32])>,
    next_rotation: Instant,
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieJar")
            .field("config", &self.config)
            .field("version", &self.version)
            .field("next_rotation", &self.next_rotation)
            .finish_non_exhaustive()
    }
}

impl CookieJar {
    /// A jar with a fresh secret.
    pub fn new(config: CookieConfig, now: Instant, rng: &mut dyn Rng) -> Self {
        let mut current = [0u8; 32];
        rng.fill(&mut current);
        CookieJar {
            config,
            version: 0,
            current,
            previous: None,
            next_rotation: now + config.rotation,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CookieConfig {
        &self.config
    }

    /// When the secret rotates next.
    pub fn poll_timeout(&self) -> Instant {
        self.next_rotation
    }

    /// Rotates the secret if its time has come.
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut dyn Rng) {
        if now < self.next_rotation {
            return;
        }
        self.previous = Some((self.version, self.current));
        self.version = self.version.wrapping_add(1);
        rng.fill(&mut self.current);
        // If we were asleep for several periods, the previous secret is stale too; keeping it
        // one more period is harmless.
        self.next_rotation = now + self.config.rotation;
    }

    /// Whether cookies are required with this many half-open SAs (always at the global
    /// limit, whatever the threshold).
    pub fn required(&self, half_open: usize) -> bool {
        self.config.strict
            || self.config.activation_threshold == 0
            || half_open >= self.config.activation_threshold
            || half_open >= self.config.max_half_open
    }

    /// Whether this many half-open SAs are at or above the activation threshold: the load
    /// asks for cookies (strict mode aside).
    pub fn required_by_load(&self, half_open: usize) -> bool {
        half_open >= self.config.activation_threshold
    }

    fn make(version: u32, secret: &[u8; 32], input: &CookieInput<'_>) -> Vec<u8> {
        let ip = match input.addr {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let spi = input.spi_i.0.to_be_bytes();
        let v = version.to_be_bytes();
        let hash = HashAlgorithm::Sha256.digest(&[input.nonce, &ip, &spi, secret]);
        let mut out = Vec::with_capacity(COOKIE_LEN);
        out.extend_from_slice(&v);
        out.extend_from_slice(&hash);
        out
    }

    /// The cookie for this request under the current secret.
    pub fn cookie_for(&self, input: &CookieInput<'_>) -> Vec<u8> {
        Self::make(self.version, &self.current, input)
    }

    /// Whether `cookie` is one we made (with the current or previous secret) for this request.
    pub fn verify(&self, input: &CookieInput<'_>, cookie: &[u8]) -> bool {
        let Some(version) = cookie
            .get(..4)
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(u32::from_be_bytes)
        else {
            return false;
        };
        let secret = if version == self.version {
            &self.current
        } else {
            match &self.previous {
                Some((v, s)) if *v == version => s,
                _ => return false,
            }
        };
        ct_eq(&Self::make(version, secret, input), cookie)
    }

    /// Decides about an IKE_SA_INIT request with `cookie` (the COOKIE notify data, if the
    /// request had one) while `half_open` SAs exist. Whether a request that passes gets
    /// state (per-address and global limits) is [`crate::halfopen`]'s decision.
    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.6
    //# When one party receives an IKE_SA_INIT request containing a cookie whose contents do
    //# not match the value expected, that party MUST ignore the cookie and process the
    //# message as if no cookie had been included
    /// `strict` asks for a cookie whatever the load (the gateway's own strict validation).
    pub fn decide(
        &self,
        half_open: usize,
        input: &CookieInput<'_>,
        cookie: Option<&[u8]>,
        strict: bool,
    ) -> CookieDecision {
        let valid = cookie.is_some_and(|c| self.verify(input, c));
        if valid || !(strict || self.required(half_open)) {
            CookieDecision::Proceed
        } else {
            CookieDecision::SendCookie(self.cookie_for(input))
        }
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn epoch() -> Instant {
        crate::sim::epoch()
    }

    fn input(nonce: &[u8]) -> CookieInput<'_> {
        CookieInput {
            nonce,
            addr: "192.0.2.1".parse().unwrap(),
            spi_i: IkeSpi(0x1122_3344_5566_7788),
        }
    }

    fn jar(config: CookieConfig) -> (CookieJar, ChaCha8Rng) {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        (CookieJar::new(config, epoch(), &mut rng), rng)
    }

    #[test]
    fn below_threshold_no_cookie_needed() {
        let (j, _) = jar(CookieConfig {
            activation_threshold: 10,
            ..Default::default()
        });
        assert_eq!(
            j.decide(9, &input(b"nonce-nonce-1234"), None, false),
            CookieDecision::Proceed
        );
        // A wrong cookie below the threshold is ignored, not fatal.
        assert_eq!(
            j.decide(0, &input(b"nonce-nonce-1234"), Some(b"garbage"), false),
            CookieDecision::Proceed
        );
    }

    #[test]
    fn at_threshold_cookie_is_required_and_then_accepted() {
        let (j, _) = jar(CookieConfig {
            activation_threshold: 10,
            ..Default::default()
        });
        let i = input(b"nonce-nonce-1234");
        let CookieDecision::SendCookie(c) = j.decide(10, &i, None, false) else {
            panic!("expected a cookie");
        };
        assert_eq!(c.len(), COOKIE_LEN);
        assert_eq!(j.decide(10, &i, Some(&c), false), CookieDecision::Proceed);
        // The cookie is bound to nonce, address and SPI.
        let other_nonce = input(b"nonce-nonce-9999");
        assert!(matches!(
            j.decide(10, &other_nonce, Some(&c), false),
            CookieDecision::SendCookie(_)
        ));
        let mut other_addr = i;
        other_addr.addr = "192.0.2.2".parse().unwrap();
        assert!(!j.verify(&other_addr, &c));
        let mut other_spi = i;
        other_spi.spi_i = IkeSpi(1);
        assert!(!j.verify(&other_spi, &c));
        // Flipping any byte breaks it.
        for k in 0..c.len() {
            let mut bad = c.clone();
            bad[k] ^= 1;
            assert!(!j.verify(&i, &bad), "byte {k}");
        }
        assert!(!j.verify(&i, &c[..3]));
    }

    #[test]
    fn strict_and_zero_threshold_always_ask() {
        for config in [
            CookieConfig {
                strict: true,
                ..Default::default()
            },
            CookieConfig {
                activation_threshold: 0,
                ..Default::default()
            },
        ] {
            let (j, _) = jar(config);
            assert!(matches!(
                j.decide(0, &input(b"nonce-nonce-1234"), None, false),
                CookieDecision::SendCookie(_)
            ));
        }
    }

    #[test]
    fn at_the_global_limit_a_request_still_gets_a_cookie() {
        let (j, _) = jar(CookieConfig {
            activation_threshold: 2,
            max_half_open: 4,
            ..Default::default()
        });
        let i = input(b"nonce-nonce-1234");
        assert!(matches!(
            j.decide(4, &i, None, false),
            CookieDecision::SendCookie(_)
        ));
        assert!(matches!(
            j.decide(9, &i, None, false),
            CookieDecision::SendCookie(_)
        ));
        let c = j.cookie_for(&i);
        assert_eq!(j.decide(4, &i, Some(&c), false), CookieDecision::Proceed);
    }

    #[test]
    fn secret_rotates_and_previous_stays_valid_one_period() {
        let config = CookieConfig {
            strict: true,
            rotation: Duration::from_secs(60),
            ..Default::default()
        };
        let (mut j, mut rng) = jar(config);
        let i = input(b"nonce-nonce-1234");
        let old = j.cookie_for(&i);
        assert_eq!(j.poll_timeout(), epoch() + Duration::from_secs(60));
        j.handle_timeout(epoch() + Duration::from_secs(30), &mut rng);
        assert_eq!(j.cookie_for(&i), old, "no rotation before its time");
        j.handle_timeout(epoch() + Duration::from_secs(60), &mut rng);
        let new = j.cookie_for(&i);
        assert_ne!(new, old);
        assert!(j.verify(&i, &old), "previous secret still accepted");
        assert!(j.verify(&i, &new));
        j.handle_timeout(epoch() + Duration::from_secs(120), &mut rng);
        assert!(
            !j.verify(&i, &old),
            "two rotations later the old cookie is dead"
        );
        assert!(j.verify(&i, &new));
    }
}
