//! Production randomness: the thread-local, OS-seeded CSPRNG.

use domain::ports::RandomSource;
use rand::Rng;

/// [`RandomSource`] backed by `rand::rng()` (ChaCha, reseeded from the OS).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn below(&self, bound: usize) -> usize {
        rand::rng().random_range(0..bound.max(1))
    }
}
