//! Small seeded generators, so init and dropout masks are reproducible per model and per thread
//! (libtorch's global generator is shared by every run in the process).

/// SplitMix64 step: a strong 64-bit mixer, also used as a counter-based hash.
#[inline]
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Sequential seeded generator (SplitMix64 stream).
#[derive(Debug, Clone)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    /// A generator whose stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: splitmix64(seed ^ 0x0005_EED0_FD80_u64),
        }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix64(self.state)
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal, by Box-Muller from two uniforms (one value per call).
    pub fn next_normal(&mut self) -> f64 {
        // 1 - u lies in (0, 1], so the log is finite.
        let r = (-2.0 * (1.0 - self.next_f64()).ln()).sqrt();
        r * (std::f64::consts::TAU * self.next_f64()).cos()
    }

    /// Uniform integer in [0, n) (n > 0), by multiply-shift (bias < 2^-32 for n < 2^32).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }

    /// A derived, independent seed (for child generators).
    pub fn fork(&mut self) -> u64 {
        self.next_u64()
    }
}

/// A flat f32 tensor of `n` values uniform in [-bound, bound] (weight init; biases use bound 0).
pub fn uniform_tensor(rng: &mut SeededRng, n: usize, bound: f64) -> tch::Tensor {
    let v: Vec<f32> = (0..n)
        .map(|_| ((2.0 * rng.next_f64() - 1.0) * bound) as f32)
        .collect();
    tch::Tensor::from_slice(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_uniform_mean() {
        let mut a = SeededRng::new(7);
        let mut b = SeededRng::new(7);
        let xs: Vec<f64> = (0..20_000).map(|_| a.next_f64()).collect();
        let ys: Vec<f64> = (0..20_000).map(|_| b.next_f64()).collect();
        assert_eq!(xs, ys);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<usize> = (0..100).collect();
        SeededRng::new(1).shuffle(&mut v);
        assert_ne!(v, (0..100).collect::<Vec<_>>());
        let mut s = v.clone();
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
    }
}
