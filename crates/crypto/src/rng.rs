//! The injectable random number generator.

/// A cryptographically secure random number generator, supplied by the caller.
///
/// The crate never reads OS randomness itself (sans-IO): the daemon passes the OS generator,
/// tests pass a seeded ChaCha generator. Every `rand_core` `RngCore + CryptoRng` implements it.
/// The one exception is the caller's to choose: a generator that says it is the operating
/// system's ([`Rng::is_os_backed`]) lets aws-lc draw ECDH keys from its own OS-seeded
/// generator.
pub trait Rng {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);

    /// Whether this generator hands out the operating system's randomness (the daemon's).
    /// The crate may then let the backend draw a secret itself where importing one drawn here
    /// costs more: an ECDH private key on a NIST curve, which aws-lc checks against its public
    /// value on import (a second base-point multiplication; a P-256 exchange took 65 µs
    /// instead of 80–90 in the crate's benchmark). Deterministic generators keep the default,
    /// `false`, so that with them every value still derives from the seed.
    fn is_os_backed(&self) -> bool {
        false
    }
}

impl<T: rand_core::RngCore + rand_core::CryptoRng> Rng for T {
    fn fill(&mut self, buf: &mut [u8]) {
        self.fill_bytes(buf)
    }
}
