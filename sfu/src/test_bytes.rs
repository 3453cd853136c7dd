//! Reproducible pseudo-random bytes for tests that feed parsers garbage.

/// A xorshift generator: the same seed gives the same bytes on every run.
pub(crate) struct Pseudorandom(u32);

impl Pseudorandom {
    pub(crate) fn new(seed: u32) -> Self {
        Self(seed.max(1))
    }

    /// The next `len` bytes.
    pub(crate) fn take(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 17;
                self.0 ^= self.0 << 5;
                self.0 as u8
            })
            .collect()
    }
}
