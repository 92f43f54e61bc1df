//! A small seeded generator (SplitMix64) for test inputs, benches and weight initialisation.
//!
//! In-house rather than `rand` so that a seed means the same numbers on every platform and every
//! dependency version: weights initialised from a seed must be reproducible forever.

/// SplitMix64: fast, statistically good for our purposes, and tiny.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn uniform_in(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln never sees 0
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// `n` standard normal values, drawn in parallel ([`par_fill`]) from one seed this generator
    /// draws: the values do not depend on the thread count, and the checks' GPU-sized inputs
    /// (hundreds of millions of values, ~23 ns each on one thread) take seconds, not minutes.
    pub fn normal_vec(&mut self, n: usize) -> Vec<f64> {
        let mut values = vec![0.0; n];
        par_fill(&mut values, self.next_u64(), Rng::normal);
        values
    }

    /// An integer in [0, n). Panics if `n` is 0 (the range is empty: there is no value to
    /// return).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0): the range [0, 0) holds no integer");
        // Past 2^53 the product can round up to n itself.
        ((self.uniform() * n as f64) as usize).min(n - 1)
    }
}

/// Elements drawn from one generator by [`par_fill`].
pub const DRAW_BLOCK: usize = 1 << 20;

/// Fills `out` in parallel, in blocks of [`DRAW_BLOCK`] elements, block `i` by calling `draw` on
/// its own generator `Rng::new(seed ^ i·0x9E3779B97F4A7C15)`: the values depend on `seed` only,
/// not on the number of threads. Weights drawn this way must stay reproducible forever, so the
/// seeding is fixed. `seed` must be well mixed (the weights' include a hash of the tensor's name):
/// with a small one, such as 1, `seed ^ i·K` equals `seed + i·K` for many blocks, and SplitMix64
/// steps by K, so those blocks would draw block 0's stream shifted by `i` values.
pub fn par_fill<T: Send>(out: &mut [T], seed: u64, draw: impl Fn(&mut Rng) -> T + Sync) {
    use rayon::prelude::*;
    out.par_chunks_mut(DRAW_BLOCK).enumerate().for_each(|(block, out)| {
        let mut rng = Rng::new(seed ^ (block as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        out.iter_mut().for_each(|v| *v = draw(&mut rng));
    });
}

#[cfg(test)]
mod tests {
    use super::{par_fill, Rng, DRAW_BLOCK};

    #[test]
    fn below_stays_in_its_range() {
        let mut rng = Rng::new(5);
        for n in [1, 2, 7, 1 << 40, usize::MAX] {
            assert!((0..1000).all(|_| rng.below(n) < n), "{n}");
        }
    }

    #[test]
    #[should_panic(expected = "holds no integer")]
    fn below_refuses_an_empty_range() {
        Rng::new(5).below(0);
    }

    /// Block `i` of a parallel fill is what one generator seeded for block `i` draws in turn.
    #[test]
    fn par_fill_draws_each_block_from_its_own_generator() {
        let mut values = vec![0.0; DRAW_BLOCK + 5];
        par_fill(&mut values, 11, |rng| rng.uniform());
        let mut first = Rng::new(11);
        let mut second = Rng::new(11 ^ 0x9E37_79B9_7F4A_7C15);
        assert!(values[..DRAW_BLOCK].iter().all(|&v| v == first.uniform()));
        assert!(values[DRAW_BLOCK..].iter().all(|&v| v == second.uniform()));
    }

    #[test]
    fn normal_has_unit_moments() {
        let v = Rng::new(7).normal_vec(200_000);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }
}
