//! The IKE engines' randomness: the kernel's (`getrandom(2)` through `OsRng`), fetched a pool
//! at a time instead of one system call per draw. An IKEv2 handshake draws about eleven times
//! (SPI, nonce, ECDH scalar, Child SA SPI, IVs …), each a few dozen bytes.
//!
//! The pool holds kernel randomness not yet handed out, nothing derived from it: every byte is
//! used once, zeroed as it is handed out, and the rest is zeroed on drop (it lives in a
//! [`Secret`]). Large draws bypass the pool.

use ferrosec_crypto::{Rng, Secret};
use rand_core::RngCore;

/// Bytes fetched per `getrandom(2)`.
const POOL_BYTES: usize = 512;
/// Draws longer than this go straight to the kernel.
const DIRECT_ABOVE: usize = POOL_BYTES / 4;

/// Kernel randomness, pooled (see the module comment).
pub(crate) struct PooledOsRng {
    pool: Secret,
    /// Bytes of `pool` handed out (and zeroed) since it was filled.
    used: usize,
}

impl PooledOsRng {
    pub(crate) fn new() -> Self {
        PooledOsRng {
            pool: Secret::zeroed(POOL_BYTES),
            // Empty: the first draw fills it.
            used: POOL_BYTES,
        }
    }
}

impl Rng for PooledOsRng {
    fn fill(&mut self, out: &mut [u8]) {
        if out.len() > DIRECT_ABOVE {
            rand_core::OsRng.fill_bytes(out);
            return;
        }
        if POOL_BYTES - self.used < out.len() {
            rand_core::OsRng.fill_bytes(self.pool.expose_mut());
            self.used = 0;
        }
        let src = &mut self.pool.expose_mut()[self.used..self.used + out.len()];
        out.copy_from_slice(src);
        src.fill(0);
        self.used += out.len();
    }

    fn is_os_backed(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// It says it is the operating system's, so that the crypto crate lets aws-lc draw ECDH
    /// keys itself (cheaper than importing ours).
    #[test]
    fn it_is_os_backed() {
        assert!(PooledOsRng::new().is_os_backed());
    }

    #[test]
    fn draws_are_fresh_and_leave_zeros_behind() {
        let mut rng = PooledOsRng::new();
        let mut seen = std::collections::HashSet::new();
        // More draws than one pool holds, so it is refilled on the way.
        for _ in 0..3 * POOL_BYTES / 32 {
            let mut b = [0u8; 32];
            rng.fill(&mut b);
            assert_ne!(b, [0u8; 32], "a draw of zeros");
            assert!(seen.insert(b), "a draw came back twice");
            let used = rng.used;
            assert!(
                rng.pool.expose()[..used].iter().all(|&x| x == 0),
                "bytes handed out are still in the pool"
            );
        }
    }

    #[test]
    fn odd_sizes_and_large_draws() {
        let mut rng = PooledOsRng::new();
        let mut a = [0u8; 7];
        rng.fill(&mut a);
        assert_eq!(rng.used, 7);
        // A draw larger than what is left refills the pool first.
        let mut b = [0u8; DIRECT_ABOVE];
        while POOL_BYTES - rng.used >= DIRECT_ABOVE {
            rng.fill(&mut b);
        }
        rng.fill(&mut b);
        assert_eq!(rng.used, DIRECT_ABOVE, "refilled, then one draw");
        // Large draws bypass the pool.
        let mut big = vec![0u8; POOL_BYTES * 2];
        rng.fill(&mut big);
        assert_eq!(rng.used, DIRECT_ABOVE);
        assert!(big.iter().any(|&x| x != 0));
        let mut empty = [0u8; 0];
        rng.fill(&mut empty);
        assert_eq!(rng.used, DIRECT_ABOVE);
    }
}
