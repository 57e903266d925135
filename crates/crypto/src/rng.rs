//! The injectable random number generator.

/// A cryptographically secure random number generator, supplied by the caller.
///
/// The crate never reads OS randomness itself (sans-IO): the daemon passes the OS generator,
/// tests pass a seeded ChaCha generator. Every `rand_core` `RngCore + CryptoRng` implements it.
pub trait Rng {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

impl<T: rand_core::RngCore + rand_core::CryptoRng> Rng for T {
    fn fill(&mut self, buf: &mut [u8]) {
        self.fill_bytes(buf)
    }
}
